//! Fitting: the log1p + standardisation scaling and linfa's k-means in the scaled space.

use anyhow::{Context, Result};
use linfa::DatasetBase;
use linfa::prelude::*;
use linfa_clustering::{KMeans, KMeansInit};
use ndarray::Array2;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256Plus;
pub use trademl_model_customer_segmentation::model::Customer;
use trademl_model_customer_segmentation::model::{N_FEATURES, Segmenter, scale};

/// Per-feature mean and (population) standard deviation of `ln(1 + x)`, as scikit-learn's
/// `StandardScaler` after `np.log1p`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scaling {
    /// Means of `ln(1 + x)`.
    pub means: [f64; N_FEATURES],
    /// Standard deviations of `ln(1 + x)`; a constant feature gets 1.
    pub stds: [f64; N_FEATURES],
}

impl Scaling {
    /// Fits the scaling to `customers`.
    pub fn fit(customers: &[Customer]) -> Self {
        let n = customers.len().max(1) as f64;
        let mut means = [0.0; N_FEATURES];
        let mut stds = [0.0; N_FEATURES];
        for c in customers {
            for (m, x) in means.iter_mut().zip(c.features()) {
                *m += x.ln_1p() / n;
            }
        }
        for c in customers {
            for ((s, m), x) in stds.iter_mut().zip(&means).zip(c.features()) {
                *s += (x.ln_1p() - m).powi(2) / n;
            }
        }
        for s in &mut stds {
            *s = if *s > 0.0 { s.sqrt() } else { 1.0 };
        }
        Scaling { means, stds }
    }

    /// The scaled features of `customers`, one row each.
    pub fn transform(&self, customers: &[Customer]) -> Array2<f64> {
        let mut x = Array2::zeros((customers.len(), N_FEATURES));
        for (i, c) in customers.iter().enumerate() {
            for (j, v) in scale(&c.features(), &self.means, &self.stds)
                .into_iter()
                .enumerate()
            {
                x[[i, j]] = v;
            }
        }
        x
    }
}

/// How k-means is initialised and restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KMeansConfig {
    /// Restarts; the run with the lowest inertia is kept (scikit-learn's `n_init`).
    pub n_runs: usize,
    /// k-means++ initialisation when true, random points otherwise.
    pub plus_plus: bool,
}

impl KMeansConfig {
    /// scikit-learn's classic setup: k-means++, 10 restarts.
    pub const STANDARD: KMeansConfig = KMeansConfig {
        n_runs: 10,
        plus_plus: true,
    };
}

/// A fitted segmentation: scaling and centroids, in linfa's (unordered) cluster numbering.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    /// The scaling fitted on the training customers.
    pub scaling: Scaling,
    /// The centroids in the scaled space.
    pub centroids: Vec<[f64; N_FEATURES]>,
}

impl Fitted {
    /// The model arithmetic of the guest crate over these weights.
    pub fn segmenter(&self) -> Segmenter<'_> {
        Segmenter {
            means: &self.scaling.means,
            stds: &self.scaling.stds,
            centroids: &self.centroids,
            names: &[],
        }
    }

    /// The cluster of each customer (nearest centroid, as the component computes it).
    pub fn labels(&self, customers: &[Customer]) -> Vec<usize> {
        let s = self.segmenter();
        customers.iter().map(|c| s.assign(c).segment).collect()
    }

    /// Mean squared distance to the nearest centroid (scikit-learn's inertia divided by n).
    pub fn inertia(&self, customers: &[Customer]) -> f64 {
        let s = self.segmenter();
        let total: f64 = customers
            .iter()
            .map(|c| {
                let d = &s.assign(c).distances;
                d.iter().fold(f64::INFINITY, |a, &b| a.min(b)).powi(2)
            })
            .sum();
        total / customers.len().max(1) as f64
    }
}

/// Fits the scaling, then linfa's k-means with `k` clusters, on `customers`.
pub fn fit_kmeans(
    customers: &[Customer],
    k: usize,
    seed: u64,
    config: KMeansConfig,
) -> Result<Fitted> {
    let scaling = Scaling::fit(customers);
    let x = scaling.transform(customers);
    let dataset = DatasetBase::from(x);
    let init = if config.plus_plus {
        KMeansInit::KMeansPlusPlus
    } else {
        KMeansInit::Random
    };
    let model = KMeans::params_with_rng(k, Xoshiro256Plus::seed_from_u64(seed))
        .n_runs(config.n_runs)
        .max_n_iterations(300)
        .tolerance(1e-6)
        .init_method(init)
        .fit(&dataset)
        .with_context(|| format!("k-means with k = {k} on {} customers", customers.len()))?;
    let centroids = model
        .centroids()
        .rows()
        .into_iter()
        .map(|row| {
            let mut c = [0.0; N_FEATURES];
            for (dst, src) in c.iter_mut().zip(row) {
                *dst = *src;
            }
            c
        })
        .collect();
    Ok(Fitted { scaling, centroids })
}
