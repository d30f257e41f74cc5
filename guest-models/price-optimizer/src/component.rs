//! The `trademl:model@0.1.0` export: tensors in, [`crate::model`] arithmetic, tensors out.

// Natively the export macro is compiled out, so nothing but the tests uses the type.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use trademl_sdk::tensor::{column_f64, fp64, spec};
use trademl_sdk::{Datatype, Error, Model, ModelMetadata, Tensor, TensorSpec};

use crate::model::{self, Columns, Demand, IoSpec};

/// The exported model.
pub struct PriceOptimizer;

fn to_spec(io: &IoSpec) -> TensorSpec {
    let datatype = match io.datatype {
        "FP64" => Datatype::Fp64,
        "INT64" => Datatype::Int64,
        _ => Datatype::Bytes,
    };
    spec(io.name, datatype, &io.shape, io.description)
}

impl Model for PriceOptimizer {
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
        let mut cols = Vec::with_capacity(model::INPUTS.len());
        for (name, _, _) in model::INPUTS {
            cols.push(column_f64(&inputs, name)?);
        }
        let columns = Columns::from_ordered(&cols);
        let recs = model::recommend_rows(&Demand::builtin(), &columns)
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        let n = recs.len() as u64;
        Ok(model::OUTPUTS
            .iter()
            .zip(model::output_columns(&recs))
            .map(|(&(name, _), data)| fp64(name, vec![n], data))
            .collect())
    }
}

// The export symbols are named `trademl:model/predict@0.1.0#…`, which native linkers refuse in a
// cdylib; the trait implementation above still builds (and is tested) natively.
#[cfg(target_arch = "wasm32")]
trademl_sdk::export_model!(PriceOptimizer);
trademl_sdk::use_call_arena!();

#[cfg(test)]
mod tests {
    use trademl_sdk::TensorData;
    use trademl_sdk::tensor::int64;

    use super::*;

    /// One store with every product at price 0.05 and margin 30%.
    fn inputs(store: i64) -> Vec<Tensor> {
        let n = Demand::builtin().products;
        let rows = n as u64;
        let mut t = vec![
            int64("store", vec![rows], vec![store; n]),
            int64("product", vec![rows], (1..=n as i64).collect()),
        ];
        for (name, v) in [
            ("price", 0.05),
            ("unit_cost", -1.0),
            ("margin_pct", 30.0),
            ("deal", 0.0),
            ("feature", 0.0),
            ("max_change", -1.0),
            ("min_margin_pct", -1.0),
            ("weight", -1.0),
        ] {
            t.push(fp64(name, vec![rows], vec![v; n]));
        }
        t
    }

    #[test]
    fn predict_returns_the_model_arithmetic() {
        let out = PriceOptimizer::predict(inputs(2)).unwrap();
        let names: Vec<_> = out.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, model::OUTPUTS.map(|(n, _)| n));
        let TensorData::Fp64(price) = &out[0].data else {
            panic!("not FP64")
        };
        let d = Demand::builtin();
        let items: Vec<model::Item> = (0..d.products)
            .map(|b| model::Item {
                product: b,
                price: 0.05,
                cost: 0.05 * 0.7,
                deal: 0.0,
                feature: 0.0,
                max_change: model::DEFAULT_MAX_CHANGE,
                min_margin_pct: model::DEFAULT_MIN_MARGIN_PCT,
            })
            .collect();
        let want = d.optimise(2, &items, 0.0, &model::Search::default());
        for (got, want) in price.iter().zip(&want) {
            assert_eq!(*got, want.price);
            assert!((*got - 0.05).abs() <= 0.05 * 0.2 + 1e-12);
        }
    }

    #[test]
    fn a_store_missing_a_product_is_invalid_input() {
        let mut t = inputs(2);
        for x in &mut t {
            x.shape = vec![x.shape[0] - 1];
            match &mut x.data {
                TensorData::Int64(v) => {
                    v.pop();
                }
                TensorData::Fp64(v) => {
                    v.pop();
                }
                _ => unreachable!(),
            }
        }
        let Error::InvalidInput(text) = PriceOptimizer::predict(t).unwrap_err() else {
            panic!("not InvalidInput")
        };
        assert!(text.contains("lacks products"), "{text}");
    }

    #[test]
    fn metadata_matches_the_model_module() {
        let m = PriceOptimizer::metadata();
        assert_eq!(m.name, "price-optimizer");
        assert_eq!(m.description, model::builtin_description());
        assert_eq!(m.inputs.len(), 10);
        assert_eq!(m.outputs.len(), 8);
    }
}
