//! The `trademl:model@0.1.0` export: tensors in, [`crate::model`] arithmetic, tensors out.

// Natively the export macro is compiled out, so nothing but the tests uses the type.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use trademl_sdk::tensor::{bytes_utf8, column_f64, fp64, spec};
use trademl_sdk::{Datatype, Error, Model, ModelMetadata, Tensor, TensorSpec};

use crate::model::{self, Churn, IoSpec};

/// The exported model.
pub struct ChurnModel;

fn to_spec(io: &IoSpec) -> TensorSpec {
    let datatype = match io.datatype {
        "FP64" => Datatype::Fp64,
        "INT64" => Datatype::Int64,
        _ => Datatype::Bytes,
    };
    spec(io.name, datatype, &io.shape, io.description)
}

impl Model for ChurnModel {
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
        let [recency, frequency, monetary, tenure] =
            model::INPUTS.map(|(name, _)| column_f64(&inputs, name));
        let customers = model::customers_from_columns(&recency?, &frequency?, &monetary?, &tenure?)
            .map_err(Error::InvalidInput)?;
        let predictions = Churn::builtin()
            .predict_all(&customers)
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        let n = predictions.len() as u64;
        Ok(vec![
            fp64(
                "churn_probability",
                vec![n],
                predictions.iter().map(|p| p.churn_probability).collect(),
            ),
            fp64(
                "expected_purchases",
                vec![n],
                predictions.iter().map(|p| p.expected_purchases).collect(),
            ),
            fp64(
                "p_alive",
                vec![n],
                predictions.iter().map(|p| p.p_alive).collect(),
            ),
            bytes_utf8(
                "top_drivers",
                vec![n],
                predictions.iter().map(|p| p.top_drivers()).collect(),
            ),
        ])
    }
}

// The export symbols are named `trademl:model/predict@0.1.0#…`, which native linkers refuse in a
// cdylib; the trait implementation above still builds (and is tested) natively.
#[cfg(target_arch = "wasm32")]
trademl_sdk::export_model!(ChurnModel);
trademl_sdk::use_call_arena!();

#[cfg(test)]
mod tests {
    use trademl_sdk::TensorData;

    use super::*;

    fn inputs(rows: &[[f64; 4]]) -> Vec<Tensor> {
        model::INPUTS
            .iter()
            .enumerate()
            .map(|(j, (name, _))| {
                fp64(
                    name,
                    vec![rows.len() as u64],
                    rows.iter().map(|r| r[j]).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn predict_returns_the_model_arithmetic() {
        let rows = [[5.0, 8.0, 30.0, 250.0], [250.0, 0.0, 15.0, 250.0]];
        let out = ChurnModel::predict(inputs(&rows)).unwrap();
        let names: Vec<_> = out.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "churn_probability",
                "expected_purchases",
                "p_alive",
                "top_drivers"
            ]
        );
        let TensorData::Fp64(p) = &out[0].data else {
            panic!("not FP64")
        };
        let TensorData::Bytes(d) = &out[3].data else {
            panic!("not BYTES")
        };
        for (i, r) in rows.iter().enumerate() {
            let c = model::Customer {
                recency_days: r[0],
                frequency: r[1],
                monetary_value: r[2],
                tenure_days: r[3],
            };
            let want = Churn::builtin().predict(&c);
            assert_eq!(p[i], want.churn_probability);
            assert_eq!(d[i], want.top_drivers().into_bytes());
        }
    }

    #[test]
    fn bad_rows_and_missing_inputs_are_invalid_input() {
        let Error::InvalidInput(text) =
            ChurnModel::predict(inputs(&[[1.0, 0.0, 1.0, 10.0], [1.0, 0.5, 1.0, 10.0]]))
                .unwrap_err()
        else {
            panic!("not InvalidInput")
        };
        assert!(text.starts_with("row 1: frequency = 0.5"), "{text}");
        let mut missing = inputs(&[[1.0, 0.0, 1.0, 10.0]]);
        missing.remove(3);
        let Error::InvalidInput(text) = ChurnModel::predict(missing).unwrap_err() else {
            panic!()
        };
        assert!(text.contains("tenure_days"), "{text}");
    }

    #[test]
    fn metadata_matches_the_model_module() {
        let m = ChurnModel::metadata();
        assert_eq!((m.name.as_str(), m.version.as_str()), ("churn", "1.0.4"));
        assert_eq!(m.description, model::builtin_description());
        assert_eq!(m.inputs.len(), 4);
        assert_eq!(m.outputs.len(), 4);
    }
}
