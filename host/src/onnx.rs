//! `trademl pack --onnx`: an ONNX file made into a model component.
//!
//! The ONNX runner (`runners/onnx`, a component that runs ONNX graphs with
//! tract) is built once and embedded in this binary. Packing an ONNX file:
//!
//! 1. instruments the runner for pre-initialisation (wasmtime's Wizer);
//! 2. instantiates it in the sandbox and calls its `load` with the file:
//!    inside the sandbox, tract parses the graph, refuses any operator it
//!    cannot run (naming each), types it with the batch and sequence
//!    dimensions left symbolic, optimises it, and returns the inputs and
//!    outputs the graph declares;
//! 3. snapshots the instance's memory into a new component, whose data
//!    segments now hold the loaded, optimised graph.
//!
//! So a request instantiates a copy-on-write image of an already-loaded
//! model and only runs the plan; and the weights are in the data segments
//! that the publisher signs. The caller then embeds the manifest and checks
//! the result like any other component (`trademl pack`).

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use trademl_sdk::protocol::TensorSpec;
use wasmtime::Store;
use wasmtime::component::{Instance, Lift, WasmList};
use wasmtime_wizer::{ComponentInstanceState, Wizer};

use crate::sandbox::{CallLimits, CallState, Sandbox};

/// The prebuilt ONNX runner component (`scripts/build-onnx-runner`).
pub const RUNNER: &[u8] = include_bytes!("../../runners/onnx/trademl-onnx-runner.wasm");

mod runner {
    wasmtime::component::bindgen!({
        path: ["../wit", "../runners/onnx/wit"],
        world: "trademl:onnx-runner/runner",
        with: {
            "trademl:model/types": crate::bindings::trademl::model::types,
        },
    });
}

/// What the author says about the model; the graph says the rest.
#[derive(Clone, Debug)]
pub struct OnnxModel<'a> {
    /// The ONNX file's bytes.
    pub onnx: &'a [u8],
    /// The model's name.
    pub name: &'a str,
    /// Its version.
    pub version: &'a str,
    /// What it predicts, from what.
    pub description: &'a str,
}

/// A runner with a graph loaded into its memory snapshot.
#[derive(Debug)]
pub struct Specialised {
    /// The pre-initialised component (no manifest yet).
    pub component: Vec<u8>,
    /// The inputs the graph declares.
    pub inputs: Vec<TensorSpec>,
    /// The outputs the graph declares.
    pub outputs: Vec<TensorSpec>,
}

/// Load `model` into `runner` (the bytes of the ONNX runner component) in
/// the sandbox, and snapshot the result. Errors say what is wrong with the
/// graph: not ONNX, an operator tract cannot run, an element type trademl
/// tensors do not carry.
pub fn specialise(
    sandbox: &Sandbox,
    runner: &[u8],
    model: &OnnxModel<'_>,
    limits: CallLimits,
) -> Result<Specialised> {
    let wizer = Wizer::new();
    let (cx, instrumented) = wizer
        .instrument_component(runner)
        .map_err(|e| anyhow!("{e:#}"))
        .context("instrumenting the ONNX runner for pre-initialisation")?;
    // The same runner instruments to the same bytes for every graph: with a
    // compiled cache holding Cranelift's code of it, that is used; else
    // (the sandbox of `trademl pack` tiers) Winch compiles it, in seconds.
    let key = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&instrumented));
    let compiled = sandbox
        .compile_for_load(&instrumented, &key)
        .context("compiling the ONNX runner")?;
    let mut call = sandbox.store_of(compiled.tier, limits);
    let instance = sandbox
        .linker_of(compiled.tier)
        .instantiate(&mut call.store, &compiled.component)
        .map_err(|e| anyhow!("instantiating the ONNX runner: {}", call.classify(e)))?;
    let bindings = runner::Runner::new(&mut call.store, &instance)
        .map_err(|e| anyhow!("{e:#}"))
        .context("the ONNX runner does not export trademl:onnx-runner/loader")?;
    let loaded = bindings
        .trademl_onnx_runner_loader()
        .call_load(
            &mut call.store,
            model.onnx,
            model.name,
            model.version,
            model.description,
        )
        .map_err(|e| anyhow!("loading the graph: {}", call.classify(e)))?;
    let metadata = loaded.map_err(|reason| anyhow!("{reason}"))?;
    let mut state = Snapshotting {
        store: &mut call.store,
        instance,
    };
    let component = block_on(wizer.snapshot_component(&cx, &mut state))
        .map_err(|e| anyhow!("{e:#}"))
        .context("snapshotting the loaded ONNX runner")?;
    Ok(Specialised {
        component,
        inputs: metadata.inputs.iter().map(crate::bindings::spec).collect(),
        outputs: metadata.outputs.iter().map(crate::bindings::spec).collect(),
    })
}

/// The limits of the loading call: the model's memory cap, and a deadline
/// generous enough for optimising a large graph.
pub fn load_limits(memory_limit_mib: u32) -> CallLimits {
    CallLimits {
        max_memory_bytes: (memory_limit_mib as usize) << 20,
        deadline: Duration::from_secs(120),
    }
}

/// Reads the instance's state for Wizer (as `wasmtime_wizer`'s own
/// `WasmtimeWizerComponent`, which needs features of wasmtime that the host
/// does not otherwise use).
struct Snapshotting<'a> {
    store: &'a mut Store<CallState>,
    instance: Instance,
}

impl Snapshotting<'_> {
    fn call<R: Lift + 'static, R2>(
        &mut self,
        instance: &str,
        func: &str,
        use_ret: impl FnOnce(&mut Store<CallState>, R) -> R2,
    ) -> R2 {
        // Wizer asks only for the accessors its instrumentation added; a
        // failure here is a bug in the instrumentation, not in the model.
        let (_, exported) = self
            .instance
            .get_export(&mut *self.store, None, instance)
            .expect("the instrumented component exports its state accessors");
        let (_, f) = self
            .instance
            .get_export(&mut *self.store, Some(&exported), func)
            .expect("the instrumented component exports its state accessors");
        let f = self
            .instance
            .get_typed_func::<(), (R,)>(&mut *self.store, f)
            .expect("a state accessor has the type Wizer gave it");
        let (ret,) = f
            .call(&mut *self.store, ())
            .expect("reading the instance's state");
        use_ret(&mut *self.store, ret)
    }
}

impl ComponentInstanceState for Snapshotting<'_> {
    async fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) {
        self.call(instance, func, |store, list: WasmList<u8>| {
            contents(list.as_le_slice(&store));
        })
    }

    async fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> i32 {
        self.call(instance, func, |_, r| r)
    }

    async fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> i64 {
        self.call(instance, func, |_, r| r)
    }

    async fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> u32 {
        self.call(instance, func, |_, r: f32| r.to_bits())
    }

    async fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> u64 {
        self.call(instance, func, |_, r: f64| r.to_bits())
    }
}

/// Drive a future whose every step is synchronous (the snapshot's calls
/// into the instance are) on a one-thread runtime.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime builds")
        .block_on(f)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_runner_is_built_from_the_sources_in_the_repository() {
        crate::test_support::assert_built_from_recorded_sources(
            "runners/onnx/trademl-onnx-runner.sources",
            "scripts/build-onnx-runner",
        );
    }
}
