//! The models' own code compiled natively: the registry the sandbox/native
//! ratio is measured with. Adding a model is one line in [`MODELS`] (and its
//! crate in this crate's Cargo.toml); a model missing here is still
//! benchmarked, and the bench says that its native figure was skipped.

use trademl::bench::NativeModel;
use trademl_sdk::protocol::Tensor;
use trademl_sdk::{Error, Model};

/// Every model whose code is linked into this binary.
pub const MODELS: &[NativeModel] = &[
    native::<trademl_model_customer_segmentation::CustomerSegmentation>("customer-segmentation"),
    native::<trademl_model_churn::ChurnModel>("churn"),
    native::<trademl_model_recommender::RecommenderModel>("recommender"),
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
    }
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
