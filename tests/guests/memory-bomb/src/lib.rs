//! A hostile test model: `predict` allocates and touches memory without bound.

// Only the wasm32 build exports the model; a native build (cargo test --workspace) leaves it unused.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use trademl_sdk::{Datatype, Error, Model, ModelMetadata, Tensor, TensorData, TensorSpec};

struct MemoryBomb;

impl Model for MemoryBomb {
    fn metadata() -> ModelMetadata {
        ModelMetadata {
            name: "memory-bomb".to_string(),
            version: "1.0.0".to_string(),
            description:
                "Allocates memory until something stops it (a hostile trademl test model)."
                    .to_string(),
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
                description: "The number of MiB it managed to hold (never produced).".to_string(),
            }],
        }
    }

    fn predict(_inputs: Vec<Tensor>) -> Result<Vec<Tensor>, Error> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        // Far more than any cap: 64 GiB, one MiB at a time, every page written.
        for i in 0..65_536u64 {
            let mut chunk = vec![0u8; 1 << 20];
            for page in chunk.iter_mut().step_by(4096) {
                *page = (i as u8) | 1;
            }
            hoard.push(std::hint::black_box(chunk));
        }
        let held: u64 = hoard.iter().map(|c| c.len() as u64).sum::<u64>() >> 20;
        Ok(vec![Tensor {
            name: "y".to_string(),
            shape: vec![1],
            data: TensorData::Fp64(vec![held as f64]),
        }])
    }
}

trademl_sdk::export_model!(MemoryBomb);
