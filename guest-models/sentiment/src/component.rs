//! The `trademl:model@0.1.0` export: tensors in, [`crate::model`] arithmetic, tensors out.

// Natively the export macro is compiled out, so nothing but the tests uses the type.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use trademl_sdk::tensor::{bytes_utf8, fp64, spec, texts};
use trademl_sdk::{Datatype, Error, Model, ModelMetadata, Tensor, TensorSpec};

use crate::model::{self, IoSpec, Scorer};

/// The exported model.
pub struct Sentiment;

fn to_spec(io: &IoSpec) -> TensorSpec {
    let datatype = match io.datatype {
        "FP64" => Datatype::Fp64,
        _ => Datatype::Bytes,
    };
    spec(io.name, datatype, &io.shape, io.description)
}

impl Model for Sentiment {
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
        let texts = texts(&inputs, "text")?;
        let scorer = Scorer::builtin();
        let answers: Vec<model::Prediction> = texts.iter().map(|t| scorer.predict(t)).collect();
        let n = answers.len() as u64;
        Ok(vec![
            bytes_utf8(
                "label",
                vec![n],
                answers.iter().map(|a| a.label.to_string()).collect(),
            ),
            fp64("score", vec![n], answers.iter().map(|a| a.score).collect()),
            fp64(
                "confidence",
                vec![n],
                answers.iter().map(|a| a.confidence).collect(),
            ),
        ])
    }
}

// The export symbols are named `trademl:model/predict@0.1.0#…`, which native linkers refuse in a
// cdylib; the trait implementation above still builds (and is tested) natively.
#[cfg(target_arch = "wasm32")]
trademl_sdk::export_model!(Sentiment);
trademl_sdk::use_call_arena!();

#[cfg(test)]
mod tests {
    use trademl_sdk::TensorData;

    use super::*;

    fn request(items: Vec<Vec<u8>>) -> Vec<Tensor> {
        vec![Tensor {
            name: "text".to_string(),
            shape: vec![items.len() as u64],
            data: TensorData::Bytes(items),
        }]
    }

    #[test]
    fn predict_answers_every_text() {
        let out = Sentiment::predict(request(vec![
            b"I love it, excellent!".to_vec(),
            Vec::new(),
            "Worst service ever \u{1F620}".as_bytes().to_vec(),
        ]))
        .unwrap();
        assert_eq!(out.len(), 3);
        let TensorData::Bytes(labels) = &out[0].data else {
            panic!("label is not BYTES")
        };
        assert_eq!(
            labels,
            &[
                b"positive".to_vec(),
                b"neutral".to_vec(),
                b"negative".to_vec()
            ]
        );
        let TensorData::Fp64(scores) = &out[1].data else {
            panic!("score is not FP64")
        };
        assert!(scores[0] > 0.0 && scores[1] == 0.0 && scores[2] < 0.0);
        assert_eq!(out[2].shape, vec![3]);
    }

    #[test]
    fn invalid_utf8_and_missing_input_are_invalid_input() {
        let err = Sentiment::predict(request(vec![b"fine".to_vec(), vec![b'o', 0xff, b'k']]))
            .unwrap_err();
        let Error::InvalidInput(text) = err else {
            panic!("not InvalidInput")
        };
        assert!(
            text.contains("element 1") && text.contains("UTF-8"),
            "{text}"
        );
        let Error::InvalidInput(text) = Sentiment::predict(Vec::new()).unwrap_err() else {
            panic!("not InvalidInput")
        };
        assert!(text.contains("\"text\""), "{text}");
    }

    #[test]
    fn metadata_matches_the_model_module() {
        let m = Sentiment::metadata();
        assert_eq!(
            (m.name.as_str(), m.version.as_str()),
            ("sentiment", "1.0.1")
        );
        assert_eq!(m.description, model::builtin_description());
        let names: Vec<_> = m
            .inputs
            .iter()
            .chain(&m.outputs)
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, ["text", "label", "score", "confidence"]);
    }
}
