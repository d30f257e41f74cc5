//! Ranking and threshold metrics against 0/1 labels.

use serde::Serialize;

/// The figures of one method on one set of readings.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Figures {
    /// Readings scored.
    pub readings: usize,
    /// Labelled anomalous among them.
    pub positives: usize,
    /// Average precision (area under the precision-recall curve, step-wise, ties grouped).
    pub pr_auc: f64,
    /// Area under the ROC curve (ties count one half).
    pub roc_auc: f64,
    /// The best F1 over all cuts of the score (an oracle: it reads the labels).
    pub best_f1: f64,
    /// The score cut that gives `best_f1` (flag when score >= it).
    pub best_cut: f64,
    /// F1 of the method's own label-free default flags.
    pub default_f1: f64,
    /// Precision of the default flags.
    pub default_precision: f64,
    /// Recall of the default flags.
    pub default_recall: f64,
    /// Readings the default flags.
    pub default_flagged: usize,
}

fn f1(tp: usize, flagged: usize, positives: usize) -> f64 {
    if tp == 0 {
        0.0
    } else {
        2.0 * tp as f64 / (flagged + positives) as f64
    }
}

/// The figures of `scores` with default `flags` against `labels` (1 anomalous).
pub fn figures(scores: &[f64], flags: &[bool], labels: &[u8]) -> Figures {
    let n = scores.len();
    let positives = labels.iter().filter(|&&l| l == 1).count();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    // Walk the cuts from the highest score down, a group of tied scores at a time.
    let (mut tp, mut fp) = (0usize, 0usize);
    let (mut ap, mut best_f1, mut best_cut) = (0.0, 0.0, f64::INFINITY);
    let mut roc = 0.0; // sum over positives of the negatives ranked below (ties half)
    let negatives = n - positives;
    let mut i = 0;
    while i < n {
        let mut j = i;
        let (mut gp, mut gn) = (0, 0);
        while j < n && scores[order[j]] == scores[order[i]] {
            if labels[order[j]] == 1 {
                gp += 1;
            } else {
                gn += 1;
            }
            j += 1;
        }
        // Positives in this group sit above the negatives not yet passed.
        let negatives_below = negatives - fp - gn;
        roc += gp as f64 * (negatives_below as f64 + gn as f64 / 2.0);
        tp += gp;
        fp += gn;
        if positives > 0 && gp > 0 {
            ap += gp as f64 / positives as f64 * tp as f64 / (tp + fp) as f64;
        }
        let f = f1(tp, tp + fp, positives);
        if f > best_f1 {
            best_f1 = f;
            best_cut = scores[order[i]];
        }
        i = j;
    }
    let flagged = flags.iter().filter(|&&f| f).count();
    let dtp = flags
        .iter()
        .zip(labels)
        .filter(|&(&f, &l)| f && l == 1)
        .count();
    Figures {
        readings: n,
        positives,
        pr_auc: ap.min(1.0),
        roc_auc: if positives > 0 && negatives > 0 {
            roc / (positives * negatives) as f64
        } else {
            f64::NAN
        },
        best_f1,
        best_cut,
        default_f1: f1(dtp, flagged, positives),
        default_precision: if flagged > 0 {
            dtp as f64 / flagged as f64
        } else {
            0.0
        },
        default_recall: if positives > 0 {
            dtp as f64 / positives as f64
        } else {
            0.0
        },
        default_flagged: flagged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_and_known_rankings() {
        let f = figures(
            &[0.9, 0.8, 0.1, 0.2],
            &[true, false, false, false],
            &[1, 1, 0, 0],
        );
        assert_eq!((f.pr_auc, f.roc_auc, f.best_f1), (1.0, 1.0, 1.0));
        assert!((f.default_f1 - 2.0 / 3.0).abs() < 1e-12);
        // Ranking: P N P N -> AP = (1/1 + 2/3) / 2; ROC = (2 + 1) / 4.
        let f = figures(&[4.0, 3.0, 2.0, 1.0], &[false; 4], &[1, 0, 1, 0]);
        assert!((f.pr_auc - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        assert!((f.roc_auc - 0.75).abs() < 1e-12);
        assert_eq!(f.default_f1, 0.0);
        // All tied: ROC 0.5, AP = prevalence.
        let f = figures(&[1.0; 4], &[true; 4], &[1, 0, 0, 0]);
        assert!((f.roc_auc - 0.5).abs() < 1e-12 && (f.pr_auc - 0.25).abs() < 1e-12);
    }
}
