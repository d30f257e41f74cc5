//! Models that have an equivalent scikit-learn model, for the comparison
//! with onnxruntime and MLServer. Each entry gives the kind of model (a
//! builder in `bench/python/compare.py`), trademl's fitted parameters, and
//! the output both must agree on. Adding a model is one entry here and, for
//! a new kind, one builder there.

use serde_json::{Value, json};

/// A model with a scikit-learn equivalent.
pub struct Equivalent {
    /// The model's name.
    pub model: &'static str,
    /// The builder in compare.py.
    pub kind: &'static str,
    /// trademl's fitted parameters, for the builder.
    pub params: fn() -> Value,
    /// The output both answer, compared row by row.
    pub output: &'static str,
}

/// Every model with an equivalent.
pub const EQUIVALENTS: &[Equivalent] = &[Equivalent {
    model: "customer-segmentation",
    kind: "log1p-standardise-kmeans",
    params: segmentation,
    output: "segment_id",
}];

fn segmentation() -> Value {
    use trademl_model_customer_segmentation::weights as w;
    json!({ "means": w::MEANS, "stds": w::STDS, "centroids": w::CENTROIDS })
}
