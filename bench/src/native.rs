//! The models' own code compiled natively: the registry the sandbox/native
//! ratio is measured with. Adding a model is one line in [`MODELS`] (and its
//! crate in this crate's Cargo.toml); a model missing here is still
//! benchmarked, and the bench says that its native figure was skipped.
//!
//! A model whose request is one case rather than rows can also say how to
//! build its batch request ([`NativeModel::batch`]); without it, it has no
//! batch figure.

use trademl::bench::{BatchRequest, NativeModel};
use trademl_sdk::protocol::{Tensor, TensorData};
use trademl_sdk::{Error, Model};

/// Every model whose code is linked into this binary.
pub const MODELS: &[NativeModel] = &[
    native::<trademl_model_customer_segmentation::CustomerSegmentation>("customer-segmentation"),
    native::<trademl_model_churn::ChurnModel>("churn"),
    NativeModel {
        batch: Some((
            "candidate products ranked for the example's customer",
            recommender_candidates as BatchRequest,
        )),
        ..native::<trademl_model_recommender::RecommenderModel>("recommender")
    },
    native::<trademl_model_sentiment::Sentiment>("sentiment"),
    native::<trademl_model_anomaly_detection::AnomalyDetection>("anomaly-detection"),
    native::<trademl_model_price_optimizer::PriceOptimizer>("price-optimizer"),
    native::<trademl_model_demand_forecast::DemandForecast>("demand-forecast"),
    native::<trademl_model_promo_effectiveness::PromoModel>("promo-effectiveness"),
    NativeModel {
        name: "demand-forecast-lstm",
        predict: lstm,
        batch: None,
        // f32 arithmetic by tract's native kernels (AVX) and by its
        // WebAssembly SIMD kernels, summed in different orders.
        tolerance: 1e-5,
    },
];

const fn native<M: Model>(name: &'static str) -> NativeModel {
    NativeModel {
        name,
        predict: predict::<M>,
        batch: None,
        tolerance: 1e-9,
    }
}

/// demand-forecast-lstm is an ONNX graph that its component runs with tract
/// (the ONNX runner, `runners/onnx`). Natively: the graph it was packed from,
/// `onnx-models/demand-forecast-lstm/model.onnx`, run by the same version of
/// tract, with the tensors converted as the runner converts them.
fn lstm(inputs: Vec<Tensor>) -> Result<Vec<Tensor>, String> {
    use std::sync::OnceLock;
    use trademl_model_demand_forecast::model::HORIZON;
    use trademl_train::demand_lstm::net::Inputs;
    use trademl_train::demand_lstm::onnx::{OUTPUTS, Runner};
    const GRAPH: &[u8] = include_bytes!("../../onnx-models/demand-forecast-lstm/model.onnx");
    static RUNNER: OnceLock<Result<Runner, String>> = OnceLock::new();

    let column = |name: &str| -> Result<&[f64], String> {
        match inputs.iter().find(|t| t.name == name).map(|t| &t.data) {
            Some(TensorData::Fp64(v)) => Ok(v),
            Some(_) => Err(format!("input \"{name}\" is not FP64")),
            None => Err(format!("no input \"{name}\"")),
        }
    };
    let n = column("store")?.len();
    let products = column("planned_prices")?.len() / (n * HORIZON).max(1);
    let runner = RUNNER
        .get_or_init(|| Runner::new(GRAPH, products).map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(Clone::clone)?;
    let request = Inputs {
        n,
        products,
        store: column("store")?.to_vec(),
        brand: column("brand")?.to_vec(),
        history_units: column("history_units")?.to_vec(),
        history_price: column("history_price")?.to_vec(),
        history_deal: column("history_deal")?.to_vec(),
        history_feature: column("history_feature")?.to_vec(),
        planned_prices: column("planned_prices")?.to_vec(),
        planned_deals: column("planned_deals")?.to_vec(),
        planned_features: column("planned_features")?.to_vec(),
    };
    let out = runner.run(&request).map_err(|e| format!("{e:#}"))?;
    Ok([out.units, out.lower, out.upper]
        .into_iter()
        .zip(OUTPUTS)
        .map(|(rows, name)| {
            Tensor::new(
                name,
                vec![n as u64, HORIZON as u64],
                TensorData::Fp64(rows.into_iter().flatten().collect()),
            )
        })
        .collect())
}

/// The recommender's request is one customer's baskets; what grows with a
/// request is the list of candidate products it ranks. Its batch of `n` is
/// the example's customer with `n` distinct candidates: the first `n`
/// products of the model's own product table (products it has statistics
/// for, as a catalogue's promoted products would be).
fn recommender_candidates(example: &[Tensor], n: usize) -> Result<Vec<Tensor>, String> {
    use trademl_model_recommender::weights::PRODUCT_IDS;
    if n > PRODUCT_IDS.len() {
        return Err(format!(
            "the model knows {} products, fewer than {n}",
            PRODUCT_IDS.len()
        ));
    }
    let mut request = example.to_vec();
    let candidates = request
        .iter_mut()
        .find(|t| t.name == "candidate_product_ids")
        .ok_or("the example has no input \"candidate_product_ids\"")?;
    candidates.shape = vec![n as u64];
    candidates.data = TensorData::Int64(PRODUCT_IDS[..n].to_vec());
    Ok(request)
}

/// The component's `predict`, with the host's tensors converted to the
/// guest's and back, as the sandbox's canonical ABI does.
fn predict<M: Model>(inputs: Vec<Tensor>) -> Result<Vec<Tensor>, String> {
    M::predict(inputs.into_iter().map(Into::into).collect())
        .map(|outputs| outputs.into_iter().map(Into::into).collect())
        .map_err(|e| match e {
            Error::InvalidInput(text) => format!("invalid input: {text}"),
            Error::ModelFailure(text) => format!("model failure: {text}"),
        })
}
