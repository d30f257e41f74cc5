//! Demand forecast with an LSTM: the same question and protocol as [`crate::demand`] (a store's
//! weekly units of a brand for the next four weeks at the planned prices and promotions, with
//! an 80% interval), answered by a recurrent network that the component runs as an ONNX graph
//! with tract (`trademl pack --onnx`).
//!
//! - [`net`]: the encoding of a request row, the network (candle: an LSTM over the 26-week
//!   history, a dense head over its last state, the planned weeks, the level and the store and
//!   brand), and its training (AdamW on the masked squared error of log units).
//! - [`onnx`]: the network exported as a standard ONNX graph (opset 13) that takes the
//!   request's tensors, and the graph run with tract-onnx 0.23.9, the component's version.
//! - [`train`] tunes the number of epochs, the level correction and the interval on inner
//!   origins before the data's end, refits on every week and writes the ONNX file, its examples
//!   and its description for `trademl pack --onnx`.
//! - [`evaluate`] runs the rolling-origin protocol of [`crate::demand`] (the last 12 weeks as 3
//!   origins of 4 weeks, refitted per origin on earlier weeks only) with the figures computed
//!   by tract on the exported graph, beside the baselines and the tree model's report.

pub mod net;
pub mod onnx;
mod report;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, ensure};
use serde::Serialize;
use trademl_model_demand_forecast::model::{HORIZON, Series};

use self::net::{Encoder, Inputs, Net, Settings, TrainSet};
use self::onnx::{Offsets, Runner};
use crate::demand::panel::Grid;
use crate::demand::protocol::{
    ALPHAS, Calibration, Scored, accuracies, baselines, calibrate, origin_rows, score,
};
use crate::scanner::{self, Panel};

/// The model's name.
pub const NAME: &str = "demand-forecast-lstm";
/// Its version. 2.0.0: every brand's planned deals and feature ads (`planned_deals`,
/// `planned_features`, `[n, 4 × brands]`, as the tree model takes them) replace the brand's
/// own `planned_deal` and `planned_feature`. 2.0.1: the same network and weights, its `LSTM`
/// node time-major (2.0.0's was batch-first, `layout` 1, an operator set 14 attribute under a
/// declared set 13: tract ran it, onnxruntime and the ONNX checker refused it). 2.0.2: the same
/// network and weights, its input sequence built in the layout tract's input projection reads,
/// which saves tract a move of the projected sequence (see `onnx::export`). 2.0.3: the same
/// graph, packed by the ONNX runner that tells tract a request has at least one row (it then
/// adds each step's gates with its SIMD kernel). 2.0.4: the same graph, packed by the ONNX runner
/// whose dependencies other than tract's kernels are optimised for size (a shorter cold load).
pub const VERSION: &str = "2.0.4";

/// The input data and the training settings shared by training and evaluation.
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Scanner panel CSV (`.csv` or `.csv.gz`): one row per store × brand × week.
    #[arg(long, default_value = "data/dominicks_oj_weekly.csv.gz")]
    pub data: PathBuf,
    /// Which columns hold what.
    #[command(flatten)]
    pub columns: scanner::Columns,
    /// LSTM hidden units.
    #[arg(long, default_value_t = 32)]
    pub hidden: usize,
    /// Weeks the LSTM steps through: the last this many of the 26-week history (the level and
    /// the other static inputs still come from all of it). 13 scores as 26 did on the inner
    /// origins (0.5759 against 0.5783 store accuracy at the best epoch) in half the steps, which
    /// brings a 100-row request inside the 5 ms budget (docs/benchmarks.md).
    #[arg(long, default_value_t = 13)]
    pub steps: usize,
    /// Units of the dense head's hidden layer.
    #[arg(long, default_value_t = 32)]
    pub dense: usize,
    /// AdamW learning rate.
    #[arg(long, default_value_t = 0.002)]
    pub learning_rate: f64,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 1e-4)]
    pub weight_decay: f64,
    /// Rows per minibatch.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Most epochs; the number is chosen on the inner origins' validation weeks.
    #[arg(long, default_value_t = 10)]
    pub max_epochs: usize,
    /// Training rows come from forecast origins this many weeks apart (1 = every week).
    #[arg(long, default_value_t = 4)]
    pub origin_step: usize,
    /// Observed weeks (of the 26-week history) an origin needs to give a training row.
    #[arg(long, default_value_t = 8)]
    pub min_history: usize,
    /// Inner origins, 4 weeks apart before the test (or, in training, the data's end), that
    /// the number of epochs, the level correction and the 80% interval are tuned on.
    #[arg(long, default_value_t = 3)]
    pub inner_origins: usize,
    /// Seed of the initialisation and of the minibatch order.
    #[arg(long, default_value_t = 20250101)]
    pub seed: u64,
    /// Read only the weeks up to this week number, as if the file ended there: evaluating with
    /// it checks a design choice on earlier weeks without reading the last test weeks.
    #[arg(long)]
    pub until_week: Option<u32>,
}

/// The settings, checked.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// The network and optimiser.
    pub net: Settings,
    /// Most epochs.
    pub max_epochs: usize,
    /// Origins of training rows are this many weeks apart.
    pub origin_step: usize,
    /// Observed history weeks a training row needs.
    pub min_history: usize,
    /// Inner origins.
    pub inner_origins: usize,
}

impl DataArgs {
    /// Checks the settings.
    pub fn config(&self) -> Result<Config> {
        ensure!(
            (1..=512).contains(&self.hidden),
            "--hidden {} must be 1 to 512",
            self.hidden
        );
        ensure!(
            (1..=trademl_model_demand_forecast::model::HISTORY).contains(&self.steps),
            "--steps {} must be 1 to {}",
            self.steps,
            trademl_model_demand_forecast::model::HISTORY
        );
        ensure!(
            (1..=1024).contains(&self.dense),
            "--dense {} must be 1 to 1024",
            self.dense
        );
        ensure!(
            self.learning_rate > 0.0 && self.learning_rate < 1.0,
            "--learning-rate {} must be in (0, 1)",
            self.learning_rate
        );
        ensure!(
            (0.0..1.0).contains(&self.weight_decay),
            "--weight-decay {} must be in [0, 1)",
            self.weight_decay
        );
        ensure!(self.batch >= 1, "--batch must be at least 1");
        ensure!(self.max_epochs >= 1, "--max-epochs must be at least 1");
        ensure!(self.origin_step >= 1, "--origin-step must be at least 1");
        ensure!(
            self.inner_origins >= 1,
            "--inner-origins must be at least 1"
        );
        ensure!(
            (1..=trademl_model_demand_forecast::model::HISTORY).contains(&self.min_history),
            "--min-history {} must be 1 to 26",
            self.min_history
        );
        Ok(Config {
            net: Settings {
                hidden: self.hidden,
                steps: self.steps,
                dense: self.dense,
                learning_rate: self.learning_rate,
                weight_decay: self.weight_decay,
                batch: self.batch,
                seed: self.seed,
            },
            max_epochs: self.max_epochs,
            origin_step: self.origin_step,
            min_history: self.min_history,
            inner_origins: self.inner_origins,
        })
    }

    fn load(&self) -> Result<(Panel, Grid)> {
        Grid::load(&self.data, &self.columns, self.until_week)
    }
}

/// `trademl train demand-forecast-lstm`: fit the network and write the ONNX graph.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
    /// Where to write model.onnx, examples.json and description.txt (the inputs of
    /// `trademl pack --onnx`).
    #[arg(long, default_value = "onnx-models/demand-forecast-lstm")]
    pub out_dir: PathBuf,
    /// Where the evaluation report is: its figures are quoted in the description when it was
    /// made from the same data file.
    #[arg(long, default_value = "docs/models")]
    pub report_dir: PathBuf,
}

/// `trademl eval demand-forecast-lstm`: the rolling-origin evaluation beside the baselines.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
    /// Test weeks at the end of the data: this many weeks, as consecutive origins of 4 weeks.
    #[arg(long, default_value_t = 12)]
    pub test_weeks: usize,
    /// Where to write demand-forecast-lstm.md and .json (and where the tree model's report,
    /// demand-forecast.json, is read from).
    #[arg(long, default_value = "docs/models")]
    pub report_dir: PathBuf,
    /// Also run the whole protocol (tuning included) with this many other seeds (the next ones
    /// after `--seed`) and report the spread of the LSTM's test accuracy: the initialisation
    /// and the minibatch order are random, so one seed's figure is one draw.
    #[arg(long, default_value_t = 0)]
    pub seed_spread: u64,
}

/// The LSTM's test accuracy with one seed of its initialisation and minibatch order.
#[derive(Debug, Clone, Serialize)]
pub struct SeedRun {
    /// `--seed`.
    pub seed: u64,
    /// The number of epochs the inner origins chose.
    pub epochs: usize,
    /// Store accuracy on the inner validation weeks at that number, averaged over the inner
    /// origins.
    pub inner_store: f64,
    /// Test accuracy, store.
    pub store: f64,
    /// Test accuracy, chain.
    pub chain: f64,
}

impl SeedRun {
    fn of(seed: u64, e: &Evaluation) -> SeedRun {
        let lstm = &e.methods[0];
        SeedRun {
            seed,
            epochs: e.tuned.epochs,
            inner_store: e
                .tuned
                .epoch_accuracy
                .iter()
                .find(|(n, _)| *n == e.tuned.epochs)
                .map_or(f64::NAN, |(_, a)| *a),
            store: lstm.store,
            chain: lstm.chain,
        }
    }
}

/// Training rows with target weeks `<= last`, from origins `origin_step` apart ending at
/// `last − 1`: every series with at least `min_history` observed history weeks and a target.
pub fn samples(grid: &Grid, last: usize, c: &Config) -> Samples {
    let mut inputs = Inputs::new(grid.products);
    let mut y = Vec::new();
    let mut origins = Vec::new();
    let mut origin = last as isize - 1;
    while origin >= c.min_history as isize - 1 {
        let o = origin as usize;
        for t in &grid.tracks {
            let Some(s) = grid.series(t, o) else { continue };
            if s.units.iter().filter(|u| **u > 0.0).count() < c.min_history {
                continue;
            }
            let targets: Vec<f64> = (1..=HORIZON)
                .map(|h| {
                    if o + h > last {
                        f64::NAN
                    } else {
                        t.units[o + h]
                    }
                })
                .collect();
            if targets.iter().all(|v| v.is_nan()) {
                continue;
            }
            let level = s.level();
            inputs.push(&s);
            origins.push(o);
            y.extend(targets.iter().map(|v| (v.ln() - level) as f32));
        }
        origin -= c.origin_step as isize;
    }
    Samples { inputs, y, origins }
}

/// Training rows.
pub struct Samples {
    /// The request rows.
    pub inputs: Inputs,
    /// Targets, `[n, HORIZON]`: log units of weeks origin + 1..=HORIZON relative to the row's
    /// history level; NaN where the week has no record or lies after the cut-off.
    pub y: Vec<f32>,
    /// Each row's origin (week index).
    pub origins: Vec<usize>,
}

/// The encoder of training rows: every store of the grid, the rows' level mean and spread.
pub fn encoder(grid: &Grid, inputs: &Inputs) -> Encoder {
    let mut stores: Vec<f64> = grid.tracks.iter().map(|t| f64::from(t.store)).collect();
    stores.dedup();
    let levels = Encoder::levels(inputs);
    let n = levels.len().max(1) as f32;
    let mean = levels.iter().sum::<f32>() / n;
    let var = levels.iter().map(|l| (l - mean).powi(2)).sum::<f32>() / n;
    Encoder {
        stores,
        products: grid.products,
        level_mean: mean,
        level_sd: var.sqrt().max(1e-3),
    }
}

/// A network fitted at a cut-off week.
pub struct Fitted {
    /// The network.
    pub net: Net,
    /// Its encoder.
    pub encoder: Encoder,
    /// Training rows.
    pub rows: usize,
    /// Seconds spent training.
    pub seconds: f64,
}

/// Fits on targets up to week index `last` for `epochs` epochs, calling `after_epoch`.
pub fn fit(
    grid: &Grid,
    last: usize,
    c: &Config,
    epochs: usize,
    after_epoch: impl FnMut(usize, &Net, &Encoder) -> Result<()>,
) -> Result<Fitted> {
    let Samples { inputs, y, .. } = samples(grid, last, c);
    ensure!(
        inputs.n > 0,
        "no training rows with targets up to week {}",
        grid.week(last)
    );
    let enc = encoder(grid, &inputs);
    let set = TrainSet {
        x: enc.encode(&inputs),
        y,
    };
    let started = Instant::now();
    let mut after_epoch = after_epoch;
    let net = net::train(&set, enc.static_width(), &c.net, epochs, |e, n| {
        after_epoch(e, n, &enc)
    })?;
    Ok(Fitted {
        net,
        rows: inputs.n,
        seconds: started.elapsed().as_secs_f64(),
        encoder: enc,
    })
}

/// What the inner origins chose.
#[derive(Debug, Clone, Serialize)]
pub struct Tuned {
    /// Inner origins' week numbers, latest first.
    pub inner_origin_weeks: Vec<u32>,
    /// Store accuracy on the inner validation weeks per epoch, averaged over the inner origins.
    pub epoch_accuracy: Vec<(usize, f64)>,
    /// The chosen number of epochs.
    pub epochs: usize,
    /// Level correction per horizon.
    pub log_shift: [f64; HORIZON],
    /// Store and chain accuracy of the inner validation weeks at the correction, per horizon.
    pub shift_accuracy: [(f64, f64); HORIZON],
    /// Tail probability of the interval per horizon.
    pub interval_tail: [f64; HORIZON],
    /// Lower quantile of the corrected log residuals per horizon.
    pub lower_log: [f64; HORIZON],
    /// Upper quantile.
    pub upper_log: [f64; HORIZON],
    /// Smoothing constant of the baseline (latest inner origin).
    pub smoothing_alpha: f64,
    /// Seconds spent training at the inner origins.
    pub seconds: f64,
}

impl Tuned {
    /// The graph's constants.
    pub fn offsets(&self) -> Offsets {
        Offsets {
            shift: self.log_shift,
            lower: std::array::from_fn(|h| self.log_shift[h] + self.lower_log[h]),
            upper: std::array::from_fn(|h| self.log_shift[h] + self.upper_log[h]),
        }
    }
}

/// The series of `rows` as the network's inputs.
fn inputs_of(grid: &Grid, rows: &[(usize, Series)]) -> Inputs {
    let series: Vec<&Series> = rows.iter().map(|(_, s)| s).collect();
    Inputs::of(&series, grid.products)
}

/// Tunes on inner origins `last − HORIZON`, `last − 2·HORIZON`, … (each fitted on targets up
/// to it and validated on the HORIZON weeks after it): the number of epochs by store accuracy
/// averaged over the inner origins; per horizon the level correction (sum of store and chain
/// accuracy over the inner validation weeks pooled) and the interval's quantiles of the
/// corrected log residuals at the tail probability whose quantiles from all but one inner
/// origin cover closest to 80% on the one left out; the baseline's smoothing constant on the
/// latest inner origin. Nothing after `last` is read.
pub fn tune(grid: &Grid, last: usize, c: &Config, mut progress: impl FnMut(&str)) -> Result<Tuned> {
    ensure!(
        last >= c.inner_origins * HORIZON + c.min_history,
        "too few weeks before week {} to tune on {} inner origins",
        grid.week(last),
        c.inner_origins
    );
    let inners: Vec<usize> = (1..=c.inner_origins).map(|k| last - k * HORIZON).collect();
    // Per inner origin and epoch: the validation rows' log forecasts (uncorrected).
    let mut by_epoch: Vec<Vec<Vec<Scored>>> = vec![vec![]; c.max_epochs];
    let mut logs: Vec<Vec<Vec<f64>>> = vec![vec![]; c.max_epochs];
    let mut seconds = 0.0;
    for &o in &inners {
        let rows = origin_rows(grid, o);
        let inputs = inputs_of(grid, &rows);
        let fitted = fit(grid, o, c, c.max_epochs, |epoch, net, enc| {
            progress(&format!("week {} epoch {epoch}", grid.week(o)));
            let e = enc.encode(&inputs);
            let pred = net.predict(&e)?;
            let mut z = Vec::new();
            let scored = score(grid, o, &rows, |_, _, _| f64::NAN);
            let index: std::collections::HashMap<usize, usize> =
                rows.iter().enumerate().map(|(r, (i, _))| (*i, r)).collect();
            let scored: Vec<Scored> = scored
                .into_iter()
                .map(|s| {
                    let r = index[&s.track];
                    let v = f64::from(e.level[r] + pred[r][s.h - 1]);
                    z.push(v);
                    Scored {
                        forecast: v.exp(),
                        ..s
                    }
                })
                .collect();
            by_epoch[epoch - 1].push(scored);
            logs[epoch - 1].push(z);
            Ok(())
        })?;
        seconds += fitted.seconds;
    }
    let epoch_accuracy: Vec<(usize, f64)> = by_epoch
        .iter()
        .enumerate()
        .map(|(e, per_origin)| {
            let mean = per_origin
                .iter()
                .map(|s| accuracies(grid, s).0)
                .sum::<f64>()
                / per_origin.len() as f64;
            (e + 1, mean)
        })
        .collect();
    let epochs = epoch_accuracy
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .expect("at least one epoch")
        .0;
    let valid: Vec<(Scored, f64)> = by_epoch[epochs - 1]
        .iter()
        .flatten()
        .copied()
        .zip(logs[epochs - 1].iter().flatten().copied())
        .collect();
    let Calibration {
        log_shift,
        shift_accuracy,
        interval_tail,
        lower_log,
        upper_log,
    } = calibrate(grid, &inners, &valid);
    let valid_rows = origin_rows(grid, inners[0]);
    let alpha = ALPHAS
        .iter()
        .copied()
        .map(|a| {
            let scored = score(grid, inners[0], &valid_rows, |_, s, _| {
                baselines::smoothing(s, a)
            });
            (a, accuracies(grid, &scored).0)
        })
        .max_by(|x, y| x.1.total_cmp(&y.1))
        .expect("alphas")
        .0;
    Ok(Tuned {
        inner_origin_weeks: inners.iter().map(|&o| grid.week(o)).collect(),
        epoch_accuracy,
        epochs,
        log_shift,
        shift_accuracy,
        interval_tail,
        lower_log,
        upper_log,
        smoothing_alpha: alpha,
        seconds,
    })
}

/// The methods of the evaluation, key and description.
pub const METHODS: [(&str, &str); 4] = [
    (
        "lstm",
        "this model: the LSTM network run by tract on the exported ONNX graph, refitted at each \
         origin on the weeks up to it",
    ),
    (
        "last_value",
        "the last observed week's units, for all 4 weeks",
    ),
    (
        "mean_last4",
        "the mean units of the observed weeks among the last 4 up to the origin",
    ),
    (
        "exp_smoothing",
        "simple exponential smoothing of the observed weeks' units, smoothing constant chosen on \
         the latest inner validation origin",
    ),
];

/// One method's figures, as the trees' evaluation reports them.
pub use crate::demand::MethodResult;

/// One test origin.
#[derive(Debug, Clone, Serialize)]
pub struct OriginInfo {
    /// The origin's week number (the last week fitted on).
    pub origin_week: u32,
    /// The forecast weeks.
    pub weeks: (u32, u32),
    /// Training rows (series × origin, up to 4 targets each) of the refit.
    pub training_rows: usize,
    /// Seconds spent training the refit.
    pub training_seconds: f64,
    /// Scored store × brand × weeks.
    pub scored: usize,
    /// Largest relative difference between tract's forecast on the exported graph and the
    /// candle network's, over the origin's rows and horizons.
    pub tract_vs_candle: f64,
}

/// The evaluation's results.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// The settings.
    pub config: Config,
    /// The tuning.
    pub tuned: Tuned,
    /// The origins.
    pub origins: Vec<OriginInfo>,
    /// Every method.
    pub methods: Vec<MethodResult>,
    /// Share of test store × brand × weeks inside the 80% interval, overall and per horizon.
    pub interval_coverage: (f64, Vec<f64>),
    /// Seconds of training, inner origins and refits.
    pub training_seconds: f64,
}

fn method_result(grid: &Grid, key: &'static str, per_origin: &[Vec<Scored>]) -> MethodResult {
    let all: Vec<Scored> = per_origin.iter().flatten().copied().collect();
    let (store, chain) = accuracies(grid, &all);
    MethodResult {
        key,
        store,
        chain,
        per_origin: per_origin.iter().map(|s| accuracies(grid, s)).collect(),
        per_horizon: (1..=HORIZON)
            .map(|h| {
                let sel: Vec<Scored> = all.iter().filter(|s| s.h == h).copied().collect();
                accuracies(grid, &sel)
            })
            .collect(),
    }
}

/// The exported graph of a fitted network.
pub fn export(fitted: &Fitted, tuned: &Tuned, doc: &str) -> Result<Vec<u8>> {
    let graph = onnx::export(
        &fitted.net.weights()?,
        &fitted.encoder,
        &tuned.offsets(),
        doc,
    );
    onnx::check_portable(&graph)?;
    Ok(graph)
}

/// Largest relative difference between tract's forecasts of `inputs` and the candle network's
/// (`exp(level + network + shift)`), relative to `max(|candle|, 1)`.
pub fn tract_vs_candle(
    fitted: &Fitted,
    tuned: &Tuned,
    inputs: &Inputs,
    tract: &onnx::Forecasts,
) -> Result<f64> {
    let e = fitted.encoder.encode(inputs);
    let pred = fitted.net.predict(&e)?;
    let mut worst = 0.0f64;
    for (r, row) in pred.iter().enumerate().take(inputs.n) {
        for (h, &p) in row.iter().enumerate().take(HORIZON) {
            let candle = (f64::from(e.level[r] + p) + tuned.log_shift[h]).exp();
            let diff = (tract.units[r][h] - candle).abs() / candle.abs().max(1.0);
            worst = worst.max(diff);
        }
    }
    Ok(worst)
}

fn progress_bar(len: usize) -> indicatif::ProgressBar {
    indicatif::ProgressBar::new(len as u64).with_style(
        indicatif::ProgressStyle::with_template("{msg:30} {bar:30} {pos}/{len} {elapsed}")
            .expect("template"),
    )
}

/// Runs the rolling-origin protocol.
pub fn run_evaluation(grid: &Grid, c: &Config, test_weeks: usize) -> Result<Evaluation> {
    ensure!(
        test_weeks >= HORIZON && test_weeks.is_multiple_of(HORIZON),
        "--test-weeks {test_weeks} must be a positive multiple of {HORIZON}"
    );
    ensure!(
        grid.weeks > test_weeks + (c.inner_origins + 1) * HORIZON + c.min_history,
        "the data has {} weeks: too few for {test_weeks} test weeks",
        grid.weeks
    );
    let last = grid.weeks - 1;
    let first_origin = last - test_weeks;
    let origins: Vec<usize> = (0..test_weeks / HORIZON)
        .map(|k| first_origin + k * HORIZON)
        .collect();
    let bar = progress_bar(c.inner_origins * c.max_epochs + origins.len());
    let tuned = tune(grid, first_origin, c, |m| {
        bar.set_message(format!("tuning: {m}"));
        bar.inc(1);
    })?;
    bar.suspend(|| {
        eprintln!(
            "tuned on inner origin weeks {:?} in {:.0} s: {} epochs (store accuracy per epoch {:?}); \
             level correction {:?}; interval {:?} .. {:?}",
            tuned.inner_origin_weeks,
            tuned.seconds,
            tuned.epochs,
            tuned.epoch_accuracy,
            tuned.log_shift,
            tuned.lower_log,
            tuned.upper_log
        )
    });
    let mut infos = Vec::new();
    let mut scored: [Vec<Vec<Scored>>; 4] = Default::default();
    let mut inside = [(0usize, 0usize); HORIZON];
    let mut seconds = tuned.seconds;
    for &o in &origins {
        bar.set_message(format!("refit at week {}", grid.week(o)));
        let fitted = fit(grid, o, c, tuned.epochs, |_, _, _| Ok(()))?;
        seconds += fitted.seconds;
        let graph = export(&fitted, &tuned, "")?;
        let runner = Runner::new(&graph, grid.products)?;
        let test = origin_rows(grid, o);
        let inputs = inputs_of(grid, &test);
        let f = runner.run(&inputs)?;
        let worst = tract_vs_candle(&fitted, &tuned, &inputs, &f)?;
        let index: std::collections::HashMap<usize, usize> =
            test.iter().enumerate().map(|(r, (i, _))| (*i, r)).collect();
        let lstm = score(grid, o, &test, |i, _, h| f.units[index[&i]][h - 1]);
        for s in &lstm {
            let r = index[&s.track];
            let c = &mut inside[s.h - 1];
            c.1 += 1;
            if f.lower[r][s.h - 1] <= s.actual && s.actual <= f.upper[r][s.h - 1] {
                c.0 += 1;
            }
        }
        let (st, ch) = accuracies(grid, &lstm);
        bar.suspend(|| {
            eprintln!(
                "origin week {}: lstm {st:.4} store, {ch:.4} chain ({} rows, trained in {:.0} s; \
                 tract vs candle max rel. diff {worst:.1e})",
                grid.week(o),
                fitted.rows,
                fitted.seconds
            )
        });
        infos.push(OriginInfo {
            origin_week: grid.week(o),
            weeks: (grid.week(o + 1), grid.week(o + HORIZON)),
            training_rows: fitted.rows,
            training_seconds: fitted.seconds,
            scored: lstm.len(),
            tract_vs_candle: worst,
        });
        scored[0].push(lstm);
        scored[1].push(score(grid, o, &test, |_, s, _| baselines::last_value(s)));
        scored[2].push(score(grid, o, &test, |_, s, _| baselines::mean_last4(s)));
        scored[3].push(score(grid, o, &test, |_, s, _| {
            baselines::smoothing(s, tuned.smoothing_alpha)
        }));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let methods: Vec<MethodResult> = METHODS
        .iter()
        .zip(&scored)
        .map(|(&(key, _), s)| method_result(grid, key, s))
        .collect();
    for m in &methods {
        eprintln!(
            "{:14} store {:.4}  chain {:.4}  per origin {:?}",
            m.key, m.store, m.chain, m.per_origin
        );
    }
    let total: (usize, usize) = inside.iter().fold((0, 0), |a, c| (a.0 + c.0, a.1 + c.1));
    Ok(Evaluation {
        config: c.clone(),
        tuned,
        origins: infos,
        methods,
        interval_coverage: (
            total.0 as f64 / total.1 as f64,
            inside.iter().map(|c| c.0 as f64 / c.1 as f64).collect(),
        ),
        training_seconds: seconds,
    })
}

/// The shipped network: tuned on the inner origins before the data's end, refitted on every
/// week.
pub struct Trained {
    /// The refit.
    pub fitted: Fitted,
    /// The tuning.
    pub tuned: Tuned,
}

/// Tunes on the inner origins before the data's end, then refits on every week.
pub fn fit_all(grid: &Grid, c: &Config) -> Result<Trained> {
    let last = grid.weeks - 1;
    let bar = progress_bar(c.inner_origins * c.max_epochs + 1);
    let tuned = tune(grid, last, c, |m| {
        bar.set_message(format!("tuning: {m}"));
        bar.inc(1);
    })?;
    bar.set_message("fitting on every week");
    let fitted = fit(grid, last, c, tuned.epochs, |_, _, _| Ok(()))?;
    bar.finish_and_clear();
    eprintln!(
        "{} epochs on {} rows in {:.0} s (tuning {:.0} s); level correction {:?}",
        tuned.epochs, fitted.rows, fitted.seconds, tuned.seconds, tuned.log_shift
    );
    Ok(Trained { fitted, tuned })
}

/// Trains on the panel and writes the ONNX graph, its examples and its description.
pub fn train(args: &TrainArgs) -> Result<()> {
    let c = args.data.config()?;
    let (panel, grid) = args.data.load()?;
    let trained = fit_all(&grid, &c)?;
    report::write_model(args, &panel, &grid, &trained)
}

/// Runs the rolling-origin evaluation and writes the report.
pub fn evaluate(args: &EvalArgs) -> Result<()> {
    let c = args.data.config()?;
    let (panel, grid) = args.data.load()?;
    let evaluation = run_evaluation(&grid, &c, args.test_weeks)?;
    let mut seeds = vec![SeedRun::of(c.net.seed, &evaluation)];
    for k in 1..=args.seed_spread {
        let mut other = c.clone();
        other.net.seed = c.net.seed + k;
        eprintln!(
            "seed spread: {k} of {}, seed {}",
            args.seed_spread, other.net.seed
        );
        let e = run_evaluation(&grid, &other, args.test_weeks)?;
        seeds.push(SeedRun::of(other.net.seed, &e));
    }
    report::write_report(args, &panel, &grid, &evaluation, &seeds)
}
