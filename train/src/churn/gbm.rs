//! A small gradient-boosted tree ensemble for the log-odds of a binary label: Newton steps on the
//! log-loss, depth-limited trees grown on quantile histograms, L2-regularised leaf values.
//!
//! Trees are written as [`Node`]s with thresholds in the features' own units, so the component
//! evaluates them with plain comparisons ([`trademl_model_churn::model::Churn::log_odds`]).

use trademl_model_churn::model::{LEAF, N_FEATURES, Node};

/// One feature vector.
pub type Row = [f64; N_FEATURES];

/// Boosting options.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Params {
    /// Number of trees.
    pub n_trees: usize,
    /// Shrinkage applied to every node value.
    pub learning_rate: f64,
    /// Maximum depth (1 = stumps).
    pub max_depth: usize,
    /// Smallest sum of Hessians (p(1-p)) allowed in a child.
    pub min_child_hessian: f64,
    /// L2 penalty on node values.
    pub lambda: f64,
    /// Most bins (distinct thresholds + 1) per feature.
    pub max_bins: usize,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            n_trees: 300,
            learning_rate: 0.05,
            max_depth: 3,
            min_child_hessian: 5.0,
            lambda: 1.0,
            max_bins: 64,
        }
    }
}

/// A fitted ensemble.
#[derive(Debug, Clone, PartialEq)]
pub struct Ensemble {
    /// Log-odds of the training mean.
    pub base_score: f64,
    /// Each tree's nodes, root first, child indices relative to the tree.
    pub trees: Vec<Vec<Node>>,
}

impl Ensemble {
    /// The log-odds for one row using the first `n` trees.
    pub fn log_odds_first(&self, x: &Row, n: usize) -> f64 {
        self.base_score
            + self
                .trees
                .iter()
                .take(n)
                .map(|t| leaf_value(t, x))
                .sum::<f64>()
    }

    /// The log-odds for one row.
    pub fn log_odds(&self, x: &Row) -> f64 {
        self.log_odds_first(x, self.trees.len())
    }

    /// The ensemble flattened for the component: all nodes, and where each tree starts.
    pub fn flatten(&self) -> (Vec<Node>, Vec<u32>) {
        let mut nodes = Vec::new();
        let mut starts = Vec::new();
        for t in &self.trees {
            starts.push(nodes.len() as u32);
            nodes.extend_from_slice(t);
        }
        (nodes, starts)
    }
}

fn leaf_value(tree: &[Node], x: &Row) -> f64 {
    let mut n = tree[0];
    while n.feature != LEAF {
        n = if x[n.feature as usize] <= n.threshold {
            tree[n.left as usize]
        } else {
            tree[n.right as usize]
        };
    }
    n.value
}

/// Quantile thresholds per feature: bin `b` holds `thresholds[b-1] < x <= thresholds[b]`.
fn thresholds(x: &[Row], max_bins: usize) -> Vec<Vec<f64>> {
    (0..N_FEATURES)
        .map(|j| {
            let mut v: Vec<f64> = x.iter().map(|r| r[j]).collect();
            v.sort_by(f64::total_cmp);
            let mut t: Vec<f64> = (1..max_bins)
                .map(|q| v[(q * (v.len() - 1)) / max_bins])
                .collect();
            t.dedup();
            // The largest value can never send anything right.
            if t.last() == v.last() {
                t.pop();
            }
            t
        })
        .collect()
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

struct Grower<'a> {
    bins: &'a [Vec<u8>],
    thresholds: &'a [Vec<f64>],
    g: &'a [f64],
    h: &'a [f64],
    params: Params,
    nodes: Vec<Node>,
}

impl Grower<'_> {
    /// Grows the subtree of `rows`; returns its node index.
    fn grow(&mut self, rows: &mut [u32], depth: usize) -> u32 {
        let (gs, hs) = rows.iter().fold((0.0, 0.0), |(g, h), &i| {
            (g + self.g[i as usize], h + self.h[i as usize])
        });
        let value = -gs / (hs + self.params.lambda) * self.params.learning_rate;
        let id = self.nodes.len() as u32;
        self.nodes.push(Node {
            feature: LEAF,
            threshold: 0.0,
            left: 0,
            right: 0,
            value,
        });
        if depth >= self.params.max_depth || hs < 2.0 * self.params.min_child_hessian {
            return id;
        }
        let lambda = self.params.lambda;
        let parent = gs * gs / (hs + lambda);
        let mut best: Option<(f64, usize, usize)> = None;
        for (j, t) in self.thresholds.iter().enumerate() {
            if t.is_empty() {
                continue;
            }
            let mut hist = vec![(0.0, 0.0); t.len() + 1];
            for &i in rows.iter() {
                let b = self.bins[j][i as usize] as usize;
                hist[b].0 += self.g[i as usize];
                hist[b].1 += self.h[i as usize];
            }
            let (mut gl, mut hl) = (0.0, 0.0);
            for (b, &(gb, hb)) in hist.iter().enumerate().take(t.len()) {
                gl += gb;
                hl += hb;
                let (gr, hr) = (gs - gl, hs - hl);
                if hl < self.params.min_child_hessian || hr < self.params.min_child_hessian {
                    continue;
                }
                let gain = gl * gl / (hl + lambda) + gr * gr / (hr + lambda) - parent;
                if gain > 1e-9 && best.is_none_or(|(g, _, _)| gain > g) {
                    best = Some((gain, j, b));
                }
            }
        }
        let Some((_, j, b)) = best else {
            return id;
        };
        let split = partition(rows, |i| self.bins[j][i as usize] as usize <= b);
        let (left_rows, right_rows) = rows.split_at_mut(split);
        let left = self.grow(left_rows, depth + 1);
        let right = self.grow(right_rows, depth + 1);
        let node = &mut self.nodes[id as usize];
        node.feature = j as u32;
        node.threshold = self.thresholds[j][b];
        node.left = left;
        node.right = right;
        id
    }
}

/// Moves the rows satisfying `left` to the front; returns how many there are.
fn partition(rows: &mut [u32], left: impl Fn(u32) -> bool) -> usize {
    let mut k = 0;
    for i in 0..rows.len() {
        if left(rows[i]) {
            rows.swap(i, k);
            k += 1;
        }
    }
    k
}

/// Fits `params.n_trees` trees on `(x, y)`. With `eval`, also returns the mean log-loss on it
/// after each tree (entry `n` = with the first `n + 1` trees).
pub fn fit(
    x: &[Row],
    y: &[bool],
    params: Params,
    eval: Option<(&[Row], &[bool])>,
) -> (Ensemble, Vec<f64>) {
    assert!(!x.is_empty() && x.len() == y.len());
    let n = x.len();
    let thresholds = thresholds(x, params.max_bins.clamp(2, 256));
    let bins: Vec<Vec<u8>> = thresholds
        .iter()
        .enumerate()
        .map(|(j, t)| {
            x.iter()
                .map(|r| t.partition_point(|&v| v < r[j]) as u8)
                .collect()
        })
        .collect();
    let mean = y.iter().filter(|&&v| v).count() as f64 / n as f64;
    let mean = mean.clamp(1e-6, 1.0 - 1e-6);
    let base_score = (mean / (1.0 - mean)).ln();
    let mut f = vec![base_score; n];
    let mut eval_f: Vec<f64> = eval.map_or_else(Vec::new, |(ex, _)| vec![base_score; ex.len()]);
    let mut curve = Vec::new();
    let mut trees = Vec::with_capacity(params.n_trees);
    let mut g = vec![0.0; n];
    let mut h = vec![0.0; n];
    let mut rows: Vec<u32> = (0..n as u32).collect();
    for _ in 0..params.n_trees {
        for i in 0..n {
            let p = sigmoid(f[i]);
            g[i] = p - if y[i] { 1.0 } else { 0.0 };
            h[i] = (p * (1.0 - p)).max(1e-12);
        }
        let mut grower = Grower {
            bins: &bins,
            thresholds: &thresholds,
            g: &g,
            h: &h,
            params,
            nodes: Vec::new(),
        };
        grower.grow(&mut rows, 0);
        let tree = grower.nodes;
        for (fi, r) in f.iter_mut().zip(x) {
            *fi += leaf_value(&tree, r);
        }
        if let Some((ex, ey)) = eval {
            let mut loss = 0.0;
            for ((fi, r), &yi) in eval_f.iter_mut().zip(ex).zip(ey) {
                *fi += leaf_value(&tree, r);
                let p = sigmoid(*fi).clamp(1e-12, 1.0 - 1e-12);
                loss -= if yi { p.ln() } else { (1.0 - p).ln() };
            }
            curve.push(loss / ex.len() as f64);
        }
        trees.push(tree);
    }
    (Ensemble { base_score, trees }, curve)
}
