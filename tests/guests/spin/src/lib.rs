//! A hostile test model: `predict` never returns.

// Only the wasm32 build exports the model; a native build (cargo test --workspace) leaves it unused.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use trademl_sdk::{Datatype, Error, Model, ModelMetadata, Tensor, TensorData, TensorSpec};

struct Spin;

impl Model for Spin {
    fn metadata() -> ModelMetadata {
        ModelMetadata {
            name: "spin".to_string(),
            version: "1.0.0".to_string(),
            description: "Loops forever (a hostile trademl test model).".to_string(),
            inputs: vec![TensorSpec {
                name: "x".to_string(),
                datatype: Datatype::Fp64,
                shape: vec![-1],
                description: "Ignored.".to_string(),
            }],
            outputs: vec![TensorSpec {
                name: "y".to_string(),
                datatype: Datatype::Fp64,
                shape: vec![-1],
                description: "Never produced.".to_string(),
            }],
        }
    }

    fn predict(inputs: Vec<Tensor>) -> Result<Vec<Tensor>, Error> {
        let mut counter: u64 = inputs.len() as u64;
        loop {
            counter =
                std::hint::black_box(counter.wrapping_mul(6364136223846793005).wrapping_add(1));
            if std::hint::black_box(counter) == 42 && std::hint::black_box(false) {
                break;
            }
        }
        Ok(vec![Tensor {
            name: "y".to_string(),
            shape: vec![1],
            data: TensorData::Fp64(vec![counter as f64]),
        }])
    }
}

trademl_sdk::export_model!(Spin);
