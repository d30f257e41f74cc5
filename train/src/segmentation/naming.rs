//! Readable segments: a deterministic order, a name from the centroid's shape, and a profile line.

use trademl_model_customer_segmentation::model::{Customer, N_FEATURES};

/// The order segments are numbered in: most valuable first, by `z(F) + z(M) - z(R)` of the
/// centroid (ties by the original index). Returns the original cluster index of each position.
pub fn value_order(centroids: &[[f64; N_FEATURES]]) -> Vec<usize> {
    let value = |c: &[f64; N_FEATURES]| c[1] + c[2] - c[0];
    let mut order: Vec<usize> = (0..centroids.len()).collect();
    order.sort_by(|&a, &b| {
        value(&centroids[b])
            .total_cmp(&value(&centroids[a]))
            .then(a.cmp(&b))
    });
    order
}

/// Median recency (days) up to which a segment counts as buying now.
pub const RECENT_DAYS: f64 = 30.0;

/// The base name of a segment from its profile (medians) and centroid (scaled space):
///
/// - repeat buyers (median frequency >= 2) bought in the last [`RECENT_DAYS`]: the most frequent
///   such segment is "champions", the others "active regulars";
/// - repeat buyers who have not: "at-risk regulars";
/// - one-time buyers (median frequency 1) who bought recently: "new customers";
/// - the other one-time buyers: "one-time big spenders" or "one-time small spenders" by the sign
///   of their centroid's monetary value.
fn base_name(profiles: &[Profile], centroids: &[[f64; N_FEATURES]], s: usize) -> &'static str {
    let p = &profiles[s];
    let recent = |p: &Profile| p.recency_days <= RECENT_DAYS;
    if p.frequency >= 2.0 {
        if !recent(p) {
            return "at-risk regulars";
        }
        let top = (0..profiles.len())
            .filter(|&o| profiles[o].frequency >= 2.0 && recent(&profiles[o]))
            .max_by(|&a, &b| {
                centroids[a][1]
                    .total_cmp(&centroids[b][1])
                    .then(centroids[a][2].total_cmp(&centroids[b][2]))
                    .then(b.cmp(&a))
            });
        if top == Some(s) {
            "champions"
        } else {
            "active regulars"
        }
    } else if recent(p) {
        "new customers"
    } else if centroids[s][2] > 0.0 {
        "one-time big spenders"
    } else {
        "one-time small spenders"
    }
}

/// One distinct name per segment: the base name, and where two segments share it, a qualifier
/// by tenure ("joined earlier" / "joined later") when their centroids' tenures differ by more
/// than half a standard deviation, else by spend ("higher spend" / "lower spend"); three or
/// more sharing a name are numbered in segment order.
pub fn names(profiles: &[Profile], centroids: &[[f64; N_FEATURES]]) -> Vec<String> {
    let base: Vec<&str> = (0..profiles.len())
        .map(|s| base_name(profiles, centroids, s))
        .collect();
    let mut names: Vec<String> = base.iter().map(|b| b.to_string()).collect();
    for (s, b) in base.iter().enumerate() {
        let group: Vec<usize> = (0..base.len()).filter(|&o| base[o] == *b).collect();
        if group.len() == 2 {
            let other = if group[0] == s { group[1] } else { group[0] };
            let (t, to) = (centroids[s][3], centroids[other][3]);
            names[s] = if (t - to).abs() > 0.5 {
                format!("{b}, joined {}", if t > to { "earlier" } else { "later" })
            } else {
                let higher = (centroids[s][2], other) > (centroids[other][2], s);
                format!("{b}, {} spend", if higher { "higher" } else { "lower" })
            };
        } else if group.len() > 2 {
            let rank = group.iter().position(|&o| o == s).unwrap_or(0) + 1;
            names[s] = format!("{b} {rank}");
        }
    }
    names
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The median figures and share of one segment's customers.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Profile {
    /// Customers in the segment.
    pub customers: usize,
    /// Their share of all customers.
    pub share: f64,
    /// Median days since the last purchase.
    pub recency_days: f64,
    /// Median purchase days.
    pub frequency: f64,
    /// Median average spend per purchase day, USD.
    pub monetary_value: f64,
    /// Median days since the first purchase.
    pub tenure_days: f64,
}

impl Profile {
    /// The profile of the customers labelled `segment`.
    pub fn of(customers: &[Customer], labels: &[usize], segment: usize) -> Self {
        let members: Vec<&Customer> = customers
            .iter()
            .zip(labels)
            .filter(|&(_, &l)| l == segment)
            .map(|(c, _)| c)
            .collect();
        let col = |f: fn(&Customer) -> f64| median(members.iter().map(|c| f(c)).collect());
        Profile {
            customers: members.len(),
            share: members.len() as f64 / customers.len().max(1) as f64,
            recency_days: col(|c| c.recency_days),
            frequency: col(|c| c.frequency),
            monetary_value: col(|c| c.monetary_value),
            tenure_days: col(|c| c.tenure_days),
        }
    }

    /// One line: medians and share.
    pub fn line(&self) -> String {
        format!(
            "median {:.0} days since last purchase, {:.0} purchase day{}, ${:.2} per purchase day, \
             {:.0} days tenure, {:.1}% of customers",
            self.recency_days,
            self.frequency,
            if self.frequency == 1.0 { "" } else { "s" },
            self.monetary_value,
            self.tenure_days,
            100.0 * self.share
        )
    }
}
