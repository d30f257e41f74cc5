//! The model's arithmetic and its interface, in plain Rust with no dependencies.
//!
//! Everything here builds natively and for `wasm32-wasip2`: the component calls it with the
//! weights compiled in ([`Segmenter::builtin`]); the trainer calls it with freshly fitted
//! weights, to compute the manifest's examples and the description it writes, so that the
//! manifest and the component's `metadata()` come from one source.

use core::fmt;

use crate::weights;

/// The model's name, as used in URLs (`/v2/models/customer-segmentation`).
pub const NAME: &str = "customer-segmentation";
/// The model's version.
pub const VERSION: &str = "1.0.2";
/// The number of features per customer.
pub const N_FEATURES: usize = 4;

/// One input or output of the model, independent of any binding's types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoSpec {
    /// The tensor's name.
    pub name: &'static str,
    /// The Open Inference Protocol datatype: `FP64`, `INT64` or `BYTES`.
    pub datatype: &'static str,
    /// The shape; `-1` is the batch dimension.
    pub shape: Vec<i64>,
    /// Units and meaning.
    pub description: &'static str,
}

/// The input tensors, in feature order; each is FP64, shape `[-1]`, one element per customer.
pub const INPUTS: [(&str, &str); N_FEATURES] = [
    (
        "recency_days",
        "Days from the customer's last purchase to the analysis date (0 = bought on that day); \
         a number >= 0 and <= tenure_days.",
    ),
    (
        "frequency",
        "Number of purchase occasions up to the analysis date, counted as distinct calendar days \
         with at least one purchase (several orders on one day count once); a whole number >= 1.",
    ),
    (
        "monetary_value",
        "Average spend per purchase occasion in US dollars: total spend up to the analysis date \
         divided by frequency; a number >= 0.",
    ),
    (
        "tenure_days",
        "Days from the customer's first purchase to the analysis date; a number >= recency_days.",
    ),
];

/// Description of the `segment_id` output.
pub const SEGMENT_ID_DESCRIPTION: &str = "The customer's segment, 0..k-1 (see the model \
     description for each segment's name and profile); the nearest centroid in the scaled space.";
/// Description of the `segment_name` output.
pub const SEGMENT_NAME_DESCRIPTION: &str =
    "The segment's name (UTF-8), e.g. \"champions\"; one per customer.";
/// Description of the `centroid_distances` output.
pub const CENTROID_DISTANCES_DESCRIPTION: &str = "Euclidean distance from the customer to each \
     segment's centroid, column j for segment j, in the scaled space (log1p of each feature, then \
     standardised with the training means and standard deviations); the smallest is the customer's \
     segment.";

/// The inputs the model accepts.
pub fn input_specs() -> Vec<IoSpec> {
    INPUTS
        .iter()
        .map(|&(name, description)| IoSpec {
            name,
            datatype: "FP64",
            shape: vec![-1],
            description,
        })
        .collect()
}

/// The outputs the model returns, for a model of `k` segments.
pub fn output_specs(k: usize) -> Vec<IoSpec> {
    vec![
        IoSpec {
            name: "segment_id",
            datatype: "INT64",
            shape: vec![-1],
            description: SEGMENT_ID_DESCRIPTION,
        },
        IoSpec {
            name: "segment_name",
            datatype: "BYTES",
            shape: vec![-1],
            description: SEGMENT_NAME_DESCRIPTION,
        },
        IoSpec {
            name: "centroid_distances",
            datatype: "FP64",
            shape: vec![-1, k as i64],
            description: CENTROID_DISTANCES_DESCRIPTION,
        },
    ]
}

/// The model description: what it predicts, from what (`trained_on`, e.g. the data file and
/// analysis date), and each segment with its profile.
pub fn description(trained_on: &str, names: &[&str], profiles: &[&str]) -> String {
    let mut text = format!(
        "Assigns each customer to one of {} segments by k-means on recency, frequency, average \
         spend per purchase day and tenure (log1p, then standardised), trained on {trained_on}. \
         Segments:",
        names.len()
    );
    for (i, (name, profile)) in names.iter().zip(profiles).enumerate() {
        text.push_str(&format!(" {i} {name}: {profile};"));
    }
    text.pop();
    text.push('.');
    text
}

/// The description of the built-in model.
pub fn builtin_description() -> String {
    description(
        weights::TRAINED_ON,
        &weights::SEGMENT_NAMES,
        &weights::SEGMENT_PROFILES,
    )
}

/// One customer's raw figures, in the units of [`INPUTS`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Customer {
    /// Days since the last purchase.
    pub recency_days: f64,
    /// Distinct purchase days.
    pub frequency: f64,
    /// Average spend per purchase day, USD.
    pub monetary_value: f64,
    /// Days since the first purchase.
    pub tenure_days: f64,
}

impl Customer {
    /// The figures in feature order.
    pub fn features(&self) -> [f64; N_FEATURES] {
        [
            self.recency_days,
            self.frequency,
            self.monetary_value,
            self.tenure_days,
        ]
    }

    /// Checks that the figures describe a possible customer; `row` is named in the error.
    pub fn validate(&self, row: usize) -> Result<(), InputError> {
        let fail = |field: &'static str, value: f64, rule: &'static str| {
            Err(InputError {
                row,
                field,
                value,
                rule,
            })
        };
        for (&(field, _), value) in INPUTS.iter().zip(self.features()) {
            if !value.is_finite() {
                return fail(field, value, "must be a finite number");
            }
            if value < 0.0 {
                return fail(field, value, "must be >= 0");
            }
        }
        if self.frequency < 1.0 {
            return fail(
                "frequency",
                self.frequency,
                "must be >= 1 (one purchase day at least)",
            );
        }
        if self.frequency.fract() != 0.0 {
            return fail(
                "frequency",
                self.frequency,
                "must be a whole number of purchase days",
            );
        }
        if self.recency_days > self.tenure_days {
            return fail(
                "recency_days",
                self.recency_days,
                "must be <= tenure_days (the last purchase cannot precede the first)",
            );
        }
        if self.frequency > self.tenure_days + 1.0 {
            return fail(
                "frequency",
                self.frequency,
                "must be <= tenure_days + 1 (at most one purchase day per day of tenure)",
            );
        }
        Ok(())
    }
}

/// Why a row was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct InputError {
    /// The row, counted from 0.
    pub row: usize,
    /// The input tensor's name.
    pub field: &'static str,
    /// The refused value.
    pub value: f64,
    /// The rule it breaks.
    pub rule: &'static str,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "row {}: {} = {} {}",
            self.row, self.field, self.value, self.rule
        )
    }
}

impl std::error::Error for InputError {}

/// The scaling of raw figures into the clustering space: `(ln(1 + x) - mean) / std` per feature.
pub fn scale(
    raw: &[f64; N_FEATURES],
    means: &[f64; N_FEATURES],
    stds: &[f64; N_FEATURES],
) -> [f64; N_FEATURES] {
    let mut z = [0.0; N_FEATURES];
    for j in 0..N_FEATURES {
        z[j] = (raw[j].ln_1p() - means[j]) / stds[j];
    }
    z
}

/// A fitted segmentation: scaling and centroids (in the scaled space).
#[derive(Debug, Clone, Copy)]
pub struct Segmenter<'a> {
    /// Mean of `ln(1 + x)` per feature over the training customers.
    pub means: &'a [f64; N_FEATURES],
    /// Standard deviation of `ln(1 + x)` per feature.
    pub stds: &'a [f64; N_FEATURES],
    /// One centroid per segment, in the scaled space.
    pub centroids: &'a [[f64; N_FEATURES]],
    /// One name per segment.
    pub names: &'a [&'a str],
}

/// One customer's assignment.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// The segment, the index of the nearest centroid.
    pub segment: usize,
    /// Euclidean distance to each centroid in the scaled space.
    pub distances: Vec<f64>,
}

/// A batch's assignments.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignments {
    /// Each customer's segment.
    pub segments: Vec<usize>,
    /// Each customer's distance to each centroid, row-major: `k` per customer.
    pub distances: Vec<f64>,
}

impl Segmenter<'static> {
    /// The model compiled into this crate (`weights.rs`).
    pub fn builtin() -> Self {
        Segmenter {
            means: &weights::MEANS,
            stds: &weights::STDS,
            centroids: &weights::CENTROIDS,
            names: &weights::SEGMENT_NAMES,
        }
    }
}

impl Segmenter<'_> {
    /// The number of segments.
    pub fn k(&self) -> usize {
        self.centroids.len()
    }

    /// The segment of one valid customer: the nearest centroid by squared Euclidean distance
    /// (ties go to the lower index).
    pub fn assign(&self, customer: &Customer) -> Assignment {
        let mut distances = vec![0.0; self.k()];
        let segment = self.nearest(customer, &mut distances);
        Assignment { segment, distances }
    }

    /// [`Self::assign`] without an allocation: writes the distance to each centroid into
    /// `distances` (one per segment) and returns the segment. A batch writes its rows' distances
    /// straight into the output tensor this way: inside the sandbox each allocation goes through
    /// the guest's allocator, which costs more than the host's.
    pub fn nearest(&self, customer: &Customer, distances: &mut [f64]) -> usize {
        assert_eq!(distances.len(), self.k(), "one distance per segment");
        let z = scale(&customer.features(), self.means, self.stds);
        let mut best = 0;
        let mut best_sq = f64::INFINITY;
        for (c, (centroid, distance)) in self.centroids.iter().zip(distances).enumerate() {
            let sq: f64 = z.iter().zip(centroid).map(|(a, b)| (a - b) * (a - b)).sum();
            if sq < best_sq {
                best_sq = sq;
                best = c;
            }
            *distance = sq.sqrt();
        }
        best
    }

    /// Validates then assigns every customer; the first invalid row fails the batch. The
    /// distances of all rows go into one row-major buffer, with no allocation per row.
    pub fn assign_all(&self, customers: &[Customer]) -> Result<Assignments, InputError> {
        let k = self.k();
        let mut segments = Vec::with_capacity(customers.len());
        let mut distances = vec![0.0; customers.len() * k];
        for (row, (customer, row_distances)) in customers
            .iter()
            .zip(distances.chunks_exact_mut(k))
            .enumerate()
        {
            customer.validate(row)?;
            segments.push(self.nearest(customer, row_distances));
        }
        Ok(Assignments {
            segments,
            distances,
        })
    }
}

/// Builds customers from the four input columns; they must have equal lengths.
pub fn customers_from_columns(
    recency_days: &[f64],
    frequency: &[f64],
    monetary_value: &[f64],
    tenure_days: &[f64],
) -> Result<Vec<Customer>, String> {
    let n = recency_days.len();
    for (&(name, _), len) in INPUTS.iter().zip([
        recency_days.len(),
        frequency.len(),
        monetary_value.len(),
        tenure_days.len(),
    ]) {
        if len != n {
            return Err(format!(
                "input {name} has {len} elements but recency_days has {n}: every input needs one \
                 element per customer"
            ));
        }
    }
    Ok((0..n)
        .map(|i| Customer {
            recency_days: recency_days[i],
            frequency: frequency[i],
            monetary_value: monetary_value[i],
            tenure_days: tenure_days[i],
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(
        recency_days: f64,
        frequency: f64,
        monetary_value: f64,
        tenure_days: f64,
    ) -> Customer {
        Customer {
            recency_days,
            frequency,
            monetary_value,
            tenure_days,
        }
    }

    fn name_of(c: Customer) -> &'static str {
        let model = Segmenter::builtin();
        c.validate(0).unwrap();
        model.names[model.assign(&c).segment]
    }

    #[test]
    fn known_customers_map_to_the_expected_segments() {
        // Frequent, recent: the top segment.
        assert_eq!(name_of(customer(5.0, 10.0, 40.0, 250.0)), "champions");
        assert_eq!(
            Segmenter::builtin()
                .assign(&customer(5.0, 10.0, 40.0, 250.0))
                .segment,
            0
        );
        // Several purchases, none for months.
        assert!(name_of(customer(120.0, 3.0, 30.0, 250.0)).starts_with("at-risk regulars"));
        // One purchase long ago.
        assert!(name_of(customer(240.0, 1.0, 10.0, 240.0)).starts_with("one-time small spenders"));
        assert!(name_of(customer(240.0, 1.0, 150.0, 240.0)).starts_with("one-time big spenders"));
    }

    #[test]
    fn distances_are_euclidean_in_the_scaled_space_and_the_nearest_wins() {
        let model = Segmenter::builtin();
        let c = customer(30.0, 2.0, 25.0, 200.0);
        let a = model.assign(&c);
        assert_eq!(a.distances.len(), weights::K);
        let z = scale(&c.features(), model.means, model.stds);
        for (d, centroid) in a.distances.iter().zip(model.centroids) {
            let expected: f64 = z
                .iter()
                .zip(centroid)
                .map(|(x, y)| (x - y).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!((d - expected).abs() < 1e-12);
        }
        let min = a.distances.iter().copied().fold(f64::INFINITY, f64::min);
        assert_eq!(a.distances[a.segment], min);
        // A customer sitting on a centroid is at distance 0 from it.
        let centroid = model.centroids[2];
        let raw: Vec<f64> = (0..N_FEATURES)
            .map(|j| (centroid[j] * model.stds[j] + model.means[j]).exp_m1())
            .collect();
        let on = model.assign(&customer(raw[0], raw[1], raw[2], raw[3]));
        assert_eq!(on.segment, 2);
        assert!(on.distances[2] < 1e-9);
    }

    #[test]
    fn invalid_rows_are_refused_with_row_and_field() {
        let model = Segmenter::builtin();
        let good = customer(10.0, 2.0, 20.0, 100.0);
        let cases = [
            (
                customer(-1.0, 2.0, 20.0, 100.0),
                "recency_days",
                "must be >= 0",
            ),
            (
                customer(10.0, 0.0, 20.0, 100.0),
                "frequency",
                "must be >= 1",
            ),
            (
                customer(10.0, 2.5, 20.0, 100.0),
                "frequency",
                "whole number",
            ),
            (
                customer(10.0, 2.0, f64::NAN, 100.0),
                "monetary_value",
                "finite",
            ),
            (
                customer(10.0, 2.0, 20.0, f64::INFINITY),
                "tenure_days",
                "finite",
            ),
            (
                customer(10.0, 2.0, -5.0, 100.0),
                "monetary_value",
                "must be >= 0",
            ),
            (
                customer(150.0, 2.0, 20.0, 100.0),
                "recency_days",
                "<= tenure_days",
            ),
            (
                customer(0.0, 20.0, 20.0, 5.0),
                "frequency",
                "tenure_days + 1",
            ),
        ];
        for (bad, field, rule) in cases {
            let err = model.assign_all(&[good, good, bad]).unwrap_err();
            assert_eq!((err.row, err.field), (2, field), "{err}");
            let text = err.to_string();
            assert!(text.starts_with(&format!("row 2: {field} = ")), "{text}");
            assert!(text.contains(rule), "{text}");
        }
    }

    #[test]
    fn a_batch_is_assigned_row_by_row() {
        let model = Segmenter::builtin();
        let rows: Vec<Customer> = (0..500)
            .map(|i| {
                let tenure = 100.0 + (i % 170) as f64;
                customer(
                    (i * 7 % 100) as f64,
                    (1 + i % 9) as f64,
                    5.0 + (i % 61) as f64,
                    tenure,
                )
            })
            .collect();
        let batch = model.assign_all(&rows).unwrap();
        assert_eq!(batch.segments.len(), 500);
        assert_eq!(batch.distances.len(), 500 * model.k());
        for ((c, &segment), distances) in rows
            .iter()
            .zip(&batch.segments)
            .zip(batch.distances.chunks_exact(model.k()))
        {
            let a = model.assign(c);
            assert_eq!((segment, distances), (a.segment, &a.distances[..]));
        }
        let empty = model.assign_all(&[]).unwrap();
        assert!(empty.segments.is_empty() && empty.distances.is_empty());
    }

    #[test]
    fn columns_must_have_equal_lengths() {
        let err =
            customers_from_columns(&[1.0, 2.0], &[1.0, 1.0], &[3.0], &[5.0, 5.0]).unwrap_err();
        assert!(
            err.contains("monetary_value has 1 elements but recency_days has 2"),
            "{err}"
        );
        assert_eq!(
            customers_from_columns(&[1.0], &[1.0], &[3.0], &[5.0])
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn metadata_describes_every_segment() {
        let text = builtin_description();
        for (i, name) in weights::SEGMENT_NAMES.iter().enumerate() {
            assert!(text.contains(&format!(" {i} {name}: ")), "{text}");
        }
        assert_eq!(input_specs().len(), 4);
        assert_eq!(
            output_specs(weights::K)[2].shape,
            vec![-1, weights::K as i64]
        );
    }
}
