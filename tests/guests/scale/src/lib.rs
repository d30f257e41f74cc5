//! A well-behaved test model: `y = x * FACTOR`.
//!
//! The end-to-end harness builds it twice, with different versions and factors
//! (`TRADEML_GUEST_VERSION`, `TRADEML_GUEST_FACTOR` at compile time), so that a
//! test can tell from an answer which version computed it. It also exposes both
//! kinds of model error: a negative `x` is invalid input (HTTP 400), an `x` of
//! a billion or more is a model failure (HTTP 500).
//!
//! It also checks the host's promise that every call gets an instance of its
//! own: an instance asked for a second prediction fails it, saying so. Every
//! test that sends scale more than one request thereby checks that no
//! instance served two of them.

// Only the wasm32 build exports the model; a native build (cargo test --workspace) leaves it unused.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use std::sync::atomic::{AtomicU32, Ordering};

use trademl_sdk::{Datatype, Error, Model, ModelMetadata, Tensor, TensorData, TensorSpec};

/// Predictions this instance has been asked for.
static CALLS: AtomicU32 = AtomicU32::new(0);

const VERSION: &str = match option_env!("TRADEML_GUEST_VERSION") {
    Some(v) => v,
    None => "1.0.0",
};

fn factor() -> f64 {
    option_env!("TRADEML_GUEST_FACTOR")
        .and_then(|f| f.parse().ok())
        .unwrap_or(2.0)
}

struct Scale;

impl Model for Scale {
    fn metadata() -> ModelMetadata {
        ModelMetadata {
            name: "scale".to_string(),
            version: VERSION.to_string(),
            description: "Multiplies x by a constant factor (a trademl test model).".to_string(),
            inputs: vec![TensorSpec {
                name: "x".to_string(),
                datatype: Datatype::Fp64,
                shape: vec![-1],
                description: "Values to scale; non-negative, below 1e9.".to_string(),
            }],
            outputs: vec![TensorSpec {
                name: "y".to_string(),
                datatype: Datatype::Fp64,
                shape: vec![-1],
                description: "x times the factor.".to_string(),
            }],
        }
    }

    fn predict(inputs: Vec<Tensor>) -> Result<Vec<Tensor>, Error> {
        let before = CALLS.fetch_add(1, Ordering::Relaxed);
        if before > 0 {
            return Err(Error::ModelFailure(format!(
                "this instance already served {before} call(s): the host reused an instance"
            )));
        }
        let x = inputs
            .iter()
            .find(|t| t.name == "x")
            .ok_or_else(|| Error::InvalidInput("missing input x".to_string()))?;
        let TensorData::Fp64(values) = &x.data else {
            return Err(Error::InvalidInput("x must be FP64".to_string()));
        };
        if let Some(v) = values.iter().find(|v| **v < 0.0) {
            return Err(Error::InvalidInput(format!(
                "x must not be negative (got {v})"
            )));
        }
        if values.iter().any(|v| *v >= 1e9) {
            return Err(Error::ModelFailure(
                "scale overflow: x of 1e9 or more cannot be scaled".to_string(),
            ));
        }
        let f = factor();
        Ok(vec![Tensor {
            name: "y".to_string(),
            shape: vec![values.len() as u64],
            data: TensorData::Fp64(values.iter().map(|v| v * f).collect()),
        }])
    }
}

trademl_sdk::export_model!(Scale);
