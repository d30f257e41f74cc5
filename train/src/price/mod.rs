//! Price optimizer: own- and cross-price elasticities with promotion and store effects, and
//! per-store joint price recommendations within business bounds.
//!
//! - [`train`] reads a weekly scanner panel, fits the demand model ([`fit`]) on the weeks before
//!   the test weeks (its shrinkage chosen on an inner split of those weeks), scores it on the
//!   held-out weeks ([`eval`], [`simulate`]) and writes the guest crate's `src/weights.rs` and
//!   `manifest.json`.
//! - [`evaluate`] runs the same protocol beside the baselines and writes
//!   `docs/models/price-optimizer.{md,json,svg}`.

pub mod eval;
pub mod fit;
mod output;
pub mod simulate;

use std::path::PathBuf;

use anyhow::{Context, Result, bail, ensure};
use serde::Serialize;
use trademl_model_price_optimizer::model::{MAX_GROUPS, MAX_PRODUCTS, Search};

use self::eval::{Bounds, Outcome, Totals};
use self::fit::{Fitted, Spec};
use self::simulate::{GbmParams, Simulator};
use crate::scanner::{self, Panel, Row};

/// The input data and the split of its weeks.
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Weekly scanner panel CSV (`.csv` or `.csv.gz`), one row per store × product × week.
    #[arg(long, default_value = "data/dominicks_oj_weekly.csv.gz")]
    pub data: PathBuf,
    /// Which columns hold what.
    #[command(flatten)]
    pub columns: scanner::Columns,
    /// First test week: the model is fitted on the weeks before it and evaluated on it and
    /// later weeks (the split the promotion model uses).
    #[arg(long, default_value_t = 141)]
    pub test_from_week: u32,
    /// First week of the inner validation split (within the training weeks) on which the
    /// shrinkage is chosen.
    #[arg(long, default_value_t = 121)]
    pub inner_from_week: u32,
    /// Competitor groups: products (1-based) of each group, groups separated by `;` (every
    /// product in exactly one group). The default groups Dominick's orange juices: Tropicana
    /// (premium), other national brands, the store brand.
    #[arg(long, default_value = "1,2,4;3,5,6,7,8,9;10,11")]
    pub groups: String,
    /// Names of the groups, comma-separated, in the order of --groups.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "tropicana,national,store-brand"
    )]
    pub group_names: Vec<String>,
}

/// The demand model's options.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// Shrinkage values tried (ridge towards the coefficients pooled over products, per row),
    /// comma-separated; the one with the lowest squared error of ln units on the inner
    /// validation weeks is used.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0,0.0003,0.001,0.003,0.01,0.03,0.1"
    )]
    pub lambdas: Vec<f64>,
    /// Keep each recommended price within the range of prices the store charged for the product
    /// in the training weeks (where that range meets the other bounds).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub observed_range: bool,
}

/// The evaluation's bounds, weights and simulator.
#[derive(Debug, Clone, clap::Args)]
pub struct ProtocolArgs {
    /// Largest price change allowed in the evaluation, a fraction of the historical price.
    #[arg(long, default_value_t = 0.2)]
    pub max_change: f64,
    /// Smallest margin allowed in the evaluation, percent of the price.
    #[arg(long, default_value_t = 0.0)]
    pub min_margin_pct: f64,
    /// Volume weights of the trade-off curve, comma-separated, each 0..1.
    #[arg(long, value_delimiter = ',', default_value = "0,0.1,0.2,0.3,0.5,0.7,1")]
    pub weights: Vec<f64>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub gbm: GbmParams,
}

/// `trademl train price-optimizer`.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub model: ModelArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub protocol: ProtocolArgs,
    /// Run the held-out evaluation and quote its figures in the manifest.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub evaluate: bool,
    /// Where to write the generated weights.
    #[arg(long, default_value = "guest-models/price-optimizer/src/weights.rs")]
    pub out_weights: PathBuf,
    /// Where to write the manifest.
    #[arg(long, default_value = "guest-models/price-optimizer/manifest.json")]
    pub out_manifest: PathBuf,
    /// Where the evaluation report is (linked from the manifest).
    #[arg(long, default_value = "docs/models")]
    pub report_dir: PathBuf,
}

/// `trademl eval price-optimizer`.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub model: ModelArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub protocol: ProtocolArgs,
    /// Where to write price-optimizer.md, .json and .svg.
    #[arg(long, default_value = "docs/models")]
    pub report_dir: PathBuf,
}

/// The panel split into training and test weeks, and the groups.
pub struct Prepared {
    /// The panel.
    pub panel: Panel,
    /// Rows of the weeks before the test weeks.
    pub train: Vec<Row>,
    /// Rows of the test weeks.
    pub test: Vec<Row>,
    /// Each product's group.
    pub group_of: Vec<usize>,
    /// Group names.
    pub group_names: Vec<String>,
}

/// Parses `--groups` for `products` products.
pub fn parse_groups(text: &str, products: usize) -> Result<(Vec<usize>, usize)> {
    let mut group_of = vec![usize::MAX; products];
    let parts: Vec<&str> = text.split(';').collect();
    for (g, part) in parts.iter().enumerate() {
        for item in part.split(',') {
            let k: usize = item.trim().parse().with_context(|| {
                format!(
                    "--groups {text:?}: {item:?} in group {} is not a product number",
                    g + 1
                )
            })?;
            ensure!(
                (1..=products).contains(&k),
                "--groups {text:?}: product {k} is not one of the panel's products 1..={products}"
            );
            ensure!(
                group_of[k - 1] == usize::MAX,
                "--groups {text:?}: product {k} is in more than one group"
            );
            group_of[k - 1] = g;
        }
    }
    if let Some(k) = group_of.iter().position(|&g| g == usize::MAX) {
        bail!(
            "--groups {text:?}: product {} is in no group; every product 1..={products} needs one",
            k + 1
        );
    }
    ensure!(
        parts.len() <= MAX_GROUPS,
        "--groups {text:?}: {} groups; at most {MAX_GROUPS}",
        parts.len()
    );
    Ok((group_of, parts.len()))
}

impl DataArgs {
    /// Reads and splits the panel.
    pub fn prepare(&self) -> Result<Prepared> {
        ensure!(
            self.inner_from_week < self.test_from_week,
            "--inner-from-week {} must be before --test-from-week {}",
            self.inner_from_week,
            self.test_from_week
        );
        let panel = scanner::load(&self.data, &self.columns)?;
        ensure!(
            panel.products <= MAX_PRODUCTS,
            "{}: {} products; the optimizer prices at most {MAX_PRODUCTS} per store",
            self.data.display(),
            panel.products
        );
        let (group_of, groups) = parse_groups(&self.groups, panel.products)?;
        ensure!(
            self.group_names.len() == groups,
            "--group-names names {} groups but --groups has {groups}",
            self.group_names.len()
        );
        let (train, test): (Vec<Row>, Vec<Row>) = panel
            .rows
            .iter()
            .cloned()
            .partition(|r| r.week < self.test_from_week);
        let weeks = panel.weeks();
        eprintln!(
            "{}: {} rows, {} products, weeks {}..={}; {} training rows (weeks < {}), {} test rows",
            self.data.display(),
            panel.rows.len(),
            panel.products,
            weeks[0],
            weeks[weeks.len() - 1],
            train.len(),
            self.test_from_week,
            test.len()
        );
        ensure!(
            !train.is_empty(),
            "no rows before --test-from-week {}",
            self.test_from_week
        );
        Ok(Prepared {
            panel,
            train,
            test,
            group_of,
            group_names: self.group_names.clone(),
        })
    }
}

/// The shrinkage chosen on the inner split.
#[derive(Debug, Clone, Serialize)]
pub struct Tuning {
    /// Each shrinkage tried and its mean squared error of ln units on the inner validation weeks.
    pub tried: Vec<(f64, f64)>,
    /// The chosen one.
    pub lambda: f64,
}

/// Chooses the shrinkage: fit on weeks before `inner_from_week`, score weeks from it to the
/// test weeks.
pub fn tune(prep: &Prepared, data: &DataArgs, model: &ModelArgs) -> Result<Tuning> {
    ensure!(!model.lambdas.is_empty(), "--lambdas is empty");
    let (inner, valid): (Vec<Row>, Vec<Row>) = prep
        .train
        .iter()
        .cloned()
        .partition(|r| r.week < data.inner_from_week);
    ensure!(
        !inner.is_empty() && !valid.is_empty(),
        "the inner split at week {} leaves {} fitting and {} validation rows; both need some",
        data.inner_from_week,
        inner.len(),
        valid.len()
    );
    let groups = prep.group_names.len();
    let mut tried = Vec::new();
    for &lambda in &model.lambdas {
        ensure!(
            lambda >= 0.0 && lambda.is_finite(),
            "--lambdas: {lambda} is not >= 0"
        );
        let m = fit::fit(
            &inner,
            prep.panel.products,
            &prep.group_of,
            groups,
            Spec::Full,
            lambda,
            false,
        )?;
        let mse = fit::log_mse(&m, &valid);
        eprintln!("shrinkage {lambda}: inner validation MSE of ln units {mse:.4}");
        tried.push((lambda, mse));
    }
    let lambda = tried
        .iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|t| t.0)
        .expect("at least one");
    Ok(Tuning { tried, lambda })
}

/// Fits the optimizer's model on all training weeks.
pub fn fit_model(prep: &Prepared, lambda: f64, ranges: bool) -> Result<Fitted> {
    fit::fit(
        &prep.train,
        prep.panel.products,
        &prep.group_of,
        prep.group_names.len(),
        Spec::Full,
        lambda,
        ranges,
    )
}

/// Held-out fit of one demand model at the historical prices.
#[derive(Debug, Clone, Serialize)]
pub struct FitFigure {
    /// Which model.
    pub model: String,
    /// Root mean squared error of ln units on the test rows.
    pub rmse_log_units: f64,
}

/// Everything the evaluation measured.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// First test week.
    pub test_from_week: u32,
    /// Last week.
    pub last_week: u32,
    /// First inner validation week.
    pub inner_from_week: u32,
    /// Store-weeks priced.
    pub store_weeks: usize,
    /// Store-weeks skipped for lacking a product.
    pub skipped: usize,
    /// Bounds used.
    pub bounds: Bounds,
    /// Shrinkage tuning.
    pub tuning: Tuning,
    /// The optimizer's own-price elasticities per product.
    pub own_elasticities: Vec<f64>,
    /// The baseline's own-price elasticities per product.
    pub baseline_own_elasticities: Vec<f64>,
    /// Full coefficient table (product × [own, groups.., deal, feature]).
    pub coefficients: Vec<Vec<f64>>,
    /// Group names.
    pub group_names: Vec<String>,
    /// Held-out fit of each demand model.
    pub fit: Vec<FitFigure>,
    /// Historical totals with the actual units.
    pub actual: Totals,
    /// Each method at weight 0 (profit only).
    pub methods: Vec<Outcome>,
    /// The optimizer over the volume weights.
    pub tradeoff: Vec<Outcome>,
    /// Simulator options.
    pub gbm: GbmParams,
}

impl Evaluation {
    /// The shipped method's outcome.
    pub fn optimizer(&self) -> &Outcome {
        &self.methods[0]
    }
    /// The task's baseline.
    pub fn baseline(&self) -> &Outcome {
        self.methods
            .iter()
            .find(|m| m.key == "baseline")
            .expect("the baseline is always run")
    }
}

/// Runs the held-out protocol for the fitted model.
pub fn run_protocol(
    prep: &Prepared,
    data: &DataArgs,
    model: &ModelArgs,
    protocol: &ProtocolArgs,
    tuning: Tuning,
    fitted: &Fitted,
) -> Result<Evaluation> {
    ensure!(
        !prep.test.is_empty(),
        "no rows from --test-from-week {} on: nothing to evaluate",
        data.test_from_week
    );
    ensure!(
        (0.0..1.0).contains(&protocol.max_change),
        "--max-change {} must be in 0..1",
        protocol.max_change
    );
    ensure!(
        (0.0..100.0).contains(&protocol.min_margin_pct),
        "--min-margin-pct {} must be in 0..100",
        protocol.min_margin_pct
    );
    for &w in &protocol.weights {
        ensure!((0.0..=1.0).contains(&w), "--weights: {w} is not in 0..1");
    }
    let products = prep.panel.products;
    let groups = prep.group_names.len();
    let (weeks, skipped) = eval::weeks(&prep.test, products);
    ensure!(
        !weeks.is_empty(),
        "no test store-week has a row for every product"
    );
    let spinner = indicatif::ProgressBar::new_spinner()
        .with_message("fitting the gradient-boosted demand simulator on the training weeks");
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    let sim = Simulator::fit(&prep.panel, &prep.train, protocol.gbm)?;
    spinner.finish_and_clear();
    let unpooled = fit::fit(
        &prep.train,
        products,
        &prep.group_of,
        groups,
        Spec::Full,
        0.0,
        model.observed_range,
    )?;
    let baseline = fit::fit(
        &prep.train,
        products,
        &prep.group_of,
        groups,
        Spec::OwnPriceOnly,
        0.0,
        false,
    )?;
    let rmse = |f: &dyn Fn(&Row) -> f64| {
        (prep
            .test
            .iter()
            .map(|r| (f(r) - r.units.ln()).powi(2))
            .sum::<f64>()
            / prep.test.len() as f64)
            .sqrt()
    };
    let fit_figures = vec![
        FitFigure {
            model: "optimizer: log-log, cross-price groups, deal, feature, store effects, pooled"
                .into(),
            rmse_log_units: rmse(&|r| fitted.log_units(r)),
        },
        FitFigure {
            model: "the same without pooling (shrinkage 0)".into(),
            rmse_log_units: rmse(&|r| unpooled.log_units(r)),
        },
        FitFigure {
            model: "baseline: log-log on own price with store effects".into(),
            rmse_log_units: rmse(&|r| baseline.log_units(r)),
        },
        FitFigure {
            model: "simulator: gradient-boosted trees".into(),
            rmse_log_units: rmse(&|r| sim.log_units(r, &r.prices)),
        },
    ];
    for f in &fit_figures {
        eprintln!(
            "held-out RMSE of ln units {:.4}: {}",
            f.rmse_log_units, f.model
        );
    }

    let bounds = Bounds {
        max_change: protocol.max_change,
        min_margin_pct: protocol.min_margin_pct,
    };
    let shipped = Search {
        observed_range: model.observed_range,
        ..Search::default()
    };
    let pct = (protocol.max_change * 100.0).round();
    let settings: Vec<(&str, String, &Fitted, Search)> = vec![
        (
            "optimizer",
            format!(
                "optimizer: cross-price model, all products of a store priced jointly, within \
                 ±{pct}%{}",
                if model.observed_range {
                    " and the store's observed price range"
                } else {
                    ""
                }
            ),
            fitted,
            shipped,
        ),
        (
            "no-range",
            format!("the same without the observed-range bound (±{pct}% only)"),
            fitted,
            Search {
                observed_range: false,
                ..shipped
            },
        ),
        (
            "one-at-a-time",
            "the same model, each product priced with the others at historical prices".into(),
            fitted,
            Search {
                joint: false,
                ..shipped
            },
        ),
        (
            "unpooled",
            "the same optimizer on the model fitted without pooling (shrinkage 0)".into(),
            &unpooled,
            shipped,
        ),
        (
            "baseline",
            format!(
                "baseline: per-product log-log on own price with store effects, each product \
                 optimised within ±{pct}%"
            ),
            &baseline,
            Search {
                joint: false,
                observed_range: false,
                ..Search::default()
            },
        ),
    ];
    let runs = (settings.len() + protocol.weights.len()) as u64 * weeks.len() as u64;
    let bar = indicatif::ProgressBar::new(runs).with_message("optimising held-out store-weeks");
    let mut methods = Vec::new();
    for (key, method, model, search) in &settings {
        let o = eval::run(
            key,
            method,
            &model.demand(),
            search,
            bounds,
            0.0,
            &weeks,
            &sim,
            &bar,
        );
        bar.suspend(|| {
            eprintln!(
                "{key:14} profit {:+.1}% own model, {:+.1}% simulator; units {:+.1}% / {:+.1}%",
                100.0 * o.own_model.profit_change,
                100.0 * o.simulator.profit_change,
                100.0 * o.own_model.units_change,
                100.0 * o.simulator.units_change
            )
        });
        methods.push(o);
    }
    let mut tradeoff = Vec::new();
    for &w in &protocol.weights {
        tradeoff.push(eval::run(
            "optimizer",
            "optimizer",
            &fitted.demand(),
            &shipped,
            bounds,
            w,
            &weeks,
            &sim,
            &bar,
        ));
    }
    bar.finish_and_clear();
    let w = groups + 3;
    Ok(Evaluation {
        test_from_week: data.test_from_week,
        last_week: *prep.panel.weeks().last().expect("rows"),
        inner_from_week: data.inner_from_week,
        store_weeks: weeks.len(),
        skipped,
        bounds,
        tuning,
        own_elasticities: (0..products).map(|b| fitted.coefficients[b * w]).collect(),
        baseline_own_elasticities: (0..products)
            .map(|b| baseline.coefficients[b * w])
            .collect(),
        coefficients: fitted.coefficients.chunks(w).map(<[f64]>::to_vec).collect(),
        group_names: prep.group_names.clone(),
        fit: fit_figures,
        actual: eval::actual(&weeks),
        methods,
        tradeoff,
        gbm: protocol.gbm,
    })
}

/// Fits the model and writes `weights.rs` and `manifest.json` (with the held-out figures unless
/// `--evaluate false`).
pub fn train(args: &TrainArgs) -> Result<()> {
    let prep = args.data.prepare()?;
    let tuning = tune(&prep, &args.data, &args.model)?;
    let fitted = fit_model(&prep, tuning.lambda, args.model.observed_range)?;
    eprintln!(
        "fitted on {} rows, shrinkage {}; own elasticities {:?}",
        fitted.rows,
        fitted.lambda,
        (0..fitted.products)
            .map(|b| (fitted.demand().own_elasticity(b) * 100.0).round() / 100.0)
            .collect::<Vec<_>>()
    );
    let evaluation = if args.evaluate {
        Some(run_protocol(
            &prep,
            &args.data,
            &args.model,
            &args.protocol,
            tuning.clone(),
            &fitted,
        )?)
    } else {
        None
    };
    output::write_weights(args, &prep, &fitted, evaluation.as_ref())?;
    output::write_manifest(args, &prep, &fitted, &tuning, evaluation.as_ref())?;
    eprintln!(
        "wrote {} and {}",
        args.out_weights.display(),
        args.out_manifest.display()
    );
    Ok(())
}

/// Runs the held-out protocol and writes the report.
pub fn evaluate(args: &EvalArgs) -> Result<()> {
    let prep = args.data.prepare()?;
    let tuning = tune(&prep, &args.data, &args.model)?;
    let fitted = fit_model(&prep, tuning.lambda, args.model.observed_range)?;
    let evaluation = run_protocol(
        &prep,
        &args.data,
        &args.model,
        &args.protocol,
        tuning,
        &fitted,
    )?;
    output::write_report(args, &prep, &evaluation)
}
