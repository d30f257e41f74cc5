//! The `trademl:model@0.1.0` export: tensors in, [`crate::model`] arithmetic, tensors out.

// Natively the export macro is compiled out, so nothing but the tests uses the type.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use trademl_sdk::tensor::{find, fp64, int64, spec};
use trademl_sdk::{Datatype, Error, Model, ModelMetadata, Tensor, TensorData, TensorSpec};

use crate::model::{self, History, IoSpec, Recommender, TOP_K};

/// The exported model.
pub struct RecommenderModel;

fn to_spec(io: &IoSpec) -> TensorSpec {
    let datatype = match io.datatype {
        "FP64" => Datatype::Fp64,
        _ => Datatype::Int64,
    };
    spec(io.name, datatype, &io.shape, io.description)
}

/// An INT64 input of shape `[n]` (or `[n, 1]`).
fn ids(inputs: &[Tensor], name: &str) -> Result<Vec<i64>, Error> {
    let t = find(inputs, name)?;
    if !matches!(t.shape.as_slice(), [_] | [_, 1]) {
        return Err(Error::InvalidInput(format!(
            "input \"{name}\": shape {:?} is not a list; expected [n] (one customer per request)",
            t.shape
        )));
    }
    let TensorData::Int64(values) = &t.data else {
        return Err(Error::InvalidInput(format!(
            "input \"{name}\": datatype must be INT64 (product ids and order indexes are integers)"
        )));
    };
    let n: u64 = t.shape.iter().product();
    if n != values.len() as u64 {
        return Err(Error::InvalidInput(format!(
            "input \"{name}\": data has {} elements but shape {:?} holds {n}",
            values.len(),
            t.shape
        )));
    }
    Ok(values.clone())
}

impl Model for RecommenderModel {
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
        let products = ids(&inputs, "basket_product_ids")?;
        let orders = ids(&inputs, "basket_order_index")?;
        let candidates = ids(&inputs, "candidate_product_ids")?;
        let invalid = |e: model::InputError| Error::InvalidInput(e.to_string());
        let history = History::from_columns(&products, &orders).map_err(invalid)?;
        model::validate_candidates(&candidates).map_err(invalid)?;
        let recommender = Recommender::builtin();
        let top = recommender.recommend(&history, TOP_K);
        if top.len() != TOP_K {
            return Err(Error::ModelFailure(format!(
                "only {} products to recommend; the model needs at least {TOP_K} popular products",
                top.len()
            )));
        }
        let ranked = recommender.rank_candidates(&history, &candidates);
        let n = ranked.len() as u64;
        Ok(vec![
            int64(
                "product_ids",
                vec![TOP_K as u64],
                top.iter().map(|s| s.product).collect(),
            ),
            fp64(
                "scores",
                vec![TOP_K as u64],
                top.iter().map(|s| s.score).collect(),
            ),
            int64(
                "candidate_ranking",
                vec![n],
                ranked.iter().map(|s| s.product).collect(),
            ),
            fp64(
                "candidate_scores",
                vec![n],
                ranked.iter().map(|s| s.score).collect(),
            ),
        ])
    }
}

// The export symbols are named `trademl:model/predict@0.1.0#…`, which native linkers refuse in a
// cdylib; the trait implementation above still builds (and is tested) natively.
#[cfg(target_arch = "wasm32")]
trademl_sdk::export_model!(RecommenderModel);
trademl_sdk::use_call_arena!();

#[cfg(test)]
mod tests {
    use super::*;

    fn request(products: &[i64], orders: &[i64], candidates: &[i64]) -> Vec<Tensor> {
        vec![
            int64(
                "basket_product_ids",
                vec![products.len() as u64],
                products.to_vec(),
            ),
            int64(
                "basket_order_index",
                vec![orders.len() as u64],
                orders.to_vec(),
            ),
            int64(
                "candidate_product_ids",
                vec![candidates.len() as u64],
                candidates.to_vec(),
            ),
        ]
    }

    fn invalid(inputs: Vec<Tensor>) -> String {
        match RecommenderModel::predict(inputs) {
            Err(Error::InvalidInput(text)) => text,
            other => panic!("not InvalidInput: {other:?}"),
        }
    }

    #[test]
    fn predict_returns_the_model_arithmetic() {
        let out = RecommenderModel::predict(request(&[196, 10, 196], &[0, 0, 1], &[10, 24852, 5]))
            .unwrap();
        let names: Vec<_> = out
            .iter()
            .map(|t| (t.name.as_str(), t.shape.clone()))
            .collect();
        assert_eq!(
            names,
            [
                ("product_ids", vec![10]),
                ("scores", vec![10]),
                ("candidate_ranking", vec![3]),
                ("candidate_scores", vec![3])
            ]
        );
        let history = History::from_columns(&[196, 10, 196], &[0, 0, 1]).unwrap();
        let model = Recommender::builtin();
        let top = model.recommend(&history, TOP_K);
        let TensorData::Int64(ids) = &out[0].data else {
            panic!()
        };
        let TensorData::Fp64(scores) = &out[1].data else {
            panic!()
        };
        assert_eq!(ids, &top.iter().map(|s| s.product).collect::<Vec<_>>());
        assert_eq!(scores, &top.iter().map(|s| s.score).collect::<Vec<_>>());
        let TensorData::Int64(ranking) = &out[2].data else {
            panic!()
        };
        let ranked = model.rank_candidates(&history, &[10, 24852, 5]);
        assert_eq!(
            ranking,
            &ranked.iter().map(|s| s.product).collect::<Vec<_>>()
        );
        let TensorData::Fp64(candidate_scores) = &out[3].data else {
            panic!()
        };
        assert_eq!(
            candidate_scores,
            &ranked.iter().map(|s| s.score).collect::<Vec<_>>()
        );
        // Bought in both orders, 10 once: 10 outranks the never-bought candidates.
        assert_eq!(ranking[0], 10);
        // Empty history and no candidates.
        let out = RecommenderModel::predict(request(&[], &[], &[])).unwrap();
        assert_eq!(out[2].shape, vec![0]);
    }

    #[test]
    fn bad_requests_are_invalid_input_naming_the_input() {
        assert!(invalid(request(&[1, 2], &[0], &[])).starts_with("basket_order_index: has 1"));
        assert!(invalid(request(&[1], &[0], &[4, 4])).starts_with("candidate_product_ids[1]"));
        let mut missing = request(&[1], &[0], &[]);
        missing.remove(2);
        assert!(invalid(missing).contains("candidate_product_ids"));
        let mut wrong = request(&[1], &[0], &[]);
        wrong[0] = fp64("basket_product_ids", vec![1], vec![1.0]);
        assert!(invalid(wrong).contains("INT64"));
        let mut matrix = request(&[1, 2], &[0, 0], &[]);
        matrix[0].shape = vec![1, 2];
        assert!(invalid(matrix).contains("not a list"));
    }

    #[test]
    fn metadata_matches_the_model_module() {
        let m = RecommenderModel::metadata();
        assert_eq!(
            (m.name.as_str(), m.version.as_str()),
            ("recommender", "1.0.1")
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
                "basket_product_ids",
                "basket_order_index",
                "candidate_product_ids",
                "product_ids",
                "scores",
                "candidate_ranking",
                "candidate_scores"
            ]
        );
    }
}
