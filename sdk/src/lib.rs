//! # trademl-sdk
//!
//! Everything a trademl model author, and the trademl host and CLI, share.
//!
//! A trademl model is a WebAssembly component (`wasm32-wasip2`) that exports
//! the WIT interface `trademl:model/predict@0.1.0` (see `wit/model.wit`):
//! named tensors in, named tensors out, plus a `metadata` call describing the
//! inputs and outputs. The host serves it over the Open Inference Protocol v2.
//!
//! ## Writing a model (feature `guest`, on by default)
//!
//! A model crate depends only on this crate, is built as a `cdylib`, and
//! implements `Model`:
//!
//! ```
//! use trademl_sdk::{tensor, Datatype, Error, Model, ModelMetadata, Tensor};
//!
//! struct Doubler;
//!
//! impl Model for Doubler {
//!     fn metadata() -> ModelMetadata {
//!         ModelMetadata {
//!             name: "doubler".into(),
//!             version: "1.0.0".into(),
//!             description: "Doubles its input.".into(),
//!             inputs: vec![tensor::spec("x", Datatype::Fp64, &[-1], "any number")],
//!             outputs: vec![tensor::spec("y", Datatype::Fp64, &[-1], "twice x")],
//!         }
//!     }
//!
//!     fn predict(inputs: Vec<Tensor>) -> Result<Vec<Tensor>, Error> {
//!         let x = tensor::column_f64(&inputs, "x")?;
//!         let y: Vec<f64> = x.iter().map(|v| v * 2.0).collect();
//!         Ok(vec![tensor::fp64("y", vec![y.len() as u64], y)])
//!     }
//! }
//!
//! trademl_sdk::export_model!(Doubler);
//! // Optional: a bump allocator for the one call an instance serves.
//! trademl_sdk::use_call_arena!();
//!
//! // The same code runs natively, e.g. in unit tests and trainers:
//! let out = Doubler::predict(vec![tensor::fp64("x", vec![2], vec![1.0, 2.5])]).unwrap();
//! assert_eq!(tensor::column_f64(&out, "y").unwrap(), vec![2.0, 5.0]);
//! ```
//!
//! Build it with `cargo build --target wasm32-wasip2 --release`; the
//! `.wasm` file in `target/wasm32-wasip2/release/` is the component. Then
//! `trademl pack`, `trademl sign` and `trademl publish` it.
//!
//! The bindings and helpers also compile natively, so a model can be unit
//! tested and reused by native trainers; `export_model!` expands to
//! nothing off `wasm32`, so a `cdylib` model crate links natively too.
//!
//! ## The artifact format (feature `artifact`, native)
//!
//! What the CLI writes and the host reads:
//!
//! - `protocol`: Open Inference Protocol v2 JSON types and tensor checks;
//! - `wasm`: section framing of WebAssembly modules and components;
//! - `manifest`: the `trademl-manifest` custom section (name, version,
//!   schema, memory limit, provenance, examples);
//! - `signing`: Ed25519 signatures in the `signature` custom section,
//!   following the WebAssembly tool-conventions signature format, key files
//!   and the trust store.
//!
//! ## Features
//!
//! | feature    | default | what it gives                                              |
//! |------------|---------|------------------------------------------------------------|
//! | `guest`    | yes     | `bindings`, `Model`, `export_model!`, `tensor`, `CallArena` and `use_call_arena!` |
//! | `artifact` | no      | `protocol`, `wasm`, `manifest`, `signing`, `ArtifactError` |
//!
//! [`trees`] (decision-tree ensembles written as static tables) needs no feature.
#![deny(missing_docs)]

// Lets the generated code name this crate `trademl_sdk` from inside it too.
extern crate self as trademl_sdk;

#[cfg(feature = "guest")]
mod guest;

/// Exports a type implementing [`Model`] as the component's
/// `trademl:model/predict@0.1.0`: `trademl_sdk::export_model!(MyModel);`
///
/// On `wasm32` targets this emits the component's export functions. On
/// other targets (native unit tests, trainers) it expands to nothing: the
/// export symbols' names (`trademl:model/predict@0.1.0#predict`) cannot be
/// linked into a native `cdylib`, and nothing native would call them.
#[cfg(feature = "guest")]
#[macro_export]
macro_rules! export_model {
    ($ty:ident) => {
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::export_model!($ty with_types_in $crate::bindings);
    };
}
#[cfg(feature = "guest")]
pub use guest::{
    CallArena, Datatype, Error, Model, ModelMetadata, Tensor, TensorData, TensorSpec, bindings,
    tensor,
};

pub mod trees;

#[cfg(feature = "artifact")]
mod error;
#[cfg(feature = "artifact")]
pub use error::ArtifactError;
#[cfg(feature = "artifact")]
pub mod manifest;
#[cfg(feature = "artifact")]
pub mod protocol;
#[cfg(feature = "artifact")]
pub mod signing;
#[cfg(feature = "artifact")]
pub mod wasm;

#[cfg(all(feature = "guest", feature = "artifact"))]
mod convert;

/// Re-exports the generated code refers to; not part of the public API.
#[doc(hidden)]
pub mod __private {
    #[cfg(feature = "guest")]
    pub use wit_bindgen;
}
