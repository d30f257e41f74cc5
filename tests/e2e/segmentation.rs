//! The real first-party model, as shipped in `models/`: customer-segmentation
//! verifies against the shipped trust store, loads, reproduces its manifest's
//! examples over HTTP, and answers consistently.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::*;

const NAME: &str = "customer-segmentation";

/// The shipped signed files of the model.
fn shipped() -> Vec<PathBuf> {
    let dir = workspace().join("models").join(NAME);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the first-party model is not in {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no signed file in {}", dir.display());
    files
}

/// A copy of the shipped repository with only this model (the server writes
/// routing state into its repository; the workspace's stays untouched).
fn repo_copy() -> tempfile::TempDir {
    shipped();
    let src = workspace().join("models");
    let dst = tempfile::Builder::new()
        .prefix("trademl-e2e-models-")
        .tempdir()
        .unwrap();
    copy_dir(&src.join("trust"), &dst.path().join("trust"));
    copy_dir(&src.join(NAME), &dst.path().join(NAME));
    dst
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let path = entry.path();
        if path.is_file() {
            std::fs::copy(&path, to.join(entry.file_name())).unwrap();
        }
    }
}

fn customers(rows: &[[f64; 4]]) -> Value {
    let names = ["recency_days", "frequency", "monetary_value", "tenure_days"];
    let inputs: Vec<Value> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let data: Vec<f64> = rows.iter().map(|r| r[i]).collect();
            json!({"name": name, "datatype": "FP64", "shape": [rows.len()], "data": data})
        })
        .collect();
    json!({ "inputs": inputs })
}

#[test]
fn the_shipped_model_verifies_against_the_shipped_trust_store() {
    let trust = workspace().join("models").join("trust");
    for file in shipped() {
        verify(&file, &trust).ok();
        let m = embedded_manifest(&std::fs::read(&file).unwrap());
        assert_eq!(m["name"], NAME);
        let version = m["version"].as_str().expect("a version");
        assert_eq!(
            file.file_name().unwrap().to_string_lossy(),
            format!("{version}.wasm"),
            "the file is not named for its version"
        );
    }
}

#[test]
fn the_shipped_model_reproduces_its_examples_over_http() {
    let repo = repo_copy();
    let s = Server::start(repo.path());
    let mut checked = 0;
    for file in shipped() {
        let manifest = embedded_manifest(&std::fs::read(&file).unwrap());
        let version = manifest["version"].as_str().unwrap().to_string();
        let meta = s
            .get(&format!("/v2/models/{NAME}/versions/{version}"))
            .expect(200)
            .json();
        let names = |v: &Value| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|t| t["name"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(names(&meta["inputs"]), names(&manifest["inputs"]), "{meta}");
        assert_eq!(
            names(&meta["outputs"]),
            names(&manifest["outputs"]),
            "{meta}"
        );
        let examples = manifest["examples"].as_array().expect("examples");
        assert!(!examples.is_empty(), "the shipped manifest has no examples");
        for example in examples {
            let tolerance = example["tolerance"].as_f64().unwrap_or(1e-9);
            let r = s
                .post_json(
                    &format!("/v2/models/{NAME}/versions/{version}/infer"),
                    &json!({"inputs": example["inputs"]}),
                )
                .expect(200)
                .json();
            for expected in example["outputs"].as_array().unwrap() {
                let name = expected["name"].as_str().unwrap();
                let (_, shape, got) = output(&r, name);
                let want = flatten(&expected["data"]);
                if let Some(s) = expected["shape"].as_array() {
                    let s: Vec<u64> = s.iter().map(|d| d.as_u64().unwrap()).collect();
                    assert_eq!(shape, s, "{name}: {r}");
                }
                assert_eq!(got.len(), want.len(), "{name}: {r}");
                for (g, w) in got.iter().zip(&want) {
                    match (g.as_f64(), w.as_f64()) {
                        (Some(g), Some(w)) => assert!(
                            (g - w).abs() <= tolerance * w.abs().max(1.0),
                            "{name}: got {g}, expected {w} (tolerance {tolerance})"
                        ),
                        _ => assert_eq!(g, w, "{name}: {r}"),
                    }
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 0);
}

#[test]
fn the_shipped_model_assigns_each_customer_its_nearest_segment() {
    let repo = repo_copy();
    let s = Server::start(repo.path());
    let rows = [
        [5.0, 20.0, 80.0, 500.0],
        [400.0, 1.0, 15.0, 400.0],
        [30.0, 4.0, 35.0, 200.0],
        [0.0, 1.0, 10.0, 0.0],
        [200.0, 10.0, 300.0, 540.0],
    ];
    let r = s.infer(NAME, &customers(&rows)).expect(200).json();
    let (datatype, shape, ids) = output(&r, "segment_id");
    assert_eq!(datatype, "INT64");
    assert_eq!(shape, vec![rows.len() as u64]);
    let (_, names_shape, names) = output(&r, "segment_name");
    assert_eq!(names_shape, vec![rows.len() as u64]);
    let (_, dshape, distances) = output(&r, "centroid_distances");
    assert_eq!(dshape.len(), 2, "{r}");
    assert_eq!(dshape[0], rows.len() as u64);
    let k = dshape[1] as usize;
    assert!((5..=8).contains(&k), "{k} segments");
    let distances: Vec<f64> = distances.iter().map(|d| d.as_f64().unwrap()).collect();
    for (row, id) in ids.iter().enumerate() {
        let id = id.as_i64().unwrap() as usize;
        assert!(id < k);
        let d = &distances[row * k..(row + 1) * k];
        let nearest = d
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0;
        assert_eq!(id, nearest, "row {row}: distances {d:?}");
        assert!(names[row].as_str().is_some_and(|n| !n.is_empty()), "{r}");
    }
    // Same input, same answer.
    let again = s.infer(NAME, &customers(&rows)).expect(200).json();
    assert_eq!(again["outputs"], r["outputs"]);
    // Invalid customers are the caller's error, named.
    s.infer(NAME, &customers(&[[-1.0, 2.0, 10.0, 100.0]]))
        .expect_error(400, &["recency_days"]);
    s.infer(NAME, &customers(&[[10.0, 0.0, 10.0, 100.0]]))
        .expect_error(400, &["frequency"]);
    let mut missing = customers(&rows[..1]);
    missing["inputs"].as_array_mut().unwrap().remove(3);
    s.infer(NAME, &missing).expect_error(400, &["tenure_days"]);
}
