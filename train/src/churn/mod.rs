//! Churn: will a customer buy nothing over the next period? Gradient-boosted trees on recency,
//! frequency, monetary value, tenure, derived ratios and the BG/NBD probability of being active.
//!
//! - [`train`] reads a transactions CSV, summarises each customer at the calibration end, labels
//!   them by the holdout period, fits BG/NBD and the trees (depth and size tuned on an inner
//!   split), and writes the guest crate's `src/weights.rs` and `manifest.json`.
//! - [`evaluate`] runs the cross-validation protocol of [`cv`] beside the baselines (recency
//!   rule, BG/NBD, logistic regression on RFM) and writes `docs/models/churn.md` and `.json`.

pub mod bgnbd;
pub mod cv;
pub mod data;
pub mod gbm;
pub mod logistic;
pub mod metrics;
mod output;

use std::path::PathBuf;

use anyhow::{Context, Result, ensure};
use chrono::NaiveDate;

use self::cv::{CvResult, Grid};
use self::data::ChurnTable;
use crate::segmentation::data::Columns;

/// The input data: where it is, which columns hold what, and the two periods.
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Transactions CSV, one purchase per row (`.csv` or gzip-compressed `.csv.gz`).
    #[arg(long, default_value = "data/cdnow_transactions.csv.gz")]
    pub data: PathBuf,
    /// Which columns hold what.
    #[command(flatten)]
    pub columns: Columns,
    /// Last day of the calibration period (YYYY-MM-DD); the summaries are taken at it. The
    /// calibration period starts at the file's first purchase.
    #[arg(long, default_value = "1997-09-30")]
    pub calibration_end: String,
    /// Last day of the holdout period (YYYY-MM-DD), which starts the day after the calibration
    /// end; a customer churned when they bought nothing in it. Its length is the model's horizon.
    #[arg(long, default_value = "1998-06-30")]
    pub holdout_end: String,
    /// Seed of the fold assignment and the inner split.
    #[arg(long, default_value_t = 20250101)]
    pub seed: u64,
}

impl DataArgs {
    fn dates(&self) -> Result<(NaiveDate, NaiveDate)> {
        let parse = |flag: &str, s: &str| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .with_context(|| format!("--{flag} {s:?} is not a date YYYY-MM-DD"))
        };
        Ok((
            parse("calibration-end", &self.calibration_end)?,
            parse("holdout-end", &self.holdout_end)?,
        ))
    }

    /// Days in the holdout period.
    pub fn horizon_days(&self) -> Result<f64> {
        let (c, h) = self.dates()?;
        Ok((h - c).num_days() as f64)
    }

    /// Reads the data.
    pub fn load(&self) -> Result<ChurnTable> {
        let (cal, hold) = self.dates()?;
        let table = data::load(&self.data, &self.columns, cal, hold)?;
        eprintln!(
            "{}: {} rows, {} in calibration (to {cal}), {} in holdout (to {hold}); {} customers, \
             {:.1}% churned",
            self.data.display(),
            table.rows,
            table.rows_calibration,
            table.rows_holdout,
            table.customers.len(),
            100.0 * table.churn_rate()
        );
        ensure!(
            table.customers.len() >= 20,
            "{}: only {} customers with a purchase by {cal}: too few to fit",
            self.data.display(),
            table.customers.len()
        );
        let churned = table.churned.iter().filter(|&&c| c).count();
        ensure!(
            churned > 0 && churned < table.customers.len(),
            "{}: every customer {} in the holdout period: both outcomes are needed",
            self.data.display(),
            if churned > 0 { "churned" } else { "bought" }
        );
        Ok(table)
    }
}

/// Tuning options shared by training and evaluation.
#[derive(Debug, Clone, clap::Args)]
pub struct TuneArgs {
    /// Most trees tried; the best number up to it is chosen on an inner validation split.
    #[arg(long, default_value_t = 600)]
    pub max_trees: usize,
    /// Tree depths tried, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "2,3,4")]
    pub depths: Vec<usize>,
    /// Learning rate.
    #[arg(long, default_value_t = 0.05)]
    pub learning_rate: f64,
}

impl TuneArgs {
    fn grid(&self) -> Result<Grid> {
        ensure!(self.max_trees >= 1, "--max-trees must be at least 1");
        ensure!(
            !self.depths.is_empty() && self.depths.iter().all(|&d| (1..=8).contains(&d)),
            "--depths {:?}: each depth must be 1 to 8",
            self.depths
        );
        ensure!(
            self.learning_rate > 0.0 && self.learning_rate <= 1.0,
            "--learning-rate {} must be in (0, 1]",
            self.learning_rate
        );
        let mut grid = Grid {
            depths: self.depths.clone(),
            max_trees: self.max_trees,
            ..Grid::default()
        };
        grid.base.learning_rate = self.learning_rate;
        Ok(grid)
    }
}

/// `trademl train churn`: fit the model and write its weights and manifest.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub tune: TuneArgs,
    /// Folds of the cross-validation whose figures go into the manifest (0 to skip).
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// Where to write the generated weights.
    #[arg(long, default_value = "guest-models/churn/src/weights.rs")]
    pub out_weights: PathBuf,
    /// Where to write the manifest.
    #[arg(long, default_value = "guest-models/churn/manifest.json")]
    pub out_manifest: PathBuf,
    /// Where the evaluation report is (linked from the manifest).
    #[arg(long, default_value = "docs/models")]
    pub report_dir: PathBuf,
}

/// `trademl eval churn`: cross-validation beside the baselines.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub tune: TuneArgs,
    /// Folds (stratified by outcome, over customers).
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// Where to write churn.md and churn.json.
    #[arg(long, default_value = "docs/models")]
    pub report_dir: PathBuf,
}

/// The final model.
#[derive(Debug, Clone)]
pub struct Trained {
    /// BG/NBD fitted on every customer.
    pub bgnbd: trademl_model_churn::model::BgNbd,
    /// The trees.
    pub ensemble: gbm::Ensemble,
    /// The chosen boosting parameters.
    pub params: gbm::Params,
    /// The horizon, days.
    pub horizon_days: f64,
}

/// Fits BG/NBD and the tuned trees on every customer of `table`.
pub fn fit_all(table: &ChurnTable, grid: &Grid, horizon_days: f64, seed: u64) -> Trained {
    let bgnbd = bgnbd::fit(&table.customers);
    let x = cv::feature_rows(&table.customers, &bgnbd);
    let (ensemble, params) = cv::tune_and_fit(&x, &table.churned, grid, seed);
    Trained {
        bgnbd,
        ensemble,
        params,
        horizon_days,
    }
}

fn run_cv(
    table: &ChurnTable,
    folds: usize,
    horizon: f64,
    grid: &Grid,
    seed: u64,
) -> Result<CvResult> {
    ensure!(
        (2..=20).contains(&folds),
        "--folds {folds}: choose 2 to 20 folds"
    );
    let bar = indicatif::ProgressBar::new(folds as u64).with_message("cross-validation");
    let result = cv::cross_validate(
        &table.customers,
        &table.churned,
        folds,
        horizon,
        grid,
        seed,
        |_| bar.inc(1),
    );
    bar.finish_and_clear();
    for m in &result.methods {
        eprintln!(
            "{:20} ROC AUC {:.4} (± {:.4})  PR AUC {:.4}",
            m.key, m.roc_auc_mean, m.roc_auc_std, m.pr_auc_mean
        );
    }
    Ok(result)
}

/// Trains on the CSV and writes `weights.rs` and `manifest.json`.
pub fn train(args: &TrainArgs) -> Result<()> {
    let grid = args.tune.grid()?;
    let horizon = args.data.horizon_days()?;
    let table = args.data.load()?;
    let cv = if args.folds > 0 {
        Some(run_cv(&table, args.folds, horizon, &grid, args.data.seed)?)
    } else {
        None
    };
    let trained = fit_all(&table, &grid, horizon, args.data.seed);
    eprintln!(
        "BG/NBD r = {:.4}, alpha = {:.4} weeks, a = {:.4}, b = {:.4}; trees: {} of depth {}",
        trained.bgnbd.r,
        trained.bgnbd.alpha,
        trained.bgnbd.a,
        trained.bgnbd.b,
        trained.params.n_trees,
        trained.params.max_depth
    );
    output::write_weights(args, &table, &trained, cv.as_ref())?;
    output::write_manifest(args, &table, &trained, cv.as_ref())?;
    eprintln!(
        "wrote {} and {}",
        args.out_weights.display(),
        args.out_manifest.display()
    );
    Ok(())
}

/// Runs the cross-validation protocol and writes the report.
pub fn evaluate(args: &EvalArgs) -> Result<()> {
    let grid = args.tune.grid()?;
    let horizon = args.data.horizon_days()?;
    let table = args.data.load()?;
    let result = run_cv(&table, args.folds, horizon, &grid, args.data.seed)?;
    output::write_report(args, &table, &grid, &result)
}
