//! The linear SVM (dual coordinate descent, as LIBLINEAR's L2-regularised L1-loss solver), Platt
//! scaling, stratified folds, nested tuning and the figures.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Serialize;
use trademl_model_sentiment::model::{
    BIAS_INDEX, COMPOUND_INDEX, Method, N_WEIGHTS, Weights, linear_margin,
};

use super::data::Example;

/// Hyperparameters of one fit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Config {
    /// Trained or blend (the lexicon needs no fit).
    #[serde(serialize_with = "method_name")]
    pub method: Method,
    /// The SVM's C (inverse regularisation).
    pub c: f64,
    /// The blend weight: the compound feature is `blend_weight * compound` (0 for trained).
    pub blend_weight: f64,
}

fn method_name<S: serde::Serializer>(m: &Method, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(m.name())
}

/// The grids searched by nested tuning.
#[derive(Debug, Clone, Serialize)]
pub struct Grid {
    /// Values of C.
    pub c: Vec<f64>,
    /// Values of the blend weight (blend only).
    pub blend_weight: Vec<f64>,
    /// Folds of the inner cross-validation.
    pub inner_folds: usize,
}

impl Grid {
    /// Every configuration of a method.
    pub fn configs(&self, method: Method) -> Vec<Config> {
        let weights: Vec<f64> = match method {
            Method::Blend => self.blend_weight.clone(),
            _ => vec![0.0],
        };
        let mut out = Vec::new();
        for &blend_weight in &weights {
            for &c in &self.c {
                out.push(Config {
                    method,
                    c,
                    blend_weight,
                });
            }
        }
        out
    }
}

fn compound_feature(cfg: &Config, e: &Example) -> f64 {
    match cfg.method {
        Method::Blend => cfg.blend_weight * e.analysis.compound,
        _ => 0.0,
    }
}

/// Fits the SVM on `rows` of `data`; returns the `N_WEIGHTS` weights as `f32`.
pub fn fit_svm(data: &[Example], rows: &[usize], cfg: &Config, seed: u64) -> Vec<f32> {
    let mut w = vec![0.0f64; N_WEIGHTS];
    let n = rows.len();
    let mut alpha = vec![0.0f64; n];
    let y: Vec<f64> = rows
        .iter()
        .map(|&r| if data[r].label { 1.0 } else { -1.0 })
        .collect();
    let q: Vec<f64> = rows
        .iter()
        .map(|&r| {
            let e = &data[r];
            let d = compound_feature(cfg, e);
            e.analysis
                .hashed
                .iter()
                .map(|&(_, v)| f64::from(v) * f64::from(v))
                .sum::<f64>()
                + d * d
                + 1.0
        })
        .collect();
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    for _epoch in 0..200 {
        order.shuffle(&mut rng);
        let (mut pg_max, mut pg_min) = (f64::NEG_INFINITY, f64::INFINITY);
        for &i in &order {
            let e = &data[rows[i]];
            let d = compound_feature(cfg, e);
            let mut m = w[BIAS_INDEX] + w[COMPOUND_INDEX] * d;
            for &(b, v) in &e.analysis.hashed {
                m += w[b as usize] * f64::from(v);
            }
            let g = y[i] * m - 1.0;
            let pg = if alpha[i] == 0.0 {
                g.min(0.0)
            } else if alpha[i] == cfg.c {
                g.max(0.0)
            } else {
                g
            };
            pg_max = pg_max.max(pg);
            pg_min = pg_min.min(pg);
            if pg.abs() > 1e-12 {
                let old = alpha[i];
                alpha[i] = (old - g / q[i]).clamp(0.0, cfg.c);
                let step = (alpha[i] - old) * y[i];
                for &(b, v) in &e.analysis.hashed {
                    w[b as usize] += step * f64::from(v);
                }
                w[COMPOUND_INDEX] += step * d;
                w[BIAS_INDEX] += step;
            }
        }
        if pg_max - pg_min < 0.01 {
            break;
        }
    }
    w.iter().map(|&x| x as f32).collect()
}

/// The margin of an example under fitted weights, as the served model computes it.
pub fn margin(weights: &[f32], cfg: &Config, e: &Example) -> f64 {
    linear_margin(
        &Weights::Floats(weights),
        &e.analysis.hashed,
        compound_feature(cfg, e),
    )
}

/// Platt scaling: `(a, b)` minimising the log loss of `1 / (1 + exp(-(a m + b)))` with Platt's
/// smoothed targets, by Newton's method with backtracking.
pub fn fit_platt(margins: &[f64], labels: &[bool]) -> [f64; 2] {
    let n_pos = labels.iter().filter(|&&y| y).count() as f64;
    let n_neg = labels.len() as f64 - n_pos;
    let hi = (n_pos + 1.0) / (n_pos + 2.0);
    let lo = 1.0 / (n_neg + 2.0);
    let t: Vec<f64> = labels.iter().map(|&y| if y { hi } else { lo }).collect();
    let loss = |a: f64, b: f64| -> f64 {
        margins
            .iter()
            .zip(&t)
            .map(|(&m, &t)| {
                let z = a * m + b;
                // log(1 + exp(z)) - t z, stably
                let softplus = if z > 0.0 {
                    z + (-z).exp().ln_1p()
                } else {
                    z.exp().ln_1p()
                };
                softplus - t * z
            })
            .sum()
    };
    let (mut a, mut b) = (1.0, 0.0);
    let mut current = loss(a, b);
    for _ in 0..100 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-12, 0.0, 1e-12);
        for (&m, &t) in margins.iter().zip(&t) {
            let p = 1.0 / (1.0 + (-(a * m + b)).exp());
            let d = p - t;
            ga += d * m;
            gb += d;
            let s = p * (1.0 - p);
            haa += s * m * m;
            hab += s * m;
            hbb += s;
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-300 {
            break;
        }
        let da = (hbb * ga - hab * gb) / det;
        let db = (haa * gb - hab * ga) / det;
        let mut step = 1.0;
        let mut improved = false;
        while step > 1e-8 {
            let (na, nb) = (a - step * da, b - step * db);
            let l = loss(na, nb);
            if l < current {
                a = na;
                b = nb;
                let gain = current - l;
                current = l;
                improved = gain > 1e-10;
                break;
            }
            step *= 0.5;
        }
        if !improved {
            break;
        }
    }
    [a, b]
}

/// Stratified folds of `rows` (by label and domain): fold index per position in `rows`.
pub fn stratified_folds(data: &[Example], rows: &[usize], k: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut strata: std::collections::BTreeMap<(usize, bool), Vec<usize>> = Default::default();
    for &r in rows {
        strata
            .entry((data[r].domain, data[r].label))
            .or_default()
            .push(r);
    }
    let mut folds = vec![Vec::new(); k];
    let mut next = 0;
    for members in strata.values_mut() {
        members.shuffle(&mut rng);
        for &r in members.iter() {
            folds[next % k].push(r);
            next += 1;
        }
    }
    folds
}

/// Accuracy and macro F1 of predicted labels.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Scores {
    /// Share of labels right.
    pub accuracy: f64,
    /// Mean of the positive and the negative class's F1.
    pub macro_f1: f64,
    /// How many texts.
    pub n: usize,
}

/// Scores predictions against labels.
pub fn scores(pred: &[bool], truth: &[bool]) -> Scores {
    let count = |p: bool, t: bool| {
        pred.iter()
            .zip(truth)
            .filter(|&(&a, &b)| a == p && b == t)
            .count() as f64
    };
    let (tp, tn, fp, fn_) = (
        count(true, true),
        count(false, false),
        count(true, false),
        count(false, true),
    );
    let f1 = |tp: f64, fp: f64, fn_: f64| {
        if tp == 0.0 {
            0.0
        } else {
            2.0 * tp / (2.0 * tp + fp + fn_)
        }
    };
    Scores {
        accuracy: (tp + tn) / pred.len().max(1) as f64,
        macro_f1: 0.5 * (f1(tp, fp, fn_) + f1(tn, fn_, fp)),
        n: pred.len(),
    }
}

/// A configuration chosen by inner cross-validation, its inner accuracy and its calibration.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Tuned {
    /// The chosen configuration.
    pub config: Config,
    /// Its inner cross-validated accuracy.
    pub inner_accuracy: f64,
    /// Platt scaling fitted on its inner out-of-fold margins.
    pub platt: [f64; 2],
}

/// Chooses the configuration of `method` with the best inner cross-validated accuracy on `rows`
/// (ties: the first in grid order, i.e. the smallest C), and calibrates it on the out-of-fold
/// margins. Nothing outside `rows` is read.
pub fn tune(data: &[Example], rows: &[usize], method: Method, grid: &Grid, seed: u64) -> Tuned {
    let folds = stratified_folds(data, rows, grid.inner_folds, seed ^ 0x5eed);
    let configs = grid.configs(method);
    let mut best: Option<(f64, Config, Vec<f64>, Vec<bool>)> = None;
    for cfg in configs {
        let mut margins = Vec::with_capacity(rows.len());
        let mut truth = Vec::with_capacity(rows.len());
        for (f, test) in folds.iter().enumerate() {
            let train: Vec<usize> = folds
                .iter()
                .enumerate()
                .filter(|&(g, _)| g != f)
                .flat_map(|(_, v)| v.iter().copied())
                .collect();
            let w = fit_svm(data, &train, &cfg, seed.wrapping_add(f as u64));
            for &r in test {
                margins.push(margin(&w, &cfg, &data[r]));
                truth.push(data[r].label);
            }
        }
        let pred: Vec<bool> = margins.iter().map(|&m| m >= 0.0).collect();
        let acc = scores(&pred, &truth).accuracy;
        if best.as_ref().is_none_or(|b| acc > b.0 + 1e-12) {
            best = Some((acc, cfg, margins, truth));
        }
    }
    let (acc, config, margins, truth) = best.expect("a non-empty grid");
    Tuned {
        config,
        inner_accuracy: acc,
        platt: fit_platt(&margins, &truth),
    }
}
