//! Sentiment: VADER's lexicon and rules, a linear SVM on hashed n-grams, and their blend.
//!
//! - [`train`] reads labelled texts (one or more CSV files, column names configurable) and the
//!   VADER lexicon files, tunes the chosen method by inner cross-validation, fits it on all the
//!   texts, and writes the guest crate's `src/lexicon_data.rs`, `src/weights.rs`,
//!   `src/weights.bin` and `manifest.json`.
//! - [`evaluate`] runs 10-fold stratified cross-validation on all files together and
//!   train-on-one-file, test-on-another, with every choice nested inside the training part, beside
//!   the lexicon-only and majority baselines, and writes `docs/models/sentiment.md` and `.json`.

pub mod data;
pub mod fit;
mod output;

use std::path::PathBuf;

use anyhow::{Result, bail, ensure};
use serde::Serialize;
use trademl_model_sentiment::lexicon::Lexicon;
use trademl_model_sentiment::model::{Method, Scorer, Weights};

use self::data::{Columns, Domain, Example, LexiconFiles};
use self::fit::{Grid, Scores, Tuned, fit_svm, scores, stratified_folds, tune};

/// The method `train` fits when `--method` is not given: the one with the better 10-fold
/// cross-validated accuracy in `trademl eval sentiment` (see docs/models/sentiment.md).
pub const DEFAULT_METHOD: &str = "blend";

/// The input data: where it is and which columns hold what.
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Labelled-text CSV files (`.csv` or `.csv.gz`), comma-separated; each file is one domain.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "data/sentences_amazon.csv.gz,data/sentences_yelp.csv.gz"
    )]
    pub data: Vec<PathBuf>,
    /// Column holding the text.
    #[arg(long, default_value = "text")]
    pub text_column: String,
    /// Column holding the label: 1/0, positive/negative, pos/neg or true/false.
    #[arg(long, default_value = "label")]
    pub label_column: String,
    /// VADER's word lexicon (vaderSentiment 3.3.2 `vader_lexicon.txt`, optionally gzipped).
    #[arg(long, default_value = "data/vader_lexicon.txt.gz")]
    pub lexicon: PathBuf,
    /// VADER's emoji lexicon (vaderSentiment 3.3.2 `emoji_utf8_lexicon.txt`, optionally gzipped).
    #[arg(long, default_value = "data/vader_emoji_utf8_lexicon.txt.gz")]
    pub emoji_lexicon: PathBuf,
    /// Seed of every random choice (folds, SVM visiting order).
    #[arg(long, default_value_t = 20250101)]
    pub seed: u64,
    /// Values of the SVM's C searched by inner cross-validation, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.2,0.5,1,2,5,10")]
    pub c_grid: Vec<f64>,
    /// Values of the blend weight (scale of the VADER feature) searched, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0.125,0.25,0.5,1,2")]
    pub blend_grid: Vec<f64>,
    /// Folds of the inner cross-validation that tunes C and the blend weight and calibrates.
    #[arg(long, default_value_t = 5)]
    pub inner_folds: usize,
}

impl DataArgs {
    fn columns(&self) -> Columns {
        Columns {
            text: self.text_column.clone(),
            label: self.label_column.clone(),
        }
    }

    fn grid(&self) -> Result<Grid> {
        ensure!(!self.c_grid.is_empty(), "--c-grid is empty");
        ensure!(
            self.c_grid.iter().all(|&c| c > 0.0 && c.is_finite()),
            "--c-grid: every C must be > 0"
        );
        ensure!(!self.blend_grid.is_empty(), "--blend-grid is empty");
        ensure!(self.inner_folds >= 2, "--inner-folds must be >= 2");
        Ok(Grid {
            c: self.c_grid.clone(),
            blend_weight: self.blend_grid.clone(),
            inner_folds: self.inner_folds,
        })
    }

    fn load(&self) -> Result<Loaded> {
        ensure!(!self.data.is_empty(), "--data names no file");
        let columns = self.columns();
        let domains = self
            .data
            .iter()
            .map(|p| data::load(p, &columns))
            .collect::<Result<Vec<Domain>>>()?;
        for d in &domains {
            let pos = d.labels.iter().filter(|&&y| y).count();
            eprintln!(
                "{}: {} texts, {pos} positive",
                d.path.display(),
                d.texts.len()
            );
        }
        let lexicon = LexiconFiles::load(&self.lexicon, &self.emoji_lexicon)?;
        eprintln!(
            "lexicon: {} entries ({} words and emoticons, {} emoji)",
            lexicon.entries.len(),
            lexicon.words,
            lexicon.emoji
        );
        let refs = lexicon.refs();
        let examples = data::examples(&domains, &Lexicon::new(&refs));
        Ok(Loaded {
            domains,
            lexicon,
            examples,
        })
    }
}

/// What [`DataArgs::load`] reads.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The files.
    pub domains: Vec<Domain>,
    /// The lexicon.
    pub lexicon: LexiconFiles,
    /// Every text, analysed, in file order.
    pub examples: Vec<Example>,
}

/// `trademl train sentiment`: fit the model and write its lexicon, weights and manifest.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
    /// lexicon, trained or blend [default: DEFAULT_METHOD, chosen by the evaluation].
    #[arg(long)]
    pub method: Option<String>,
    /// The guest crate's directory: writes src/lexicon_data.rs, src/weights.rs, src/weights.bin
    /// and manifest.json in it.
    #[arg(long, default_value = "guest-models/sentiment")]
    pub out_dir: PathBuf,
    /// Where the evaluation report is (linked from the manifest).
    #[arg(long, default_value = "docs/models")]
    pub report_dir: PathBuf,
}

/// `trademl eval sentiment`: cross-validation and cross-domain figures beside baselines.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
    /// Folds of the outer cross-validation on all files together.
    #[arg(long, default_value_t = 10)]
    pub folds: usize,
    /// Where to write sentiment.md and sentiment.json.
    #[arg(long, default_value = "docs/models")]
    pub report_dir: PathBuf,
}

/// A fitted model, ready to score.
#[derive(Debug, Clone)]
pub struct Fitted {
    /// The method.
    pub method: Method,
    /// Tuning and calibration (`None` for the lexicon).
    pub tuned: Option<Tuned>,
    /// The weights (empty for the lexicon).
    pub weights: Vec<f32>,
}

impl Fitted {
    /// The scorer over these weights and a lexicon.
    pub fn scorer<'a>(&'a self, lexicon: Lexicon<'a>) -> Scorer<'a> {
        let (blend_weight, platt) = self
            .tuned
            .map_or((0.0, [1.0, 0.0]), |t| (t.config.blend_weight, t.platt));
        Scorer {
            method: self.method,
            lexicon,
            weights: Weights::Floats(&self.weights),
            blend_weight,
            platt,
        }
    }

    /// The labels it gives (true = positive; a neutral answer counts as positive).
    pub fn labels(&self, data: &[Example], rows: &[usize], lexicon: Lexicon<'_>) -> Vec<bool> {
        let s = self.scorer(lexicon);
        rows.iter()
            .map(|&r| match self.method {
                // The plain VADER baseline: compound > 0 is positive, nothing fitted.
                Method::Lexicon => data[r].analysis.compound > 0.0,
                _ => s.decide(&data[r].analysis).score >= 0.0,
            })
            .collect()
    }
}

/// Tunes `method` on `rows` and fits it on all of them.
pub fn fit_method(
    data: &[Example],
    rows: &[usize],
    method: Method,
    grid: &Grid,
    seed: u64,
) -> Fitted {
    if method == Method::Lexicon {
        return Fitted {
            method,
            tuned: None,
            weights: Vec::new(),
        };
    }
    let tuned = tune(data, rows, method, grid, seed);
    let weights = fit_svm(data, rows, &tuned.config, seed);
    Fitted {
        method,
        tuned: Some(tuned),
        weights,
    }
}

/// One method's figures under one protocol.
#[derive(Debug, Clone, Serialize)]
pub struct MethodResult {
    /// `majority`, `lexicon`, `trained`, `blend` or `lexicon, ties positive`.
    pub method: String,
    /// Pooled over the held-out parts.
    pub scores: Scores,
    /// Accuracy of each outer fold (cross-validation only).
    pub fold_accuracy: Vec<f64>,
    /// The configuration tuned in each training part.
    pub tuned: Vec<Tuned>,
}

/// Every method's figures under one protocol.
#[derive(Debug, Clone, Serialize)]
pub struct ProtocolResult {
    /// What was trained on and tested on.
    pub name: String,
    /// The figures.
    pub methods: Vec<MethodResult>,
}

const METHODS: [&str; 5] = [
    "majority",
    "lexicon",
    "trained",
    "blend",
    "lexicon, ties positive",
];

/// Runs every method with training parts `train` and held-out parts `test` (pairs of row lists).
pub fn run_protocol(
    name: &str,
    loaded: &Loaded,
    splits: &[(Vec<usize>, Vec<usize>)],
    grid: &Grid,
    seed: u64,
) -> ProtocolResult {
    let data = &loaded.examples;
    let refs = loaded.lexicon.refs();
    let lexicon = Lexicon::new(&refs);
    let mut results: Vec<MethodResult> = METHODS
        .iter()
        .map(|m| MethodResult {
            method: m.to_string(),
            scores: scores(&[], &[]),
            fold_accuracy: Vec::new(),
            tuned: Vec::new(),
        })
        .collect();
    let mut pooled: Vec<(Vec<bool>, Vec<bool>)> = vec![(Vec::new(), Vec::new()); METHODS.len()];
    for (f, (train, test)) in splits.iter().enumerate() {
        let truth: Vec<bool> = test.iter().map(|&r| data[r].label).collect();
        for (mi, m) in METHODS.iter().enumerate() {
            let pred = if *m == "majority" {
                let pos = train.iter().filter(|&&r| data[r].label).count();
                vec![2 * pos >= train.len(); test.len()]
            } else if *m == "lexicon, ties positive" {
                test.iter()
                    .map(|&r| data[r].analysis.compound >= 0.0)
                    .collect()
            } else {
                let method = Method::from_name(m).expect("a method name");
                let fitted = fit_method(data, train, method, grid, seed.wrapping_add(f as u64));
                if let Some(t) = fitted.tuned {
                    results[mi].tuned.push(t);
                }
                fitted.labels(data, test, lexicon)
            };
            results[mi]
                .fold_accuracy
                .push(scores(&pred, &truth).accuracy);
            pooled[mi].0.extend(pred);
            pooled[mi].1.extend(truth.iter().copied());
        }
        eprintln!(
            "{name}: part {}/{} done (blend accuracy {:.3})",
            f + 1,
            splits.len(),
            results[3].fold_accuracy.last().copied().unwrap_or(0.0)
        );
    }
    for (r, (p, t)) in results.iter_mut().zip(&pooled) {
        r.scores = scores(p, t);
    }
    ProtocolResult {
        name: name.to_string(),
        methods: results,
    }
}

/// Trains on the data and writes the lexicon, weights and manifest.
pub fn train(args: &TrainArgs) -> Result<()> {
    let name = args.method.as_deref().unwrap_or(DEFAULT_METHOD);
    let Some(method) = Method::from_name(name) else {
        bail!("--method {name:?}: choose lexicon, trained or blend");
    };
    let grid = args.data.grid()?;
    let loaded = args.data.load()?;
    let rows: Vec<usize> = (0..loaded.examples.len()).collect();
    let fitted = fit_method(&loaded.examples, &rows, method, &grid, args.data.seed);
    if let Some(t) = &fitted.tuned {
        eprintln!(
            "{}: C = {}, blend weight = {}, inner CV accuracy {:.4}, Platt a = {:.4}, b = {:.4}",
            method.name(),
            t.config.c,
            t.config.blend_weight,
            t.inner_accuracy,
            t.platt[0],
            t.platt[1]
        );
    }
    output::write_model(args, &loaded, &fitted, &grid)?;
    eprintln!("wrote {}", args.out_dir.display());
    Ok(())
}

/// Runs the protocols and writes the report.
pub fn evaluate(args: &EvalArgs) -> Result<()> {
    ensure!(args.folds >= 2, "--folds must be >= 2");
    let grid = args.data.grid()?;
    let loaded = args.data.load()?;
    let data = &loaded.examples;
    let all: Vec<usize> = (0..data.len()).collect();
    let folds = stratified_folds(data, &all, args.folds, args.data.seed);
    let cv_splits: Vec<(Vec<usize>, Vec<usize>)> = (0..args.folds)
        .map(|f| {
            let train = folds
                .iter()
                .enumerate()
                .filter(|&(g, _)| g != f)
                .flat_map(|(_, v)| v.iter().copied())
                .collect();
            (train, folds[f].clone())
        })
        .collect();
    let mut protocols = vec![run_protocol(
        &format!("{}-fold cross-validation, all files together", args.folds),
        &loaded,
        &cv_splits,
        &grid,
        args.data.seed,
    )];
    for (a, da) in loaded.domains.iter().enumerate() {
        for (b, db) in loaded.domains.iter().enumerate() {
            if a == b {
                continue;
            }
            let rows = |d: usize| -> Vec<usize> {
                (0..data.len()).filter(|&r| data[r].domain == d).collect()
            };
            protocols.push(run_protocol(
                &format!("trained on {}, tested on {}", da.name, db.name),
                &loaded,
                &[(rows(a), rows(b))],
                &grid,
                args.data.seed,
            ));
        }
    }
    for p in &protocols {
        for m in &p.methods {
            eprintln!(
                "{:60} {:8} accuracy {:.4} macro F1 {:.4}",
                p.name, m.method, m.scores.accuracy, m.scores.macro_f1
            );
        }
    }
    output::write_report(args, &loaded, &grid, &protocols)
}
