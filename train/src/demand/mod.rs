//! Demand forecast: a store's weekly units of a brand for the next four weeks at the planned
//! prices and promotions, with an 80% interval. Gradient-boosted trees on log units relative to
//! the history's level, direct per horizon (features as of the forecast origin, no recursion).
//!
//! - [`train`] reads a scanner panel, tunes the trees on inner origins (each validated on the
//!   four weeks after it, the last ending at the data's end), refits on every week, and writes the guest crate's `src/weights.rs` and
//!   `manifest.json`.
//! - [`evaluate`] runs the rolling-origin protocol (the last 12 weeks as 3 origins of 4 weeks,
//!   refitted per origin on earlier weeks only) beside the last-value, mean-of-4 and
//!   exponential-smoothing baselines, and writes `docs/models/demand-forecast.md` and `.json`.

mod output;
pub mod panel;
pub mod protocol;

use std::path::PathBuf;

use anyhow::{Context, Result, ensure};
use serde::Serialize;
use trademl_model_demand_forecast::model::HORIZON;

use self::panel::Grid;
use self::protocol::{Grid2, Scored, Tuned, accuracies, baselines, score};
use crate::scanner::{self, Panel};

/// The input data and the training settings shared by training and evaluation.
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Scanner panel CSV (`.csv` or `.csv.gz`): one row per store × brand × week.
    #[arg(long, default_value = "data/dominicks_oj_weekly.csv.gz")]
    pub data: PathBuf,
    /// Which columns hold what.
    #[command(flatten)]
    pub columns: scanner::Columns,
    /// Tree depths tried on the inner validation origins, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "2,3,4")]
    pub depths: Vec<usize>,
    /// Most trees; the number (a multiple of --tree-step) is chosen on the inner validation
    /// weeks.
    #[arg(long, default_value_t = 400)]
    pub max_trees: usize,
    /// Tree counts compared on the validation weeks are this many apart.
    #[arg(long, default_value_t = 25)]
    pub tree_step: usize,
    /// Row-weight powers tried (a row weighs exp(history level)^power), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub weight_powers: Vec<f64>,
    /// Learning rate.
    #[arg(long, default_value_t = 0.05)]
    pub learning_rate: f32,
    /// Training rows come from forecast origins this many weeks apart (1 = every week).
    #[arg(long, default_value_t = 2)]
    pub origin_step: usize,
    /// Observed weeks (of the 26-week history) an origin needs to give a training row.
    #[arg(long, default_value_t = 8)]
    pub min_history: usize,
    /// Inner origins, 4 weeks apart before the test (or, in training, the data's end), that the
    /// depth, the number of trees, the level correction and the 80% interval are tuned on.
    #[arg(long, default_value_t = 3)]
    pub inner_origins: usize,
    /// Share of the training rows each tree is grown on, sampled at random (1 = every row).
    #[arg(long, default_value_t = 1.0)]
    pub subsample: f32,
    /// Seed of the trees' row and column sampling.
    #[arg(long, default_value_t = 20250101)]
    pub seed: u64,
    /// Boosted ensembles averaged into the model, each with its own seed of the column
    /// sampling (`--max-trees` and the tuned number of trees count one ensemble's trees).
    #[arg(long, default_value_t = 2)]
    pub bag: usize,
    /// Read only the weeks up to this week number, as if the file ended there: evaluating with
    /// it checks a design choice on earlier weeks without reading the last test weeks.
    #[arg(long)]
    pub until_week: Option<u32>,
}

impl DataArgs {
    fn grid(&self) -> Result<Grid2> {
        ensure!(
            !self.depths.is_empty() && self.depths.iter().all(|&d| (1..=12).contains(&d)),
            "--depths {:?}: each depth must be 1 to 12",
            self.depths
        );
        ensure!(self.max_trees >= 1, "--max-trees must be at least 1");
        ensure!(
            self.learning_rate > 0.0 && self.learning_rate <= 1.0,
            "--learning-rate {} must be in (0, 1]",
            self.learning_rate
        );
        ensure!(
            self.subsample > 0.0 && self.subsample <= 1.0,
            "--subsample {} must be in (0, 1]",
            self.subsample
        );
        ensure!(self.origin_step >= 1, "--origin-step must be at least 1");
        ensure!(self.tree_step >= 1, "--tree-step must be at least 1");
        ensure!(
            (1..=16).contains(&self.bag),
            "--bag {} must be 1 to 16",
            self.bag
        );
        ensure!(
            !self.weight_powers.is_empty()
                && self.weight_powers.iter().all(|p| (0.0..=2.0).contains(p)),
            "--weight-powers {:?}: each power must be 0 to 2",
            self.weight_powers
        );
        ensure!(
            (1..=trademl_model_demand_forecast::model::HISTORY).contains(&self.min_history),
            "--min-history {} must be 1 to 26",
            self.min_history
        );
        Ok(Grid2 {
            depths: self.depths.clone(),
            max_trees: self.max_trees,
            learning_rate: self.learning_rate,
            origin_step: self.origin_step,
            min_history: self.min_history,
            seed: self.seed,
            weight_powers: self.weight_powers.clone(),
            tree_step: self.tree_step,
            inner_origins: self.inner_origins,
            subsample: self.subsample,
            bag: self.bag,
        })
    }

    fn load(&self) -> Result<(Panel, Grid)> {
        Grid::load(&self.data, &self.columns, self.until_week)
    }
}

/// `trademl train demand-forecast`: fit the model and write its weights and manifest.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
    /// Where to write the generated weights.
    #[arg(long, default_value = "guest-models/demand-forecast/src/weights.rs")]
    pub out_weights: PathBuf,
    /// Where to write the manifest.
    #[arg(long, default_value = "guest-models/demand-forecast/manifest.json")]
    pub out_manifest: PathBuf,
    /// Where the evaluation report is: its figures are quoted in the description when it was
    /// made from the same data file.
    #[arg(long, default_value = "docs/models")]
    pub report_dir: PathBuf,
}

/// `trademl eval demand-forecast`: the rolling-origin evaluation beside the baselines.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
    /// Test weeks at the end of the data: this many weeks, as consecutive origins of 4 weeks.
    #[arg(long, default_value_t = 12)]
    pub test_weeks: usize,
    /// Where to write demand-forecast.md and .json.
    #[arg(long, default_value = "docs/models")]
    pub report_dir: PathBuf,
    /// Also run the whole protocol (tuning included) with this many other seeds (the next ones
    /// after `--seed`) and report the spread of the trees' test accuracy: the trees sample
    /// columns at random, so one seed's figure is one draw.
    #[arg(long, default_value_t = 0)]
    pub seed_spread: u64,
}

/// The trees' test accuracy with one seed of the trees' sampling.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SeedRun {
    /// `--seed`.
    pub seed: u64,
    /// Chosen depth and number of trees.
    pub depth: usize,
    /// Chosen number of trees.
    pub trees: usize,
    /// Store accuracy averaged over the inner origins at the chosen settings.
    pub inner_store: f64,
    /// Test accuracy, store and chain.
    pub store: f64,
    /// Test accuracy, chain.
    pub chain: f64,
}

impl SeedRun {
    fn of(seed: u64, e: &Evaluation) -> Result<SeedRun> {
        let trees = e
            .methods
            .iter()
            .find(|m| m.key == "trees")
            .context("the evaluation has no trees result")?;
        Ok(SeedRun {
            seed,
            depth: e.tuned.depth,
            trees: e.tuned.trees,
            inner_store: e
                .tuned
                .tree_accuracy
                .iter()
                .find(|(n, _)| *n == e.tuned.trees)
                .map_or(f64::NAN, |(_, a)| *a),
            store: trees.store,
            chain: trees.chain,
        })
    }
}

/// The methods of the evaluation, key and description.
pub const METHODS: [(&str, &str); 4] = [
    (
        "trees",
        "the shipped model: gradient-boosted trees on log units relative to the history level, \
         direct per horizon (the mean of `--bag` ensembles, each with its own seed of the column \
         sampling), refitted at each origin on the weeks up to it",
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
         the inner validation origin",
    ),
];

/// One method's figures.
#[derive(Debug, Clone, Serialize)]
pub struct MethodResult {
    /// The method's key.
    pub key: &'static str,
    /// 1 − WAPE at store × brand × week over all test weeks.
    pub store: f64,
    /// 1 − WAPE at chain × brand × week.
    pub chain: f64,
    /// Per origin (store, chain).
    pub per_origin: Vec<(f64, f64)>,
    /// Per horizon 1..=4 (store, chain), over the origins.
    pub per_horizon: Vec<(f64, f64)>,
}

/// One test origin.
#[derive(Debug, Clone, Serialize)]
pub struct OriginInfo {
    /// The origin's week number (the last week fitted on).
    pub origin_week: u32,
    /// The forecast weeks.
    pub weeks: (u32, u32),
    /// Training rows of the refit.
    pub training_rows: usize,
    /// Scored store × brand × weeks.
    pub scored: usize,
}

/// The evaluation's results.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// The settings.
    pub grid: Grid2,
    /// The tuning.
    pub tuned: Tuned,
    /// The origins.
    pub origins: Vec<OriginInfo>,
    /// Every method.
    pub methods: Vec<MethodResult>,
    /// Share of test store × brand × weeks inside the 80% interval, overall and per horizon.
    pub interval_coverage: (f64, Vec<f64>),
    /// Chain-level actual and forecast units per brand and test week (for the plot).
    pub chain_series: Vec<(u32, u32, f64, f64)>,
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

/// Runs the rolling-origin protocol.
pub fn run_evaluation(grid: &Grid, g: &Grid2, test_weeks: usize) -> Result<Evaluation> {
    ensure!(
        test_weeks >= HORIZON && test_weeks.is_multiple_of(HORIZON),
        "--test-weeks {test_weeks} must be a positive multiple of {HORIZON}"
    );
    ensure!(
        grid.weeks > test_weeks + 2 * HORIZON + g.min_history,
        "the data has {} weeks: too few for {test_weeks} test weeks",
        grid.weeks
    );
    let last = grid.weeks - 1;
    let first_origin = last - test_weeks;
    let origins: Vec<usize> = (0..test_weeks / HORIZON)
        .map(|k| first_origin + k * HORIZON)
        .collect();
    let bar = indicatif::ProgressBar::new(
        (g.depths.len() * g.weight_powers.len() * g.inner_origins + origins.len()) as u64,
    )
    .with_style(
        indicatif::ProgressStyle::with_template("{msg:30} {bar:30} {pos}/{len} {elapsed}")
            .expect("template"),
    );
    bar.set_message("tuning on the inner origins");
    let tuned = protocol::tune(grid, first_origin, g, |m| {
        bar.set_message(format!("tuning: {m}"));
        bar.inc(1);
    })?;
    eprintln!(
        "tuned on inner origin weeks {:?}: depth {}, weight power {}, {} trees (tried {:?}); \
         level correction {:?}; smoothing alpha {}",
        tuned.inner_origin_weeks,
        tuned.depth,
        tuned.weight_power,
        tuned.trees,
        tuned.validation_accuracy,
        tuned.log_shift,
        tuned.smoothing_alpha
    );
    let mut infos = Vec::new();
    let mut scored: [Vec<Vec<Scored>>; 4] = Default::default();
    let mut inside = [(0usize, 0usize); HORIZON];
    for &o in &origins {
        bar.set_message(format!("refit at week {}", grid.week(o)));
        let rows = protocol::training_rows(grid, o, g);
        let forest = protocol::fit(&rows, tuned.depth, tuned.trees, tuned.weight_power, g)?;
        let model = protocol::forecaster(&forest, grid.products, &tuned);
        let test = protocol::origin_rows(grid, o);
        let mut forecasts = std::collections::HashMap::new();
        for (i, s) in &test {
            forecasts.insert(*i, model.forecast(s));
        }
        let trees = score(grid, o, &test, |i, _, h| forecasts[&i].units[h - 1]);
        for s in &trees {
            let f = &forecasts[&s.track];
            let c = &mut inside[s.h - 1];
            c.1 += 1;
            if f.lower[s.h - 1] <= s.actual && s.actual <= f.upper[s.h - 1] {
                c.0 += 1;
            }
        }
        infos.push(OriginInfo {
            origin_week: grid.week(o),
            weeks: (grid.week(o + 1), grid.week(o + HORIZON)),
            training_rows: rows.n,
            scored: trees.len(),
        });
        let (st, ch) = accuracies(grid, &trees);
        eprintln!(
            "origin week {}: trees {st:.4} store, {ch:.4} chain",
            grid.week(o)
        );
        scored[0].push(trees);
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
    let mut chain = std::collections::BTreeMap::<(u32, u32), (f64, f64)>::new();
    for s in scored[0].iter().flatten() {
        let e = chain
            .entry((grid.tracks[s.track].brand, grid.week(s.week)))
            .or_default();
        e.0 += s.actual;
        e.1 += s.forecast;
    }
    let total: (usize, usize) = inside.iter().fold((0, 0), |a, c| (a.0 + c.0, a.1 + c.1));
    Ok(Evaluation {
        grid: g.clone(),
        tuned,
        origins: infos,
        methods,
        interval_coverage: (
            total.0 as f64 / total.1 as f64,
            inside.iter().map(|c| c.0 as f64 / c.1 as f64).collect(),
        ),
        chain_series: chain
            .into_iter()
            .map(|((b, w), (a, f))| (b, w, a, f))
            .collect(),
    })
}

/// The final model.
pub struct Trained {
    /// The trees fitted on every week.
    pub forest: crate::trees::Forest,
    /// The tuning on the inner origins before the data's end.
    pub tuned: Tuned,
    /// Training rows.
    pub rows: usize,
}

/// Tunes on the inner origins before the data's end, then refits on every week.
pub fn fit_all(grid: &Grid, g: &Grid2) -> Result<Trained> {
    let last = grid.weeks - 1;
    let bar = indicatif::ProgressBar::new(
        (g.depths.len() * g.weight_powers.len() * g.inner_origins + 1) as u64,
    )
    .with_style(
        indicatif::ProgressStyle::with_template("{msg:30} {bar:30} {pos}/{len} {elapsed}")
            .expect("template"),
    );
    bar.set_message("tuning on the inner origins");
    let tuned = protocol::tune(grid, last, g, |m| {
        bar.set_message(format!("tuning: {m}"));
        bar.inc(1);
    })?;
    bar.set_message("fitting on every week");
    let rows = protocol::training_rows(grid, last, g);
    let forest = protocol::fit(&rows, tuned.depth, tuned.trees, tuned.weight_power, g)?;
    bar.finish_and_clear();
    eprintln!(
        "depth {}, {} trees ({} nodes) on {} rows; interval log quantiles {:?} .. {:?}",
        tuned.depth,
        tuned.trees,
        forest.n_nodes(),
        rows.n,
        tuned.lower_log,
        tuned.upper_log
    );
    Ok(Trained {
        forest,
        tuned,
        rows: rows.n,
    })
}

/// Trains on the panel and writes `weights.rs` and `manifest.json`.
pub fn train(args: &TrainArgs) -> Result<()> {
    let g = args.data.grid()?;
    let (panel, grid) = args.data.load()?;
    let trained = fit_all(&grid, &g)?;
    output::write_weights(args, &panel, &grid, &trained)?;
    output::write_manifest(args, &panel, &grid, &trained)?;
    eprintln!(
        "wrote {} and {}",
        args.out_weights.display(),
        args.out_manifest.display()
    );
    Ok(())
}

/// Runs the rolling-origin evaluation and writes the report.
pub fn evaluate(args: &EvalArgs) -> Result<()> {
    let g = args.data.grid()?;
    let (panel, grid) = args.data.load()?;
    let evaluation = run_evaluation(&grid, &g, args.test_weeks)?;
    let mut seeds = vec![SeedRun::of(g.seed, &evaluation)?];
    for k in 1..=args.seed_spread {
        let other = Grid2 {
            seed: g.seed + k,
            ..g.clone()
        };
        eprintln!(
            "seed spread: {k} of {}, seed {}",
            args.seed_spread, other.seed
        );
        let e = run_evaluation(&grid, &other, args.test_weeks)?;
        seeds.push(SeedRun::of(other.seed, &e)?);
    }
    output::write_report(args, &panel, &grid, &evaluation, &seeds)
}
