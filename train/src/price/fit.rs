//! Fitting the optimizer's demand model: per-product log-log regressions with store fixed
//! effects (within-store demeaning), ridge-shrunk towards the coefficients pooled over all
//! products (partial pooling), the shrinkage chosen on an inner split of the training weeks.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use trademl_model_price_optimizer::model::{Demand, regressors};

use crate::scanner::Row;

/// Which regressors a fit uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Spec {
    /// Own price, competitor group indices, deal and feature.
    Full,
    /// Own price only (the task's simple baseline).
    OwnPriceOnly,
}

/// A fitted demand model, owned tables (see [`Demand`] for their layout).
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    /// Products.
    pub products: usize,
    /// Groups.
    pub groups: usize,
    /// Each product's group.
    pub group_of: Vec<usize>,
    /// N × (G + 3) coefficients.
    pub coefficients: Vec<f64>,
    /// Pooled coefficients (the shrinkage target), G + 3.
    pub pooled: Vec<f64>,
    /// Stores, ascending.
    pub stores: Vec<u32>,
    /// Stores × products intercepts, NaN if unseen.
    pub intercepts: Vec<f64>,
    /// Products' average intercepts.
    pub product_intercepts: Vec<f64>,
    /// Smearing factors.
    pub smear: Vec<f64>,
    /// Stores × products lowest training price (empty: no range constraint).
    pub low: Vec<f64>,
    /// Stores × products highest training price.
    pub high: Vec<f64>,
    /// Products' lowest training price.
    pub product_low: Vec<f64>,
    /// Products' highest training price.
    pub product_high: Vec<f64>,
    /// The shrinkage used.
    pub lambda: f64,
    /// Training rows.
    pub rows: usize,
}

impl Fitted {
    /// The model as the component evaluates it.
    pub fn demand(&self) -> Demand<'_> {
        Demand {
            products: self.products,
            groups: self.groups,
            group_of: &self.group_of,
            coefficients: &self.coefficients,
            stores: &self.stores,
            intercepts: &self.intercepts,
            product_intercepts: &self.product_intercepts,
            smear: &self.smear,
            low: &self.low,
            high: &self.high,
            product_low: &self.product_low,
            product_high: &self.product_high,
        }
    }

    /// Predicted ln units of a row at its own prices (without smearing).
    pub fn log_units(&self, row: &Row) -> f64 {
        let lp: Vec<f64> = row.prices.iter().map(|p| p.ln()).collect();
        let d = self.demand();
        d.log_units(
            d.store_index(row.store),
            row.product as usize - 1,
            &lp,
            row.deal,
            row.feature,
        )
    }
}

/// Solves the symmetric positive definite system `a x = b` (n × n, row-major) by Cholesky.
fn solve_spd(a: &[f64], b: &[f64]) -> Result<Vec<f64>> {
    let n = b.len();
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= l[i * n + k] * l[j * n + k];
            }
            if i == j {
                if s <= 1e-12 * a[i * n + i].abs().max(1e-300) {
                    bail!("the regressors are collinear (pivot {i} is {s})");
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    let mut y = vec![0.0; n];
    for i in 0..n {
        let s: f64 = (0..i).map(|k| l[i * n + k] * y[k]).sum();
        y[i] = (b[i] - s) / l[i * n + i];
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|k| l[k * n + i] * x[k]).sum();
        x[i] = (y[i] - s) / l[i * n + i];
    }
    Ok(x)
}

/// One product's training rows as regressors, demeaned within each store.
struct Demeaned {
    x: Vec<Vec<f64>>,
    y: Vec<f64>,
}

fn demeaned(rows: &[&Row], group_of: &[usize], groups: usize, active: &[bool]) -> Demeaned {
    let w = groups + 3;
    let mut by_store: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        by_store.entry(r.store).or_default().push(i);
    }
    let mut x = vec![vec![0.0; w]; rows.len()];
    let mut y: Vec<f64> = rows.iter().map(|r| r.units.ln()).collect();
    let mut lp = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        lp.clear();
        lp.extend(r.prices.iter().map(|p| p.ln()));
        regressors(
            group_of,
            groups,
            r.product as usize - 1,
            &lp,
            r.deal,
            r.feature,
            &mut x[i],
        );
        for (v, &a) in x[i].iter_mut().zip(active) {
            if !a {
                *v = 0.0;
            }
        }
    }
    for idx in by_store.values() {
        let m = idx.len() as f64;
        let ybar = idx.iter().map(|&i| y[i]).sum::<f64>() / m;
        let mut xbar = vec![0.0; w];
        for &i in idx {
            for (s, v) in xbar.iter_mut().zip(&x[i]) {
                *s += v / m;
            }
        }
        for &i in idx {
            for (v, s) in x[i].iter_mut().zip(&xbar) {
                *v -= s;
            }
        }
        for &i in idx {
            y[i] -= ybar;
        }
    }
    Demeaned { x, y }
}

/// Ridge towards `target` on the active regressors: minimises
/// `Σ (y − xβ)² + λ·n·Σ_active (β − target)²` (a tiny ridge keeps constant columns solvable).
fn ridge(data: &[&Demeaned], active: &[bool], lambda: f64, target: &[f64]) -> Result<Vec<f64>> {
    let idx: Vec<usize> = (0..active.len()).filter(|&j| active[j]).collect();
    let k = idx.len();
    let mut a = vec![0.0; k * k];
    let mut b = vec![0.0; k];
    let mut n = 0usize;
    for d in data {
        for (x, y) in d.x.iter().zip(&d.y) {
            for (p, &jp) in idx.iter().enumerate() {
                b[p] += x[jp] * y;
                for (q, &jq) in idx.iter().enumerate() {
                    a[p * k + q] += x[jp] * x[jq];
                }
            }
        }
        n += d.y.len();
    }
    let penalty = lambda * n as f64;
    for (p, &jp) in idx.iter().enumerate() {
        // A regressor constant within stores (a group with no other product) gets the target.
        let scale = a[p * k + p].max(1.0);
        a[p * k + p] += penalty + 1e-9 * scale;
        b[p] += penalty * target[jp];
    }
    let sol = solve_spd(&a, &b)?;
    let mut beta = vec![0.0; active.len()];
    for (p, &jp) in idx.iter().enumerate() {
        beta[jp] = sol[p];
    }
    Ok(beta)
}

/// Fits the demand model on `rows` (the training rows, any order). `lambda` is the shrinkage
/// towards the pooled coefficients (0 = each product on its own); `ranges` keeps the observed
/// price ranges for the optimiser.
pub fn fit(
    rows: &[Row],
    products: usize,
    group_of: &[usize],
    groups: usize,
    spec: Spec,
    lambda: f64,
    ranges: bool,
) -> Result<Fitted> {
    let w = groups + 3;
    let active: Vec<bool> = (0..w).map(|j| spec == Spec::Full || j == 0).collect();
    let mut per_product: Vec<Vec<&Row>> = vec![Vec::new(); products];
    for r in rows {
        per_product[r.product as usize - 1].push(r);
    }
    for (b, rs) in per_product.iter().enumerate() {
        if rs.len() < 2 * w {
            bail!(
                "product {} has {} training rows; at least {} are needed to fit its demand",
                b + 1,
                rs.len(),
                2 * w
            );
        }
    }
    let data: Vec<Demeaned> = per_product
        .iter()
        .map(|rs| demeaned(rs, group_of, groups, &active))
        .collect();
    let all: Vec<&Demeaned> = data.iter().collect();
    let pooled = ridge(&all, &active, 0.0, &vec![0.0; w])?;
    let mut coefficients = Vec::with_capacity(products * w);
    for d in &data {
        coefficients.extend(ridge(&[d], &active, lambda, &pooled)?);
    }

    let mut stores: Vec<u32> = rows.iter().map(|r| r.store).collect();
    stores.sort_unstable();
    stores.dedup();
    let s_of = |s: u32| stores.binary_search(&s).expect("a training store");
    let mut sum = vec![0.0; stores.len() * products];
    let mut count = vec![0usize; stores.len() * products];
    let mut low = vec![f64::NAN; stores.len() * products];
    let mut high = vec![f64::NAN; stores.len() * products];
    let mut product_low = vec![f64::INFINITY; products];
    let mut product_high = vec![f64::NEG_INFINITY; products];
    let mut x = vec![0.0; w];
    let mut lp = Vec::new();
    let linear = |r: &Row, x: &mut [f64], lp: &mut Vec<f64>| {
        lp.clear();
        lp.extend(r.prices.iter().map(|p| p.ln()));
        let b = r.product as usize - 1;
        regressors(group_of, groups, b, lp, r.deal, r.feature, x);
        x.iter()
            .zip(&coefficients[b * w..(b + 1) * w])
            .map(|(v, c)| v * c)
            .sum::<f64>()
    };
    for r in rows {
        let b = r.product as usize - 1;
        let cell = s_of(r.store) * products + b;
        sum[cell] += r.units.ln() - linear(r, &mut x, &mut lp);
        count[cell] += 1;
        let p = r.price();
        low[cell] = if low[cell].is_nan() {
            p
        } else {
            low[cell].min(p)
        };
        high[cell] = if high[cell].is_nan() {
            p
        } else {
            high[cell].max(p)
        };
        product_low[b] = product_low[b].min(p);
        product_high[b] = product_high[b].max(p);
    }
    let intercepts: Vec<f64> = sum
        .iter()
        .zip(&count)
        .map(|(s, &c)| if c > 0 { s / c as f64 } else { f64::NAN })
        .collect();
    let product_intercepts: Vec<f64> = (0..products)
        .map(|b| {
            let v: Vec<f64> = (0..stores.len())
                .map(|s| intercepts[s * products + b])
                .filter(|a| a.is_finite())
                .collect();
            v.iter().sum::<f64>() / v.len() as f64
        })
        .collect();
    let mut smear_sum = vec![0.0; products];
    let mut smear_n = vec![0usize; products];
    for r in rows {
        let b = r.product as usize - 1;
        let a = intercepts[s_of(r.store) * products + b];
        smear_sum[b] += (r.units.ln() - a - linear(r, &mut x, &mut lp)).exp();
        smear_n[b] += 1;
    }
    let smear = smear_sum
        .iter()
        .zip(&smear_n)
        .map(|(s, &n)| s / n as f64)
        .collect();
    Ok(Fitted {
        products,
        groups,
        group_of: group_of.to_vec(),
        coefficients,
        pooled,
        stores,
        intercepts,
        product_intercepts,
        smear,
        low: if ranges { low } else { Vec::new() },
        high: if ranges { high } else { Vec::new() },
        product_low,
        product_high,
        lambda,
        rows: rows.len(),
    })
}

/// Mean squared error of ln units over `rows`.
pub fn log_mse(model: &Fitted, rows: &[Row]) -> f64 {
    rows.iter()
        .map(|r| (model.log_units(r) - r.units.ln()).powi(2))
        .sum::<f64>()
        / rows.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_solves_a_small_system() {
        let a = [4.0, 2.0, 2.0, 3.0];
        let x = solve_spd(&a, &[2.0, 1.0]).unwrap();
        assert!((4.0 * x[0] + 2.0 * x[1] - 2.0).abs() < 1e-12);
        assert!((2.0 * x[0] + 3.0 * x[1] - 1.0).abs() < 1e-12);
        assert!(solve_spd(&[1.0, 1.0, 1.0, 1.0], &[1.0, 1.0]).is_err());
    }
}
