//! Promotion effectiveness: units, lift, incremental gross profit and ROI of a deal or feature ad,
//! from gradient-boosted trees on ln(lift) (the default) or the specified random forest + neural
//! network blend.
//!
//! - [`data`] turns a scanner panel into promotion events with store-brand baselines taken from
//!   the fitting weeks only.
//! - [`fit`] holds the learners, [`metrics`] the held-out figures.
//! - [`train`] fits on the weeks before `--test-start` (tuning on an inner split of those weeks),
//!   scores the weeks from it on, and writes the guest crate's `src/weights.rs` and
//!   `manifest.json`; [`evaluate`] runs the same protocol beside the baselines and writes
//!   `docs/models/promo-effectiveness.md` and `.json`.

pub mod data;
pub mod fit;
pub mod metrics;
mod output;

use std::path::PathBuf;

use anyhow::{Result, ensure};
use serde::Serialize;
use trademl_model_promo_effectiveness::model::{CostParams, Method, Promo};

use self::data::{Event, Split};
use self::fit::{ForestParams, GbmParams, MlpParams, MlpWeights, Table};
use self::metrics::{Figures, figures};
use crate::scanner;
use crate::trees::Forest;

/// The data, the split and the cost assumption.
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Weekly scanner panel CSV (`.csv` or gzip-compressed `.csv.gz`).
    #[arg(long, default_value = "data/dominicks_oj_weekly.csv.gz")]
    pub data: PathBuf,
    /// Which columns hold what.
    #[command(flatten)]
    pub columns: scanner::Columns,
    /// First test week: the models are fitted on the weeks before it and scored on it and later.
    #[arg(long, default_value_t = 141)]
    pub test_start: u32,
    /// The last weeks before --test-start that the inner split holds out to tune on.
    #[arg(long, default_value_t = 20)]
    pub validation_weeks: u32,
    /// Fixed cost of one promotion event in the cost assumption (currency of the prices).
    #[arg(long, default_value_t = trademl_model_promo_effectiveness::model::DEFAULT_FIXED_COST)]
    pub fixed_cost: f64,
    /// Cost of a feature ad over a whole store-week in the cost assumption.
    #[arg(long, default_value_t = trademl_model_promo_effectiveness::model::DEFAULT_FEATURE_COST)]
    pub feature_cost: f64,
    /// Seed of the forest's bootstrap and the network's initialisation.
    #[arg(long, default_value_t = 20250101)]
    pub seed: u64,
}

/// Tuning options.
#[derive(Debug, Clone, clap::Args)]
pub struct TuneArgs {
    /// Boosted tree depths tried on the inner split, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "4,6,8")]
    pub depths: Vec<usize>,
    /// Most boosted trees tried; the best multiple of 25 up to it is chosen on the inner split.
    #[arg(long, default_value_t = 1000)]
    pub max_trees: usize,
    /// Trees of the random forest.
    #[arg(long, default_value_t = 60)]
    pub forest_trees: usize,
    /// Depth of the random forest's trees.
    #[arg(long, default_value_t = 9)]
    pub forest_depth: usize,
    /// Most passes of the network over the data; the best number is chosen on the inner split.
    #[arg(long, default_value_t = 40)]
    pub epochs: usize,
    /// Hidden units of the network.
    #[arg(long, default_value_t = 24)]
    pub hidden: usize,
}

/// `trademl train promo-effectiveness`.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub tune: TuneArgs,
    /// Where to write the generated weights.
    #[arg(
        long,
        default_value = "guest-models/promo-effectiveness/src/weights.rs"
    )]
    pub out_weights: PathBuf,
    /// Where to write the manifest.
    #[arg(long, default_value = "guest-models/promo-effectiveness/manifest.json")]
    pub out_manifest: PathBuf,
    /// Where the evaluation report is (linked from the manifest).
    #[arg(long, default_value = "docs/models")]
    pub report_dir: PathBuf,
}

/// `trademl eval promo-effectiveness`.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub tune: TuneArgs,
    /// Where to write promo-effectiveness.md and .json.
    #[arg(long, default_value = "docs/models")]
    pub report_dir: PathBuf,
}

impl DataArgs {
    fn costs(&self) -> CostParams {
        CostParams {
            fixed_cost: self.fixed_cost,
            feature_cost: self.feature_cost,
        }
    }

    fn check(&self) -> Result<()> {
        ensure!(
            self.validation_weeks >= 1 && self.validation_weeks < self.test_start,
            "--validation-weeks {} must be at least 1 and less than --test-start {}",
            self.validation_weeks,
            self.test_start
        );
        ensure!(
            self.fixed_cost >= 0.0 && self.feature_cost >= 0.0,
            "--fixed-cost and --feature-cost must be >= 0"
        );
        Ok(())
    }
}

impl TuneArgs {
    fn check(&self) -> Result<()> {
        ensure!(
            !self.depths.is_empty() && self.depths.iter().all(|&d| (1..=10).contains(&d)),
            "--depths {:?}: each depth must be 1 to 10",
            self.depths
        );
        ensure!(self.max_trees >= 25, "--max-trees must be at least 25");
        ensure!(self.forest_trees >= 1, "--forest-trees must be at least 1");
        ensure!(
            (1..=16).contains(&self.forest_depth),
            "--forest-depth must be 1 to 16"
        );
        ensure!(
            self.epochs >= 1 && self.hidden >= 1,
            "--epochs and --hidden must be at least 1"
        );
        Ok(())
    }

    fn forest(&self) -> ForestParams {
        ForestParams {
            n_trees: self.forest_trees,
            max_depth: self.forest_depth,
            min_leaf: 20.0,
            colsample: 0.7,
        }
    }

    fn mlp(&self) -> MlpParams {
        MlpParams {
            hidden: self.hidden,
            epochs: self.epochs,
            learning_rate: 3e-4,
            batch: 256,
            weight_decay: 1e-3,
        }
    }
}

/// The fitted models and what was chosen on the inner split.
#[derive(Debug, Clone)]
pub struct Models {
    /// The number of brands.
    pub products: usize,
    /// Boosted trees on ln(lift).
    pub gbm: Forest,
    /// Their parameters (depth and trees chosen on the inner split).
    pub gbm_params: GbmParams,
    /// Random forest on ln(lift).
    pub forest: Forest,
    /// The network on ln(lift).
    pub mlp: MlpWeights,
    /// The forest's weight in the blend (chosen on the inner split).
    pub forest_weight: f64,
    /// The network's parameters (passes chosen on the inner split).
    pub mlp_params: MlpParams,
    /// What the inner split measured, for the report.
    pub tuning: Vec<TuningRow>,
}

impl Models {
    /// The models as the component evaluates them.
    pub fn view(&self) -> Promo<'_> {
        Promo {
            products: self.products,
            gbm: self.gbm.view(),
            forest: self.forest.view(),
            mlp: self.mlp.view(),
            forest_weight: self.forest_weight,
        }
    }
}

/// One figure of the inner split.
#[derive(Debug, Clone, Serialize)]
pub struct TuningRow {
    /// What was tried.
    pub what: String,
    /// 1 − WAPE of units on the validation weeks.
    pub units: f64,
}

fn table(events: &[Event]) -> Table {
    Table {
        x: events.iter().map(|e| e.promotion.features()).collect(),
        y: events.iter().map(Event::ln_lift).collect(),
    }
}

fn units_score(events: &[Event], ln_lift: &[f64]) -> f64 {
    let pred: Vec<f64> = events
        .iter()
        .zip(ln_lift)
        .map(|(e, l)| e.promotion.baseline_units * l.exp())
        .collect();
    figures(events, &pred).units
}

fn bar(len: u64, msg: &'static str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len).with_message(msg);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:28} [{bar:30}] {pos}/{len} {elapsed}")
            .expect("a valid template"),
    );
    bar
}

/// Chooses depth and number of boosted trees by 1 − WAPE of units on `val`: the best multiple of
/// 25 trees per depth.
fn tune_gbm(
    fit: &Table,
    val: &Table,
    val_units: impl Fn(&[f64]) -> f64,
    tune: &TuneArgs,
    tuning: &mut Vec<TuningRow>,
    label: &str,
) -> Result<GbmParams> {
    let mut best: Option<(f64, GbmParams)> = None;
    let progress = bar(tune.depths.len() as u64, "tuning boosted trees");
    for &depth in &tune.depths {
        let params = GbmParams {
            max_depth: depth,
            n_trees: tune.max_trees,
            learning_rate: 0.05,
            min_leaf_weight: 20.0,
            l2: 1.0,
        };
        let forest = fit::gbm(fit, &params)?;
        for (k, pred) in fit::staged(&forest, &val.x, 25).iter().enumerate() {
            let score = val_units(pred);
            let n_trees = (k + 1) * 25;
            if best.as_ref().is_none_or(|(s, _)| score > *s) {
                best = Some((score, GbmParams { n_trees, ..params }));
            }
        }
        let (score, p) = best.as_ref().expect("at least one stage");
        tuning.push(TuningRow {
            what: format!(
                "{label}: best so far after depth {depth}: depth {}, {} trees",
                p.max_depth, p.n_trees
            ),
            units: *score,
        });
        progress.inc(1);
    }
    progress.finish_and_clear();
    Ok(best.expect("at least one depth").1)
}

/// Fits every model on `fit` events, tuning on the inner split `inner`.
pub fn fit_models(
    fit_events: &[Event],
    inner: &Split,
    products: usize,
    tune: &TuneArgs,
    seed: u64,
) -> Result<Models> {
    let mut tuning = Vec::new();
    let (inner_fit, inner_val) = (table(&inner.fit), table(&inner.eval));
    ensure!(
        !inner.fit.is_empty() && !inner.eval.is_empty(),
        "the inner split has {} fitting and {} validation events: both are needed",
        inner.fit.len(),
        inner.eval.len()
    );
    let gbm_params = tune_gbm(
        &inner_fit,
        &inner_val,
        |p| units_score(&inner.eval, p),
        tune,
        &mut tuning,
        "gbm ln(lift)",
    )?;
    // The blend weight, from a forest and a network fitted on the inner split.
    let fp = tune.forest();
    let progress = bar(fp.n_trees as u64, "inner forest");
    let forest = fit::forest(&inner_fit, &fp, seed, || progress.inc(1))?;
    progress.finish_and_clear();
    let brands = |events: &[Event]| events.iter().map(|e| e.promotion.brand).collect::<Vec<_>>();
    // The network's number of passes: the best on the validation weeks.
    let progress = bar(tune.epochs as u64, "inner network");
    let val_brands = brands(&inner.eval);
    let net_predict = |net: &MlpWeights| -> Vec<f64> {
        inner_val
            .x
            .iter()
            .zip(&val_brands)
            .map(|(x, &b)| net.view().forward(&net.view().input(x, b, products)))
            .collect()
    };
    let mut best_net: (f64, usize, Vec<f64>) = (f64::NEG_INFINITY, 0, Vec::new());
    let mut epoch = 0;
    fit::mlp(
        &inner_fit,
        &brands(&inner.fit),
        products,
        &tune.mlp(),
        seed,
        |net| {
            epoch += 1;
            let pred = net_predict(net);
            let score = units_score(&inner.eval, &pred);
            if score > best_net.0 {
                best_net = (score, epoch, pred);
            }
            progress.inc(1);
        },
    );
    progress.finish_and_clear();
    let (net_score, epochs, m) = best_net;
    tuning.push(TuningRow {
        what: format!("nn: best of {} passes: {epochs}", tune.epochs),
        units: net_score,
    });
    let mlp_params = MlpParams {
        epochs,
        ..tune.mlp()
    };
    let f: Vec<f64> = inner_val
        .x
        .iter()
        .map(|x| forest.view().predict(x))
        .collect();
    let mut forest_weight = 0.0;
    let mut best = f64::NEG_INFINITY;
    for k in 0..=10 {
        let w = f64::from(k) / 10.0;
        let blend: Vec<f64> = f
            .iter()
            .zip(&m)
            .map(|(a, b)| w * a + (1.0 - w) * b)
            .collect();
        let score = units_score(&inner.eval, &blend);
        tuning.push(TuningRow {
            what: format!("rf+nn: forest weight {w:.1}"),
            units: score,
        });
        if score > best {
            best = score;
            forest_weight = w;
        }
    }
    // Refit on every fitting event.
    let all = table(fit_events);
    let progress = bar(3, "fitting boosted trees");
    let gbm = fit::gbm(&all, &gbm_params)?;
    progress.finish_and_clear();
    let progress = bar(fp.n_trees as u64, "fitting forest");
    let forest = fit::forest(&all, &fp, seed, || progress.inc(1))?;
    progress.finish_and_clear();
    let progress = bar(epochs as u64, "fitting network");
    let mlp = fit::mlp(
        &all,
        &brands(fit_events),
        products,
        &mlp_params,
        seed,
        |_| progress.inc(1),
    );
    progress.finish_and_clear();
    Ok(Models {
        products,
        gbm,
        gbm_params,
        forest,
        mlp,
        forest_weight,
        mlp_params,
        tuning,
    })
}

/// One method's held-out figures.
#[derive(Debug, Clone, Serialize)]
pub struct MethodResult {
    /// Short key.
    pub key: &'static str,
    /// What it is.
    pub method: String,
    /// Its figures on the test events.
    pub figures: Figures,
}

/// The whole protocol's outcome.
#[derive(Debug, Clone)]
pub struct Run {
    /// The panel read.
    pub panel: scanner::Panel,
    /// Fitting / test events.
    pub split: Split,
    /// Inner split sizes (fitting, validation events).
    pub inner_sizes: (usize, usize),
    /// The fitted models.
    pub models: Models,
    /// Every method's figures, the shipped model last.
    pub results: Vec<MethodResult>,
}

/// The "basic features" of the log-units baselines: store, brand, deal, feature and every brand's
/// price — the covariates a plain demand model of the panel uses.
fn basic(events: &[Event]) -> Table {
    Table {
        x: events
            .iter()
            .map(|e| {
                let p = &e.promotion;
                let mut x = vec![p.store, p.brand as f64, p.deal, p.feature];
                x.extend(
                    p.brand_prices
                        .iter()
                        .enumerate()
                        .map(|(k, &v)| if k + 1 == p.brand { p.price } else { v }),
                );
                x
            })
            .collect(),
        y: events.iter().map(|e| e.units.ln()).collect(),
    }
}

/// Loads the panel, splits it, fits everything on the fitting weeks and scores the test weeks.
pub fn run(data: &DataArgs, tune: &TuneArgs) -> Result<Run> {
    data.check()?;
    tune.check()?;
    let panel = scanner::load(&data.data, &data.columns)?;
    let end = panel.weeks().last().copied().unwrap_or(0) + 1;
    let costs = data.costs();
    let split = data::split(&panel, data.test_start, end, costs);
    let inner_cut = data.test_start - data.validation_weeks;
    let inner = data::split(&panel, inner_cut, data.test_start, costs);
    eprintln!(
        "{}: {} rows; {} promotion events before week {} (fitting), {} from it on (test), {} \
         skipped (no unpromoted week to take a baseline from); inner split: {} before week {}, {} \
         to validate on",
        data.data.display(),
        panel.rows.len(),
        split.fit.len(),
        data.test_start,
        split.eval.len(),
        split.skipped,
        inner.fit.len(),
        inner_cut,
        inner.eval.len()
    );
    ensure!(
        !split.fit.is_empty() && !split.eval.is_empty(),
        "{} fitting and {} test events: both are needed (is --test-start {} inside the data's weeks?)",
        split.fit.len(),
        split.eval.len(),
        data.test_start
    );
    for (i, e) in split.fit.iter().chain(&split.eval).enumerate() {
        e.promotion.validate(i, panel.products).map_err(|err| {
            anyhow::anyhow!(
                "store {} brand {} week {}: {err}",
                e.promotion.store,
                e.promotion.brand,
                e.week
            )
        })?;
    }
    let models = fit_models(&split.fit, &inner, panel.products, tune, data.seed)?;
    let test = &split.eval;
    let mut results = Vec::new();
    let mut push = |key: &'static str, method: String, units: Vec<f64>| {
        let f = figures(test, &units);
        eprintln!(
            "{key:22} units {:.3}  lift {:.3}  lift ratio {:.3}  spearman {:.3}  ROI sign {:.3}",
            f.units, f.lift, f.lift_ratio, f.spearman, f.roi_sign
        );
        results.push(MethodResult {
            key,
            method,
            figures: f,
        });
    };
    let baseline = |e: &Event| e.promotion.baseline_units;
    push(
        "baseline",
        "baseline units (lift 1)".into(),
        test.iter().map(baseline).collect(),
    );
    push(
        "past_lift",
        "baseline × the store-brand's geometric-mean lift over its fitting-week promotions (1 when it had none)".into(),
        test.iter()
            .map(|e| baseline(e) * if e.promotion.past_lift.is_nan() { 1.0 } else { e.promotion.past_lift })
            .collect(),
    );
    // The log-units baselines on the basic features, tuned on the same inner split.
    let (b_fit, b_val, b_all, b_test) = (
        basic(&inner.fit),
        basic(&inner.eval),
        basic(&split.fit),
        basic(test),
    );
    let mut tuning = Vec::new();
    let bp = tune_gbm(
        &b_fit,
        &b_val,
        |p| figures(&inner.eval, &p.iter().map(|l| l.exp()).collect::<Vec<_>>()).units,
        tune,
        &mut tuning,
        "gbm ln(units), basic features",
    )?;
    let bg = fit::gbm(&b_all, &bp)?;
    push(
        "gbm_log_units_basic",
        format!(
            "boosted trees on ln(units) from store, brand, deal, feature and every brand's price (depth {}, {} trees chosen on the inner split)",
            bp.max_depth, bp.n_trees
        ),
        b_test
            .x
            .iter()
            .map(|x| bg.view().predict(x).exp())
            .collect(),
    );
    // The same boosted trees on ln(units) with all the features: what the ln(lift) target adds.
    let with_units = |events: &[Event]| Table {
        x: events.iter().map(|e| e.promotion.features()).collect(),
        y: events.iter().map(|e| e.units.ln()).collect(),
    };
    let (u_fit, u_val, u_all) = (
        with_units(&inner.fit),
        with_units(&inner.eval),
        with_units(&split.fit),
    );
    let up = tune_gbm(
        &u_fit,
        &u_val,
        |p| figures(&inner.eval, &p.iter().map(|l| l.exp()).collect::<Vec<_>>()).units,
        tune,
        &mut tuning,
        "gbm ln(units), all features",
    )?;
    let ug = fit::gbm(&u_all, &up)?;
    push(
        "gbm_log_units",
        format!(
            "boosted trees on ln(units) from all the features of the ln(lift) models (depth {}, {} trees chosen on the inner split)",
            up.max_depth, up.n_trees
        ),
        test.iter()
            .map(|e| ug.view().predict(&e.promotion.features()).exp())
            .collect(),
    );
    let progress = bar(tune.forest_trees as u64, "baseline forest");
    let bf = fit::forest(&b_all, &tune.forest(), data.seed, || progress.inc(1))?;
    progress.finish_and_clear();
    push(
        "rf_log_units_basic",
        "random forest on ln(units), same basic features".into(),
        b_test
            .x
            .iter()
            .map(|x| bf.view().predict(x).exp())
            .collect(),
    );
    let view = models.view();
    let ln_pred = |f: &dyn Fn(&Event) -> f64| {
        test.iter()
            .map(|e| baseline(e) * f(e).exp())
            .collect::<Vec<_>>()
    };
    push(
        "rf",
        "random forest on ln(lift), all features".into(),
        ln_pred(&|e| view.forest.predict(&e.promotion.features())),
    );
    push(
        "nn",
        "neural network (one hidden ReLU layer) on ln(lift), all features + brand one-hot".into(),
        ln_pred(&|e| {
            let x = e.promotion.features();
            view.mlp
                .forward(&view.mlp.input(&x, e.promotion.brand, view.products))
        }),
    );
    push(
        "rf_nn",
        format!(
            "the specified random forest + neural network: {:.1} × forest + {:.1} × network on ln(lift)",
            models.forest_weight,
            1.0 - models.forest_weight
        ),
        test.iter()
            .map(|e| view.predict(&e.promotion, Method::RfNn).units)
            .collect(),
    );
    push(
        "gbm",
        format!(
            "gradient-boosted trees on ln(lift), all features (depth {}, {} trees chosen on the inner split): the default",
            models.gbm_params.max_depth, models.gbm_params.n_trees
        ),
        test.iter()
            .map(|e| view.predict(&e.promotion, Method::Gbm).units)
            .collect(),
    );
    let mut models = models;
    models.tuning.extend(tuning);
    Ok(Run {
        panel,
        inner_sizes: (inner.fit.len(), inner.eval.len()),
        split,
        models,
        results,
    })
}

/// Fits, scores the test weeks and writes `weights.rs` and `manifest.json`.
pub fn train(args: &TrainArgs) -> Result<()> {
    let run = run(&args.data, &args.tune)?;
    output::write_weights(args, &run)?;
    output::write_manifest(args, &run)?;
    eprintln!(
        "wrote {} and {}",
        args.out_weights.display(),
        args.out_manifest.display()
    );
    Ok(())
}

/// Runs the protocol and writes the report.
pub fn evaluate(args: &EvalArgs) -> Result<()> {
    let run = run(&args.data, &args.tune)?;
    output::write_report(args, &run)
}
