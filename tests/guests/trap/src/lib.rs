//! A hostile test model: `predict` traps, in the way its input `mode` chooses.
//!
//! mode 0: a Rust panic; 1: the `unreachable` instruction; 2: unbounded
//! recursion (stack overflow); 3: an out-of-bounds memory access; 4: no trap
//! at all, a typed model failure; 5: a loop that runs until the sandbox's
//! deadline stops it (a model whose time depends on its input, which the
//! server expected to be quick); any other value: a normal answer
//! (`y = mode`).

// Only the wasm32 build exports the model; a native build (cargo test --workspace) leaves it unused.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use trademl_sdk::{Datatype, Error, Model, ModelMetadata, Tensor, TensorData, TensorSpec};

struct Trap;

#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse(depth: u64, buf: &mut [u8; 256]) -> u64 {
    let mut local = [0u8; 256];
    local[(depth % 256) as usize] = buf[(depth % 256) as usize].wrapping_add(1);
    std::hint::black_box(&mut local);
    recurse(depth + 1, &mut local) + u64::from(local[0])
}

impl Model for Trap {
    fn metadata() -> ModelMetadata {
        ModelMetadata {
            name: "trap".to_string(),
            version: "1.0.0".to_string(),
            description: "Traps on purpose (a hostile trademl test model).".to_string(),
            inputs: vec![TensorSpec {
                name: "mode".to_string(),
                datatype: Datatype::Int64,
                shape: vec![1],
                description: "How to fail: 0 panic, 1 unreachable, 2 stack overflow, 3 out-of-bounds access, 4 model failure, 5 loop until stopped; else answer."
                    .to_string(),
            }],
            outputs: vec![TensorSpec {
                name: "y".to_string(),
                datatype: Datatype::Int64,
                shape: vec![1],
                description: "The mode, when it does not fail.".to_string(),
            }],
        }
    }

    fn predict(inputs: Vec<Tensor>) -> Result<Vec<Tensor>, Error> {
        let mode = match inputs.iter().find(|t| t.name == "mode").map(|t| &t.data) {
            Some(TensorData::Int64(v)) if v.len() == 1 => v[0],
            _ => return Err(Error::InvalidInput("mode must be one INT64".to_string())),
        };
        match mode {
            0 => panic!("the trap test model panics on purpose"),
            1 => trap_unreachable(),
            2 => {
                let mut buf = [0u8; 256];
                let n = recurse(std::hint::black_box(0), &mut buf);
                return Ok(vec![int_tensor(n as i64)]);
            }
            3 => {
                let n = read_out_of_bounds();
                return Ok(vec![int_tensor(i64::from(n))]);
            }
            4 => {
                return Err(Error::ModelFailure(
                    "the trap test model fails on purpose".to_string(),
                ));
            }
            5 => {
                let mut counter = std::hint::black_box(mode as u64);
                while std::hint::black_box(counter) != 0 {
                    counter = counter.wrapping_mul(6364136223846793005).wrapping_add(1) | 1;
                }
                return Ok(vec![int_tensor(counter as i64)]);
            }
            _ => {}
        }
        Ok(vec![int_tensor(mode)])
    }
}

fn int_tensor(v: i64) -> Tensor {
    Tensor {
        name: "y".to_string(),
        shape: vec![1],
        data: TensorData::Int64(vec![v]),
    }
}

#[cfg(target_arch = "wasm32")]
fn trap_unreachable() -> ! {
    core::arch::wasm32::unreachable()
}

#[cfg(not(target_arch = "wasm32"))]
fn trap_unreachable() -> ! {
    std::process::abort()
}

/// Reads far beyond the end of linear memory.
fn read_out_of_bounds() -> u32 {
    let p = std::hint::black_box(0xFFFF_FFF0usize) as *const u32;
    // SAFETY: it is not; this model's purpose is to make the sandbox trap.
    unsafe { core::ptr::read_volatile(p) }
}

trademl_sdk::export_model!(Trap);
