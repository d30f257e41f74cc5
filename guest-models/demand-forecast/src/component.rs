//! The `trademl:model@0.1.0` export: tensors in, [`crate::model`] arithmetic, tensors out.

// Natively the export macro is compiled out, so nothing but the tests uses the type.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use trademl_sdk::tensor::{column_f64, fp64, matrix_f64, same_rows, spec};
use trademl_sdk::{Datatype, Error, Model, ModelMetadata, Tensor, TensorSpec};

use crate::model::{self, Columns, Forecaster, HISTORY, HORIZON, IoSpec};

/// The exported model.
pub struct DemandForecast;

fn to_spec(io: &IoSpec) -> TensorSpec {
    let datatype = match io.datatype {
        "FP64" => Datatype::Fp64,
        "INT64" => Datatype::Int64,
        _ => Datatype::Bytes,
    };
    spec(io.name, datatype, &io.shape, &io.description)
}

impl Model for DemandForecast {
    fn metadata() -> ModelMetadata {
        let products = Forecaster::builtin().products;
        ModelMetadata {
            name: model::NAME.to_string(),
            version: model::VERSION.to_string(),
            description: model::builtin_description(),
            inputs: model::input_specs(products).iter().map(to_spec).collect(),
            outputs: model::output_specs().iter().map(to_spec).collect(),
        }
    }

    fn predict(inputs: Vec<Tensor>) -> Result<Vec<Tensor>, Error> {
        let forecaster = Forecaster::builtin();
        let products = forecaster.products;
        let store = column_f64(&inputs, "store")?;
        let brand = column_f64(&inputs, "brand")?;
        let (n_units, units) = matrix_f64(&inputs, "history_units", HISTORY)?;
        let (n_price, price) = matrix_f64(&inputs, "history_price", HISTORY)?;
        let (n_deal, deal) = matrix_f64(&inputs, "history_deal", HISTORY)?;
        let (n_feature, feature) = matrix_f64(&inputs, "history_feature", HISTORY)?;
        let (n_prices, prices) = matrix_f64(&inputs, "planned_prices", HORIZON * products)?;
        let (n_pdeal, pdeal) = matrix_f64(&inputs, "planned_deals", HORIZON * products)?;
        let (n_pfeature, pfeature) = matrix_f64(&inputs, "planned_features", HORIZON * products)?;
        let n = same_rows(&[
            ("store", store.len()),
            ("brand", brand.len()),
            ("history_units", n_units),
            ("history_price", n_price),
            ("history_deal", n_deal),
            ("history_feature", n_feature),
            ("planned_prices", n_prices),
            ("planned_deals", n_pdeal),
            ("planned_features", n_pfeature),
        ])?;
        let columns = Columns {
            store: &store,
            brand: &brand,
            history_units: &units,
            history_price: &price,
            history_deal: &deal,
            history_feature: &feature,
            planned_prices: &prices,
            planned_deals: &pdeal,
            planned_features: &pfeature,
        };
        let rows = model::series_from_columns(&columns, products)
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        let forecasts = forecaster
            .forecast_all(&rows)
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        let shape = vec![n as u64, HORIZON as u64];
        let flat = |f: fn(&model::Forecast) -> [f64; HORIZON]| {
            forecasts.iter().flat_map(f).collect::<Vec<f64>>()
        };
        Ok(vec![
            fp64("forecast", shape.clone(), flat(|f| f.units)),
            fp64("lower_80", shape.clone(), flat(|f| f.lower)),
            fp64("upper_80", shape, flat(|f| f.upper)),
        ])
    }
}

// The export symbols are named `trademl:model/predict@0.1.0#…`, which native linkers refuse in a
// cdylib; the trait implementation above still builds (and is tested) natively.
#[cfg(target_arch = "wasm32")]
trademl_sdk::export_model!(DemandForecast);
trademl_sdk::use_call_arena!();

#[cfg(test)]
mod tests {
    use trademl_sdk::TensorData;
    use trademl_sdk::tensor::fp64;

    use super::*;

    /// A request of `n` identical rows for brand 2 of 11: steady sales of 100 at 0.04, a deal
    /// planned in week 2 at a lower price, and brand 3's feature ad in week 3.
    fn request(n: usize) -> Vec<Tensor> {
        let products = Forecaster::builtin().products;
        let rows = n as u64;
        let per = |v: f64, cols: usize| vec![v; n * cols];
        let mut prices = Vec::new();
        for _ in 0..n {
            for h in 0..HORIZON {
                for k in 0..products {
                    prices.push(if k == 1 && h == 1 { 0.03 } else { 0.04 });
                }
            }
        }
        let (mut deal, mut feature) = (Vec::new(), Vec::new());
        for _ in 0..n {
            for h in 0..HORIZON {
                for k in 0..products {
                    deal.push(if k == 1 && h == 1 { 1.0 } else { 0.0 });
                    feature.push(if k == 2 && h == 2 { 1.0 } else { 0.0 });
                }
            }
        }
        let h = HISTORY as u64;
        let f = HORIZON as u64;
        vec![
            fp64("store", vec![rows], per(5.0, 1)),
            fp64("brand", vec![rows], per(2.0, 1)),
            fp64("history_units", vec![rows, h], per(100.0, HISTORY)),
            fp64("history_price", vec![rows, h], per(0.04, HISTORY)),
            fp64("history_deal", vec![rows, h], per(0.0, HISTORY)),
            fp64("history_feature", vec![rows, h], per(0.0, HISTORY)),
            fp64("planned_prices", vec![rows, f * products as u64], prices),
            fp64("planned_deals", vec![rows, f * products as u64], deal),
            fp64("planned_features", vec![rows, f * products as u64], feature),
        ]
    }

    fn values(t: &Tensor) -> &[f64] {
        let TensorData::Fp64(v) = &t.data else {
            panic!("not FP64")
        };
        v
    }

    #[test]
    fn predict_returns_four_weeks_with_an_interval_per_row() {
        let out = DemandForecast::predict(request(3)).unwrap();
        let names: Vec<_> = out.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["forecast", "lower_80", "upper_80"]);
        for t in &out {
            assert_eq!(t.shape, vec![3, HORIZON as u64]);
        }
        let (f, lo, hi) = (values(&out[0]), values(&out[1]), values(&out[2]));
        for i in 0..f.len() {
            assert!(
                f[i] > 0.0 && lo[i] <= f[i] && f[i] <= hi[i],
                "{i}: {lo:?} {f:?} {hi:?}"
            );
        }
        // The rows are identical, so are their forecasts; they are the model's arithmetic.
        assert_eq!(f[..HORIZON], f[HORIZON..2 * HORIZON]);
        let cols = |name: &str| -> Vec<f64> {
            let r = request(1);
            values(r.iter().find(|t| t.name == name).unwrap()).to_vec()
        };
        let (units, price, deal, feature) = (
            cols("history_units"),
            cols("history_price"),
            cols("history_deal"),
            cols("history_feature"),
        );
        let (prices, pdeal, pfeature) = (
            cols("planned_prices"),
            cols("planned_deals"),
            cols("planned_features"),
        );
        let rows = model::series_from_columns(
            &Columns {
                store: &[5.0],
                brand: &[2.0],
                history_units: &units,
                history_price: &price,
                history_deal: &deal,
                history_feature: &feature,
                planned_prices: &prices,
                planned_deals: &pdeal,
                planned_features: &pfeature,
            },
            Forecaster::builtin().products,
        )
        .unwrap();
        let want = Forecaster::builtin().forecast(&rows[0]);
        assert_eq!(f[..HORIZON], want.units);
    }

    #[test]
    fn bad_rows_name_the_row_and_the_input() {
        let mut r = request(2);
        let TensorData::Fp64(b) = &mut r[1].data else {
            panic!()
        };
        b[1] = 40.0;
        let Error::InvalidInput(text) = DemandForecast::predict(r).unwrap_err() else {
            panic!("not InvalidInput")
        };
        assert!(text.starts_with("row 1: brand = 40"), "{text}");

        let mut r = request(2);
        let TensorData::Fp64(u) = &mut r[2].data else {
            panic!()
        };
        u[..HISTORY].fill(-1.0);
        let Error::InvalidInput(text) = DemandForecast::predict(r).unwrap_err() else {
            panic!()
        };
        assert!(
            text.starts_with("row 0: history_units has no week"),
            "{text}"
        );

        let mut r = request(2);
        r[6] = fp64("planned_prices", vec![2, 4], vec![0.04; 8]);
        let Error::InvalidInput(text) = DemandForecast::predict(r).unwrap_err() else {
            panic!()
        };
        assert!(text.contains("planned_prices"), "{text}");

        let mut r = request(2);
        r.remove(8);
        let Error::InvalidInput(text) = DemandForecast::predict(r).unwrap_err() else {
            panic!()
        };
        assert!(text.contains("planned_features"), "{text}");

        // A competitor's plan is checked and named too: row 1, week 3, brand 5.
        let mut r = request(2);
        let products = Forecaster::builtin().products;
        let TensorData::Fp64(d) = &mut r[7].data else {
            panic!()
        };
        d[HORIZON * products + 2 * products + 4] = f64::NAN;
        let Error::InvalidInput(text) = DemandForecast::predict(r).unwrap_err() else {
            panic!()
        };
        assert_eq!(
            text,
            "row 1: planned_deals: week 3 brand 5 = NaN is not a finite number"
        );
    }

    #[test]
    fn metadata_matches_the_model_module() {
        let m = DemandForecast::metadata();
        assert_eq!(
            (m.name.as_str(), m.version.as_str()),
            ("demand-forecast", model::VERSION)
        );
        assert_eq!(m.description, model::builtin_description());
        assert_eq!(m.inputs.len(), 9);
        assert_eq!(m.outputs.len(), 3);
    }
}
