//! The `trademl:model@0.1.0` export: tensors in, [`crate::model`] arithmetic, tensors out.

// Natively the export macro is compiled out, so nothing but the tests uses the type.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use trademl_sdk::tensor::{column_f64, fp64, matrix_f64, same_rows, spec, texts};
use trademl_sdk::{Datatype, Error, Model, ModelMetadata, Tensor, TensorSpec};

use crate::model::{self, CostParams, IoSpec, Method, Promo, Promotion};

/// The exported model.
pub struct PromoModel;

fn to_spec(io: &IoSpec) -> TensorSpec {
    let datatype = match io.datatype {
        "FP64" => Datatype::Fp64,
        _ => Datatype::Bytes,
    };
    spec(io.name, datatype, &io.shape, io.description)
}

/// An optional column: absent → `default` for every row; shape `[1]` → that value for every row.
fn optional_column(
    inputs: &[Tensor],
    name: &str,
    rows: usize,
    default: f64,
) -> Result<Vec<f64>, Error> {
    if !inputs.iter().any(|t| t.name == name) {
        return Ok(vec![default; rows]);
    }
    let v = column_f64(inputs, name)?;
    match v.len() {
        1 => Ok(vec![v[0]; rows]),
        n if n == rows => Ok(v),
        n => Err(Error::InvalidInput(format!(
            "input \"{name}\" has {n} rows; expected 1 (for every row) or {rows}"
        ))),
    }
}

/// An optional per-brand matrix: absent → zeros.
fn optional_matrix(
    inputs: &[Tensor],
    name: &str,
    rows: usize,
    products: usize,
) -> Result<Vec<f64>, Error> {
    if !inputs.iter().any(|t| t.name == name) {
        return Ok(vec![0.0; rows * products]);
    }
    let (n, v) = matrix_f64(inputs, name, products)?;
    same_rows(&[("store", rows), (name, n)])?;
    Ok(v)
}

/// The promotions of a request, validated.
fn promotions(inputs: &[Tensor], products: usize) -> Result<Vec<Promotion>, Error> {
    let cols = model::COLUMN_INPUTS
        .iter()
        .map(|(name, _)| column_f64(inputs, name))
        .collect::<Result<Vec<_>, _>>()?;
    let (n_prices, prices) = matrix_f64(inputs, "brand_prices", products)?;
    let mut counts: Vec<(&str, usize)> = model::COLUMN_INPUTS
        .iter()
        .zip(&cols)
        .map(|((name, _), c)| (*name, c.len()))
        .collect();
    counts.push(("brand_prices", n_prices));
    let rows = same_rows(&counts)?;
    let deals = optional_matrix(inputs, "competitor_deals", rows, products)?;
    let features = optional_matrix(inputs, "competitor_features", rows, products)?;
    let past = optional_column(inputs, "past_lift", rows, 0.0)?;
    let fixed = optional_column(inputs, "fixed_cost", rows, model::DEFAULT_FIXED_COST)?;
    let feature_cost = optional_column(inputs, "feature_cost", rows, model::DEFAULT_FEATURE_COST)?;
    let [store, brand, regular, price, deal, feature, baseline, cost] =
        <[Vec<f64>; 8]>::try_from(cols).expect("eight column inputs");
    (0..rows)
        .map(|i| {
            let b = brand[i];
            if !(b >= 1.0 && b.fract() == 0.0 && b <= products as f64) {
                return Err(Error::InvalidInput(format!(
                    "row {i}: brand = {b} is not a brand 1..={products}"
                )));
            }
            let span = i * products..(i + 1) * products;
            let p = Promotion {
                store: store[i],
                brand: b as usize,
                regular_price: regular[i],
                price: price[i],
                deal: deal[i],
                feature: feature[i],
                brand_prices: prices[span.clone()].to_vec(),
                competitor_deals: deals[span.clone()].to_vec(),
                competitor_features: features[span].to_vec(),
                baseline_units: baseline[i],
                unit_cost: cost[i],
                past_lift: if past[i] == 0.0 { f64::NAN } else { past[i] },
                costs: CostParams {
                    fixed_cost: fixed[i],
                    feature_cost: feature_cost[i],
                },
            };
            p.validate(i, products)
                .map_err(|e| Error::InvalidInput(e.0))?;
            Ok(p)
        })
        .collect()
}

fn method(inputs: &[Tensor]) -> Result<Method, Error> {
    if !inputs.iter().any(|t| t.name == "method") {
        return Ok(Method::Gbm);
    }
    let t = texts(inputs, "method")?;
    match t.as_slice() {
        [one] => Method::parse(one).ok_or_else(|| {
            Error::InvalidInput(format!(
                "input \"method\" = {one:?}: expected \"gbm\" or \"rf+nn\""
            ))
        }),
        _ => Err(Error::InvalidInput(format!(
            "input \"method\" has {} elements; expected one",
            t.len()
        ))),
    }
}

impl Model for PromoModel {
    fn metadata() -> ModelMetadata {
        let products = Promo::builtin().products;
        ModelMetadata {
            name: model::NAME.to_string(),
            version: model::VERSION.to_string(),
            description: model::builtin_description(),
            inputs: model::input_specs(products).iter().map(to_spec).collect(),
            outputs: model::output_specs().iter().map(to_spec).collect(),
        }
    }

    fn predict(inputs: Vec<Tensor>) -> Result<Vec<Tensor>, Error> {
        let promo = Promo::builtin();
        let events = promotions(&inputs, promo.products)?;
        let method = method(&inputs)?;
        let preds: Vec<_> = events.iter().map(|p| promo.predict(p, method)).collect();
        let n = preds.len() as u64;
        let column = |name: &str, f: fn(&model::Prediction) -> f64| {
            fp64(name, vec![n], preds.iter().map(f).collect())
        };
        Ok(vec![
            column("units", |p| p.units),
            column("lift", |p| p.lift),
            column("incremental_units", |p| p.incremental_units),
            column("incremental_gross_profit", |p| p.incremental_gross_profit),
            column("promotion_cost", |p| p.promotion_cost),
            column("roi", |p| p.roi),
        ])
    }
}

// The export symbols are named `trademl:model/predict@0.1.0#…`, which native linkers refuse in a
// cdylib; the trait implementation above still builds (and is tested) natively.
#[cfg(target_arch = "wasm32")]
trademl_sdk::export_model!(PromoModel);
trademl_sdk::use_call_arena!();

#[cfg(test)]
mod tests {
    use trademl_sdk::TensorData;
    use trademl_sdk::tensor::bytes_utf8;

    use super::*;

    fn request(rows: usize, brand: f64) -> Vec<Tensor> {
        let products = Promo::builtin().products;
        let n = rows as u64;
        let col = |name: &str, v: f64| fp64(name, vec![n], vec![v; rows]);
        vec![
            col("store", 2.0),
            col("brand", brand),
            col("regular_price", 0.05),
            col("price", 0.04),
            col("deal", 1.0),
            col("feature", 1.0),
            col("baseline_units", 4000.0),
            col("unit_cost", 0.03),
            fp64(
                "brand_prices",
                vec![n, products as u64],
                vec![0.04; rows * products],
            ),
        ]
    }

    fn outputs(out: &[Tensor]) -> Vec<Vec<f64>> {
        out.iter()
            .map(|t| match &t.data {
                TensorData::Fp64(v) => v.clone(),
                _ => panic!("not FP64"),
            })
            .collect()
    }

    #[test]
    fn predict_returns_the_model_arithmetic_for_each_method() {
        let promo = Promo::builtin();
        let out = PromoModel::predict(request(2, 1.0)).unwrap();
        let names: Vec<_> = out.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, model::OUTPUTS.map(|(n, _)| n));
        let events = promotions(&request(1, 1.0), promo.products).unwrap();
        let want = promo.predict(&events[0], Method::Gbm);
        let got = outputs(&out);
        assert_eq!(got[0], vec![want.units; 2]);
        assert_eq!(got[5][1], want.roi);

        let mut with_method = request(1, 1.0);
        with_method.push(bytes_utf8("method", vec![1], vec!["rf+nn".into()]));
        let got = outputs(&PromoModel::predict(with_method).unwrap());
        assert_eq!(got[1][0], promo.predict(&events[0], Method::RfNn).lift);
    }

    #[test]
    fn cost_parameters_broadcast_and_change_the_cost() {
        let mut inputs = request(2, 1.0);
        inputs.push(fp64("fixed_cost", vec![1], vec![0.0]));
        inputs.push(fp64("feature_cost", vec![2], vec![0.0, 10.0]));
        let got = outputs(&PromoModel::predict(inputs).unwrap());
        // 4000 × 0.01 discount; + 10 × feature 1 in the second row.
        assert!((got[4][0] - 40.0).abs() < 1e-9, "{:?}", got[4]);
        assert!((got[4][1] - 50.0).abs() < 1e-9, "{:?}", got[4]);
    }

    #[test]
    fn bad_inputs_are_invalid_input_naming_what_was_wrong() {
        let err = |inputs| match PromoModel::predict(inputs).unwrap_err() {
            Error::InvalidInput(text) => text,
            other => panic!("{other:?}"),
        };
        assert!(err(request(1, 0.0)).contains("row 0: brand = 0"));
        let mut missing = request(1, 1.0);
        missing.remove(6);
        assert!(err(missing).contains("baseline_units"));
        let mut bad_method = request(1, 1.0);
        bad_method.push(bytes_utf8("method", vec![1], vec!["svm".into()]));
        assert!(err(bad_method).contains("\"svm\""));
        let mut short = request(2, 1.0);
        short[3] = fp64("price", vec![1], vec![0.04]);
        assert!(err(short).contains("same number of rows"));
    }

    #[test]
    fn metadata_matches_the_model_module() {
        let m = PromoModel::metadata();
        assert_eq!(
            (m.name.as_str(), m.version.as_str()),
            (model::NAME, model::VERSION)
        );
        assert_eq!(m.inputs.len(), 15);
        assert_eq!(m.outputs.len(), 6);
    }
}
