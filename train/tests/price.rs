//! The price-optimizer trainer on a synthetic panel whose demand is known, and the checked-in
//! manifest against the compiled-in weights.

use std::fmt::Write as _;
use std::path::Path;

use trademl_model_price_optimizer::model::{self, Search};
use trademl_train::price::eval::{self, Bounds};
use trademl_train::price::simulate::GbmParams;
use trademl_train::price::{
    DataArgs, EvalArgs, ModelArgs, ProtocolArgs, TrainArgs, evaluate, fit_model, parse_groups,
    train,
};
use trademl_train::scanner::Columns;

/// True own elasticities, and cross elasticities on the groups {1, 2} and {3}.
const OWN: [f64; 3] = [-2.5, -3.0, -2.0];
const CROSS: [[f64; 2]; 3] = [[0.8, 0.3], [0.6, 0.4], [0.5, 0.0]];
const DEAL: f64 = 0.3;
const FEATURE: f64 = 0.5;
const BASE_PRICE: [f64; 3] = [0.05, 0.045, 0.03];
const GROUP_OF: [usize; 3] = [0, 0, 1];

/// A small deterministic generator (xorshift64*), uniform in [0, 1).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn store_effect(store: u32) -> f64 {
    5.0 + 0.2 * f64::from(store)
}

/// The true expected ln units of product `b` (0-based).
fn true_log_units(store: u32, b: usize, prices: &[f64], deal: f64, feature: f64) -> f64 {
    let mut v = store_effect(store) + OWN[b] * prices[b].ln() + DEAL * deal + FEATURE * feature;
    for (g, cross) in CROSS[b].iter().enumerate() {
        let others: Vec<f64> = (0..3)
            .filter(|&k| k != b && GROUP_OF[k] == g)
            .map(|k| prices[k].ln())
            .collect();
        if !others.is_empty() {
            v += cross * others.iter().sum::<f64>() / others.len() as f64;
        }
    }
    v
}

/// Six stores × three products × weeks 1..=60, with the column names a user might have
/// (units not logged).
fn write_csv(path: &Path) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut text = "shop,item,wk,sales,p1,p2,p3,promo,ad,gm\n".to_string();
    for store in 1..=6u32 {
        for week in 1..=60u32 {
            let deals: Vec<f64> = (0..3)
                .map(|_| if rng.next() < 0.2 { 1.0 } else { 0.0 })
                .collect();
            let prices: Vec<f64> = (0..3)
                .map(|b| {
                    BASE_PRICE[b]
                        * (0.5 * (rng.next() - 0.5)).exp()
                        * if deals[b] > 0.0 { 0.85 } else { 1.0 }
                })
                .collect();
            for b in 0..3 {
                let feature = if deals[b] > 0.0 && rng.next() < 0.5 {
                    1.0
                } else {
                    0.0
                };
                let noise = 0.1 * (rng.next() + rng.next() - 1.0);
                let units = (true_log_units(store, b, &prices, deals[b], feature) + noise).exp();
                let cost = 0.65 * BASE_PRICE[b];
                let margin = 100.0 * (1.0 - cost / prices[b]);
                writeln!(
                    text,
                    "{store},{},{week},{units},{},{},{},{},{feature},{margin}",
                    b + 1,
                    prices[0],
                    prices[1],
                    prices[2],
                    deals[b]
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
        columns: Columns {
            store: "shop".into(),
            product: "item".into(),
            week: "wk".into(),
            units: "sales".into(),
            units_are_log: false,
            price_prefix: "p".into(),
            deal: "promo".into(),
            feature: "ad".into(),
            margin: "gm".into(),
        },
        test_from_week: 51,
        inner_from_week: 41,
        groups: "1,2;3".into(),
        group_names: vec!["national".into(), "store-brand".into()],
    }
}

fn model_args() -> ModelArgs {
    ModelArgs {
        lambdas: vec![0.0, 0.01],
        observed_range: true,
    }
}

fn protocol_args() -> ProtocolArgs {
    ProtocolArgs {
        max_change: 0.2,
        min_margin_pct: 0.0,
        weights: vec![0.0, 0.5, 1.0],
        gbm: GbmParams {
            trees: 30,
            depth: 3,
            learning_rate: 0.3,
        },
    }
}

#[test]
fn the_fit_recovers_the_true_elasticities() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("panel.csv");
    write_csv(&csv);
    let prep = data_args(&csv).prepare().unwrap();
    assert_eq!(prep.train.len(), 6 * 3 * 50);
    let fitted = fit_model(&prep, 0.0, true).unwrap();
    let d = fitted.demand();
    for b in 0..3 {
        let c = d.coef(b);
        assert!((c[0] - OWN[b]).abs() < 0.15, "product {b}: own {c:?}");
        for g in 0..2 {
            // A group with no other product has no regressor; its coefficient is not identified.
            if (0..3).any(|k| k != b && GROUP_OF[k] == g) {
                assert!((c[1 + g] - CROSS[b][g]).abs() < 0.25, "product {b}: {c:?}");
            }
        }
        assert!((c[3] - DEAL).abs() < 0.1, "product {b}: deal {c:?}");
        assert!((c[4] - FEATURE).abs() < 0.1, "product {b}: feature {c:?}");
    }
    // Store effects: differences between stores follow the truth.
    let s1 = d.intercept(d.store_index(1), 0);
    let s6 = d.intercept(d.store_index(6), 0);
    assert!((s6 - s1 - 1.0).abs() < 0.1, "{s1} {s6}");
}

#[test]
fn recommendations_raise_the_true_profit_within_the_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("panel.csv");
    write_csv(&csv);
    let prep = data_args(&csv).prepare().unwrap();
    let fitted = fit_model(&prep, 0.0, true).unwrap();
    let d = fitted.demand();
    let (weeks, skipped) = eval::weeks(&prep.test, 3);
    assert_eq!((weeks.len(), skipped), (6 * 10, 0));
    let bounds = Bounds {
        max_change: 0.2,
        min_margin_pct: 10.0,
    };
    let (mut before, mut after) = (0.0, 0.0);
    for w in &weeks {
        let items = eval::items(w, bounds);
        let recs = d.optimise(w.store, &items, 0.0, &Search::default());
        let today = w.rows[0].prices.clone();
        let new: Vec<f64> = recs.iter().map(|r| r.price).collect();
        for (b, (it, r)) in items.iter().zip(&recs).enumerate() {
            assert!(r.price <= it.price * 1.2 + 1e-12 && r.price >= it.price * 0.8 - 1e-12);
            assert!(r.price >= it.cost / 0.9 - 1e-12 || (r.price - it.price * 1.2).abs() < 1e-12);
            let (deal, feature) = (w.rows[b].deal, w.rows[b].feature);
            before +=
                (it.price - it.cost) * true_log_units(w.store, b, &today, deal, feature).exp();
            after += (r.price - it.cost) * true_log_units(w.store, b, &new, deal, feature).exp();
        }
    }
    // With own elasticities of −2 to −3 and costs at 65% of the base prices, the profit-maximising
    // prices are above most historical ones: the recommendations must gain true profit.
    assert!(after > before * 1.02, "true profit {before} -> {after}");
}

#[test]
fn train_writes_weights_and_a_valid_manifest_and_eval_writes_the_report() {
    use trademl_sdk::manifest::Manifest;

    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("panel.csv");
    write_csv(&csv);
    let args = TrainArgs {
        data: data_args(&csv),
        model: model_args(),
        protocol: protocol_args(),
        evaluate: true,
        out_weights: dir.path().join("weights.rs"),
        out_manifest: dir.path().join("manifest.json"),
        report_dir: dir.path().join("docs"),
    };
    train(&args).unwrap();
    let weights = std::fs::read_to_string(&args.out_weights).unwrap();
    assert!(
        weights.contains("pub static COEFFICIENTS: [f64; 15]"),
        "{weights}"
    );
    assert!(weights.contains("pub static STORES: [u32; 6] = [1, 2, 3, 4, 5, 6];"));
    let manifest = Manifest::from_json(&std::fs::read(&args.out_manifest).unwrap()).unwrap();
    manifest.validate().unwrap();
    assert_eq!(manifest.name, model::NAME);
    assert!(manifest.description.contains("under its own demand model"));
    assert_eq!(manifest.examples.len(), 2);
    // The batch example prices two stores: 6 rows.
    assert_eq!(manifest.examples[1].inputs[0].shape, vec![6]);

    let eval_args = EvalArgs {
        data: data_args(&csv),
        model: model_args(),
        protocol: protocol_args(),
        report_dir: dir.path().join("docs"),
    };
    evaluate(&eval_args).unwrap();
    let md = std::fs::read_to_string(dir.path().join("docs/price-optimizer.md")).unwrap();
    assert!(
        md.contains("## Protocol") && md.contains("| baseline"),
        "{md}"
    );
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("docs/price-optimizer.json")).unwrap(),
    )
    .unwrap();
    let tradeoff = json["evaluation"]["tradeoff"].as_array().unwrap();
    assert_eq!(tradeoff.len(), 3);
    // More weight on volume never sells fewer units under the optimizer's own model.
    let units: Vec<f64> = tradeoff
        .iter()
        .map(|t| t["own_model"]["units_change"].as_f64().unwrap())
        .collect();
    assert!(units.windows(2).all(|w| w[1] >= w[0] - 1e-9), "{units:?}");
    let svg = std::fs::read_to_string(dir.path().join("docs/price-optimizer.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.matches("<polyline").count() == 2);
}

#[test]
fn bad_groups_and_columns_are_named() {
    let err = |text: &str| format!("{:#}", parse_groups(text, 3).unwrap_err());
    assert!(err("1,2").contains("product 3 is in no group"));
    assert!(err("1,2;2,3").contains("product 2 is in more than one group"));
    assert!(err("1,2;3,4").contains("product 4 is not one of the panel's products 1..=3"));
    assert!(err("1,x;3").contains("\"x\" in group 1 is not a product number"));
    assert_eq!(parse_groups("3;1,2", 3).unwrap(), (vec![1, 1, 0], 2));

    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("panel.csv");
    write_csv(&csv);
    let mut args = data_args(&csv);
    args.columns.margin = "margin".into();
    let err = format!("{:#}", args.prepare().err().unwrap());
    assert!(err.contains("\"margin\""), "{err}");
    let mut args = data_args(&csv);
    args.group_names = vec!["one".into()];
    let err = format!("{:#}", args.prepare().err().unwrap());
    assert!(
        err.contains("--group-names names 1 groups but --groups has 2"),
        "{err}"
    );
}

/// The checked-in manifest describes the compiled-in weights: its examples are what the
/// compiled-in model computes.
#[test]
fn checked_in_manifest_matches_the_compiled_weights() {
    use trademl_model_price_optimizer::model::{Columns as In, Demand, recommend_rows};
    use trademl_sdk::manifest::Manifest;
    use trademl_sdk::protocol::TensorData;

    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-models/price-optimizer/manifest.json");
    let manifest = Manifest::from_json(&std::fs::read(&path).unwrap()).unwrap();
    manifest.validate().unwrap();
    assert_eq!(manifest.name, model::NAME);
    assert_eq!(manifest.version, model::VERSION);
    assert_eq!(manifest.description, model::builtin_description());
    assert!(!manifest.examples.is_empty());
    for example in &manifest.examples {
        let column = |name: &str| -> Vec<f64> {
            match &example.inputs.iter().find(|t| t.name == name).unwrap().data {
                TensorData::Fp64(v) => v.clone(),
                TensorData::Int64(v) => v.iter().map(|&x| x as f64).collect(),
                other => panic!("{name}: {other:?}"),
            }
        };
        let cols: Vec<Vec<f64>> = model::INPUTS.iter().map(|(n, _, _)| column(n)).collect();
        let recs = recommend_rows(&Demand::builtin(), &In::from_ordered(&cols)).unwrap();
        let TensorData::Fp64(price) = &example.outputs[0].data else {
            panic!("recommended_price is not FP64")
        };
        let TensorData::Fp64(profit) = &example.outputs[3].data else {
            panic!("profit_recommended is not FP64")
        };
        for (i, r) in recs.iter().enumerate() {
            assert!((price[i] - r.price).abs() <= 1e-12 * r.price, "row {i}");
            assert!(
                (profit[i] - r.profit()).abs() <= 1e-9 * r.profit().abs().max(1e-9),
                "row {i}"
            );
        }
    }
}
