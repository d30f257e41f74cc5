//! The segmentation trainer on small synthetic transaction files.

use std::fmt::Write as _;
use std::path::Path;

use chrono::{Duration, NaiveDate};
use trademl_train::segmentation::data::{self, Columns};
use trademl_train::segmentation::stability::best_matching;
use trademl_train::segmentation::{DataArgs, TrainArgs, fit_named, train};

const CUTOFF: &str = "1997-09-30";

/// Five well-separated groups of 30 customers: (purchase days, days from first to last purchase,
/// recency in days, USD per purchase).
const GROUPS: [(i64, i64, i64, f64); 5] = [
    (12, 240, 3, 120.0),
    (1, 0, 250, 4.0),
    (1, 0, 15, 60.0),
    (4, 90, 150, 20.0),
    (2, 40, 60, 600.0),
];

/// Writes a CSV with the given header names and date format; returns each customer's group.
fn write_csv(path: &Path, header: [&str; 4], date_format: &str) -> Vec<(String, usize)> {
    let cutoff = NaiveDate::parse_from_str(CUTOFF, "%Y-%m-%d").unwrap();
    let mut text = header.join(",") + "\n";
    let mut truth = Vec::new();
    for (g, &(days, span, recency, usd)) in GROUPS.iter().enumerate() {
        for i in 0..30_i64 {
            let id = format!("c{g}{i:02}");
            let last = cutoff - Duration::days(recency + i % 3);
            for d in 0..days {
                let date = last - Duration::days(if days > 1 { span * d / (days - 1) } else { 0 });
                let amount = usd * (1.0 + (i % 5) as f64 / 50.0);
                writeln!(text, "{id},{},1,{amount:.2}", date.format(date_format)).unwrap();
            }
            // A purchase after the cutoff, which must be ignored.
            writeln!(
                text,
                "{id},{},1,1.00",
                (cutoff + Duration::days(5)).format(date_format)
            )
            .unwrap();
            truth.push((id, g));
        }
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
        cutoff: CUTOFF.into(),
        seed: 7,
    }
}

#[test]
fn recovers_well_separated_clusters_and_writes_weights_and_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("tx.csv");
    let truth = write_csv(
        &csv,
        ["customer_id", "date", "quantity", "amount"],
        "%Y%m%d",
    );
    let args = TrainArgs {
        data: data_args(&csv),
        k: Some(5),
        bootstraps: 2,
        out_weights: dir.path().join("weights.rs"),
        out_manifest: dir.path().join("manifest.json"),
        report_dir: dir.path().join("docs"),
    };
    train(&args).unwrap();

    // Every group is one segment, and the groups are different segments.
    let columns = Columns {
        customer: "customer_id".into(),
        date: "date".into(),
        date_format: "%Y%m%d".into(),
        amount: "amount".into(),
    };
    let cutoff = NaiveDate::parse_from_str(CUTOFF, "%Y-%m-%d").unwrap();
    let table = data::load(&csv, &columns, cutoff).unwrap();
    assert_eq!(table.customers.len(), 150);
    let trained = fit_named(&table.customers, 5, 7).unwrap();
    let mut segment_of_group = [None; 5];
    for (id, label) in table.ids.iter().zip(&trained.labels) {
        let group = truth.iter().find(|(t, _)| t == id).unwrap().1;
        match segment_of_group[group] {
            None => segment_of_group[group] = Some(*label),
            Some(s) => assert_eq!(s, *label, "group {group} split across segments"),
        }
    }
    let mut segments: Vec<_> = segment_of_group.iter().map(|s| s.unwrap()).collect();
    segments.sort();
    segments.dedup();
    assert_eq!(segments.len(), 5, "two groups merged");
    // The frequent recent big spenders rank first and are the champions.
    assert_eq!(segment_of_group[0], Some(0));
    assert_eq!(trained.names[0], "champions");

    let weights = std::fs::read_to_string(&args.out_weights).unwrap();
    assert!(weights.starts_with("// @generated"));
    assert!(weights.contains("pub const K: usize = 5;"));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&args.out_manifest).unwrap()).unwrap();
    assert_eq!(manifest["name"], "customer-segmentation");
    assert_eq!(manifest["outputs"][2]["shape"], serde_json::json!([-1, 5]));
    assert_eq!(
        manifest["provenance"]["data"][0]["rows"],
        150 + 30 * (12 + 1 + 4 + 2) + 30
    );
    let stability = manifest["provenance"]["metrics"]["stability"]["mean"]
        .as_f64()
        .unwrap();
    assert!(stability > 0.99, "stability {stability}");
    let example = &manifest["examples"][0];
    assert_eq!(
        example["outputs"][0]["data"],
        serde_json::json!([0, 1, 2, 3, 4])
    );
}

#[test]
fn column_names_and_date_format_are_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("tx.csv");
    write_csv(&csv, ["cust", "day", "cds", "usd"], "%d/%m/%Y");
    let columns = Columns {
        customer: "cust".into(),
        date: "day".into(),
        date_format: "%d/%m/%Y".into(),
        amount: "usd".into(),
    };
    let cutoff = NaiveDate::parse_from_str(CUTOFF, "%Y-%m-%d").unwrap();
    let table = data::load(&csv, &columns, cutoff).unwrap();
    assert_eq!(table.customers.len(), 150);
    let champion = table.customers[0]; // c000: 12 days, recency 3, span 240
    assert_eq!(champion.frequency, 12.0);
    assert_eq!(champion.recency_days, 3.0);
    assert_eq!(champion.tenure_days, 243.0);
    assert!((champion.monetary_value - 120.0).abs() < 1e-9);
}

#[test]
fn a_wrong_column_name_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("tx.csv");
    write_csv(
        &csv,
        ["customer_id", "date", "quantity", "amount"],
        "%Y%m%d",
    );
    let mut args = data_args(&csv);
    args.columns.amount = "revenue".into();
    let train_args = TrainArgs {
        data: args,
        k: Some(5),
        bootstraps: 0,
        out_weights: dir.path().join("w.rs"),
        out_manifest: dir.path().join("m.json"),
        report_dir: dir.path().into(),
    };
    let err = format!("{:#}", train(&train_args).unwrap_err());
    assert!(
        err.contains("no column \"revenue\" (the amount column)"),
        "{err}"
    );
    assert!(err.contains("customer_id, date, quantity, amount"), "{err}");
    assert!(!dir.path().join("w.rs").exists());
}

#[test]
fn a_bad_date_names_the_line_and_the_format() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("tx.csv");
    std::fs::write(
        &csv,
        "customer_id,date,amount\n1,19970101,3.5\n1,1997-01-02,4\n",
    )
    .unwrap();
    let columns = Columns {
        customer: "customer_id".into(),
        date: "date".into(),
        date_format: "%Y%m%d".into(),
        amount: "amount".into(),
    };
    let cutoff = NaiveDate::parse_from_str(CUTOFF, "%Y-%m-%d").unwrap();
    let err = format!("{:#}", data::load(&csv, &columns, cutoff).unwrap_err());
    assert!(err.contains("line 3") && err.contains("%Y%m%d"), "{err}");
}

#[test]
fn matching_finds_the_best_permutation() {
    let table = vec![vec![1, 9, 0], vec![8, 2, 0], vec![0, 1, 7]];
    assert_eq!(best_matching(&table), vec![1, 0, 2]);
}

/// The checked-in manifest is a valid trademl manifest, describes the compiled-in weights, and
/// its examples are what the compiled-in model computes (weights.rs and manifest.json agree).
#[test]
fn checked_in_manifest_matches_the_compiled_weights() {
    use trademl_model_customer_segmentation::model::{self, Customer, Segmenter};
    use trademl_sdk::manifest::Manifest;
    use trademl_sdk::protocol::TensorData;

    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../guest-models/customer-segmentation/manifest.json");
    let manifest = Manifest::from_json(&std::fs::read(&path).unwrap()).unwrap();
    manifest.validate().unwrap();
    let model = Segmenter::builtin();
    assert_eq!(manifest.name, model::NAME);
    assert_eq!(manifest.version, model::VERSION);
    assert_eq!(manifest.description, model::builtin_description());
    assert_eq!(manifest.outputs[2].shape, vec![-1, model.k() as i64]);
    assert!(!manifest.examples.is_empty());
    for example in &manifest.examples {
        let column =
            |name: &str| match &example.inputs.iter().find(|t| t.name == name).unwrap().data {
                TensorData::Fp64(v) => v.clone(),
                other => panic!("{name}: {other:?}"),
            };
        let (r, f, m, t) = (
            column("recency_days"),
            column("frequency"),
            column("monetary_value"),
            column("tenure_days"),
        );
        let ids = match &example.outputs[0].data {
            TensorData::Int64(v) => v.clone(),
            other => panic!("segment_id: {other:?}"),
        };
        for i in 0..r.len() {
            let c = Customer {
                recency_days: r[i],
                frequency: f[i],
                monetary_value: m[i],
                tenure_days: t[i],
            };
            assert_eq!(model.assign(&c).segment as i64, ids[i], "example row {i}");
        }
    }
}
