//! # trademl
//!
//! The trademl host: it verifies signed WebAssembly model components, loads
//! them into sandboxed, memory-capped wasmtime instances, keeps every version
//! of every model, swaps and rolls versions back without a failed request,
//! and answers predictions over the Open Inference Protocol v2 REST API (the
//! API of KServe, Triton and MLServer).
//!
//! The modules, from the bottom up:
//!
//! - [`sandbox`]: the one wasmtime [`Engine`](wasmtime::Engine) and linker;
//!   per-call stores with a memory cap and a CPU deadline; no capabilities.
//! - [`cache`]: compiled components on disk, bound to the verified digest
//!   and authenticated, so that a restart does not compile again.
//! - [`bindings`]: the host side of the `trademl:model` WIT world.
//! - [`model`]: one model version: verify, compile, check, predict.
//! - [`routing`]: which versions serve a model, persisted atomically.
//! - [`repository`]: every model and version; publish, promote, rollback.
//! - [`server`]: the HTTP API.
//! - [`config`]: flags, environment (`AI_MODELS_PATH`, `AI_MAX_MEMORY`,
//!   `AI_PROVIDER`) and the TOML file.
//! - [`client`]: the CLI's client of a running server.
//! - [`bench`]: load, instantiation and latency figures, printed.
//! - [`pack`]: a component or an ONNX graph and its manifest made into one
//!   checked file; [`onnx`]: the ONNX runner it specialises.
//! - [`author`]: `trademl new` and `trademl build` for model authors.
#![deny(missing_docs)]

pub mod author;
pub mod bench;
#[allow(missing_docs)]
pub mod bindings;
pub mod cache;
pub mod client;
pub mod config;
pub mod model;
pub mod onnx;
pub mod pack;
pub mod repository;
pub mod routing;
pub mod sandbox;
pub mod server;

/// Helpers of the unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    use std::path::Path;

    /// A repository of these shipped models (every version) and the
    /// shipped trust store, in a temporary directory.
    pub fn shipped_models(names: &[&str]) -> tempfile::TempDir {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
        let dir = tempfile::tempdir().unwrap();
        for sub in std::iter::once(&"trust").chain(names) {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
            for entry in std::fs::read_dir(shipped.join(sub)).unwrap() {
                let entry = entry.unwrap();
                std::fs::copy(entry.path(), dir.path().join(sub).join(entry.file_name())).unwrap();
            }
        }
        dir
    }
}
