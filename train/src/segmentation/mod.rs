//! Customer segmentation: k-means (linfa) on recency, frequency, monetary value and tenure.
//!
//! - [`train`] reads a transactions CSV, describes each customer at the cutoff date, fits the
//!   scaling and k-means on all of them, names the segments, and writes the guest crate's
//!   `src/weights.rs` and `manifest.json`.
//! - [`evaluate`] runs the stability protocol of [`stability`] for k = 5..8 beside baselines and
//!   writes `docs/models/customer-segmentation.md` and `.json`.

pub mod data;
pub mod fit;
pub mod naming;
pub mod nn;
mod output;
pub mod stability;

use std::path::PathBuf;

use anyhow::{Context, Result, bail, ensure};
use chrono::NaiveDate;

use self::data::{Columns, CustomerTable};
use self::fit::{Fitted, KMeansConfig, fit_kmeans};
use self::naming::Profile;
use self::stability::{Method, Protocol};

/// The number of segments `train` fits when `--k` is not given: the largest k in 5..=8 whose
/// stability stays >= 0.90 in every bootstrap of the protocol (chosen by `trademl eval
/// segmentation` on CDNOW at 1997-09-30; see docs/models/customer-segmentation.md).
pub const DEFAULT_K: usize = 7;

/// The input data: where it is and which columns hold what.
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Transactions CSV, one purchase per row (`.csv` or gzip-compressed `.csv.gz`).
    #[arg(long, default_value = "data/cdnow_transactions.csv.gz")]
    pub data: PathBuf,
    /// Which columns hold what.
    #[command(flatten)]
    pub columns: Columns,
    /// Analysis date (YYYY-MM-DD): purchases after it are ignored; recency and tenure count to it.
    #[arg(long, default_value = "1997-09-30")]
    pub cutoff: String,
    /// Seed of every random choice (k-means++ initialisation, split, bootstrap samples).
    #[arg(long, default_value_t = 20250101)]
    pub seed: u64,
}

impl DataArgs {
    fn cutoff(&self) -> Result<NaiveDate> {
        NaiveDate::parse_from_str(&self.cutoff, "%Y-%m-%d")
            .with_context(|| format!("--cutoff {:?} is not a date YYYY-MM-DD", self.cutoff))
    }

    fn load(&self) -> Result<CustomerTable> {
        let table = data::load(&self.data, &self.columns, self.cutoff()?)?;
        eprintln!(
            "{}: {} rows, {} on or before {}, {} customers",
            self.data.display(),
            table.rows,
            table.rows_used,
            self.cutoff,
            table.customers.len()
        );
        Ok(table)
    }
}

/// `trademl train customer-segmentation`: fit the model and write its weights and manifest.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
    /// Number of segments, 5 to 8 [default: the k chosen by the evaluation, see DEFAULT_K].
    #[arg(long)]
    pub k: Option<usize>,
    /// Bootstrap refits for the stability figure written to the manifest (0 to skip).
    #[arg(long, default_value_t = 30)]
    pub bootstraps: usize,
    /// Where to write the generated weights.
    #[arg(
        long,
        default_value = "guest-models/customer-segmentation/src/weights.rs"
    )]
    pub out_weights: PathBuf,
    /// Where to write the manifest.
    #[arg(
        long,
        default_value = "guest-models/customer-segmentation/manifest.json"
    )]
    pub out_manifest: PathBuf,
    /// Where the evaluation report is (linked from the manifest).
    #[arg(long, default_value = "docs/models")]
    pub report_dir: PathBuf,
}

/// `trademl eval customer-segmentation`: the stability protocol for k = 5..8 beside baselines.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
    /// Bootstrap refits per method and k.
    #[arg(long, default_value_t = 30)]
    pub bootstraps: usize,
    /// Share of customers held out of every fit.
    #[arg(long, default_value_t = 0.2)]
    pub holdout_share: f64,
    /// Smallest k evaluated.
    #[arg(long, default_value_t = 5)]
    pub k_min: usize,
    /// Largest k evaluated.
    #[arg(long, default_value_t = 8)]
    pub k_max: usize,
    /// Where to write customer-segmentation.md and customer-segmentation.json.
    #[arg(long, default_value = "docs/models")]
    pub report_dir: PathBuf,
}

/// The final model, ordered and named.
#[derive(Debug, Clone)]
pub struct Trained {
    /// Scaling and centroids, segments in value order.
    pub fitted: Fitted,
    /// Segment names.
    pub names: Vec<String>,
    /// Segment profiles on the training customers.
    pub profiles: Vec<Profile>,
    /// Each training customer's segment.
    pub labels: Vec<usize>,
}

/// Fits k-means on `customers`, orders the segments by value and names them.
pub fn fit_named(customers: &[fit::Customer], k: usize, seed: u64) -> Result<Trained> {
    ensure!(
        (2..=8).contains(&k),
        "k = {k}: choose 2 to 8 segments (5 to 8 for the product)"
    );
    let raw = fit_kmeans(customers, k, seed, KMeansConfig::STANDARD)?;
    let order = naming::value_order(&raw.centroids);
    let fitted = Fitted {
        scaling: raw.scaling,
        centroids: order.iter().map(|&i| raw.centroids[i]).collect(),
    };
    let labels = fitted.labels(customers);
    let profiles: Vec<Profile> = (0..k).map(|s| Profile::of(customers, &labels, s)).collect();
    let names = naming::names(&profiles, &fitted.centroids);
    Ok(Trained {
        fitted,
        names,
        profiles,
        labels,
    })
}

/// Trains on the CSV and writes `weights.rs` and `manifest.json`.
pub fn train(args: &TrainArgs) -> Result<()> {
    let k = args.k.unwrap_or(DEFAULT_K);
    if !(5..=8).contains(&k) {
        bail!("--k {k}: the product offers 5 to 8 segments");
    }
    let table = args.data.load()?;
    let trained = fit_named(&table.customers, k, args.data.seed)?;
    for (i, (name, profile)) in trained.names.iter().zip(&trained.profiles).enumerate() {
        eprintln!("segment {i} {name}: {}", profile.line());
    }
    let stability = if args.bootstraps > 0 {
        let protocol = Protocol {
            holdout_share: 0.2,
            bootstraps: args.bootstraps,
            seed: args.data.seed,
        };
        let split = stability::split(&table.customers, protocol.holdout_share, protocol.seed);
        let bar =
            stability::progress_bar(protocol.bootstraps as u64, &format!("stability, k = {k}"));
        let s = stability::stability(
            &split,
            Method::KMeans(KMeansConfig::STANDARD),
            k,
            &protocol,
            &bar,
        )?;
        bar.finish_and_clear();
        eprintln!("stability at k = {k}: mean {:.4}, min {:.4}", s.mean, s.min);
        Some((protocol, s))
    } else {
        None
    };
    output::write_weights(args, &table, &trained)?;
    output::write_manifest(args, &table, &trained, stability.as_ref())?;
    eprintln!(
        "wrote {} and {}",
        args.out_weights.display(),
        args.out_manifest.display()
    );
    Ok(())
}

/// Runs the stability protocol for every k and method and writes the report.
pub fn evaluate(args: &EvalArgs) -> Result<()> {
    ensure!(
        args.k_min >= 2 && args.k_min <= args.k_max && args.k_max <= 8,
        "--k-min {} --k-max {}: need 2 <= k-min <= k-max <= 8",
        args.k_min,
        args.k_max
    );
    ensure!(
        args.holdout_share > 0.0 && args.holdout_share < 1.0,
        "--holdout-share {} must be between 0 and 1",
        args.holdout_share
    );
    let table = args.data.load()?;
    let protocol = Protocol {
        holdout_share: args.holdout_share,
        bootstraps: args.bootstraps,
        seed: args.data.seed,
    };
    let split = stability::split(&table.customers, protocol.holdout_share, protocol.seed);
    let methods = [
        Method::KMeans(KMeansConfig::STANDARD),
        Method::KMeans(KMeansConfig {
            n_runs: 1,
            plus_plus: false,
        }),
        Method::QuantileScore,
    ];
    let ks: Vec<usize> = (args.k_min..=args.k_max).collect();
    let bar = stability::progress_bar(
        (ks.len() * methods.len() * protocol.bootstraps) as u64,
        "stability protocol",
    );
    let mut results = Vec::new();
    for &k in &ks {
        let mut row = Vec::new();
        for &method in &methods {
            bar.set_message(format!("{}, k = {k}", method.label()));
            let s = stability::stability(&split, method, k, &protocol, &bar)?;
            row.push(s);
        }
        let fitted = fit_kmeans(&split.fit, k, protocol.seed, KMeansConfig::STANDARD)?;
        let inertia = fitted.inertia(&split.fit);
        let labelled = |set: &[fit::Customer]| -> Vec<([f64; 4], usize)> {
            let z = fitted.scaling.transform(set);
            z.rows()
                .into_iter()
                .zip(fitted.labels(set))
                .map(|(r, l)| ([r[0], r[1], r[2], r[3]], l))
                .collect()
        };
        bar.set_message(format!("MLP assignment, k = {k}"));
        let mlp = nn::measure(
            k,
            &labelled(&split.fit),
            &labelled(&split.held_out),
            protocol.seed,
        );
        let trained = fit_named(&table.customers, k, protocol.seed)?;
        results.push(output::KResult {
            k,
            inertia_fit_set: inertia,
            mlp,
            stability: row,
            segments: trained
                .names
                .iter()
                .zip(&trained.profiles)
                .map(|(n, p)| output::SegmentRow {
                    name: n.to_string(),
                    profile: *p,
                })
                .collect(),
        });
    }
    bar.finish_and_clear();
    for r in &results {
        for s in &r.stability {
            eprintln!(
                "k = {}: {:45} mean {:.4} min {:.4}",
                r.k, s.method, s.mean, s.min
            );
        }
    }
    let chosen = choose_k(&results);
    eprintln!("chosen k = {chosen}");
    output::write_report(args, &table, &split, &protocol, &results, chosen)
}

/// The rule for the default k: the largest k whose k-means stability is >= 0.90 in every
/// bootstrap; if none, the k with the best mean stability.
pub fn choose_k(results: &[output::KResult]) -> usize {
    results
        .iter()
        .filter(|r| r.stability[0].min >= 0.90)
        .map(|r| r.k)
        .max()
        .unwrap_or_else(|| {
            results
                .iter()
                .max_by(|a, b| a.stability[0].mean.total_cmp(&b.stability[0].mean))
                .map_or(DEFAULT_K, |r| r.k)
        })
}
