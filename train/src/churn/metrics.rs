//! Ranking metrics: ROC AUC and average precision (PR AUC), ties handled exactly.

/// Indices sorted by score, highest first.
fn order(scores: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&i, &j| scores[j].total_cmp(&scores[i]));
    idx
}

/// Area under the ROC curve: the probability that a random positive scores above a random
/// negative, ties counting one half. `NaN` when a class is missing.
pub fn roc_auc(scores: &[f64], positive: &[bool]) -> f64 {
    let idx = order(scores);
    let n_pos = positive.iter().filter(|&&p| p).count() as f64;
    let n_neg = positive.len() as f64 - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return f64::NAN;
    }
    // Walk from the top; every negative in a tie group is beaten by the positives above the
    // group and half-beaten by those in it.
    let (mut pos_above, mut wins) = (0.0, 0.0);
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        let (mut p, mut n) = (0.0, 0.0);
        while j < idx.len() && scores[idx[j]] == scores[idx[i]] {
            if positive[idx[j]] {
                p += 1.0;
            } else {
                n += 1.0;
            }
            j += 1;
        }
        wins += n * (pos_above + 0.5 * p);
        pos_above += p;
        i = j;
    }
    wins / (n_pos * n_neg)
}

/// Average precision (scikit-learn's `average_precision_score`): the sum over distinct score
/// thresholds, highest first, of precision times the recall gained. `NaN` without positives.
pub fn average_precision(scores: &[f64], positive: &[bool]) -> f64 {
    let idx = order(scores);
    let n_pos = positive.iter().filter(|&&p| p).count() as f64;
    if n_pos == 0.0 {
        return f64::NAN;
    }
    let (mut tp, mut seen, mut ap) = (0.0, 0.0, 0.0);
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        let mut p = 0.0;
        while j < idx.len() && scores[idx[j]] == scores[idx[i]] {
            if positive[idx[j]] {
                p += 1.0;
            }
            j += 1;
        }
        tp += p;
        seen += (j - i) as f64;
        ap += (p / n_pos) * (tp / seen);
        i = j;
    }
    ap
}

/// Mean log-loss of probabilities `p` for labels `y`.
pub fn log_loss(p: &[f64], y: &[bool]) -> f64 {
    let eps = 1e-12;
    p.iter()
        .zip(y)
        .map(|(&p, &y)| {
            let p = p.clamp(eps, 1.0 - eps);
            if y { -p.ln() } else { -(1.0 - p).ln() }
        })
        .sum::<f64>()
        / p.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        let y = [true, false, true, false];
        assert_eq!(roc_auc(&[0.9, 0.1, 0.8, 0.2], &y), 1.0);
        assert_eq!(roc_auc(&[0.1, 0.9, 0.2, 0.8], &y), 0.0);
        assert_eq!(roc_auc(&[0.5; 4], &y), 0.5);
        // scikit-learn: average_precision_score([1,0,1,0], [0.9,0.8,0.7,0.1]) = (1 + 2/3) / 2.
        let ap = average_precision(&[0.9, 0.8, 0.7, 0.1], &y);
        assert!((ap - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        assert_eq!(average_precision(&[0.5; 4], &y), 0.5);
    }
}
