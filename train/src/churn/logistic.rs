//! L2-regularised logistic regression on standardised features, fitted by Newton's method.

/// A fitted logistic regression.
#[derive(Debug, Clone, PartialEq)]
pub struct Logistic {
    /// Means used to standardise each feature.
    pub means: Vec<f64>,
    /// Standard deviations used to standardise each feature.
    pub stds: Vec<f64>,
    /// Intercept.
    pub intercept: f64,
    /// One coefficient per standardised feature.
    pub coef: Vec<f64>,
}

/// Solves `a x = b` (a symmetric positive definite) by Gaussian elimination with pivoting.
#[allow(clippy::needless_range_loop)]
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for c in 0..n {
        let p = (c..n)
            .max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))
            .unwrap_or(c);
        a.swap(c, p);
        b.swap(c, p);
        for r in c + 1..n {
            let f = a[r][c] / a[c][c];
            for k in c..n {
                a[r][k] -= f * a[c][k];
            }
            b[r] -= f * b[c];
        }
    }
    let mut x = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|k| a[r][k] * x[k]).sum();
        x[r] = (b[r] - s) / a[r][r];
    }
    x
}

impl Logistic {
    /// Fits on rows `x` (all the same length) with labels `y` and penalty `l2` on the
    /// coefficients (not the intercept), scaled by the number of rows like scikit-learn's `C`:
    /// the objective is `sum log-loss + l2 / 2 * |coef|^2`.
    pub fn fit(x: &[Vec<f64>], y: &[bool], l2: f64) -> Logistic {
        let n = x.len();
        let d = x[0].len();
        let means: Vec<f64> = (0..d)
            .map(|j| x.iter().map(|r| r[j]).sum::<f64>() / n as f64)
            .collect();
        let stds: Vec<f64> = (0..d)
            .map(|j| {
                let v = x.iter().map(|r| (r[j] - means[j]).powi(2)).sum::<f64>() / n as f64;
                if v > 0.0 { v.sqrt() } else { 1.0 }
            })
            .collect();
        let z: Vec<Vec<f64>> = x
            .iter()
            .map(|r| {
                let mut v = vec![1.0];
                v.extend((0..d).map(|j| (r[j] - means[j]) / stds[j]));
                v
            })
            .collect();
        let mut w = vec![0.0; d + 1];
        for _ in 0..50 {
            let mut grad = vec![0.0; d + 1];
            let mut hess = vec![vec![0.0; d + 1]; d + 1];
            for (zi, &yi) in z.iter().zip(y) {
                let s: f64 = zi.iter().zip(&w).map(|(a, b)| a * b).sum();
                let p = 1.0 / (1.0 + (-s).exp());
                let r = p - if yi { 1.0 } else { 0.0 };
                let h = (p * (1.0 - p)).max(1e-12);
                for a in 0..=d {
                    grad[a] += r * zi[a];
                    for b in 0..=d {
                        hess[a][b] += h * zi[a] * zi[b];
                    }
                }
            }
            for a in 1..=d {
                grad[a] += l2 * w[a];
                hess[a][a] += l2;
            }
            let step = solve(hess, grad);
            let mut moved = 0.0_f64;
            for (wi, si) in w.iter_mut().zip(&step) {
                *wi -= si;
                moved = moved.max(si.abs());
            }
            if moved < 1e-10 {
                break;
            }
        }
        Logistic {
            means,
            stds,
            intercept: w[0],
            coef: w[1..].to_vec(),
        }
    }

    /// The log-odds for one row.
    pub fn log_odds(&self, x: &[f64]) -> f64 {
        self.intercept
            + x.iter()
                .zip(&self.coef)
                .enumerate()
                .map(|(j, (v, c))| c * (v - self.means[j]) / self.stds[j])
                .sum::<f64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_separating_direction() {
        let x: Vec<Vec<f64>> = (0..200).map(|i| vec![i as f64, (i % 7) as f64]).collect();
        let y: Vec<bool> = (0..200).map(|i| (i * 37) % 200 < i).collect();
        let m = Logistic::fit(&x, &y, 1.0);
        assert!(m.coef[0] > 0.5, "{m:?}");
        assert!(m.log_odds(&[190.0, 3.0]) > m.log_odds(&[10.0, 3.0]));
    }
}
