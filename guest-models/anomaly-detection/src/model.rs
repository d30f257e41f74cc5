//! The model's arithmetic and its interface, in plain Rust with no dependencies.
//!
//! The score is window-relative: each request is one series' consecutive readings (a window),
//! and every reading is scored against the window's own robust centre and spread, variable by
//! variable (the modified z-score of Iglewicz and Hoaglin):
//!
//! `z = (x - median(window)) / s`, with `s = 1.4826 · MAD(window)`; when the MAD is 0 (more than
//! half the window shares one value), `s = 1.253314 · mean absolute deviation from the median`;
//! `s` is never below the variable's resolution floor learned in training.
//!
//! The reading's score is the largest `|z|` over the variables, the driver is the variable that
//! gave it, and the reading is flagged when the score exceeds [`THRESHOLD`] (3.5, Iglewicz and
//! Hoaglin's standard cut for modified z-scores). No constant was fitted to labels.
//!
//! A window shorter than [`MIN_WINDOW`] readings is too short to estimate a spread: its readings
//! are scored against the window median with the reference spread learned in training instead
//! (the median, over the training series, of each series' robust spread).

use core::fmt;

use crate::weights;

/// The model's name, as used in URLs (`/v2/models/anomaly-detection`).
pub const NAME: &str = "anomaly-detection";
/// The model's version.
pub const VERSION: &str = "1.0.1";
/// The number of variables per reading.
pub const N_VARIABLES: usize = 2;
/// The shortest window whose own spread is used; shorter windows use the reference spread.
pub const MIN_WINDOW: usize = 20;
/// The default cut: a reading is flagged when its score is above it.
pub const THRESHOLD: f64 = 3.5;
/// Consistency constant of the MAD for a normal distribution (1 / Φ⁻¹(3/4)).
pub const MAD_CONSISTENCY: f64 = 1.4826;
/// Consistency constant of the mean absolute deviation for a normal distribution (√(π/2)).
pub const MEAN_AD_CONSISTENCY: f64 = 1.253314;

/// One input or output of the model, independent of any binding's types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoSpec {
    /// The tensor's name.
    pub name: &'static str,
    /// The Open Inference Protocol datatype: `FP64`, `BOOL` or `BYTES`.
    pub datatype: &'static str,
    /// The shape; `-1` is the window's length.
    pub shape: Vec<i64>,
    /// Units and meaning.
    pub description: &'static str,
}

/// The input tensors, in variable order; each FP64, shape `[-1]`, one element per reading.
pub const INPUTS: [(&str, &str); N_VARIABLES] = [
    (
        "humidity",
        "Relative humidity in percent, one element per reading: one sensor's consecutive readings \
         in time order (a window), the same length as temperature. The window supplies the robust \
         statistics: send at least 20 readings, ideally several hundred covering the sensor's \
         normal range; a finite number.",
    ),
    (
        "temperature",
        "Temperature in degrees Celsius, one element per reading of the same window as humidity; \
         a finite number.",
    ),
];

/// Description of the `score` output.
pub const SCORE_DESCRIPTION: &str = "The reading's anomaly score: the largest absolute modified \
     z-score over the variables, |x - window median| / (1.4826 · window MAD) (see the model \
     description); about 0-2 for ordinary readings.";
/// Description of the `is_anomaly` output.
pub const IS_ANOMALY_DESCRIPTION: &str =
    "true when the score is above 3.5 (Iglewicz and Hoaglin's cut for modified z-scores).";
/// Description of the `driver` output.
pub const DRIVER_DESCRIPTION: &str = "The variable that drove the score (UTF-8): \"humidity\" or \
     \"temperature\", the one with the larger absolute modified z-score (humidity on ties).";

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

/// The outputs the model returns.
pub fn output_specs() -> Vec<IoSpec> {
    vec![
        IoSpec {
            name: "score",
            datatype: "FP64",
            shape: vec![-1],
            description: SCORE_DESCRIPTION,
        },
        IoSpec {
            name: "is_anomaly",
            datatype: "BOOL",
            shape: vec![-1],
            description: IS_ANOMALY_DESCRIPTION,
        },
        IoSpec {
            name: "driver",
            datatype: "BYTES",
            shape: vec![-1],
            description: DRIVER_DESCRIPTION,
        },
    ]
}

/// The model description; `trained_on` names the data the reference spreads come from.
pub fn description(trained_on: &str, reference: &Reference) -> String {
    format!(
        "Flags unusual readings in a window of one sensor's consecutive humidity and temperature \
         readings, without labels: each variable's modified z-score |x - median| / (1.4826 MAD) \
         within the window (1.253314 x mean absolute deviation when the MAD is 0); the score is \
         the larger of the two, the driver the variable that gave it, and a reading is flagged \
         above {THRESHOLD}. Windows shorter than {MIN_WINDOW} readings use reference spreads \
         (humidity {:.4}, temperature {:.4}) learned from {trained_on}; spreads never go below \
         the sensor resolution (humidity {}, temperature {}).",
        reference.scales[0], reference.scales[1], reference.floors[0], reference.floors[1],
    )
}

/// The description of the built-in model.
pub fn builtin_description() -> String {
    description(weights::TRAINED_ON, &Reference::builtin())
}

/// Why a window was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct InputError {
    /// The reading, counted from 0 (for a length mismatch: the first reading the shorter input
    /// lacks, or the first extra one).
    pub row: usize,
    /// The input tensor's name.
    pub field: String,
    /// The refused value (for a length mismatch: the input's length).
    pub value: f64,
    /// The rule it breaks.
    pub rule: &'static str,
    /// For a length mismatch: the first input's name and length.
    pub expected_len: Option<(String, usize)>,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.expected_len {
            Some((first, n)) => write!(
                f,
                "input {} has {} elements but {first} has {n}: {}",
                self.field, self.value, self.rule
            ),
            None => write!(
                f,
                "row {}: {} = {} {}",
                self.row, self.field, self.value, self.rule
            ),
        }
    }
}

impl std::error::Error for InputError {}

/// What training learned, per variable (in [`INPUTS`] order for the built-in model).
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    /// The spread used for windows shorter than [`MIN_WINDOW`]: the median, over the training
    /// series, of each series' robust spread.
    pub scales: Vec<f64>,
    /// The smallest spread ever used: the sensor resolution (the typical smallest non-zero step
    /// between consecutive readings of a training series).
    pub floors: Vec<f64>,
}

impl Reference {
    /// The reference compiled into this crate (`weights.rs`).
    pub fn builtin() -> Self {
        Reference {
            scales: weights::REFERENCE_SCALES.to_vec(),
            floors: weights::RESOLUTION_FLOORS.to_vec(),
        }
    }
}

/// One reading's result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    /// The largest absolute modified z-score over the variables.
    pub score: f64,
    /// `score > THRESHOLD`.
    pub is_anomaly: bool,
    /// The index of the variable that gave the score (the first on ties).
    pub driver: usize,
}

/// The median of `values` (the mean of the two middle values for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The robust spread of `values` about `centre`: 1.4826 · MAD, or 1.253314 · mean absolute
/// deviation when the MAD is 0; 0 for an empty slice.
pub fn robust_spread(values: &[f64], centre: f64) -> f64 {
    let deviations: Vec<f64> = values.iter().map(|x| (x - centre).abs()).collect();
    let Some(mad) = median(&deviations) else {
        return 0.0;
    };
    if mad > 0.0 {
        MAD_CONSISTENCY * mad
    } else {
        MEAN_AD_CONSISTENCY * deviations.iter().sum::<f64>() / deviations.len() as f64
    }
}

/// The centre and spread one variable's window is scored with.
pub fn window_statistics(values: &[f64], reference_scale: f64, floor: f64) -> (f64, f64) {
    let Some(centre) = median(values) else {
        return (0.0, floor);
    };
    let spread = if values.len() >= MIN_WINDOW {
        robust_spread(values, centre)
    } else {
        reference_scale
    };
    (centre, spread.max(floor))
}

/// The modified z-scores of one variable's window.
pub fn modified_z(values: &[f64], reference_scale: f64, floor: f64) -> Vec<f64> {
    let (centre, spread) = window_statistics(values, reference_scale, floor);
    values
        .iter()
        .map(|x| {
            let d = x - centre;
            if d == 0.0 { 0.0 } else { d / spread }
        })
        .collect()
}

/// Checks that every variable has one finite value per reading; `names` are used in errors.
pub fn validate(columns: &[&[f64]], names: &[&str]) -> Result<usize, InputError> {
    let n = columns.first().map_or(0, |c| c.len());
    for (column, name) in columns.iter().zip(names) {
        if column.len() != n {
            return Err(InputError {
                row: n.min(column.len()),
                field: name.to_string(),
                value: column.len() as f64,
                rule: "every input needs one element per reading of the window",
                expected_len: Some((names[0].to_string(), n)),
            });
        }
        if let Some((row, &value)) = column.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(InputError {
                row,
                field: name.to_string(),
                value,
                rule: "must be a finite number",
                expected_len: None,
            });
        }
    }
    Ok(n)
}

/// Scores one window: `columns[j]` holds variable `j`'s readings in time order.
pub fn score_window(
    columns: &[&[f64]],
    names: &[&str],
    reference: &Reference,
    threshold: f64,
) -> Result<Vec<Scored>, InputError> {
    let n = validate(columns, names)?;
    let z: Vec<Vec<f64>> = columns
        .iter()
        .enumerate()
        .map(|(j, c)| modified_z(c, reference.scales[j], reference.floors[j]))
        .collect();
    Ok((0..n)
        .map(|i| {
            let mut driver = 0;
            let mut score = f64::NEG_INFINITY;
            for (j, zj) in z.iter().enumerate() {
                if zj[i].abs() > score {
                    score = zj[i].abs();
                    driver = j;
                }
            }
            Scored {
                score,
                is_anomaly: score > threshold,
                driver,
            }
        })
        .collect())
}

/// Scores one window of the built-in model (humidity, temperature).
pub fn score_builtin(humidity: &[f64], temperature: &[f64]) -> Result<Vec<Scored>, InputError> {
    score_window(
        &[humidity, temperature],
        &INPUTS.map(|(name, _)| name),
        &Reference::builtin(),
        THRESHOLD,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(n: usize) -> (Vec<f64>, Vec<f64>) {
        // A quiet sensor: humidity 45 ± 1, temperature 27 ± 0.3, deterministic pattern.
        let h = (0..n)
            .map(|i| 45.0 + ((i * 7 % 11) as f64 - 5.0) / 5.0)
            .collect();
        let t = (0..n)
            .map(|i| 27.0 + ((i * 3 % 7) as f64 - 3.0) / 10.0)
            .collect();
        (h, t)
    }

    #[test]
    fn median_and_spread_follow_their_definitions() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        // Deviations from 2: 1, 0, 1, 2, 6 -> MAD 1.
        assert!((robust_spread(&[1.0, 2.0, 3.0, 4.0, 8.0], 2.0) - 1.4826).abs() < 1e-12);
        // MAD 0: mean absolute deviation 10 / 5 = 2.
        let s = robust_spread(&[5.0, 5.0, 5.0, 5.0, 15.0], 5.0);
        assert!((s - 2.0 * 1.253314).abs() < 1e-12, "{s}");
    }

    #[test]
    fn a_spike_in_a_quiet_window_is_flagged_and_its_variable_named() {
        let (mut h, mut t) = window(100);
        h[40] = 80.0;
        t[70] = 40.0;
        let out = score_builtin(&h, &t).unwrap();
        assert_eq!(out.len(), 100);
        assert!(out[40].is_anomaly && out[40].driver == 0, "{:?}", out[40]);
        assert!(out[70].is_anomaly && out[70].driver == 1, "{:?}", out[70]);
        let flagged: Vec<usize> = (0..100).filter(|&i| out[i].is_anomaly).collect();
        assert_eq!(flagged, vec![40, 70]);
        // The score is the modified z-score computed by hand.
        let centre = median(&h).unwrap();
        let spread = robust_spread(&h, centre);
        assert!((out[40].score - (80.0 - centre) / spread).abs() < 1e-9);
    }

    #[test]
    fn a_short_window_uses_the_reference_spread() {
        let reference = Reference {
            scales: vec![2.0, 0.5],
            floors: vec![0.01, 0.01],
        };
        let h = [45.0, 46.0, 44.0, 53.0];
        let t = [27.0, 27.0, 27.5, 27.0];
        let out = score_window(&[&h, &t], &["h", "t"], &reference, 3.5).unwrap();
        // Median humidity 45.5: (53 - 45.5) / 2 = 3.75; temperature (27.5 - 27) / 0.5 = 1.
        assert!((out[3].score - 3.75).abs() < 1e-12);
        assert!(out[3].is_anomaly);
        assert!((out[2].score - 1.0).abs() < 1e-12 && out[2].driver == 1);
        assert!(!out[0].is_anomaly);
        // One reading is its own median: score 0.
        let one = score_window(&[&[50.0], &[20.0]], &["h", "t"], &reference, 3.5).unwrap();
        assert_eq!(one[0].score, 0.0);
        assert!(
            score_window(&[&[], &[]], &["h", "t"], &reference, 3.5)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_constant_window_scores_zero_and_the_floor_bounds_the_spread() {
        let h = vec![45.0; 30];
        let t = vec![27.0; 30];
        let out = score_builtin(&h, &t).unwrap();
        assert!(out.iter().all(|s| s.score == 0.0 && !s.is_anomaly));
        let (_, spread) = window_statistics(&h, 3.0, 0.01);
        assert_eq!(spread, 0.01);
    }

    #[test]
    fn bad_windows_name_the_row_and_the_field() {
        let (h, mut t) = window(30);
        t[12] = f64::NAN;
        let err = score_builtin(&h, &t).unwrap_err();
        assert_eq!((err.row, err.field.as_str()), (12, "temperature"));
        assert!(
            err.to_string()
                .starts_with("row 12: temperature = NaN must be a finite number"),
            "{err}"
        );
        let err = score_builtin(&h, &t[..5]).unwrap_err();
        assert_eq!(err.field, "temperature");
        assert_eq!(
            err.to_string(),
            "input temperature has 5 elements but humidity has 30: every input needs one \
             element per reading of the window"
        );
        let mut h2 = h.clone();
        h2[0] = f64::INFINITY;
        assert_eq!(score_builtin(&h2, &h).unwrap_err().row, 0);
    }

    #[test]
    fn the_builtin_reference_is_usable() {
        let r = Reference::builtin();
        assert_eq!((r.scales.len(), r.floors.len()), (N_VARIABLES, N_VARIABLES));
        assert!(r.scales.iter().chain(&r.floors).all(|v| *v > 0.0));
        let text = builtin_description();
        assert!(
            text.contains("3.5") && text.contains("20 readings"),
            "{text}"
        );
        assert_eq!(input_specs().len(), 2);
        assert_eq!(output_specs()[1].datatype, "BOOL");
    }
}
