//! The anomaly-detection trainer and evaluation on small synthetic readings files.

use std::fmt::Write as _;
use std::path::Path;

use trademl_train::anomaly::data::{self, Columns};
use trademl_train::anomaly::methods::{self, IsolationForest};
use trademl_train::anomaly::{DataArgs, EvalArgs, TrainArgs, evaluate, fit, train};

/// Four sensors of 300 readings each, humidity around 45 and temperature around 27 with a small
/// deterministic wobble; sensors "b" and "d" carry an event of 10 readings (humidity +30, +5 °C)
/// labelled 1. Rows are written in shuffled order to check the sort by the order column.
fn write_csv(path: &Path, header: [&str; 6]) {
    let mut rows = Vec::new();
    for (k, id) in ["a", "b", "c", "d"].iter().enumerate() {
        for i in 0..300_usize {
            let wobble = ((i * 7 + k) % 13) as f64 / 13.0 - 0.5;
            let event = (id == &"b" || id == &"d") && (150..160).contains(&i);
            let h = 45.0 + k as f64 + 2.0 * wobble + if event { 30.0 } else { 0.0 };
            let t = 27.0 + 0.6 * wobble + if event { 5.0 } else { 0.0 };
            rows.push(format!("{i},{id},{h:.2},{t:.2},{},1", u8::from(event)));
        }
    }
    // A fixed shuffle: odd rows first, then even rows.
    let mut text = header.join(",") + "\n";
    for r in rows.iter().skip(1).step_by(2).chain(rows.iter().step_by(2)) {
        writeln!(text, "{r}").unwrap();
    }
    std::fs::write(path, text).unwrap();
}

const HEADER: [&str; 6] = ["t", "sensor", "rh", "temp_c", "is_bad", "indoor"];

fn data_args(path: &Path) -> DataArgs {
    DataArgs {
        data: path.to_path_buf(),
        series_column: "sensor".into(),
        order_column: "t".into(),
        humidity_column: "rh".into(),
        temperature_column: "temp_c".into(),
    }
}

#[test]
fn loads_series_in_time_order_with_configured_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.csv");
    write_csv(&path, HEADER);
    let columns = Columns {
        series: "sensor".into(),
        order: "t".into(),
        variables: vec!["rh".into(), "temp_c".into()],
        label: Some("is_bad".into()),
    };
    let table = data::load(&path, &columns).unwrap();
    assert_eq!(table.rows, 1200);
    assert_eq!(table.series.len(), 4);
    assert_eq!(table.positives(), 20);
    let b = &table.series[1];
    assert_eq!(b.id, "b");
    assert_eq!(b.len(), 300);
    // In time order: the event sits at 150..160.
    let labelled: Vec<usize> = (0..300).filter(|&i| b.labels[i] == 1).collect();
    assert_eq!(labelled, (150..160).collect::<Vec<_>>());
    assert!(b.values[0][150] > 70.0 && b.values[0][149] < 50.0);
}

#[test]
fn a_wrong_column_name_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.csv");
    write_csv(&path, HEADER);
    let mut args = data_args(&path);
    args.humidity_column = "humidity".into();
    let err = fit(&args).unwrap_err().to_string();
    assert!(
        err.contains("no column \"humidity\" (the variable column)"),
        "{err}"
    );
    assert!(err.contains("rh, temp_c"), "{err}");
    // The evaluation needs the label column, and names it when missing.
    let eval = EvalArgs {
        data: data_args(&path),
        label_column: "label".into(),
        seed: 1,
        windows: vec![100],
        report_dir: dir.path().join("docs"),
    };
    let err = evaluate(&eval).unwrap_err().to_string();
    assert!(
        err.contains("no column \"label\" (the label column)"),
        "{err}"
    );
}

#[test]
fn train_writes_weights_and_a_manifest_whose_examples_reproduce() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.csv");
    write_csv(&path, HEADER);
    let args = TrainArgs {
        data: data_args(&path),
        out_weights: dir.path().join("weights.rs"),
        out_manifest: dir.path().join("manifest.json"),
        report_json: dir.path().join("none.json"),
    };
    train(&args).unwrap();
    let weights = std::fs::read_to_string(&args.out_weights).unwrap();
    assert!(
        weights.contains("pub const REFERENCE_SCALES: [f64; 2]"),
        "{weights}"
    );
    // The humidity wobble moves by 2 x 6/13 at least (0.92 once written with 2 decimals).
    assert!(
        weights.contains("pub const RESOLUTION_FLOORS: [f64; 2] = [0.92, "),
        "{weights}"
    );
    let text = std::fs::read_to_string(&args.out_manifest).unwrap();
    let manifest: trademl_sdk::manifest::Manifest = serde_json::from_str(&text).unwrap();
    assert_eq!(manifest.name, "anomaly-detection");
    assert_eq!(manifest.examples.len(), 2);
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let first = &value["examples"][0];
    // The example window is centred on the strongest reading: the event, flagged, humidity-driven.
    let flags = first["outputs"][1]["data"].as_array().unwrap();
    assert_eq!(
        flags.iter().filter(|f| f.as_bool() == Some(true)).count(),
        10
    );
    let drivers = first["outputs"][2]["data"].as_array().unwrap();
    let flagged_driver: Vec<&str> = flags
        .iter()
        .zip(drivers)
        .filter(|(f, _)| f.as_bool() == Some(true))
        .map(|(_, d)| d.as_str().unwrap())
        .collect();
    assert!(
        flagged_driver.iter().all(|d| *d == "humidity"),
        "{flagged_driver:?}"
    );
    assert_eq!(
        value["provenance"]["parameters"]["labels_used_in_fitting"],
        false
    );
}

#[test]
fn evaluate_writes_the_report_and_finds_the_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.csv");
    write_csv(&path, HEADER);
    let args = EvalArgs {
        data: data_args(&path),
        label_column: "is_bad".into(),
        seed: 3,
        windows: vec![100],
        report_dir: dir.path().join("docs"),
    };
    evaluate(&args).unwrap();
    let md = std::fs::read_to_string(args.report_dir.join("anomaly-detection.md")).unwrap();
    assert!(
        md.contains("## Protocol") && md.contains("rolling z-score, w = 30"),
        "{md}"
    );
    assert!(md.contains("isolation forest"), "{md}");
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(args.report_dir.join("anomaly-detection.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["halves"][0], serde_json::json!(["a", "b"]));
    let headline = &json["headline"];
    assert_eq!(headline["positives"], 20);
    assert!((headline["pr_auc"].as_f64().unwrap() - 1.0).abs() < 1e-12);
    assert!((headline["default_f1"].as_f64().unwrap() - 1.0).abs() < 1e-12);
}

#[test]
fn isolation_forest_isolates_an_outlier_sooner() {
    let mut data: Vec<Vec<f64>> = (0..300)
        .map(|i| {
            vec![
                ((i * 37) % 100) as f64 / 100.0,
                ((i * 61) % 100) as f64 / 100.0,
            ]
        })
        .collect();
    data.push(vec![8.0, 8.0]);
    let forest = IsolationForest::fit(&data, 50, 128, 5);
    let outlier = forest.score(&[8.0, 8.0]);
    let inlier = forest.score(&[0.5, 0.5]);
    assert!(outlier > 0.6 && inlier < 0.5, "{outlier} {inlier}");
    assert!((methods::average_path(256) - 10.244).abs() < 0.01);
}

#[test]
fn the_reference_is_the_median_spread_and_the_resolution() {
    use trademl_model_anomaly_detection::model;
    // The same shape scaled by 1, 2 and 3 about 10: spreads in ratio 1 : 2 : 3, smallest steps
    // 0.01, 0.02, 0.03 (humidity) and a tenth of that (temperature).
    let series = |id: &str, k: f64| {
        let h: Vec<f64> = [0.0, 0.01, 2.0, -2.0, 1.0]
            .iter()
            .map(|d| 10.0 + k * d)
            .collect();
        data::Series {
            id: id.into(),
            values: vec![h.clone(), h.iter().map(|x| x / 10.0).collect()],
            labels: Vec::new(),
        }
    };
    let (a, b, c) = (series("a", 1.0), series("b", 2.0), series("c", 3.0));
    let r = methods::fit_reference(&[&a, &c, &b], 2);
    for j in 0..2 {
        let v = &b.values[j];
        let expected = model::robust_spread(v, model::median(v).unwrap());
        assert!((r.scales[j] - expected).abs() < 1e-12, "{r:?}");
    }
    assert!((r.scales[0] - 1.4826 * 2.0 * 0.99).abs() < 1e-9, "{r:?}");
    assert_eq!(r.floors, vec![0.02, 0.002]);
}

/// The checked-in manifest is a valid trademl manifest, describes the compiled-in reference, and
/// its examples are what the compiled-in model computes (weights.rs and manifest.json agree).
#[test]
fn checked_in_manifest_matches_the_compiled_weights() {
    use trademl_model_anomaly_detection::model;
    use trademl_sdk::manifest::Manifest;
    use trademl_sdk::protocol::TensorData;

    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../guest-models/anomaly-detection/manifest.json");
    let manifest = Manifest::from_json(&std::fs::read(&path).unwrap()).unwrap();
    manifest.validate().unwrap();
    assert_eq!(manifest.name, model::NAME);
    assert_eq!(manifest.version, model::VERSION);
    assert_eq!(manifest.description, model::builtin_description());
    assert!(!manifest.examples.is_empty());
    for example in &manifest.examples {
        let column =
            |name: &str| match &example.inputs.iter().find(|t| t.name == name).unwrap().data {
                TensorData::Fp64(v) => v.clone(),
                other => panic!("{name}: {other:?}"),
            };
        let scored = model::score_builtin(&column("humidity"), &column("temperature")).unwrap();
        let (TensorData::Fp64(scores), TensorData::Bool(flags)) =
            (&example.outputs[0].data, &example.outputs[1].data)
        else {
            panic!("unexpected output types")
        };
        for (i, s) in scored.iter().enumerate() {
            // JSON parsing may move the last bit; the pack step checks with the manifest tolerance.
            let close = (s.score - scores[i]).abs() <= 1e-12 * s.score.abs().max(1.0);
            assert!(close && s.is_anomaly == flags[i], "example row {i}: {s:?}");
        }
    }
}
