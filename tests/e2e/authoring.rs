//! docs/authoring.md, run as written: every `sh` block, in order, in one
//! shell, in an empty directory, with this build's `trademl` first on the
//! `PATH`. Only the port changes (8080 in the text, a free one here).

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// The `sh` blocks of a Markdown file, in order.
fn sh_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = vec![];
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), text) => {
                block.push_str(text);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "an unterminated ```sh block");
    blocks
}

/// `stderr` less the lines in which cargo reports its progress (hundreds of
/// `Compiling` lines), so that the error a failing step printed is seen in a
/// log that shows only part of a long failure.
fn without_cargo_progress(stderr: &str) -> String {
    const PROGRESS: &[&str] = &[
        "Compiling ",
        "Blocking ",
        "Downloaded ",
        "Downloading ",
        "Updating ",
        "Locking ",
        "Adding ",
        "Finished ",
        "Running ",
        "Doc-tests ",
        "Fresh ",
    ];
    stderr
        .lines()
        .filter(|l| !PROGRESS.iter().any(|p| l.trim_start().starts_with(p)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_tutorial_runs_as_written() {
    let doc = std::fs::read_to_string(workspace().join("docs/authoring.md")).unwrap();
    let blocks = sh_blocks(&doc);
    assert!(blocks.len() >= 6, "the tutorial lost its steps: {blocks:?}");
    let text = blocks.concat();
    for step in [
        "trademl new",
        "cargo test",
        "trademl build",
        "trademl sign",
        "trademl publish",
        "/infer",
        "trademl pack --onnx",
    ] {
        assert!(text.contains(step), "the tutorial has no `{step}` step");
    }
    let port = free_port().to_string();
    let script = text.replace("8080", &port);

    let work = tempfile::tempdir().unwrap();
    // The ONNX part packs "model.onnx", the author's export: here a fixture.
    std::fs::copy(
        workspace().join("tests/fixtures/onnx/sklearn-scaler-logistic.onnx"),
        work.path().join("model.onnx"),
    )
    .unwrap();
    // The shell stops at the first failing step, and stops the server it
    // started whatever happens.
    let full =
        format!("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{script}");
    let bin_dir = Path::new(TRADEML).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(&full)
        .current_dir(work.path())
        .env("PATH", path)
        // The model crate's build shares a target directory across runs, so
        // that its dependencies compile once.
        .env(
            "CARGO_TARGET_DIR",
            workspace().join("target").join("tutorial"),
        )
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("AI_MODELS_PATH");
    let output = run_bounded(&mut cmd, Duration::from_secs(900));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the tutorial failed\n--- script\n{full}\n--- stdout\n{stdout}\n--- stderr, without cargo's progress\n{}",
        without_cargo_progress(&stderr)
    );

    // The Rust model's prediction, over HTTP.
    let answer: Value = stdout
        .lines()
        .filter(|l| l.starts_with("{\"model_name\":\"promo-uplift\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .next()
        .unwrap_or_else(|| panic!("no prediction in the tutorial's output:\n{stdout}"));
    assert_eq!(answer["outputs"][0]["name"], "uplift");
    let uplift = answer["outputs"][0]["data"][0].as_f64().unwrap();
    assert!(
        (uplift - 0.71).abs() < 1e-9,
        "uplift {uplift}, expected 0.71 as the tutorial says"
    );
    // The ONNX model's schema, read from its graph.
    assert!(
        stdout.contains("\"name\":\"repeat-buyer\"") && stdout.contains("\"probabilities\""),
        "the ONNX model's metadata is not in the output:\n{stdout}"
    );
}
