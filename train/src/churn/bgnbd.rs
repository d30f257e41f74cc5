//! Fitting BG/NBD by maximum likelihood (Fader, Hardie & Lee 2005, eq. 6) with Nelder–Mead on
//! the logarithms of the four parameters.

use trademl_model_churn::model::{BgNbd, Customer, DAYS_PER_WEEK};

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; ~15 significant digits).
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection.
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, &c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// The mean log-likelihood of the customers under `p` (time in weeks).
pub fn mean_log_likelihood(p: &BgNbd, customers: &[Customer]) -> f64 {
    let BgNbd { r, alpha, a, b } = *p;
    let base = -ln_gamma(r) + r * alpha.ln() + ln_gamma(a + b) - ln_gamma(b);
    let mut sum = 0.0;
    for c in customers {
        let x = c.frequency;
        let tx = (c.tenure_days - c.recency_days) / DAYS_PER_WEEK;
        let t = c.tenure_days / DAYS_PER_WEEK;
        let a1 = ln_gamma(r + x) + ln_gamma(b + x) - ln_gamma(a + b + x);
        let a3 = -(r + x) * (alpha + t).ln();
        let tail = if x > 0.0 {
            let a4 = a.ln() - (b + x - 1.0).ln() - (r + x) * (alpha + tx).ln();
            let m = a3.max(a4);
            m + ((a3 - m).exp() + (a4 - m).exp()).ln()
        } else {
            a3
        };
        sum += base + a1 + tail;
    }
    sum / customers.len() as f64
}

#[allow(clippy::needless_range_loop)]
/// Minimises `f` from `start` with Nelder–Mead (standard coefficients); returns the best point.
pub fn nelder_mead<const D: usize>(
    f: impl Fn(&[f64; D]) -> f64,
    start: [f64; D],
    step: f64,
    max_iter: usize,
    tol: f64,
) -> [f64; D] {
    let mut simplex: Vec<([f64; D], f64)> = Vec::with_capacity(D + 1);
    simplex.push((start, f(&start)));
    for i in 0..D {
        let mut p = start;
        p[i] += step;
        simplex.push((p, f(&p)));
    }
    let value = |v: f64| if v.is_finite() { v } else { f64::INFINITY };
    for s in &mut simplex {
        s.1 = value(s.1);
    }
    for _ in 0..max_iter {
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        if (simplex[D].1 - simplex[0].1).abs() <= tol * (1.0 + simplex[0].1.abs()) {
            break;
        }
        let mut centroid = [0.0; D];
        for (p, _) in &simplex[..D] {
            for j in 0..D {
                centroid[j] += p[j] / D as f64;
            }
        }
        let along = |t: f64| {
            let mut p = [0.0; D];
            for j in 0..D {
                p[j] = centroid[j] + t * (simplex[D].0[j] - centroid[j]);
            }
            p
        };
        let reflected = along(-1.0);
        let fr = value(f(&reflected));
        if fr < simplex[0].1 {
            let expanded = along(-2.0);
            let fe = value(f(&expanded));
            simplex[D] = if fe < fr {
                (expanded, fe)
            } else {
                (reflected, fr)
            };
        } else if fr < simplex[D - 1].1 {
            simplex[D] = (reflected, fr);
        } else {
            let contracted = if fr < simplex[D].1 {
                along(-0.5)
            } else {
                along(0.5)
            };
            let fc = value(f(&contracted));
            if fc < simplex[D].1.min(fr) {
                simplex[D] = (contracted, fc);
            } else {
                let best = simplex[0].0;
                for s in simplex.iter_mut().skip(1) {
                    for j in 0..D {
                        s.0[j] = best[j] + 0.5 * (s.0[j] - best[j]);
                    }
                    s.1 = value(f(&s.0));
                }
            }
        }
    }
    simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
    simplex[0].0
}

/// Fits r, alpha, a, b by maximum likelihood (all four positive).
pub fn fit(customers: &[Customer]) -> BgNbd {
    let params = |l: &[f64; 4]| BgNbd {
        r: l[0].exp(),
        alpha: l[1].exp(),
        a: l[2].exp(),
        b: l[3].exp(),
    };
    let objective = |l: &[f64; 4]| -mean_log_likelihood(&params(l), customers);
    // Restart from the optimum until it stops moving (Nelder–Mead can stall).
    let mut best = [0.0, 1.0, 0.0, 0.0];
    let mut value = objective(&best);
    for _ in 0..6 {
        let next = nelder_mead(objective, best, 0.5, 4000, 1e-12);
        let v = objective(&next);
        best = next;
        if value - v < 1e-10 {
            break;
        }
        value = v;
    }
    params(&best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_gamma_known_values() {
        assert!(ln_gamma(1.0).abs() < 1e-13);
        assert!((ln_gamma(5.0) - 24.0_f64.ln()).abs() < 1e-12);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
        assert!((ln_gamma(0.1) - 2.252_712_651_734_206).abs() < 1e-11);
    }

    #[test]
    fn nelder_mead_finds_a_quadratic_minimum() {
        let p = nelder_mead(
            |x: &[f64; 2]| (x[0] - 1.0).powi(2) + 3.0 * (x[1] + 2.0).powi(2),
            [0.0, 0.0],
            0.5,
            2000,
            1e-14,
        );
        assert!(
            (p[0] - 1.0).abs() < 1e-5 && (p[1] + 2.0).abs() < 1e-5,
            "{p:?}"
        );
    }
}
