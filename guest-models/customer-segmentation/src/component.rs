//! The `trademl:model@0.1.0` export: tensors in, [`crate::model`] arithmetic, tensors out.

// Natively the export macro is compiled out, so nothing but the tests uses the type.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use trademl_sdk::tensor::{bytes_utf8, column_f64, fp64, int64, spec};
use trademl_sdk::{Datatype, Error, Model, ModelMetadata, Tensor, TensorSpec};

use crate::model::{self, IoSpec, Segmenter};

/// The exported model.
pub struct CustomerSegmentation;

fn to_spec(io: &IoSpec) -> TensorSpec {
    let datatype = match io.datatype {
        "FP64" => Datatype::Fp64,
        "INT64" => Datatype::Int64,
        _ => Datatype::Bytes,
    };
    spec(io.name, datatype, &io.shape, io.description)
}

impl Model for CustomerSegmentation {
    fn metadata() -> ModelMetadata {
        let k = Segmenter::builtin().k();
        ModelMetadata {
            name: model::NAME.to_string(),
            version: model::VERSION.to_string(),
            description: model::builtin_description(),
            inputs: model::input_specs().iter().map(to_spec).collect(),
            outputs: model::output_specs(k).iter().map(to_spec).collect(),
        }
    }

    fn predict(inputs: Vec<Tensor>) -> Result<Vec<Tensor>, Error> {
        let [recency, frequency, monetary, tenure] =
            model::INPUTS.map(|(name, _)| column_f64(&inputs, name));
        let customers = model::customers_from_columns(&recency?, &frequency?, &monetary?, &tenure?)
            .map_err(Error::InvalidInput)?;
        let segmenter = Segmenter::builtin();
        let model::Assignments {
            segments,
            distances,
        } = segmenter
            .assign_all(&customers)
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        let n = segments.len() as u64;
        let k = segmenter.k();
        let ids = segments.iter().map(|&s| s as i64).collect();
        let names = segments
            .iter()
            .map(|&s| segmenter.names[s].to_string())
            .collect();
        Ok(vec![
            int64("segment_id", vec![n], ids),
            bytes_utf8("segment_name", vec![n], names),
            fp64("centroid_distances", vec![n, k as u64], distances),
        ])
    }
}

// The export symbols are named `trademl:model/predict@0.1.0#…`, which native linkers refuse in a
// cdylib; the trait implementation above still builds (and is tested) natively.
#[cfg(target_arch = "wasm32")]
trademl_sdk::export_model!(CustomerSegmentation);
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
    fn predict_returns_ids_names_and_distances() {
        let rows = [
            [5.0, 10.0, 40.0, 250.0],
            [240.0, 1.0, 10.0, 240.0],
            [120.0, 3.0, 30.0, 250.0],
        ];
        let out = CustomerSegmentation::predict(inputs(&rows)).unwrap();
        let k = Segmenter::builtin().k();
        assert_eq!(out.len(), 3);
        assert_eq!(
            (out[0].name.as_str(), out[0].shape.clone()),
            ("segment_id", vec![3])
        );
        assert_eq!(
            (out[2].name.as_str(), out[2].shape.clone()),
            ("centroid_distances", vec![3, k as u64])
        );
        let TensorData::Int64(ids) = &out[0].data else {
            panic!("segment_id is not INT64")
        };
        let TensorData::Bytes(names) = &out[1].data else {
            panic!("segment_name is not BYTES")
        };
        assert_eq!(ids[0], 0);
        assert_eq!(names[0], b"champions");
        for (i, row) in rows.iter().enumerate() {
            let c = model::Customer {
                recency_days: row[0],
                frequency: row[1],
                monetary_value: row[2],
                tenure_days: row[3],
            };
            assert_eq!(ids[i], Segmenter::builtin().assign(&c).segment as i64);
        }
    }

    #[test]
    fn bad_rows_and_missing_inputs_are_invalid_input() {
        let err =
            CustomerSegmentation::predict(inputs(&[[1.0, 1.0, 1.0, 10.0], [1.0, 0.0, 1.0, 10.0]]))
                .unwrap_err();
        let Error::InvalidInput(text) = err else {
            panic!("not InvalidInput")
        };
        assert!(text.starts_with("row 1: frequency = 0"), "{text}");
        let mut missing = inputs(&[[1.0, 1.0, 1.0, 10.0]]);
        missing.remove(3);
        let Error::InvalidInput(text) = CustomerSegmentation::predict(missing).unwrap_err() else {
            panic!()
        };
        assert!(text.contains("tenure_days"), "{text}");
    }

    #[test]
    fn metadata_matches_the_model_module() {
        let m = CustomerSegmentation::metadata();
        assert_eq!(
            (m.name.as_str(), m.version.as_str()),
            ("customer-segmentation", "1.0.2")
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
            [
                "recency_days",
                "frequency",
                "monetary_value",
                "tenure_days",
                "segment_id",
                "segment_name",
                "centroid_distances"
            ]
        );
    }
}
