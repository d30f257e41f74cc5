//! Every model shipped in `models/`: each file verifies against the shipped
//! trust store and is stored under its own name and version; a server started
//! on the whole repository loads every one of them, refuses none, and
//! reproduces every example of every manifest over HTTP.

use std::path::{Path, PathBuf};

use serde_json::json;
use trademl_sdk::manifest::read_manifest;
use trademl_sdk::protocol::{InferenceResponse, tensors_close};

use crate::support::*;

/// `(model directory name, signed file)` for every shipped file.
fn shipped_files() -> Vec<(String, PathBuf)> {
    let root = workspace().join("models");
    let mut files = Vec::new();
    for dir in std::fs::read_dir(&root).unwrap().flatten() {
        let path = dir.path();
        let name = dir.file_name().to_string_lossy().to_string();
        if !path.is_dir() || name == "trust" {
            continue;
        }
        for f in std::fs::read_dir(&path).unwrap().flatten() {
            if f.path().extension().is_some_and(|e| e == "wasm") {
                files.push((name.clone(), f.path()));
            }
        }
    }
    files.sort();
    assert!(!files.is_empty(), "no signed model in {}", root.display());
    files
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            copy_tree(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).unwrap();
        }
    }
}

#[test]
fn every_shipped_file_is_signed_by_the_shipped_trust_store_and_named_for_its_manifest() {
    let trust = workspace().join("models").join("trust");
    for (dir, file) in shipped_files() {
        verify(&file, &trust).ok();
        let manifest = read_manifest(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(manifest.name, dir, "{}", file.display());
        assert_eq!(
            file.file_name().unwrap().to_string_lossy(),
            format!("{}.wasm", manifest.version),
            "{} is not named for its version",
            file.display()
        );
        assert!(
            !manifest.examples.is_empty(),
            "{}: a first-party model ships examples",
            file.display()
        );
    }
}

#[test]
fn a_server_on_the_shipped_repository_serves_every_model_and_reproduces_its_examples() {
    let repo = tempfile::Builder::new()
        .prefix("trademl-e2e-shipped-")
        .tempdir()
        .unwrap();
    copy_tree(&workspace().join("models"), repo.path());
    // A model that runs an ONNX graph (demand-forecast-lstm) carries the tract runner: its
    // first, uncached compile takes about a minute on a loaded 2-core machine.
    let server = Server::start_with(
        repo.path(),
        ServeOptions {
            start_timeout: Some(std::time::Duration::from_secs(300)),
            ..ServeOptions::default()
        },
    );
    let files = shipped_files();
    for (name, file) in &files {
        let manifest = read_manifest(&std::fs::read(file).unwrap()).unwrap();
        let versioned = format!("/v2/models/{name}/versions/{}", manifest.version);
        server.get(&format!("{versioned}/ready")).expect(200);
        for (i, example) in manifest.examples.iter().enumerate() {
            let reply = server
                .post_json(
                    &format!("{versioned}/infer"),
                    &json!({ "inputs": example.inputs }),
                )
                .expect(200);
            let answer: InferenceResponse = serde_json::from_value(reply.json()).unwrap();
            assert_eq!(
                answer.model_version.as_deref(),
                Some(manifest.version.as_str())
            );
            for expected in &example.outputs {
                let actual = answer
                    .outputs
                    .iter()
                    .find(|t| t.name == expected.name)
                    .unwrap_or_else(|| panic!("{name} example {i}: no output {}", expected.name));
                if let Err(e) = tensors_close(expected, actual, example.tolerance) {
                    panic!("{name} {} example {i}: {e}", manifest.version);
                }
            }
        }
    }
    let stderr = server.stderr();
    assert!(
        !stderr.contains("refused"),
        "a shipped file was refused:\n{stderr}"
    );
}
