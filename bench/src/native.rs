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
];

const fn native<M: Model>(name: &'static str) -> NativeModel {
    NativeModel {
        name,
        predict: predict::<M>,
        batch: None,
    }
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
