//! The `trademl:model@0.1.0` export: tensors in, [`crate::model`] arithmetic, tensors out.

// Natively the export macro is compiled out, so nothing but the tests uses the type.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use trademl_sdk::tensor::{boolean, bytes_utf8, column_f64, fp64, spec};
use trademl_sdk::{Datatype, Error, Model, ModelMetadata, Tensor, TensorSpec};

use crate::model::{self, IoSpec};

/// The exported model.
pub struct AnomalyDetection;

fn to_spec(io: &IoSpec) -> TensorSpec {
    let datatype = match io.datatype {
        "FP64" => Datatype::Fp64,
        "BOOL" => Datatype::Boolean,
        _ => Datatype::Bytes,
    };
    spec(io.name, datatype, &io.shape, io.description)
}

impl Model for AnomalyDetection {
    fn metadata() -> ModelMetadata {
        ModelMetadata {
            name: model::NAME.to_string(),
            version: model::VERSION.to_string(),
            description: model::builtin_description(),
            inputs: model::input_specs().iter().map(to_spec).collect(),
            outputs: model::output_specs().iter().map(to_spec).collect(),
        }
    }

    fn predict(inputs: Vec<Tensor>) -> Result<Vec<Tensor>, Error> {
        let humidity = column_f64(&inputs, model::INPUTS[0].0)?;
        let temperature = column_f64(&inputs, model::INPUTS[1].0)?;
        let scored = model::score_builtin(&humidity, &temperature)
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        let n = scored.len() as u64;
        Ok(vec![
            fp64("score", vec![n], scored.iter().map(|s| s.score).collect()),
            boolean(
                "is_anomaly",
                vec![n],
                scored.iter().map(|s| s.is_anomaly).collect(),
            ),
            bytes_utf8(
                "driver",
                vec![n],
                scored
                    .iter()
                    .map(|s| model::INPUTS[s.driver].0.to_string())
                    .collect(),
            ),
        ])
    }
}

// The export symbols are named `trademl:model/predict@0.1.0#…`, which native linkers refuse in a
// cdylib; the trait implementation above still builds (and is tested) natively.
#[cfg(target_arch = "wasm32")]
trademl_sdk::export_model!(AnomalyDetection);
trademl_sdk::use_call_arena!();

#[cfg(test)]
mod tests {
    use trademl_sdk::TensorData;

    use super::*;

    fn inputs(h: &[f64], t: &[f64]) -> Vec<Tensor> {
        vec![
            fp64("humidity", vec![h.len() as u64], h.to_vec()),
            fp64("temperature", vec![t.len() as u64], t.to_vec()),
        ]
    }

    #[test]
    fn predict_returns_scores_flags_and_drivers() {
        let mut h: Vec<f64> = (0..40).map(|i| 44.0 + (i % 4) as f64 * 0.3).collect();
        let mut t: Vec<f64> = (0..40).map(|i| 27.0 + (i % 5) as f64 * 0.1).collect();
        h[10] = 70.0;
        t[20] = 35.0;
        let out = AnomalyDetection::predict(inputs(&h, &t)).unwrap();
        let names: Vec<_> = out.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["score", "is_anomaly", "driver"]);
        assert!(out.iter().all(|o| o.shape == vec![40]));
        let TensorData::Boolean(flags) = &out[1].data else {
            panic!("is_anomaly is not BOOL")
        };
        let TensorData::Bytes(drivers) = &out[2].data else {
            panic!("driver is not BYTES")
        };
        let TensorData::Fp64(scores) = &out[0].data else {
            panic!("score is not FP64")
        };
        let expected = model::score_builtin(&h, &t).unwrap();
        for i in 0..40 {
            assert_eq!(scores[i], expected[i].score);
            assert_eq!(flags[i], i == 10 || i == 20, "row {i}");
        }
        assert_eq!(drivers[10], b"humidity");
        assert_eq!(drivers[20], b"temperature");
    }

    #[test]
    fn bad_windows_and_missing_inputs_are_invalid_input() {
        let Error::InvalidInput(text) =
            AnomalyDetection::predict(inputs(&[1.0, f64::NAN], &[1.0, 2.0])).unwrap_err()
        else {
            panic!("not InvalidInput")
        };
        assert!(text.starts_with("row 1: humidity = NaN"), "{text}");
        let mut missing = inputs(&[1.0], &[2.0]);
        missing.remove(1);
        let Error::InvalidInput(text) = AnomalyDetection::predict(missing).unwrap_err() else {
            panic!("not InvalidInput")
        };
        assert!(text.contains("temperature"), "{text}");
    }

    #[test]
    fn metadata_matches_the_model_module() {
        let m = AnomalyDetection::metadata();
        assert_eq!(
            (m.name.as_str(), m.version.as_str()),
            ("anomaly-detection", "1.0.1")
        );
        assert_eq!(m.description, model::builtin_description());
        let names: Vec<_> = m
            .inputs
            .iter()
            .chain(&m.outputs)
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(
            names,
            ["humidity", "temperature", "score", "is_anomaly", "driver"]
        );
    }
}
