//! The churn trainer on small synthetic transaction files.

use std::fmt::Write as _;
use std::path::Path;

use chrono::{Duration, NaiveDate};
use trademl_train::churn::metrics::{average_precision, roc_auc};
use trademl_train::churn::{DataArgs, TrainArgs, TuneArgs, data, train};
use trademl_train::segmentation::data::Columns;

const CAL_END: &str = "1997-09-30";
const HOLD_END: &str = "1998-06-30";

/// 60 loyal customers who buy every 3 weeks through both periods, 60 who bought once or twice
/// early and never again. Returns each customer's id and whether they churned.
fn write_csv(path: &Path, header: [&str; 4]) -> Vec<(String, bool)> {
    let start = NaiveDate::from_ymd_opt(1997, 1, 1).unwrap();
    let hold_end = NaiveDate::parse_from_str(HOLD_END, "%Y-%m-%d").unwrap();
    let mut text = header.join(",") + "\n";
    let mut truth = Vec::new();
    for i in 0..120_i64 {
        let id = format!("c{i:03}");
        let first = start + Duration::days(i % 60);
        let loyal = i % 2 == 0;
        let mut day = first;
        let mut n = 0;
        while day <= hold_end && (loyal || n < 1 + i % 3 / 2) {
            writeln!(
                text,
                "{id},{},1,{:.2}",
                day.format("%Y%m%d"),
                10.0 + (i % 7) as f64
            )
            .unwrap();
            day += Duration::days(if loyal { 21 + i % 5 } else { 30 });
            n += 1;
        }
        truth.push((id, !loyal));
    }
    std::fs::write(path, text).unwrap();
    truth
}

fn data_args(path: &Path) -> DataArgs {
    DataArgs {
        data: path.to_path_buf(),
        columns: Columns {
            customer: "customer_id".into(),
            date: "date".into(),
            date_format: "%Y%m%d".into(),
            amount: "amount".into(),
        },
        calibration_end: CAL_END.into(),
        holdout_end: HOLD_END.into(),
        seed: 7,
    }
}

fn tune() -> TuneArgs {
    TuneArgs {
        max_trees: 20,
        depths: vec![2],
        learning_rate: 0.3,
    }
}

#[test]
fn labels_follow_the_holdout_purchases() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("tx.csv");
    let truth = write_csv(&csv, ["customer_id", "date", "quantity", "amount"]);
    let table = data_args(&csv).load().unwrap();
    assert_eq!(table.customers.len(), 120);
    for ((id, churned), (tid, tchurned)) in truth.iter().zip(table.ids.iter().zip(&table.churned)) {
        assert_eq!((id, churned), (tid, tchurned));
    }
    // Loyal customers have repeat purchase days; frequency counts repeats only.
    let c0 = table.customers[0];
    assert!(c0.frequency >= 9.0, "{c0:?}");
    assert_eq!(table.customers[1].frequency, 0.0);
    assert_eq!(data_args(&csv).horizon_days().unwrap(), 273.0);
}

#[test]
fn trains_a_separating_model_and_writes_weights_and_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("tx.csv");
    write_csv(&csv, ["customer_id", "date", "quantity", "amount"]);
    let args = TrainArgs {
        data: data_args(&csv),
        tune: tune(),
        folds: 2,
        out_weights: dir.path().join("weights.rs"),
        out_manifest: dir.path().join("manifest.json"),
        report_dir: dir.path().join("docs"),
    };
    train(&args).unwrap();
    let weights = std::fs::read_to_string(&args.out_weights).unwrap();
    assert!(weights.contains("pub static NODES: [N; "), "{weights}");
    assert!(weights.contains("pub const BGNBD: BgNbd"));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&args.out_manifest).unwrap()).unwrap();
    assert_eq!(manifest["name"], "churn");
    let methods = manifest["provenance"]["metrics"]["cross_validation"]["methods"]
        .as_array()
        .unwrap();
    let gbm = methods.iter().find(|m| m["key"] == "gbm").unwrap();
    // The two groups are separable by recency alone.
    assert!(gbm["roc_auc"].as_f64().unwrap() > 0.95, "{gbm}");
    let example = &manifest["examples"][0];
    let p = example["outputs"][0]["data"].as_array().unwrap();
    assert!(!p.is_empty());
    for v in p {
        assert!((0.0..=1.0).contains(&v.as_f64().unwrap()));
    }
}

#[test]
fn column_names_are_configurable_and_a_wrong_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("tx.csv");
    write_csv(&csv, ["client", "day", "qty", "usd"]);
    let mut args = data_args(&csv);
    args.columns.customer = "client".into();
    args.columns.date = "day".into();
    args.columns.amount = "usd".into();
    assert_eq!(args.load().unwrap().customers.len(), 120);
    args.columns.amount = "revenue".into();
    let err = format!("{:#}", args.load().unwrap_err());
    assert!(
        err.contains("no column \"revenue\" (the amount column)"),
        "{err}"
    );
    assert!(err.contains("client, day, qty, usd"), "{err}");
    let mut args = data_args(&csv);
    args.holdout_end = "1997-06-30".into();
    let err = format!("{:#}", args.load().unwrap_err());
    assert!(err.contains("must come after the calibration end"), "{err}");
    let columns = Columns {
        customer: "client".into(),
        date: "day".into(),
        date_format: "%Y%m%d".into(),
        amount: "usd".into(),
    };
    let cal = NaiveDate::from_ymd_opt(1997, 9, 30).unwrap();
    let hold = NaiveDate::from_ymd_opt(1998, 6, 30).unwrap();
    assert!(data::load(&csv, &columns, cal, hold).is_ok());
}

#[test]
fn metrics_match_hand_computed_values() {
    let y = [true, true, false, true, false];
    let s = [0.9, 0.4, 0.6, 0.8, 0.1];
    // Positive-negative pairs won: (0.9 > 0.6, 0.1), (0.4 > 0.1), (0.8 > 0.6, 0.1) = 5 of 6.
    assert!((roc_auc(&s, &y) - 5.0 / 6.0).abs() < 1e-12);
    // Ranked: + + - + -: precision at each positive 1, 1, 3/4.
    assert!((average_precision(&s, &y) - (1.0 + 1.0 + 0.75) / 3.0).abs() < 1e-12);
}

/// The checked-in manifest describes the compiled-in weights: its examples are what the compiled-in
/// model computes.
#[test]
fn checked_in_manifest_matches_the_compiled_weights() {
    use trademl_model_churn::model::{self, Churn, Customer};
    use trademl_sdk::manifest::Manifest;
    use trademl_sdk::protocol::TensorData;

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-models/churn/manifest.json");
    let manifest = Manifest::from_json(&std::fs::read(&path).unwrap()).unwrap();
    manifest.validate().unwrap();
    assert_eq!(manifest.name, model::NAME);
    assert_eq!(manifest.version, model::VERSION);
    assert_eq!(manifest.description, model::builtin_description());
    assert!(!manifest.examples.is_empty());
    let m = Churn::builtin();
    for example in &manifest.examples {
        let column =
            |name: &str| match &example.inputs.iter().find(|t| t.name == name).unwrap().data {
                TensorData::Fp64(v) => v.clone(),
                other => panic!("{name}: {other:?}"),
            };
        let (r, f, mv, t) = (
            column("recency_days"),
            column("frequency"),
            column("monetary_value"),
            column("tenure_days"),
        );
        let TensorData::Fp64(p) = &example.outputs[0].data else {
            panic!("churn_probability is not FP64")
        };
        for i in 0..r.len() {
            let c = Customer {
                recency_days: r[i],
                frequency: f[i],
                monetary_value: mv[i],
                tenure_days: t[i],
            };
            let want = m.predict(&c).churn_probability;
            assert!(
                (p[i] - want).abs() <= 1e-9 * want.abs().max(1.0),
                "example row {i}"
            );
        }
    }
}
