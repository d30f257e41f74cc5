//! The LSTM demand forecast on a small synthetic panel whose units respond to deals: the
//! exported ONNX graph computes in tract what the candle network computes, the training rows
//! never read past their cut-off, and the network uses the plan to beat the history baselines.

use std::fmt::Write as _;
use std::path::Path;

use clap::Parser;
use serde_json::Value;
use trademl_model_demand_forecast::model::HORIZON;
use trademl_train::demand::panel::Grid;
use trademl_train::demand::protocol::origin_rows;
use trademl_train::demand_lstm::net::Inputs;
use trademl_train::demand_lstm::onnx::{Runner, check_portable};
use trademl_train::demand_lstm::{
    Config, EvalArgs, TrainArgs, Tuned, evaluate, export, fit, run_evaluation, samples,
    tract_vs_candle, train,
};
use trademl_train::scanner;

const STORES: u32 = 6;
const BRANDS: u32 = 3;
const WEEKS: u32 = 64;

/// Deterministic pseudo-random numbers in [0, 1) (splitmix64).
fn uniform(i: u64) -> f64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
}

/// A panel where a deal (one week in four, 20% off) triples a brand's units, on top of a
/// store- and brand-specific level; 4% of the store × brand × weeks have no record.
fn write_panel(path: &Path) {
    let mut text = String::from("store,brand,week,logmove,price1,price2,price3,deal,feat,profit\n");
    for s in 1..=STORES {
        for w in 1..=WEEKS {
            let key = |b: u32, salt: u64| u64::from(s * 100_000 + w * 100 + b) * 7 + salt;
            let deal: Vec<bool> = (1..=BRANDS).map(|b| uniform(key(b, 1)) < 0.25).collect();
            let prices: Vec<String> = (0..BRANDS as usize)
                .map(|b| {
                    let p = (0.04 + 0.01 * b as f64) * if deal[b] { 0.8 } else { 1.0 };
                    format!("{p:.5}")
                })
                .collect();
            for b in 1..=BRANDS {
                if uniform(key(b, 2)) < 0.04 {
                    continue;
                }
                let d = deal[(b - 1) as usize];
                let level = 4.0 + 0.25 * f64::from(s) + 0.4 * f64::from(b);
                let units =
                    (level + if d { 1.1 } else { 0.0 } + 0.2 * (uniform(key(b, 3)) - 0.5)).exp();
                writeln!(
                    text,
                    "{s},{b},{w},{},{},{},{}",
                    units.ln(),
                    prices.join(","),
                    u8::from(d),
                    if d { "0.6,25" } else { "0,25" }
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

/// The small settings of these tests, each overridden by a flag of `extra` (clap refuses a flag
/// given twice).
fn small(path: &Path, extra: &[&str]) -> Vec<String> {
    let defaults = [
        "--data",
        path.to_str().unwrap(),
        "--hidden",
        "8",
        "--dense",
        "16",
        "--learning-rate",
        "0.01",
        "--batch",
        "32",
        "--max-epochs",
        "8",
        "--origin-step",
        "1",
    ];
    let mut args: Vec<String> = defaults
        .chunks(2)
        .filter(|pair| !extra.contains(&pair[0]))
        .flatten()
        .map(|s| s.to_string())
        .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn parse(command: &str, path: &Path, extra: &[&str]) -> Command {
    let mut argv = vec!["test".to_string(), command.to_string()];
    argv.extend(small(path, extra));
    Cli::parse_from(argv).command
}

fn setup() -> (tempfile::TempDir, Grid, Config) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("panel.csv");
    write_panel(&path);
    let Command::Eval(args) = parse("eval", &path, &[]) else {
        unreachable!()
    };
    let panel = scanner::load(&path, &args.data.columns).unwrap();
    let grid = Grid::new(&panel);
    (dir, grid, args.data.config().unwrap())
}

fn no_offsets() -> Tuned {
    Tuned {
        inner_origin_weeks: vec![],
        epoch_accuracy: vec![],
        epochs: 1,
        log_shift: [0.05, -0.02, 0.0, 0.1],
        shift_accuracy: [(0.0, 0.0); HORIZON],
        interval_tail: [0.1; HORIZON],
        lower_log: [-0.5; HORIZON],
        upper_log: [0.4; HORIZON],
        smoothing_alpha: 0.5,
        seconds: 0.0,
    }
}

#[test]
fn tract_runs_the_exported_graph_as_candle_computes_it() {
    let (_dir, grid, c) = setup();
    let cut = grid.weeks - 1 - HORIZON;
    let fitted = fit(&grid, cut, &c, 3, |_, _, _| Ok(())).unwrap();
    let tuned = no_offsets();
    let graph = export(&fitted, &tuned, "test").unwrap();
    let runner = Runner::new(&graph, grid.products).unwrap();
    let rows = origin_rows(&grid, cut);
    assert!(rows.len() > 10, "{} rows", rows.len());
    let series: Vec<_> = rows.iter().map(|(_, s)| s).collect();
    let inputs = Inputs::of(&series, grid.products);
    let f = runner.run(&inputs).unwrap();
    let worst = tract_vs_candle(&fitted, &tuned, &inputs, &f).unwrap();
    assert!(worst < 1e-4, "tract and candle differ by {worst:e}");
    // The interval is the forecast moved by the constants, in the graph.
    for r in 0..inputs.n {
        for h in 0..HORIZON {
            let ratio = |v: f64| (v / f.units[r][h]).ln();
            let lo = tuned.lower_log[h];
            let hi = tuned.upper_log[h];
            assert!((ratio(f.lower[r][h]) - lo).abs() < 1e-4, "row {r} h {h}");
            assert!((ratio(f.upper[r][h]) - hi).abs() < 1e-4, "row {r} h {h}");
        }
    }
    // A row with a week of no record (-1) and an unknown store still gets finite forecasts.
    let mut odd = inputs.select(&[0]);
    odd.history_units[3] = -1.0;
    odd.history_price[3] = 0.0;
    odd.store[0] = 9999.0;
    let g = runner.run(&odd).unwrap();
    assert!(
        g.units[0].iter().all(|v| v.is_finite() && *v > 0.0),
        "{g:?}"
    );
}

#[test]
fn training_rows_never_read_past_the_cutoff() {
    let (_dir, mut grid, c) = setup();
    let cut = grid.weeks - 1 - 2 * HORIZON;
    let before = samples(&grid, cut, &c);
    assert!(before.inputs.n > 100);
    let mut at_cut = 0;
    for (r, &o) in before.origins.iter().enumerate() {
        assert!(
            o < cut,
            "row {r}: origin {o} is not before the cut-off {cut}"
        );
        for h in 1..=HORIZON {
            if !before.y[r * HORIZON + h - 1].is_nan() {
                assert!(o + h <= cut, "row {r}: target week {} > {cut}", o + h);
                at_cut += usize::from(o + h == cut);
            }
        }
    }
    assert!(at_cut > 0, "no target at the cut-off week itself");
    // The units sold after the cut-off are never read. (A row at origin o carries the plan of
    // weeks o + 1..=o + 4, as every request does; the plan of weeks past the cut-off is known at
    // the cut-off under the protocol, and their targets are masked.)
    for t in &mut grid.tracks {
        for w in cut + 1..t.units.len() {
            t.units[w] *= 1000.0;
        }
    }
    let after = samples(&grid, cut, &c);
    assert_eq!(before.origins, after.origins);
    assert_eq!(before.inputs.history_units, after.inputs.history_units);
    assert_eq!(before.inputs.planned_deals, after.inputs.planned_deals);
    assert_eq!(
        before.inputs.planned_features,
        after.inputs.planned_features
    );
    let same = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .all(|(x, y)| x == y || (x.is_nan() && y.is_nan()))
    };
    assert!(same(&before.y, &after.y));
}

#[test]
fn the_lstm_uses_the_planned_deals_and_beats_the_baselines() {
    let (_dir, grid, c) = setup();
    let e = run_evaluation(&grid, &c, 8).unwrap();
    let get = |k: &str| e.methods.iter().find(|m| m.key == k).unwrap();
    let lstm = get("lstm");
    for base in ["last_value", "mean_last4", "exp_smoothing"] {
        let b = get(base);
        assert!(
            lstm.store > b.store + 0.05 && lstm.chain > b.chain,
            "lstm {:.3}/{:.3} vs {base} {:.3}/{:.3}",
            lstm.store,
            lstm.chain,
            b.store,
            b.chain
        );
    }
    assert_eq!(e.origins.len(), 2);
    assert_eq!(e.tuned.inner_origin_weeks.len(), 3);
    let first_test_origin = e.origins[0].origin_week;
    assert!(
        e.tuned
            .inner_origin_weeks
            .iter()
            .all(|w| *w + 4 <= first_test_origin)
    );
    assert!(e.origins.iter().all(|o| o.tract_vs_candle < 1e-4));
    assert!(
        (0.3..=1.0).contains(&e.interval_coverage.0),
        "{:?}",
        e.interval_coverage
    );
}

#[test]
fn trains_writes_the_graph_and_examples_that_reproduce_and_the_report() {
    let (dir, _grid, _c) = setup();
    let path = dir.path().join("panel.csv");
    let reports = dir.path().join("reports");
    let out = dir.path().join("out");
    let Command::Eval(eval) = parse(
        "eval",
        &path,
        &[
            "--test-weeks",
            "4",
            "--report-dir",
            reports.to_str().unwrap(),
            "--seed-spread",
            "1",
        ],
    ) else {
        unreachable!()
    };
    evaluate(&eval).unwrap();
    let md = std::fs::read_to_string(reports.join("demand-forecast-lstm.md")).unwrap();
    assert!(
        md.contains("## Protocol") && md.contains("`mean_last4`"),
        "{md}"
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(reports.join("demand-forecast-lstm.json")).unwrap())
            .unwrap();
    assert_eq!(report["evaluation"]["methods"][0]["key"], "lstm");
    // The other seed's run is reported beside the reported seed's, which comes first.
    assert!(md.contains("## Seed sensitivity"), "{md}");
    let seeds = report["seeds"].as_array().unwrap();
    assert_eq!(seeds.len(), 2, "{seeds:?}");
    assert_eq!(
        seeds[1]["seed"].as_u64(),
        seeds[0]["seed"].as_u64().map(|s| s + 1)
    );
    assert_eq!(
        seeds[0]["store"], report["evaluation"]["methods"][0]["store"],
        "the first is the reported run"
    );
    let Command::Train(args) = parse(
        "train",
        &path,
        &[
            "--out-dir",
            out.to_str().unwrap(),
            "--report-dir",
            reports.to_str().unwrap(),
        ],
    ) else {
        unreachable!()
    };
    train(&args).unwrap();
    let description = std::fs::read_to_string(out.join("description.txt")).unwrap();
    assert!(
        description.contains("per store × brand × week"),
        "{description}"
    );
    assert!(description.contains("history_units"), "{description}");
    check_examples(&out.join("model.onnx"), &out.join("examples.json"), 3);
}

/// Runs the graph on each example's inputs with tract and compares with its outputs.
fn check_examples(onnx: &Path, examples: &Path, products: usize) {
    let graph = std::fs::read(onnx).unwrap();
    check_portable(&graph).unwrap();
    let runner = Runner::new(&graph, products).unwrap();
    let examples: Value = serde_json::from_slice(&std::fs::read(examples).unwrap()).unwrap();
    let examples = examples.as_array().unwrap();
    assert!(!examples.is_empty());
    for ex in examples {
        let col = |name: &str| -> Vec<f64> {
            let t = ex["inputs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["name"] == name)
                .unwrap_or_else(|| panic!("no input {name}"));
            serde_json::from_value(t["data"].clone()).unwrap()
        };
        let store = col("store");
        let inputs = Inputs {
            n: store.len(),
            products,
            store,
            brand: col("brand"),
            history_units: col("history_units"),
            history_price: col("history_price"),
            history_deal: col("history_deal"),
            history_feature: col("history_feature"),
            planned_prices: col("planned_prices"),
            planned_deals: col("planned_deals"),
            planned_features: col("planned_features"),
        };
        let f = runner.run(&inputs).unwrap();
        for (name, got) in [
            ("forecast", &f.units),
            ("lower_80", &f.lower),
            ("upper_80", &f.upper),
        ] {
            let t = ex["outputs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["name"] == name)
                .unwrap();
            let want: Vec<f64> = serde_json::from_value(t["data"].clone()).unwrap();
            let got: Vec<f64> = got.iter().flatten().copied().collect();
            assert_eq!(want.len(), got.len());
            for (w, g) in want.iter().zip(&got) {
                assert!(
                    (w - g).abs() <= 1e-6 * w.abs().max(1.0),
                    "{name}: {w} vs {g}"
                );
            }
        }
    }
}

#[test]
fn the_checked_in_graph_reproduces_its_examples() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../onnx-models/demand-forecast-lstm");
    check_examples(&dir.join("model.onnx"), &dir.join("examples.json"), 11);
}

/// tract runs what other runtimes refuse: a recurrent node's `layout` under operator set 13
/// (version 2.0.0 had it), or batch-first at any set (onnxruntime runs only time-major).
#[test]
fn a_graph_other_runtimes_refuse_is_refused() {
    use prost::Message;
    use tract_onnx::pb;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../onnx-models/demand-forecast-lstm");
    let graph = std::fs::read(dir.join("model.onnx")).unwrap();
    let shipped = pb::ModelProto::decode(&*graph).unwrap();
    let with_layout = |layout: i64, opset: i64| {
        let mut model = shipped.clone();
        model.opset_import[0].version = opset;
        let graph = model.graph.as_mut().unwrap();
        let lstm = graph.node.iter_mut().find(|n| n.op_type == "LSTM").unwrap();
        lstm.attribute.push(pb::AttributeProto {
            name: "layout".into(),
            r#type: pb::attribute_proto::AttributeType::Int as i32,
            i: layout,
            ..Default::default()
        });
        check_portable(&model.encode_to_vec())
    };
    let err = with_layout(1, 13).unwrap_err().to_string();
    assert!(
        err.contains("\"layout\" needs operator set 14, the graph declares 13"),
        "{err}"
    );
    let err = with_layout(1, 14).unwrap_err().to_string();
    assert!(err.contains("LSTM with layout 1 (batch-first)"), "{err}");
    with_layout(0, 14).unwrap();
}

#[test]
fn bad_settings_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("panel.csv");
    let Command::Eval(args) = parse("eval", &path, &["--hidden", "0"]) else {
        unreachable!()
    };
    let err = args.data.config().unwrap_err().to_string();
    assert!(err.contains("--hidden 0"), "{err}");
}
