//! The independent demand model that scores recommendations: gradient-boosted trees (forust-ml)
//! on ln units, with the store, product, own and every competitor's log price, deal, feature and
//! the series' recent sales as features, fitted on the training weeks only. It shares nothing
//! with the optimizer's log-log model but the data.

use std::collections::HashMap;

use anyhow::{Context, Result};
use forust_ml::objective::ObjectiveType;
use forust_ml::{GradientBooster, Matrix};

use crate::scanner::{Panel, Row};
use crate::trees::Forest;

/// Boosting options of the simulator.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, clap::Args)]
pub struct GbmParams {
    /// Trees of the gradient-boosted demand simulator.
    #[arg(long = "gbm-trees", default_value_t = 400)]
    pub trees: usize,
    /// Depth of the simulator's trees.
    #[arg(long = "gbm-depth", default_value_t = 6)]
    pub depth: usize,
    /// Learning rate of the simulator.
    #[arg(long = "gbm-learning-rate", default_value_t = 0.1)]
    pub learning_rate: f32,
}

/// Lagged sales of each row: ln units of the series' previous row and the mean of its previous
/// four rows (NaN for a series' first row).
pub fn lags(panel: &Panel) -> HashMap<(u32, u32, u32), (f64, f64)> {
    let mut out = HashMap::with_capacity(panel.rows.len());
    for series in panel.series().values() {
        for (i, r) in series.iter().enumerate() {
            let prev: Vec<f64> = series[i.saturating_sub(4)..i]
                .iter()
                .map(|p| p.units.ln())
                .collect();
            let lag1 = prev.last().copied().unwrap_or(f64::NAN);
            let mean = if prev.is_empty() {
                f64::NAN
            } else {
                prev.iter().sum::<f64>() / prev.len() as f64
            };
            out.insert((r.store, r.product, r.week), (lag1, mean));
        }
    }
    out
}

/// The simulator: the trees and the smearing factor that makes its units unbiased on the
/// training rows.
pub struct Simulator {
    /// The trees, evaluated through [`Forest::view`].
    pub forest: Forest,
    /// Mean exponentiated training residual.
    pub smear: f64,
    /// The lag features of every row of the panel.
    lags: HashMap<(u32, u32, u32), (f64, f64)>,
    /// Options used.
    pub params: GbmParams,
}

impl Simulator {
    /// The feature vector of `row` with every product's price replaced by `prices`.
    pub fn features(&self, row: &Row, prices: &[f64]) -> Vec<f64> {
        let (lag1, lag4) = self
            .lags
            .get(&(row.store, row.product, row.week))
            .copied()
            .unwrap_or((f64::NAN, f64::NAN));
        let mut x = Vec::with_capacity(prices.len() + 7);
        x.push(f64::from(row.store));
        x.push(f64::from(row.product));
        x.push(prices[row.product as usize - 1].ln());
        x.extend(prices.iter().map(|p| p.ln()));
        x.extend([row.deal, row.feature, lag1, lag4]);
        x
    }

    /// Expected units of `row` at `prices`.
    pub fn units(&self, row: &Row, prices: &[f64]) -> f64 {
        self.log_units(row, prices).exp() * self.smear
    }

    /// Predicted ln units of `row` at `prices`.
    pub fn log_units(&self, row: &Row, prices: &[f64]) -> f64 {
        self.forest.view().predict(&self.features(row, prices))
    }

    /// Fits on `train` (rows of `panel`).
    pub fn fit(panel: &Panel, train: &[Row], params: GbmParams) -> Result<Simulator> {
        let mut sim = Simulator {
            forest: Forest::new(0.0, 1.0, Vec::new()),
            smear: 1.0,
            lags: lags(panel),
            params,
        };
        let x: Vec<Vec<f64>> = train.iter().map(|r| sim.features(r, &r.prices)).collect();
        let cols = x[0].len();
        let mut flat = Vec::with_capacity(x.len() * cols);
        for j in 0..cols {
            flat.extend(x.iter().map(|v| v[j]));
        }
        let y: Vec<f64> = train.iter().map(|r| r.units.ln()).collect();
        let matrix = Matrix::new(&flat, x.len(), cols);
        let mut booster = GradientBooster::default()
            .set_objective_type(ObjectiveType::SquaredLoss)
            .set_iterations(params.trees)
            .set_learning_rate(params.learning_rate)
            .set_max_depth(params.depth)
            .set_parallel(true);
        booster
            .fit_unweighted(&matrix, &y, None)
            .context("fitting the gradient-boosted demand simulator")?;
        sim.forest = Forest::from_forust(&booster)?;
        let view = sim.forest.view();
        sim.smear = x
            .iter()
            .zip(&y)
            .map(|(v, y)| (y - view.predict(v)).exp())
            .sum::<f64>()
            / y.len() as f64;
        Ok(sim)
    }
}
