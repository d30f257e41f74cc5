//! The learners: gradient-boosted trees and a random forest (both grown by `forust-ml` and
//! converted to the component's tree tables), and the small neural network (trained here: no
//! maintained Rust crate offers a multilayer perceptron that trains on stable Rust without a
//! native backend, and the network has a single hidden layer).

use anyhow::{Context, Result};
use forust_ml::objective::ObjectiveType;
use forust_ml::{GradientBooster, Matrix};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use trademl_sdk::trees::{Ensemble, Node};

use crate::trees::Forest;

/// Row-major features and a target.
#[derive(Debug, Clone)]
pub struct Table {
    /// One feature vector per row.
    pub x: Vec<Vec<f64>>,
    /// The target per row.
    pub y: Vec<f64>,
}

impl Table {
    fn columns(&self) -> (Vec<f64>, usize, usize) {
        let rows = self.x.len();
        let cols = self.x.first().map_or(0, Vec::len);
        let mut data = Vec::with_capacity(rows * cols);
        for c in 0..cols {
            data.extend(self.x.iter().map(|r| r[c]));
        }
        (data, rows, cols)
    }
}

/// Boosting parameters.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct GbmParams {
    /// Tree depth.
    pub max_depth: usize,
    /// Number of trees.
    pub n_trees: usize,
    /// Learning rate.
    pub learning_rate: f32,
    /// Least Hessian weight (rows, for squared loss) in a leaf.
    pub min_leaf_weight: f32,
    /// L2 penalty on leaf values.
    pub l2: f32,
}

/// Gradient-boosted regression trees on squared loss.
pub fn gbm(t: &Table, p: &GbmParams) -> Result<Forest> {
    let (data, rows, cols) = t.columns();
    let matrix = Matrix::new(&data, rows, cols);
    let mut booster = GradientBooster::default()
        .set_objective_type(ObjectiveType::SquaredLoss)
        .set_iterations(p.n_trees)
        .set_learning_rate(p.learning_rate)
        .set_max_depth(p.max_depth)
        .set_min_leaf_weight(p.min_leaf_weight)
        .set_l2(p.l2)
        .set_parallel(true);
    booster
        .fit_unweighted(&matrix, &t.y, None)
        .context("fitting the boosted trees")?;
    Forest::from_forust(&booster)
}

/// The prediction after each number of trees `step, 2 step, …` for every row of `x`:
/// `out[k][i]` is row i's prediction with the first `(k + 1) × step` trees.
pub fn staged(forest: &Forest, x: &[Vec<f64>], step: usize) -> Vec<Vec<f64>> {
    let mut acc = vec![forest.base; x.len()];
    let mut out = Vec::new();
    for (t, tree) in forest.trees.iter().enumerate() {
        let one = Ensemble {
            base: 0.0,
            scale: forest.scale,
            nodes: tree,
            tree_starts: &[0],
        };
        for (a, row) in acc.iter_mut().zip(x) {
            *a += one.predict(row);
        }
        if (t + 1) % step == 0 {
            out.push(acc.clone());
        }
    }
    out
}

/// Random-forest parameters.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct ForestParams {
    /// Trees.
    pub n_trees: usize,
    /// Tree depth.
    pub max_depth: usize,
    /// Least rows in a leaf.
    pub min_leaf: f32,
    /// Share of the features each tree may split on.
    pub colsample: f64,
}

/// A random forest: each tree a full-variance regression tree (one `forust-ml` boosting round
/// with learning rate 1 and no penalty, so its leaves hold the mean target of their rows) grown
/// on a bootstrap sample of the rows and a random share of the features; the forest averages
/// the trees.
pub fn forest(t: &Table, p: &ForestParams, seed: u64, mut tick: impl FnMut()) -> Result<Forest> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let n = t.x.len();
    let mut trees = Vec::with_capacity(p.n_trees);
    for k in 0..p.n_trees {
        let sample: Vec<usize> = (0..n).map(|_| rng.gen_range(0..n)).collect();
        let boot = Table {
            x: sample.iter().map(|&i| t.x[i].clone()).collect(),
            y: sample.iter().map(|&i| t.y[i]).collect(),
        };
        let mean = boot.y.iter().sum::<f64>() / n as f64;
        let (data, rows, cols) = boot.columns();
        let matrix = Matrix::new(&data, rows, cols);
        let mut booster = GradientBooster::default()
            .set_objective_type(ObjectiveType::SquaredLoss)
            .set_iterations(1)
            .set_learning_rate(1.0)
            .set_max_depth(p.max_depth)
            .set_min_leaf_weight(p.min_leaf)
            .set_l2(0.0)
            .set_initialize_base_score(false)
            .set_base_score(mean)
            .set_colsample_bytree(p.colsample)
            .set_seed(seed.wrapping_add(k as u64))
            .set_parallel(true);
        booster
            .fit_unweighted(&matrix, &boot.y, None)
            .with_context(|| format!("fitting forest tree {k}"))?;
        let one = Forest::from_forust(&booster)?;
        // Fold the tree's base into its node values: the forest is the mean of the trees.
        let tree: Vec<Node> = one.trees[0]
            .iter()
            .map(|n| Node {
                value: n.value + one.base,
                ..*n
            })
            .collect();
        trees.push(tree);
        tick();
    }
    Ok(Forest::new(0.0, 1.0 / p.n_trees as f64, trees))
}

/// Neural-network parameters.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct MlpParams {
    /// Hidden ReLU units.
    pub hidden: usize,
    /// Passes over the data.
    pub epochs: usize,
    /// Adam step size.
    pub learning_rate: f64,
    /// Rows per step.
    pub batch: usize,
    /// L2 weight decay.
    pub weight_decay: f64,
}

/// A fitted network's weights (see `trademl_model_promo_effectiveness::model::Mlp`).
#[derive(Debug, Clone, Default)]
pub struct MlpWeights {
    /// Feature means.
    pub mean: Vec<f64>,
    /// Feature standard deviations.
    pub scale: Vec<f64>,
    /// Hidden weights `[hidden][inputs]`.
    pub w1: Vec<f64>,
    /// Hidden biases.
    pub b1: Vec<f64>,
    /// Output weights.
    pub w2: Vec<f64>,
    /// Output bias.
    pub b2: f64,
}

impl MlpWeights {
    /// The weights as the component evaluates them.
    pub fn view(&self) -> trademl_model_promo_effectiveness::model::Mlp<'_> {
        trademl_model_promo_effectiveness::model::Mlp {
            mean: &self.mean,
            scale: &self.scale,
            w1: &self.w1,
            b1: &self.b1,
            w2: &self.w2,
            b2: self.b2,
        }
    }
}

/// Adam state of one parameter vector.
struct Adam {
    m: Vec<f64>,
    v: Vec<f64>,
}

impl Adam {
    fn new(n: usize) -> Adam {
        Adam {
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }

    fn step(&mut self, w: &mut [f64], g: &[f64], lr: f64, t: i32, decay: f64) {
        let (b1, b2) = (0.9, 0.999);
        let (c1, c2) = (1.0 - f64::powi(b1, t), 1.0 - f64::powi(b2, t));
        for i in 0..w.len() {
            let gi = g[i] + decay * w[i];
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * gi;
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * gi * gi;
            w[i] -= lr * (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + 1e-8);
        }
    }
}

/// Trains the network on squared error with Adam; `brands[i]` is row i's brand (1-based) for the
/// one-hot inputs. `after_epoch` sees the weights after each pass.
pub fn mlp(
    t: &Table,
    brands: &[usize],
    products: usize,
    p: &MlpParams,
    seed: u64,
    mut after_epoch: impl FnMut(&MlpWeights),
) -> MlpWeights {
    let n = t.x.len();
    let d = t.x[0].len();
    let mut w = MlpWeights::default();
    for c in 0..d {
        let vals: Vec<f64> = t.x.iter().map(|r| r[c]).filter(|v| !v.is_nan()).collect();
        let m = vals.iter().sum::<f64>() / vals.len().max(1) as f64;
        let var = vals.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / vals.len().max(1) as f64;
        w.mean.push(m);
        w.scale.push(if var > 1e-12 { var.sqrt() } else { 1.0 });
    }
    let n_in = d + products;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let bound = (6.0 / n_in as f64).sqrt();
    w.w1 = (0..p.hidden * n_in)
        .map(|_| rng.gen_range(-bound..bound))
        .collect();
    w.b1 = vec![0.0; p.hidden];
    w.w2 = (0..p.hidden)
        .map(|_| rng.gen_range(-1.0..1.0) / (p.hidden as f64).sqrt())
        .collect();
    w.b2 = t.y.iter().sum::<f64>() / n as f64;
    let inputs: Vec<Vec<f64>> =
        t.x.iter()
            .zip(brands)
            .map(|(x, &b)| w.view().input(x, b, products))
            .collect();
    let (mut a1, mut ab1, mut a2, mut ab2) = (
        Adam::new(w.w1.len()),
        Adam::new(p.hidden),
        Adam::new(p.hidden),
        Adam::new(1),
    );
    let mut order: Vec<usize> = (0..n).collect();
    let mut step = 0;
    let (mut g1, mut gb1, mut g2) = (
        vec![0.0; w.w1.len()],
        vec![0.0; p.hidden],
        vec![0.0; p.hidden],
    );
    let mut hidden = vec![0.0; p.hidden];
    for _ in 0..p.epochs {
        order.shuffle(&mut rng);
        for batch in order.chunks(p.batch) {
            g1.iter_mut().for_each(|g| *g = 0.0);
            gb1.iter_mut().for_each(|g| *g = 0.0);
            g2.iter_mut().for_each(|g| *g = 0.0);
            let mut gb2 = 0.0;
            let scale = 1.0 / batch.len() as f64;
            for &i in batch {
                let z = &inputs[i];
                let mut out = w.b2;
                for h in 0..p.hidden {
                    let row = &w.w1[h * n_in..(h + 1) * n_in];
                    let a = w.b1[h] + row.iter().zip(z).map(|(a, b)| a * b).sum::<f64>();
                    hidden[h] = a.max(0.0);
                    out += w.w2[h] * hidden[h];
                }
                let err = (out - t.y[i]) * scale;
                gb2 += err;
                for h in 0..p.hidden {
                    g2[h] += err * hidden[h];
                    if hidden[h] > 0.0 {
                        let back = err * w.w2[h];
                        gb1[h] += back;
                        for (g, v) in g1[h * n_in..(h + 1) * n_in].iter_mut().zip(z) {
                            *g += back * v;
                        }
                    }
                }
            }
            step += 1;
            a1.step(&mut w.w1, &g1, p.learning_rate, step, p.weight_decay);
            ab1.step(&mut w.b1, &gb1, p.learning_rate, step, 0.0);
            a2.step(&mut w.w2, &g2, p.learning_rate, step, p.weight_decay);
            let mut b2 = [w.b2];
            ab2.step(&mut b2, &[gb2], p.learning_rate, step, 0.0);
            w.b2 = b2[0];
        }
        after_epoch(&w);
    }
    w
}
