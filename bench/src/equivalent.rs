//! Models that have an equivalent a user would run instead, for the
//! comparison with onnxruntime and MLServer. Each entry gives the kind of
//! model (a builder in `bench/python/compare.py`), its parameters, and the
//! output both must agree on. Adding a model is one entry here and, for a new
//! kind, one builder there.

use serde_json::{Value, json};

/// A model with an equivalent.
pub struct Equivalent {
    /// The model's name.
    pub model: &'static str,
    /// The builder in compare.py.
    pub kind: &'static str,
    /// The builder's parameters: trademl's fitted weights, or the file trademl packed.
    pub params: fn() -> Value,
    /// The output both answer, compared element by element.
    pub output: &'static str,
    /// None: the answers must be equal (labels). Some(t): each number within t × max(|trademl's|,
    /// 1) of trademl's (float arithmetic in another order).
    pub tolerance: Option<f64>,
}

/// Every model with an equivalent.
pub const EQUIVALENTS: &[Equivalent] = &[
    Equivalent {
        model: "customer-segmentation",
        kind: "log1p-standardise-kmeans",
        params: segmentation,
        output: "segment_id",
        tolerance: None,
    },
    // The graph the shipped component was packed from, run by onnxruntime rather than by tract
    // in the sandbox: the comparison a user of an ONNX model would make.
    Equivalent {
        model: "demand-forecast-lstm",
        kind: "onnx-graph",
        params: lstm_graph,
        output: "forecast",
        tolerance: Some(1e-5),
    },
];

fn segmentation() -> Value {
    use trademl_model_customer_segmentation::weights as w;
    json!({ "means": w::MEANS, "stds": w::STDS, "centroids": w::CENTROIDS })
}

fn lstm_graph() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../onnx-models/demand-forecast-lstm/model.onnx"
    );
    json!({ "path": path })
}

/// Whether an alternative's answer is trademl's, as `e` says it must be.
pub fn agrees(e: &Equivalent, theirs: &Value, ours: &Value) -> bool {
    let (Some(theirs), Some(ours)) = (theirs.as_array(), ours.as_array()) else {
        return false;
    };
    theirs.len() == ours.len()
        && theirs.iter().zip(ours).all(|(t, o)| match e.tolerance {
            None => t == o,
            Some(tol) => match (t.as_f64(), o.as_f64()) {
                (Some(t), Some(o)) => (t - o).abs() <= tol * o.abs().max(1.0),
                _ => false,
            },
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_agree_as_the_model_says() {
        let [labels, lstm] = [&EQUIVALENTS[0], &EQUIVALENTS[1]];
        assert!(agrees(labels, &json!([1, 2]), &json!([1, 2])));
        assert!(!agrees(labels, &json!([1, 3]), &json!([1, 2])));
        assert!(!agrees(labels, &json!([1]), &json!([1, 2])));
        assert!(agrees(
            lstm,
            &json!([100000.5, 0.3]),
            &json!([100000.0, 0.300001])
        ));
        assert!(!agrees(
            lstm,
            &json!([100002.0, 0.3]),
            &json!([100000.0, 0.3])
        ));
        assert!(!agrees(lstm, &json!(["1"]), &json!([1.0])));
    }
}
