//! The fitted reference of the model, and the scores compared with it: the model itself (window
//! modified z-scores), a robust Mahalanobis variant, the rolling z-score and an isolation forest.
//! None of them reads a label.

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use trademl_model_anomaly_detection::model::{self, Reference};

use super::data::Series;

/// Fits the model's reference on some series: per variable, the median over series of each
/// series' robust spread, and the median over series of the smallest non-zero step between
/// consecutive readings (the resolution).
pub fn fit_reference(series: &[&Series], n_variables: usize) -> Reference {
    let mut scales = Vec::with_capacity(n_variables);
    let mut floors = Vec::with_capacity(n_variables);
    for j in 0..n_variables {
        let spreads: Vec<f64> = series
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| {
                let v = &s.values[j];
                model::robust_spread(v, model::median(v).unwrap_or(0.0))
            })
            .collect();
        let steps: Vec<f64> = series
            .iter()
            .filter_map(|s| {
                s.values[j]
                    .windows(2)
                    .map(|w| (w[1] - w[0]).abs())
                    .filter(|d| *d > 1e-12)
                    .min_by(f64::total_cmp)
            })
            .collect();
        let floor = model::median(&steps).unwrap_or(1e-6);
        // Round the resolution to 9 decimals: 0.01 rather than 0.009999999999998.
        let floor = ((floor * 1e9).round() / 1e9).max(1e-9);
        floors.push(floor);
        scales.push(model::median(&spreads).unwrap_or(1.0).max(floor));
    }
    Reference { scales, floors }
}

/// One method's scores of one series, the higher the more anomalous, and its default flags.
#[derive(Debug, Clone, Default)]
pub struct Scores {
    /// One score per reading.
    pub scores: Vec<f64>,
    /// The method's own label-free default cut applied.
    pub flags: Vec<bool>,
}

/// The model: window modified z-scores, scoring `s` in consecutive windows of `window` readings
/// (`None`: the whole series is one window).
pub fn model_scores(s: &Series, reference: &Reference, window: Option<usize>) -> Scores {
    let n = s.len();
    let w = window.unwrap_or(n).max(1);
    let names: Vec<String> = (0..s.values.len()).map(|j| format!("v{j}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut out = Scores::default();
    let mut start = 0;
    while start < n {
        let part = s.slice(start..(start + w).min(n));
        let scored = model::score_window(&part.columns(), &names, reference, model::THRESHOLD)
            .expect("the loader only keeps finite readings of equal-length columns");
        out.scores.extend(scored.iter().map(|x| x.score));
        out.flags.extend(scored.iter().map(|x| x.is_anomaly));
        start += w;
    }
    out
}

/// `sqrt` of the chi-square quantile with 2 degrees of freedom at 0.999: `sqrt(-2 ln 0.001)`.
pub fn mahalanobis_cut() -> f64 {
    (-2.0 * 0.001_f64.ln()).sqrt()
}

/// The robust Mahalanobis variant on the first two variables: modified z-scores within the
/// series, a Gnanadesikan–Kettenring robust correlation
/// `r = (s(u+v)² − s(u−v)²) / (s(u+v)² + s(u−v)²)` with `s` the robust spread, and the
/// distance `sqrt((u² − 2ruv + v²) / (1 − r²))`; flagged above [`mahalanobis_cut`].
pub fn mahalanobis_scores(s: &Series, reference: &Reference) -> Scores {
    let u = model::modified_z(&s.values[0], reference.scales[0], reference.floors[0]);
    let v = model::modified_z(&s.values[1], reference.scales[1], reference.floors[1]);
    let plus: Vec<f64> = u.iter().zip(&v).map(|(a, b)| a + b).collect();
    let minus: Vec<f64> = u.iter().zip(&v).map(|(a, b)| a - b).collect();
    let sp = model::robust_spread(&plus, model::median(&plus).unwrap_or(0.0)).powi(2);
    let sm = model::robust_spread(&minus, model::median(&minus).unwrap_or(0.0)).powi(2);
    let r = if sp + sm > 0.0 {
        ((sp - sm) / (sp + sm)).clamp(-0.99, 0.99)
    } else {
        0.0
    };
    let cut = mahalanobis_cut();
    let scores: Vec<f64> = u
        .iter()
        .zip(&v)
        .map(|(a, b)| {
            ((a * a - 2.0 * r * a * b + b * b) / (1.0 - r * r))
                .max(0.0)
                .sqrt()
        })
        .collect();
    let flags = scores.iter().map(|x| *x > cut).collect();
    Scores { scores, flags }
}

/// The rolling z-score cut: |z| > 3.
pub const ROLLING_Z_CUT: f64 = 3.0;

/// The rolling z-score baseline: each reading against the mean and sample standard deviation of
/// the `w` readings before it (fewer at the start; score 0 for the first two readings); the
/// score is the largest |z| over the variables; the standard deviation is never below `floors`.
pub fn rolling_z_scores(s: &Series, w: usize, floors: &[f64]) -> Scores {
    let n = s.len();
    let mut scores = vec![0.0; n];
    for (j, v) in s.values.iter().enumerate() {
        for i in 2..n {
            let prev = &v[i.saturating_sub(w)..i];
            let k = prev.len() as f64;
            let mean = prev.iter().sum::<f64>() / k;
            let var = prev.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (k - 1.0);
            let sd = var.sqrt().max(floors[j]);
            scores[i] = f64::max(scores[i], ((v[i] - mean) / sd).abs());
        }
    }
    let flags = scores.iter().map(|x| *x > ROLLING_Z_CUT).collect();
    Scores { scores, flags }
}

/// Standardises each variable of a series by its own mean and population standard deviation.
pub fn standardise(s: &Series) -> Vec<Vec<f64>> {
    let n = s.len();
    let mut rows = vec![Vec::with_capacity(s.values.len()); n];
    for v in &s.values {
        let mean = v.iter().sum::<f64>() / n as f64;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
        let sd = if sd > 0.0 { sd } else { 1.0 };
        for (row, x) in rows.iter_mut().zip(v) {
            row.push((x - mean) / sd);
        }
    }
    rows
}

/// The isolation forest's default cut (Liu et al. 2008; scikit-learn's `contamination="auto"`).
pub const FOREST_CUT: f64 = 0.5;

/// An isolation forest (Liu, Ting and Zhou 2008): random axis-parallel splits on subsamples.
#[derive(Debug, Clone)]
pub struct IsolationForest {
    trees: Vec<Vec<Node>>,
    sample: usize,
}

#[derive(Debug, Clone)]
enum Node {
    Split {
        feature: usize,
        value: f64,
        left: usize,
        right: usize,
    },
    Leaf {
        size: usize,
    },
}

/// The average path length of an unsuccessful search in a binary search tree of `n` points.
pub fn average_path(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let n = n as f64;
            2.0 * ((n - 1.0).ln() + 0.577_215_664_901_532_9) - 2.0 * (n - 1.0) / n
        }
    }
}

impl IsolationForest {
    /// Fits `trees` trees on subsamples of `sample` rows (without replacement) of `data`.
    pub fn fit(data: &[Vec<f64>], trees: usize, sample: usize, seed: u64) -> Self {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let sample = sample.min(data.len()).max(1);
        let limit = (sample as f64).log2().ceil() as usize;
        let trees = (0..trees)
            .map(|_| {
                let idx = rand::seq::index::sample(&mut rng, data.len(), sample).into_vec();
                let mut nodes = Vec::new();
                build(data, idx, 0, limit, &mut rng, &mut nodes);
                nodes
            })
            .collect();
        IsolationForest { trees, sample }
    }

    /// The anomaly score `2^(-E[h(x)] / c(sample))`, in (0, 1]; about 0.5 or less is ordinary.
    pub fn score(&self, x: &[f64]) -> f64 {
        let total: f64 = self.trees.iter().map(|t| path_length(t, x)).sum();
        let mean = total / self.trees.len() as f64;
        2f64.powf(-mean / average_path(self.sample))
    }
}

fn build(
    data: &[Vec<f64>],
    idx: Vec<usize>,
    depth: usize,
    limit: usize,
    rng: &mut Xoshiro256PlusPlus,
    nodes: &mut Vec<Node>,
) -> usize {
    let me = nodes.len();
    nodes.push(Node::Leaf { size: idx.len() });
    if depth >= limit || idx.len() <= 1 {
        return me;
    }
    let d = data[idx[0]].len();
    // Features that vary among these rows.
    let ranges: Vec<(usize, f64, f64)> = (0..d)
        .filter_map(|f| {
            let (lo, hi) = idx
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &i| {
                    (lo.min(data[i][f]), hi.max(data[i][f]))
                });
            (hi > lo).then_some((f, lo, hi))
        })
        .collect();
    if ranges.is_empty() {
        return me;
    }
    let (feature, lo, hi) = ranges[rng.gen_range(0..ranges.len())];
    let value = rng.gen_range(lo..hi);
    let (l, r): (Vec<usize>, Vec<usize>) = idx.into_iter().partition(|&i| data[i][feature] < value);
    let left = build(data, l, depth + 1, limit, rng, nodes);
    let right = build(data, r, depth + 1, limit, rng, nodes);
    nodes[me] = Node::Split {
        feature,
        value,
        left,
        right,
    };
    me
}

fn path_length(nodes: &[Node], x: &[f64]) -> f64 {
    let mut at = 0;
    let mut depth = 0.0;
    loop {
        match nodes[at] {
            Node::Leaf { size } => return depth + average_path(size),
            Node::Split {
                feature,
                value,
                left,
                right,
            } => {
                at = if x[feature] < value { left } else { right };
                depth += 1.0;
            }
        }
    }
}

/// Isolation-forest scores of a series, standardised within itself, by a fitted forest.
pub fn forest_scores(s: &Series, forest: &IsolationForest) -> Scores {
    let scores: Vec<f64> = standardise(s).iter().map(|r| forest.score(r)).collect();
    let flags = scores.iter().map(|x| *x > FOREST_CUT).collect();
    Scores { scores, flags }
}

/// Fits a forest (100 trees of 256 readings, as Liu et al. recommend) on the readings of `fit`,
/// each series standardised within itself.
pub fn fit_forest(fit: &[&Series], seed: u64) -> IsolationForest {
    let data: Vec<Vec<f64>> = fit.iter().flat_map(|s| standardise(s)).collect();
    IsolationForest::fit(&data, 100, 256, seed)
}
