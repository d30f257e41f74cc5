//! The promo-effectiveness trainer on a small synthetic scanner panel whose lift is known.

use std::fmt::Write as _;
use std::path::Path;

use trademl_model_promo_effectiveness::model::CostParams;
use trademl_train::promo::data::split;
use trademl_train::promo::{DataArgs, EvalArgs, TrainArgs, TuneArgs, evaluate, train};
use trademl_train::scanner::{self, Columns};

const STORES: u32 = 6;
const BRANDS: usize = 3;
const WEEKS: u32 = 80;

/// Columns named unlike Dominick's: units as plain counts (not logs).
fn columns() -> Columns {
    Columns {
        store: "shop".into(),
        product: "item".into(),
        week: "wk".into(),
        units: "qty".into(),
        units_are_log: false,
        price_prefix: "p".into(),
        deal: "on_deal".into(),
        feature: "ad".into(),
        margin: "margin".into(),
    }
}

/// Every store × brand × week. Base sales 1000 × (store + brand); a promotion cuts the price by a
/// depth of 10–30% and multiplies units by exp(4 × depth) (× 1.5 with a feature ad), with a small
/// deterministic wobble.
fn write_panel(path: &Path) {
    let mut text = String::from("shop,item,wk,qty,p1,p2,p3,on_deal,ad,margin\n");
    for s in 1..=STORES {
        for b in 1..=BRANDS {
            for w in 1..=WEEKS {
                let h = (s * 31 + b as u32 * 17 + w * 7) % 11;
                let promoted = h < 4;
                let depth = if promoted {
                    0.1 + 0.05 * f64::from(h)
                } else {
                    0.0
                };
                let ad = if promoted && h.is_multiple_of(2) {
                    1.0
                } else {
                    0.0
                };
                let base = 1000.0 * f64::from(s + b as u32);
                let wobble = 1.0 + 0.05 * (f64::from(w) * 1.3).sin();
                let units = base * wobble * (4.0 * depth).exp() * if ad > 0.0 { 1.5 } else { 1.0 };
                let prices: Vec<String> = (1..=BRANDS)
                    .map(|k| {
                        let regular = 0.03 + 0.005 * k as f64;
                        let p = if k == b {
                            regular * (1.0 - depth)
                        } else {
                            regular
                        };
                        format!("{p:.5}")
                    })
                    .collect();
                writeln!(
                    text,
                    "{s},{b},{w},{units:.1},{},{},{ad},{}",
                    prices.join(","),
                    i32::from(promoted),
                    if promoted { 20.0 } else { 35.0 }
                )
                .unwrap();
            }
        }
    }
    std::fs::write(path, text).unwrap();
}

fn data_args(path: &Path) -> DataArgs {
    DataArgs {
        data: path.to_path_buf(),
        columns: columns(),
        test_start: 61,
        validation_weeks: 15,
        fixed_cost: 5.0,
        feature_cost: 25.0,
        seed: 3,
    }
}

fn tune() -> TuneArgs {
    TuneArgs {
        depths: vec![3],
        max_trees: 100,
        forest_trees: 8,
        forest_depth: 5,
        epochs: 5,
        hidden: 4,
    }
}

#[test]
fn baselines_come_from_unpromoted_fitting_weeks_only() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("panel.csv");
    write_panel(&csv);
    let panel = scanner::load(&csv, &columns()).unwrap();
    let s = split(&panel, 61, 81, CostParams::default());
    assert!(s.fit.iter().all(|e| e.week < 61));
    assert!(s.eval.iter().all(|e| e.week >= 61));
    assert!(!s.eval.is_empty() && s.skipped == 0);
    for e in s.fit.iter().chain(&s.eval) {
        let p = &e.promotion;
        assert!(p.deal == 1.0 || p.feature > 0.0);
        // Unpromoted units are 1000 × (store + brand) × (1 ± 5%).
        let base = 1000.0 * (p.store + p.brand as f64);
        assert!((p.baseline_units / base - 1.0).abs() < 0.05, "{p:?}");
        let regular = 0.03 + 0.005 * p.brand as f64;
        assert!((p.regular_price - regular).abs() < 1e-9, "{p:?}");
        assert!((p.unit_cost - p.price * 0.8).abs() < 1e-9);
        assert!(p.competitor_deals[p.brand - 1] == 1.0);
    }
}

#[test]
fn trains_and_evaluates_a_model_that_finds_the_lift() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("panel.csv");
    write_panel(&csv);
    let args = TrainArgs {
        data: data_args(&csv),
        tune: tune(),
        out_weights: dir.path().join("weights.rs"),
        out_manifest: dir.path().join("manifest.json"),
        report_dir: dir.path().join("docs"),
    };
    train(&args).unwrap();
    let weights = std::fs::read_to_string(&args.out_weights).unwrap();
    for name in [
        "pub static GBM:",
        "pub static FOREST:",
        "pub static MLP_W1:",
        "pub const FOREST_WEIGHT",
    ] {
        assert!(weights.contains(name), "{name} missing");
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&args.out_manifest).unwrap()).unwrap();
    assert_eq!(manifest["name"], "promo-effectiveness");
    let methods = manifest["provenance"]["metrics"]["methods"]
        .as_array()
        .unwrap();
    let key = |k: &str| methods.iter().find(|m| m["key"] == k).unwrap()["figures"].clone();
    let (gbm, baseline) = (key("gbm"), key("baseline"));
    // The lift is a function of the discount and the feature ad: the trees find it.
    assert!(gbm["units"].as_f64().unwrap() > 0.9, "{gbm}");
    assert!(gbm["lift"].as_f64().unwrap() > 0.7, "{gbm}");
    assert!(gbm["spearman"].as_f64().unwrap() > 0.8, "{gbm}");
    assert!(baseline["units"].as_f64().unwrap() < 0.8, "{baseline}");
    // Examples are real held-out events with the outputs' arithmetic.
    let example = &manifest["examples"][0];
    let out = |name: &str| {
        example["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap()["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect::<Vec<_>>()
    };
    let (units, lift, incremental) = (out("units"), out("lift"), out("incremental_units"));
    assert!(!units.is_empty());
    for i in 0..units.len() {
        assert!((units[i] - lift[i] * (units[i] - incremental[i])).abs() < 1e-6 * units[i]);
    }

    let eval = EvalArgs {
        data: data_args(&csv),
        tune: tune(),
        report_dir: dir.path().join("docs"),
    };
    evaluate(&eval).unwrap();
    let md = std::fs::read_to_string(dir.path().join("docs/promo-effectiveness.md")).unwrap();
    assert!(
        md.contains("## Protocol") && md.contains("| `rf_nn` |"),
        "{md}"
    );
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("docs/promo-effectiveness.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["protocol"]["test_start"], 61);
}

#[test]
fn bad_arguments_and_columns_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("panel.csv");
    write_panel(&csv);
    let eval = |data: DataArgs| {
        let args = EvalArgs {
            data,
            tune: tune(),
            report_dir: dir.path().join("docs"),
        };
        format!("{:#}", evaluate(&args).unwrap_err())
    };
    let mut late = data_args(&csv);
    late.test_start = 500;
    assert!(eval(late).contains("0 test events"), "late test start");
    let mut inner = data_args(&csv);
    inner.validation_weeks = 0;
    assert!(eval(inner).contains("--validation-weeks 0"));
    let mut wrong = data_args(&csv);
    wrong.columns.deal = "promo".into();
    let err = eval(wrong);
    assert!(err.contains("\"promo\""), "{err}");
}
