//! ONNX models: `trademl pack --onnx` on real scikit-learn and PyTorch
//! exports (tests/fixtures/onnx, made by make.py), signed, served, and
//! compared over HTTP with the outputs onnxruntime computed for the same rows
//! when the fixtures were made. No Python runs here.
//!
//! Tolerance: 1e-5 relative, against max(|expected|, |actual|, 1), the
//! definition trademl uses for manifest examples; integer outputs (class
//! labels, cluster ids) must be equal.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

/// Every fixture trademl must run, with what its exporter produced.
pub const FIXTURES: &[&str] = &[
    "sklearn-scaler-logistic",
    "sklearn-linear",
    "sklearn-random-forest",
    // A binary export whose one base value scores the positive class.
    "sklearn-gradient-boosting",
    "sklearn-random-forest-regressor",
    "sklearn-kmeans",
    "sklearn-mlp-classifier",
    "sklearn-mlp-regressor",
    "torch-mlp",
    "torch-lstm",
    "torch-gru",
];

const TOLERANCE: f64 = 1e-5;

pub fn fixture_dir() -> PathBuf {
    workspace().join("tests").join("fixtures").join("onnx")
}

pub fn reference(name: &str) -> Value {
    let path = fixture_dir().join(format!("{name}.json"));
    serde_json::from_slice(&std::fs::read(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `trademl pack --onnx ONNX --name .. --version .. --description .. --out OUT [EXTRA..]`,
/// with the compiled cache of the shared repository, as a publisher on the
/// server's machine would (pack checks the runner with Winch's code, which
/// it does not cache; the server compiles it with Cranelift).
fn pack_onnx(
    onnx: &Path,
    [name, version, description]: [&str; 3],
    out: &Path,
    extra: &[&OsStr],
) -> CliRun {
    let cache = shared_repo().path().join(".cache");
    let mut args: Vec<&OsStr> = vec![
        "pack".as_ref(),
        "--onnx".as_ref(),
        onnx.as_os_str(),
        "--name".as_ref(),
        name.as_ref(),
        "--version".as_ref(),
        version.as_ref(),
        "--description".as_ref(),
        description.as_ref(),
        "--out".as_ref(),
        out.as_os_str(),
        "--cache-dir".as_ref(),
        cache.as_os_str(),
    ];
    args.extend_from_slice(extra);
    // The runner is a large component (tract): even Winch takes a while to
    // compile it on a loaded machine.
    trademl_within(args, Duration::from_secs(900))
}

/// `trademl pack --onnx` of a fixture, with its reference as the manifest's
/// example.
fn pack_fixture(name: &str, out: &Path) -> CliRun {
    let dir = fixture_dir();
    let description = reference(name)["description"].as_str().unwrap().to_string();
    let examples = dir.join(format!("{name}.json"));
    pack_onnx(
        &dir.join(format!("{name}.onnx")),
        [name, "1.0.0", &description],
        out,
        &["--examples".as_ref(), examples.as_os_str()],
    )
}

/// The repository the ONNX tests share.
fn shared_repo() -> &'static Repo {
    static REPO: OnceLock<Repo> = OnceLock::new();
    REPO.get_or_init(Repo::new)
}

/// The shared repository with every fixture packed and signed by the
/// publisher.
fn repo() -> &'static Repo {
    static PACKED: OnceLock<()> = OnceLock::new();
    let repo = shared_repo();
    PACKED.get_or_init(|| {
        let work = tempfile::tempdir().unwrap();
        for name in FIXTURES {
            let file = work.path().join(format!("{name}.wasm"));
            pack_fixture(name, &file).ok().says_nothing_wrong();
            trademl([
                "sign".as_ref(),
                file.as_os_str(),
                "--key".as_ref(),
                fixtures().publisher.key.as_os_str(),
            ])
            .ok();
            repo.add(&file, name, "1.0.0");
        }
    });
    repo
}

trait SaysNothingWrong {
    fn says_nothing_wrong(self) -> Self;
}

impl SaysNothingWrong for CliRun {
    fn says_nothing_wrong(self) -> Self {
        assert!(
            self.stdout.contains("example(s) reproduced"),
            "{}: {}",
            self.command,
            self.stdout
        );
        self
    }
}

fn as_f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Compare one output over HTTP with onnxruntime's.
fn assert_matches(model: &str, expected: &Value, actual: &Value) {
    let name = expected["name"].as_str().unwrap();
    let what = format!("{model}, output {name:?}");
    assert_eq!(actual["datatype"], expected["datatype"], "{what}: datatype");
    assert_eq!(actual["shape"], expected["shape"], "{what}: shape");
    let (e, a) = (as_f64s(&expected["data"]), as_f64s(&actual["data"]));
    assert_eq!(e.len(), a.len(), "{what}: element count");
    let exact = expected["datatype"] == "INT64" || expected["datatype"] == "BOOL";
    for (i, (x, y)) in e.iter().zip(&a).enumerate() {
        let ok = if exact {
            x == y
        } else {
            (x - y).abs() <= TOLERANCE * x.abs().max(y.abs()).max(1.0)
        };
        assert!(
            ok,
            "{what}: element {i} is {y}, onnxruntime computed {x} (tolerance {TOLERANCE} relative)"
        );
    }
}

/// One server for the checks below: it loads eleven copies of the runner,
/// which is worth doing once.
#[test]
fn packed_fixtures_serve_over_http() {
    // Packing checks the runner with Winch's code and leaves Cranelift's
    // compile to the server: the server loads every file with Winch's code
    // (seconds each on a loaded machine), then compiles them with Cranelift
    // in the background, one after another.
    let server = Server::start_with(
        repo().path(),
        ServeOptions {
            start_timeout: Some(Duration::from_secs(600)),
            ..ServeOptions::default()
        },
    );
    every_fixture_matches_onnxruntime(&server);
    the_schema_comes_from_the_graph(&server);
    requests_of_the_wrong_shape_or_type_are_400_and_say_what_is_wrong(&server);
    a_request_of_no_rows_answers_no_rows(&server);
    a_version_moves_from_winch_to_cranelift_and_still_matches(&server);
}

fn compiler_of(server: &Server, name: &str) -> String {
    let v = server
        .get(&format!("/v2/repository/models/{name}/versions"))
        .expect(200)
        .json();
    v["versions"][0]["compiler"].as_str().unwrap().to_string()
}

/// The first model the server loaded is the first compiled by Cranelift in
/// the background; once it is, it serves the same outputs.
fn a_version_moves_from_winch_to_cranelift_and_still_matches(server: &Server) {
    let name = FIXTURES.iter().min().unwrap();
    let first = compiler_of(server, name);
    assert!(
        first == "winch" || first == "cranelift",
        "{name}: compiler {first}"
    );
    let line = server.wait_for_log_line(Duration::from_secs(900), |l| {
        l.contains(&format!("{name} 1.0.0: now serving Cranelift's code"))
            || l.contains("the Cranelift compile failed")
    });
    assert!(line.contains("now serving Cranelift's code"), "{line}");
    assert_eq!(compiler_of(server, name), "cranelift");
    let r = reference(name);
    let reply = server
        .infer(name, &json!({"inputs": r["inputs"]}))
        .expect(200)
        .json();
    for expected in r["outputs"].as_array().unwrap() {
        let actual = reply["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == expected["name"])
            .unwrap();
        assert_matches(name, expected, actual);
    }
}

fn every_fixture_matches_onnxruntime(server: &Server) {
    for name in FIXTURES {
        let r = reference(name);
        let reply = server
            .infer(name, &json!({"inputs": r["inputs"]}))
            .expect(200)
            .json();
        let outputs = reply["outputs"].as_array().unwrap();
        for expected in r["outputs"].as_array().unwrap() {
            let actual = outputs
                .iter()
                .find(|o| o["name"] == expected["name"])
                .unwrap_or_else(|| panic!("{name}: no output {}", expected["name"]));
            assert_matches(name, expected, actual);
        }
        assert_eq!(
            outputs.len(),
            r["outputs"].as_array().unwrap().len(),
            "{name}: outputs"
        );
    }
}

fn the_schema_comes_from_the_graph(server: &Server) {
    let m = server
        .get("/v2/models/sklearn-scaler-logistic")
        .expect(200)
        .json();
    assert_eq!(m["inputs"][0]["name"], "X");
    assert_eq!(m["inputs"][0]["datatype"], "FP32");
    assert_eq!(m["inputs"][0]["shape"], json!([-1, 4]));
    assert_eq!(m["outputs"][0]["name"], "label");
    assert_eq!(m["outputs"][0]["datatype"], "INT64");
    assert_eq!(m["outputs"][1]["name"], "probabilities");
    assert_eq!(m["outputs"][1]["shape"], json!([-1, 2]));
    // A sequence model: batch and length both left open by the exporter.
    let m = server.get("/v2/models/torch-lstm").expect(200).json();
    assert_eq!(m["inputs"][0]["name"], "window");
    assert_eq!(m["inputs"][0]["shape"], json!([-1, -1, 2]));
}

fn requests_of_the_wrong_shape_or_type_are_400_and_say_what_is_wrong(server: &Server) {
    // FP64 where the graph takes FP32.
    server
        .infer(
            "sklearn-linear",
            &json!({"inputs": [{"name": "X", "datatype": "FP64", "shape": [1, 4], "data": [1.0, 2.0, 3.0, 4.0]}]}),
        )
        .expect_error(400, &["\"X\"", "FP64", "FP32"]);
    // Three columns where the graph takes four.
    server
        .infer(
            "sklearn-linear",
            &json!({"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 3], "data": [1.0, 2.0, 3.0]}]}),
        )
        .expect_error(400, &["\"X\"", "shape"]);
    // The wrong input name.
    server
        .infer(
            "torch-gru",
            &json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 8, 2], "data": vec![0.0; 16]}]}),
        )
        .expect_error(400, &["\"x\"", "\"window\""]);
    // One row still answers, after the refusals.
    let r = reference("sklearn-linear");
    let row: Vec<f64> = as_f64s(&r["inputs"][0]["data"])[..4].to_vec();
    let reply = server
        .infer(
            "sklearn-linear",
            &json!({"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": row}]}),
        )
        .expect(200)
        .json();
    let expected = as_f64s(&r["outputs"][0]["data"])[0];
    let got = reply["outputs"][0]["data"][0].as_f64().unwrap();
    assert!((expected - got).abs() <= TOLERANCE * expected.abs().max(1.0));
}

/// The runner tells tract that a graph's open dimensions are at least 1
/// (runners/onnx/src/lib.rs); a request of no rows still runs, and every
/// output has no rows.
fn a_request_of_no_rows_answers_no_rows(server: &Server) {
    for name in FIXTURES {
        let r = reference(name);
        let inputs: Vec<Value> = r["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|input| {
                let mut empty = input.clone();
                empty["shape"][0] = json!(0);
                empty["data"] = json!([]);
                empty
            })
            .collect();
        let reply = server
            .infer(name, &json!({ "inputs": inputs }))
            .expect(200)
            .json();
        let outputs = reply["outputs"].as_array().unwrap();
        assert_eq!(
            outputs.len(),
            r["outputs"].as_array().unwrap().len(),
            "{name}: outputs"
        );
        for output in outputs {
            assert_eq!(output["shape"][0], 0, "{name}: {output}");
            assert_eq!(output["data"], json!([]), "{name}: {output}");
        }
    }
}

#[test]
fn an_operator_tract_cannot_run_is_refused_at_pack_time_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.wasm");
    // skl2onnx's default export of a classifier ends in ZipMap (a list of
    // maps), which tract does not run.
    pack_onnx(
        &fixture_dir().join("unsupported-zipmap.onnx"),
        [
            "zipmap",
            "1.0.0",
            "A logistic regression exported with ZipMap.",
        ],
        &out,
        &[],
    )
    .refused()
    .says("operator(s) that tract cannot run")
    .says("ZipMap (domain ai.onnx.ml)");
    assert!(!out.exists());
}

#[test]
fn a_file_that_is_not_onnx_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.wasm");
    pack_onnx(
        &fixture_dir().join("not-onnx.onnx"),
        ["csv", "1.0.0", "Not a model."],
        &out,
        &[],
    )
    .refused()
    .says("not-onnx.onnx")
    .says("this is not an ONNX model");
    assert!(!out.exists());
}

#[test]
fn a_bad_name_or_version_is_refused_before_the_graph_loads() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.wasm");
    let onnx = fixture_dir().join("sklearn-linear.onnx");
    let run = |name: &str, version: &str| pack_onnx(&onnx, [name, version, "Spend."], &out, &[]);
    run("Spend Model", "1.0.0")
        .refused()
        .says("name \"Spend Model\" is invalid");
    run("spend", "one")
        .refused()
        .says("version \"one\" is not semantic versioning");
    assert!(!out.exists());
}
