//! The demand-forecast trainer and evaluation on a small synthetic panel whose units respond
//! to price and deals, so that a forecaster using the plan must beat the history baselines.

use std::fmt::Write as _;
use std::path::Path;

use clap::Parser;
use trademl_model_demand_forecast::model::HORIZON;
use trademl_train::demand::panel::Grid;
use trademl_train::demand::{DataArgs, EvalArgs, TrainArgs, evaluate, run_evaluation, train};
use trademl_train::scanner;

const STORES: u32 = 8;
const BRANDS: u32 = 3;
const WEEKS: u32 = 70;

/// Deterministic pseudo-random numbers in [0, 1).
fn noise(i: u64) -> f64 {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 32;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// Writes the panel: each brand is on deal about one week in five, at a 25% lower price, which
/// doubles and more its units; the store's size scales everything. A few weeks have no record.
fn write_panel(path: &Path) {
    let mut text = String::from("store,brand,week,logmove,price1,price2,price3,deal,feat,profit\n");
    for s in 1..=STORES {
        for w in 1..=WEEKS {
            let deal: Vec<bool> = (1..=BRANDS)
                .map(|b| noise(u64::from(s * 1000 + w * 10 + b)) < 0.2)
                .collect();
            let price: Vec<f64> = (0..BRANDS as usize)
                .map(|b| (0.03 + 0.005 * b as f64) * if deal[b] { 0.75 } else { 1.0 })
                .collect();
            for b in 1..=BRANDS {
                let i = (b - 1) as usize;
                if noise(u64::from(s * 7919 + w * 31 + b)) < 0.05 {
                    continue;
                }
                let base = (5.0 + 0.2 * f64::from(s) + 0.3 * f64::from(b)).exp();
                let lift = if deal[i] { 2.5 } else { 1.0 };
                let units = base * lift * (0.85 + 0.3 * noise(u64::from(s * 131 + w * 17 + b * 3)));
                writeln!(
                    text,
                    "{s},{b},{w},{},{:.5},{:.5},{:.5},{},{},30",
                    units.ln(),
                    price[0],
                    price[1],
                    price[2],
                    u8::from(deal[i]),
                    if deal[i] { 0.5 } else { 0.0 }
                )
                .unwrap();
            }
        }
    }
    std::fs::write(path, text).unwrap();
}

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    Train(TrainArgs),
    Eval(EvalArgs),
}

fn small(path: &Path) -> Vec<String> {
    [
        "--data",
        path.to_str().unwrap(),
        "--depths",
        "3",
        "--max-trees",
        "60",
        "--tree-step",
        "20",
        "--learning-rate",
        "0.2",
        "--weight-powers",
        "0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn data_args(path: &Path) -> DataArgs {
    let mut args = vec!["x".to_string(), "eval".to_string()];
    args.extend(small(path));
    let Command::Eval(e) = Cli::parse_from(args).command else {
        unreachable!()
    };
    e.data
}

#[test]
fn the_trees_use_the_planned_deals_and_beat_the_baselines() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("panel.csv");
    write_panel(&csv);
    let args = data_args(&csv);
    let panel = scanner::load(&csv, &args.columns).unwrap();
    let grid = Grid::new(&panel);
    assert_eq!(grid.weeks, WEEKS as usize);
    // --until-week reads the file as if it ended at that week; a week before the data is refused.
    let (_, early) = Grid::load(&csv, &args.columns, Some(WEEKS - 12)).unwrap();
    assert_eq!(early.weeks, WEEKS as usize - 12);
    assert!(early.tracks.iter().all(|t| t.units.len() == early.weeks));
    let err = Grid::load(&csv, &args.columns, Some(0)).unwrap_err();
    assert!(
        err.to_string().contains("no rows at or before week 0"),
        "{err}"
    );
    let g = trademl_train::demand::protocol::Grid2 {
        depths: args.depths.clone(),
        max_trees: args.max_trees,
        learning_rate: args.learning_rate,
        origin_step: args.origin_step,
        min_history: args.min_history,
        seed: args.seed,
        weight_powers: args.weight_powers.clone(),
        tree_step: args.tree_step,
        inner_origins: args.inner_origins,
        subsample: args.subsample,
        bag: args.bag,
    };
    let e = run_evaluation(&grid, &g, 8).unwrap();
    assert_eq!(e.origins.len(), 2);
    assert_eq!(e.origins[0].origin_week, WEEKS - 8);
    assert_eq!(e.origins[1].weeks, (WEEKS - 3, WEEKS));
    let get = |k: &str| e.methods.iter().find(|m| m.key == k).unwrap();
    let (trees, mean4) = (get("trees"), get("mean_last4"));
    assert!(
        trees.store > mean4.store + 0.1 && trees.chain > mean4.chain,
        "trees {} / {}, mean of 4 {} / {}",
        trees.store,
        trees.chain,
        mean4.store,
        mean4.chain
    );
    assert!(trees.store > 0.7, "{}", trees.store);
    // The interval is calibrated on weeks before the test weeks: roughly 80% coverage.
    assert!(
        (0.5..=0.97).contains(&e.interval_coverage.0),
        "{:?}",
        e.interval_coverage
    );
    // Every training row's target week is at or before the origin: refitting at the first test
    // origin reads no test week, so moving the test weeks' units changes none of its trees.
    let rows = trademl_train::demand::protocol::training_rows(&grid, grid.weeks - 9, &g);
    let mut moved = grid.clone();
    for t in &mut moved.tracks {
        for u in &mut t.units[grid.weeks - 8..] {
            *u *= 3.0;
        }
    }
    let rows2 = trademl_train::demand::protocol::training_rows(&moved, grid.weeks - 9, &g);
    assert_eq!(rows.y, rows2.y);
    // Tuning for the first test origin (its inner origins, level correction and interval) reads
    // no test week either.
    let tune = |grid: &Grid| {
        let t = trademl_train::demand::protocol::tune(grid, grid.weeks - 9, &g, |_| {}).unwrap();
        serde_json::to_string(&t).unwrap()
    };
    let (tuned, tuned_moved) = (tune(&grid), tune(&moved));
    assert_eq!(tuned, tuned_moved);
    assert_eq!(e.tuned.inner_origin_weeks.len(), args.inner_origins);
    assert_eq!(e.tuned.inner_origin_weeks[0], WEEKS - 8 - 4);

    // --subsample grows each tree on a random share of the rows (forust ignores its subsample
    // setting unless asked to sample at random), reproducibly for one seed.
    use trademl_train::demand::protocol::fit;
    let predictions = |subsample: f32| {
        let g = trademl_train::demand::protocol::Grid2 {
            subsample,
            ..g.clone()
        };
        let forest = fit(&rows, 2, 20, 0.0, &g).unwrap();
        (0..rows.n)
            .map(|i| {
                let row: Vec<f64> = (0..rows.cols).map(|c| rows.x[c * rows.n + i]).collect();
                forest.view().predict(&row)
            })
            .collect::<Vec<f64>>()
    };
    let (every_row, half) = (predictions(1.0), predictions(0.5));
    assert_ne!(every_row, half);
    assert_eq!(half, predictions(0.5));

    // --bag averages ensembles grown with different seeds of the column sampling: a bag of two is
    // the mean of its two members fitted alone, and its first 2k trees are the mean of each
    // member's first k.
    let single = |seed: u64| {
        let g = trademl_train::demand::protocol::Grid2 {
            bag: 1,
            seed,
            ..g.clone()
        };
        fit(&rows, 2, 20, 0.0, &g).unwrap()
    };
    let (a, b) = (single(g.seed), single(g.seed + 1_000_003));
    let pair = fit(
        &rows,
        2,
        20,
        0.0,
        &trademl_train::demand::protocol::Grid2 {
            bag: 2,
            ..g.clone()
        },
    )
    .unwrap();
    assert_eq!(pair.trees.len(), 40);
    assert_ne!(a.trees, b.trees, "the members sample different columns");
    let first = |f: &trademl_train::trees::Forest, k: usize| {
        trademl_train::trees::Forest::new(f.base, f.scale, f.trees[..k].to_vec())
    };
    for i in (0..rows.n).step_by(7) {
        let row: Vec<f64> = (0..rows.cols).map(|c| rows.x[c * rows.n + i]).collect();
        for k in [5, 20] {
            let mean =
                (first(&a, k).view().predict(&row) + first(&b, k).view().predict(&row)) / 2.0;
            let got = first(&pair, 2 * k).view().predict(&row);
            assert!(
                (got - mean).abs() < 1e-9,
                "row {i}, {k} trees: {got} vs {mean}"
            );
        }
    }
}

#[test]
fn trains_writes_weights_manifest_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("panel.csv");
    write_panel(&csv);
    let out = dir.path();
    let mut eval = vec!["x".to_string(), "eval".to_string()];
    eval.extend(small(&csv));
    eval.extend(
        [
            "--test-weeks",
            "8",
            "--report-dir",
            out.to_str().unwrap(),
            "--seed-spread",
            "1",
            "--seed",
            "7",
        ]
        .map(String::from),
    );
    let Command::Eval(e) = Cli::parse_from(eval).command else {
        unreachable!()
    };
    evaluate(&e).unwrap();
    let md = std::fs::read_to_string(out.join("demand-forecast.md")).unwrap();
    assert!(
        md.contains("## Protocol") && md.contains("`mean_last4`"),
        "{md}"
    );
    // The other seed's run is reported beside the reported seed's.
    assert!(md.contains("## Seed sensitivity"), "{md}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("demand-forecast.json")).unwrap())
            .unwrap();
    let seeds = report["seed_spread"].as_array().unwrap();
    assert_eq!(seeds.len(), 2, "{seeds:?}");
    assert_eq!(
        (seeds[0]["seed"].as_u64(), seeds[1]["seed"].as_u64()),
        (Some(7), Some(8))
    );
    let trees = report["evaluation"]["methods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == "trees")
        .unwrap();
    assert_eq!(
        seeds[0]["store"], trees["store"],
        "the first is the reported run"
    );
    assert!(out.join("demand-forecast.svg").exists());

    let mut tr = vec!["x".to_string(), "train".to_string()];
    tr.extend(small(&csv));
    let weights = out.join("weights.rs");
    let manifest = out.join("manifest.json");
    tr.extend(
        [
            "--out-weights",
            weights.to_str().unwrap(),
            "--out-manifest",
            manifest.to_str().unwrap(),
            "--report-dir",
            out.to_str().unwrap(),
        ]
        .map(String::from),
    );
    let Command::Train(t) = Cli::parse_from(tr).command else {
        unreachable!()
    };
    train(&t).unwrap();
    let w = std::fs::read_to_string(&weights).unwrap();
    assert!(w.contains("pub const PRODUCTS: usize = 3;"), "{w}");
    assert!(w.contains("pub static TREES: Ensemble<'static>"));
    let text = std::fs::read_to_string(&manifest).unwrap();
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(
        m["description"]
            .as_str()
            .unwrap()
            .contains("chain × brand × week"),
        "the description quotes the report's figures: {}",
        m["description"]
    );
    let example = &m["examples"][0];
    let n = example["inputs"][0]["shape"][0].as_u64().unwrap() as usize;
    assert!(n >= 2);
    assert_eq!(
        example["outputs"][0]["data"].as_array().unwrap().len(),
        n * HORIZON
    );
    trademl_sdk::manifest::Manifest::from_json(text.as_bytes())
        .unwrap()
        .validate()
        .expect("the manifest validates");
}

#[test]
fn a_missing_column_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("panel.csv");
    std::fs::write(&csv, "store,brand,week,units\n1,1,1,5\n").unwrap();
    let mut e = vec!["x".to_string(), "eval".to_string()];
    e.extend(small(&csv));
    let Command::Eval(e) = Cli::parse_from(e).command else {
        unreachable!()
    };
    let err = format!("{:#}", evaluate(&e).unwrap_err());
    assert!(err.contains("logmove"), "{err}");
}

/// The checked-in manifest describes the compiled-in weights: its examples (real rows of the
/// panel) are what the compiled-in model computes.
#[test]
fn checked_in_manifest_matches_the_compiled_weights() {
    use trademl_model_demand_forecast::model::{self, Columns, Forecaster};
    use trademl_sdk::manifest::Manifest;
    use trademl_sdk::protocol::TensorData;

    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-models/demand-forecast/manifest.json");
    let manifest = Manifest::from_json(&std::fs::read(&path).unwrap()).unwrap();
    manifest.validate().unwrap();
    assert_eq!(manifest.name, model::NAME);
    assert_eq!(manifest.version, model::VERSION);
    assert_eq!(manifest.description, model::builtin_description());
    assert!(!manifest.examples.is_empty());
    let m = Forecaster::builtin();
    for example in &manifest.examples {
        let column =
            |name: &str| match &example.inputs.iter().find(|t| t.name == name).unwrap().data {
                TensorData::Fp64(v) => v.clone(),
                other => panic!("{name}: {other:?}"),
            };
        let names = [
            "store",
            "brand",
            "history_units",
            "history_price",
            "history_deal",
            "history_feature",
            "planned_prices",
            "planned_deals",
            "planned_features",
        ];
        let c: Vec<Vec<f64>> = names.iter().map(|n| column(n)).collect();
        let rows = model::series_from_columns(
            &Columns {
                store: &c[0],
                brand: &c[1],
                history_units: &c[2],
                history_price: &c[3],
                history_deal: &c[4],
                history_feature: &c[5],
                planned_prices: &c[6],
                planned_deals: &c[7],
                planned_features: &c[8],
            },
            m.products,
        )
        .unwrap();
        let got = m.forecast_all(&rows).unwrap();
        let TensorData::Fp64(want) = &example.outputs[0].data else {
            panic!("forecast is not FP64")
        };
        let got: Vec<f64> = got.iter().flat_map(|f| f.units).collect();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "{g} vs {w}");
        }
    }
}
