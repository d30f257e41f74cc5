//! The held-out figures of a promotion model.

use serde::Serialize;

use super::data::Event;

/// The figures of one method on a set of events.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// Events scored.
    pub events: usize,
    /// 1 − WAPE of promotion-week units: 1 − Σ|û − u| / Σu.
    pub units: f64,
    /// 1 − WAPE of lift on incremental units: 1 − Σ|(û − b) − (u − b)| / Σ|u − b|.
    pub lift: f64,
    /// 1 − WAPE of the lift ratio: 1 − Σ|û/b − u/b| / Σ u/b (a secondary reading).
    pub lift_ratio: f64,
    /// Spearman rank correlation of predicted and actual lift.
    pub spearman: f64,
    /// Share of events whose predicted ROI has the sign of the actual ROI.
    pub roi_sign: f64,
}

/// Ranks (1-based), ties given their mean rank.
pub fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let mean = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = mean;
        }
        i = j + 1;
    }
    r
}

/// Pearson correlation (NaN when either side is constant).
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    sab / (saa * sbb).sqrt()
}

/// Spearman rank correlation.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    pearson(&ranks(a), &ranks(b))
}

/// The figures of predicted units `pred` (one per event).
pub fn figures(events: &[Event], pred: &[f64]) -> Figures {
    let (mut au, mut eu, mut ai, mut ei, mut ar, mut er, mut signs) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0);
    let mut pl = Vec::with_capacity(events.len());
    let mut al = Vec::with_capacity(events.len());
    for (e, &p) in events.iter().zip(pred) {
        let b = e.promotion.baseline_units;
        au += e.units;
        eu += (p - e.units).abs();
        ai += (e.units - b).abs();
        ei += ((p - b) - (e.units - b)).abs();
        ar += e.units / b;
        er += (p / b - e.units / b).abs();
        pl.push(p / b);
        al.push(e.units / b);
        let (pr, ar) = (e.promotion.outcome(p).roi, e.promotion.outcome(e.units).roi);
        if (pr > 0.0) == (ar > 0.0) {
            signs += 1;
        }
    }
    Figures {
        events: events.len(),
        units: 1.0 - eu / au,
        lift: 1.0 - ei / ai,
        lift_ratio: 1.0 - er / ar,
        spearman: spearman(&pl, &al),
        roi_sign: signs as f64 / events.len() as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_share_ties_and_spearman_is_one_for_a_monotone_map() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
        let a = [1.0, 5.0, 2.0, 9.0];
        let b: Vec<f64> = a.iter().map(|x: &f64| x.exp()).collect();
        assert!((spearman(&a, &b) - 1.0).abs() < 1e-12);
        assert!((spearman(&a, &[4.0, 1.0, 3.0, 0.0]) + 1.0).abs() < 1e-12);
    }
}
