//! The real first-party model, as shipped in `models/`: customer-segmentation
//! puts each customer in its nearest segment, answers consistently, and names
//! the field of a bad row. (`shipped.rs` checks its signature and examples, as
//! for every shipped model.)

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
