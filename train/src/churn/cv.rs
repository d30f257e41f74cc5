//! The evaluation protocol: stratified k-fold cross-validation over customers, every fit (BG/NBD,
//! logistic regressions, boosted trees and their tuning) done inside the training folds only.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Serialize;
use trademl_model_churn::model::{self, BgNbd, Customer};

use super::bgnbd;
use super::gbm::{self, Ensemble, Params, Row};
use super::logistic::Logistic;
use super::metrics::{average_precision, roc_auc};

/// Assigns each row a fold `0..k`, stratified by label: each class is shuffled and dealt round
/// robin.
pub fn stratified_folds(labels: &[bool], k: usize, seed: u64) -> Vec<usize> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut fold = vec![0; labels.len()];
    let mut next = 0;
    for class in [true, false] {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        idx.shuffle(&mut rng);
        for i in idx {
            fold[i] = next % k;
            next += 1;
        }
    }
    fold
}

/// The hyper-parameter grid tuned on an inner split of the training part.
#[derive(Debug, Clone, Serialize)]
pub struct Grid {
    /// Depths tried.
    pub depths: Vec<usize>,
    /// Most trees; the best number up to it is picked on the inner validation part.
    pub max_trees: usize,
    /// Share of the training part held out for the choice.
    pub inner_share: f64,
    /// Everything else.
    pub base: Params,
}

impl Default for Grid {
    fn default() -> Self {
        Grid {
            depths: vec![2, 3, 4],
            max_trees: 600,
            inner_share: 0.2,
            base: Params::default(),
        }
    }
}

/// The features of every customer under `bg`.
pub fn feature_rows(customers: &[Customer], bg: &BgNbd) -> Vec<Row> {
    customers.iter().map(|c| model::features(c, bg)).collect()
}

/// Picks depth and number of trees on an inner stratified split, then refits on all of `x`.
/// Returns the ensemble and the chosen parameters.
pub fn tune_and_fit(x: &[Row], y: &[bool], grid: &Grid, seed: u64) -> (Ensemble, Params) {
    let k = (1.0 / grid.inner_share).round().max(2.0) as usize;
    let inner = stratified_folds(y, k, seed ^ 0x5eed);
    let pick = |want_val: bool| -> (Vec<Row>, Vec<bool>) {
        (0..x.len())
            .filter(|&i| (inner[i] == 0) == want_val)
            .map(|i| (x[i], y[i]))
            .unzip()
    };
    let (tx, ty) = pick(false);
    let (vx, vy) = pick(true);
    let mut best = (f64::INFINITY, grid.base);
    for &depth in &grid.depths {
        let params = Params {
            n_trees: grid.max_trees,
            max_depth: depth,
            ..grid.base
        };
        let (_, curve) = gbm::fit(&tx, &ty, params, Some((&vx, &vy)));
        for (n, &loss) in curve.iter().enumerate() {
            if loss < best.0 {
                best = (
                    loss,
                    Params {
                        n_trees: n + 1,
                        ..params
                    },
                );
            }
        }
    }
    let (ensemble, _) = gbm::fit(x, y, best.1, None);
    (ensemble, best.1)
}

/// The RFM + tenure inputs, raw, for the baseline logistic regression.
pub fn rfm(c: &Customer) -> Vec<f64> {
    vec![c.recency_days, c.frequency, c.monetary_value, c.tenure_days]
}

/// The boosted trees' features, `ln(1 + x)` (shares and probabilities as they are), for the
/// logistic regression on all features.
pub fn log_features(r: &Row) -> Vec<f64> {
    r.iter()
        .enumerate()
        .map(|(j, &v)| if j == 5 || j == 7 { v } else { v.ln_1p() })
        .collect()
}

/// One scoring method's figures across the folds.
#[derive(Debug, Clone, Serialize)]
pub struct MethodResult {
    /// Short key.
    pub key: &'static str,
    /// What it is.
    pub method: &'static str,
    /// ROC AUC per fold.
    pub roc_auc: Vec<f64>,
    /// Average precision per fold.
    pub pr_auc: Vec<f64>,
    /// Mean ROC AUC.
    pub roc_auc_mean: f64,
    /// Mean average precision.
    pub pr_auc_mean: f64,
    /// Standard deviation of ROC AUC across folds.
    pub roc_auc_std: f64,
}

/// The cross-validation result.
#[derive(Debug, Clone, Serialize)]
pub struct CvResult {
    /// Number of folds.
    pub folds: usize,
    /// Seed of the fold assignment.
    pub seed: u64,
    /// Churn rate per test fold.
    pub churn_rate: Vec<f64>,
    /// BG/NBD parameters per fold.
    pub bgnbd: Vec<[f64; 4]>,
    /// Chosen boosting parameters per fold.
    pub chosen: Vec<Params>,
    /// The methods, baselines first, the shipped model last.
    pub methods: Vec<MethodResult>,
}

/// The methods compared: (key, description).
pub const METHODS: [(&str, &str); 6] = [
    (
        "recency",
        "Recency rule: score = days since the last purchase",
    ),
    (
        "bgnbd_no_purchase",
        "BG/NBD (MLE on the training folds): P(no purchase in the 39-week holdout)",
    ),
    (
        "bgnbd_not_alive",
        "BG/NBD (MLE on the training folds): 1 - P(alive at the calibration end)",
    ),
    (
        "logistic_rfm",
        "Logistic regression on recency, frequency, monetary value, tenure (standardised, L2 = 1)",
    ),
    (
        "logistic_all",
        "Logistic regression on the model's 8 features, ln(1 + x) (standardised, L2 = 1)",
    ),
    (
        "gbm",
        "This model: gradient-boosted trees on the 8 features (depth and trees tuned on an inner 80/20 split)",
    ),
];

fn mean_std(v: &[f64]) -> (f64, f64) {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let s = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
    (m, s)
}

/// Runs the protocol; `on_fold` is told after each fold.
pub fn cross_validate(
    customers: &[Customer],
    churned: &[bool],
    folds: usize,
    horizon_days: f64,
    grid: &Grid,
    seed: u64,
    mut on_fold: impl FnMut(usize),
) -> CvResult {
    let fold = stratified_folds(churned, folds, seed);
    let mut scores: Vec<Vec<Vec<f64>>> = vec![Vec::new(); METHODS.len()];
    let mut labels = Vec::new();
    let mut bgnbd_params = Vec::new();
    let mut chosen = Vec::new();
    for f in 0..folds {
        let (train, test): (Vec<usize>, Vec<usize>) =
            (0..customers.len()).partition(|&i| fold[i] != f);
        let tc: Vec<Customer> = train.iter().map(|&i| customers[i]).collect();
        let ty: Vec<bool> = train.iter().map(|&i| churned[i]).collect();
        let sc: Vec<Customer> = test.iter().map(|&i| customers[i]).collect();
        labels.push(test.iter().map(|&i| churned[i]).collect::<Vec<_>>());
        let bg = bgnbd::fit(&tc);
        bgnbd_params.push([bg.r, bg.alpha, bg.a, bg.b]);
        let trx = feature_rows(&tc, &bg);
        let tex = feature_rows(&sc, &bg);
        let lr_rfm = Logistic::fit(&tc.iter().map(rfm).collect::<Vec<_>>(), &ty, 1.0);
        let lr_all = Logistic::fit(&trx.iter().map(log_features).collect::<Vec<_>>(), &ty, 1.0);
        let (ens, params) = tune_and_fit(&trx, &ty, grid, seed.wrapping_add(f as u64));
        chosen.push(params);
        let per_method: [Vec<f64>; 6] = [
            sc.iter().map(|c| c.recency_days).collect(),
            sc.iter()
                .map(|c| bg.p_no_purchase(c, horizon_days))
                .collect(),
            sc.iter().map(|c| 1.0 - bg.p_alive(c)).collect(),
            sc.iter().map(|c| lr_rfm.log_odds(&rfm(c))).collect(),
            tex.iter()
                .map(|r| lr_all.log_odds(&log_features(r)))
                .collect(),
            tex.iter().map(|r| ens.log_odds(r)).collect(),
        ];
        for (m, s) in per_method.into_iter().enumerate() {
            scores[m].push(s);
        }
        on_fold(f);
    }
    let methods = METHODS
        .iter()
        .zip(&scores)
        .map(|(&(key, method), s)| {
            let roc: Vec<f64> = s.iter().zip(&labels).map(|(s, y)| roc_auc(s, y)).collect();
            let pr: Vec<f64> = s
                .iter()
                .zip(&labels)
                .map(|(s, y)| average_precision(s, y))
                .collect();
            let (roc_auc_mean, roc_auc_std) = mean_std(&roc);
            MethodResult {
                key,
                method,
                roc_auc_mean,
                roc_auc_std,
                pr_auc_mean: mean_std(&pr).0,
                roc_auc: roc,
                pr_auc: pr,
            }
        })
        .collect();
    CvResult {
        folds,
        seed,
        churn_rate: labels
            .iter()
            .map(|y| y.iter().filter(|&&v| v).count() as f64 / y.len() as f64)
            .collect(),
        bgnbd: bgnbd_params,
        chosen,
        methods,
    }
}
