//! The trademl ONNX runner: a model component whose arithmetic is an ONNX
//! graph run by tract.
//!
//! `trademl pack --onnx` instantiates this component, calls
//! `trademl:onnx-runner/loader.load` with the ONNX file, and snapshots the
//! instance's memory into a new component (pre-initialisation, with
//! wasmtime's Wizer). The packed component therefore starts with the graph
//! already parsed, typed and optimised in its linear memory: a request only
//! runs the plan. What the publisher signed is exactly what runs, graph
//! included.
//!
//! `load` refuses, naming them, the operators tract cannot run, so that an
//! author meets them at pack time and never at request time.

mod convert;
mod scaler;
mod trees;

use std::sync::{Arc, OnceLock};

use anyhow::Context;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::tract_hir::internal::{bail, format_err};

wit_bindgen::generate!({
    path: ["../../wit", "wit"],
    world: "trademl:onnx-runner/runner",
    generate_all,
});

use exports::trademl::model::predict::Guest as Predict;
use exports::trademl::onnx_runner::loader::Guest as Loader;
use trademl::model::types::{Error, ModelMetadata, Tensor, TensorSpec};

/// The loaded graph: set once by `load`, before the snapshot.
static MODEL: OnceLock<Loaded> = OnceLock::new();

struct Loaded {
    plan: Arc<TypedSimplePlan>,
    metadata: ModelMetadata,
}

struct Runner;

impl Loader for Runner {
    fn load(
        onnx: Vec<u8>,
        name: String,
        version: String,
        description: String,
    ) -> Result<ModelMetadata, String> {
        if MODEL.get().is_some() {
            return Err("a graph is already loaded".into());
        }
        let (plan, inputs, outputs) = load_graph(&onnx).map_err(|e| format!("{e:#}"))?;
        let metadata = ModelMetadata {
            name,
            version,
            description,
            inputs,
            outputs,
        };
        let loaded = Loaded {
            plan,
            metadata: metadata.clone(),
        };
        MODEL
            .set(loaded)
            .map_err(|_| "a graph is already loaded".to_string())?;
        Ok(metadata)
    }
}

impl Predict for Runner {
    fn metadata() -> ModelMetadata {
        match MODEL.get() {
            Some(m) => m.metadata.clone(),
            None => ModelMetadata {
                name: String::new(),
                version: String::new(),
                description: "the ONNX runner before `trademl pack --onnx` loaded a graph".into(),
                inputs: vec![],
                outputs: vec![],
            },
        }
    }

    fn predict(inputs: Vec<Tensor>) -> Result<Vec<Tensor>, Error> {
        let model = MODEL.get().ok_or_else(|| {
            Error::ModelFailure(
                "no ONNX graph is loaded: pack it with `trademl pack --onnx`".into(),
            )
        })?;
        let args = convert::inputs_in_graph_order(&model.metadata.inputs, inputs)?;
        let outputs = model
            .plan
            .run(args)
            .map_err(|e| Error::ModelFailure(format!("running the ONNX graph: {e:#}")))?;
        model
            .metadata
            .outputs
            .iter()
            .zip(outputs)
            .map(|(spec, value)| convert::to_wit(&spec.name, &value))
            .collect()
    }
}

/// The operators of the graph (and its subgraphs) that this build of tract
/// has no implementation for, sorted, each once.
fn unsupported_operators(
    onnx: &tract_onnx::Onnx,
    graph: &tract_onnx::pb::GraphProto,
) -> Vec<String> {
    let mut missing = std::collections::BTreeSet::new();
    let mut stack = vec![graph];
    while let Some(g) = stack.pop() {
        for node in &g.node {
            if !onnx.op_register.0.contains_key(&node.op_type) {
                let domain = if node.domain.is_empty() {
                    "ai.onnx"
                } else {
                    &node.domain
                };
                missing.insert(format!("{} (domain {domain})", node.op_type));
            }
            for attr in &node.attribute {
                stack.extend(attr.g.iter());
                stack.extend(attr.graphs.iter());
            }
        }
    }
    missing.into_iter().collect()
}

/// Parse, check, type and optimise the graph; describe its inputs and outputs.
fn load_graph(
    bytes: &[u8],
) -> TractResult<(Arc<TypedSimplePlan>, Vec<TensorSpec>, Vec<TensorSpec>)> {
    let mut onnx = tract_onnx::onnx();
    scaler::register(&mut onnx.op_register);
    trees::register(&mut onnx.op_register);
    let proto = onnx
        .proto_model_for_read(&mut &*bytes)
        .map_err(|e| format_err!("this is not an ONNX model: {e}"))?;
    let graph = proto
        .graph
        .as_ref()
        .ok_or_else(|| format_err!("this is not an ONNX model: it holds no graph"))?;
    if graph.node.is_empty() && graph.output.is_empty() {
        bail!("this is not an ONNX model: its graph is empty");
    }
    let missing = unsupported_operators(&onnx, graph);
    if !missing.is_empty() {
        bail!(
            "the graph uses {} operator(s) that tract cannot run: {}",
            missing.len(),
            missing.join(", ")
        );
    }
    let mut model = onnx.model_for_proto_model(&proto)?;

    // Every dimension the graph leaves open (the batch, a sequence length)
    // becomes a symbol, resolved from each request's shapes.
    let mut input_specs = vec![];
    let mut open = std::collections::BTreeSet::new();
    for (ix, input) in graph
        .input
        .iter()
        .filter(|i| !graph.initializer.iter().any(|t| t.name == i.name))
        .enumerate()
    {
        let fact = model.input_fact(ix)?.clone();
        let datum_type = fact.datum_type.concretize().ok_or_else(|| {
            format_err!("graph input \"{}\" declares no element type", input.name)
        })?;
        let datatype = convert::datatype(datum_type)
            .with_context(|| format!("graph input \"{}\"", input.name))?;
        let rank = fact
            .shape
            .rank()
            .concretize()
            .ok_or_else(|| format_err!("graph input \"{}\" declares no shape", input.name))?;
        let mut dims: TVec<TDim> = tvec![];
        let mut spec_shape = vec![];
        for (axis, d) in fact.shape.dims().enumerate().take(rank as usize) {
            match d.concretize() {
                Some(TDim::Val(n)) => {
                    dims.push(TDim::Val(n));
                    spec_shape.push(n);
                }
                Some(TDim::Sym(sym)) => {
                    open.insert(sym.clone());
                    dims.push(sym.into());
                    spec_shape.push(-1);
                }
                _ => {
                    let sym = model.symbols.new_with_prefix(&format!("d{axis}_"));
                    open.insert(sym.clone());
                    dims.push(sym.into());
                    spec_shape.push(-1);
                }
            }
        }
        model.set_input_fact(ix, InferenceFact::dt_shape(datum_type, dims))?;
        input_specs.push(TensorSpec {
            name: input.name.clone(),
            datatype,
            shape: spec_shape,
            description: format!("the ONNX graph's input \"{}\"", input.name),
        });
    }

    // Every open dimension is at least 1. Told so, tract can prove a tensor
    // of `batch` rows large enough for its vectorised element-wise kernels,
    // which it otherwise declines for a size that might be 0: in
    // demand-forecast-lstm's Scan it then fuses the two additions of each
    // step's gates into one pass of its SIMD kernel, where before it added
    // element by element through a function pointer (an indirect call per
    // element in WebAssembly). A request of 0 rows still runs and answers 0
    // rows (tests/e2e/onnx.rs).
    for sym in &open {
        model.symbols.add_assertion(format!("{sym}>=1"))?;
    }

    let output_names: Vec<String> = graph.output.iter().map(|o| o.name.clone()).collect();
    let mut typed = model.into_optimized()?;
    // tract computes some integer outputs (an ArgMax through a Cast, as
    // skl2onnx's MLP classifier labels) as symbolic dimensions: make them
    // INT64, as the graph declares them.
    let outlets = typed.output_outlets()?.to_vec();
    let mut outputs = vec![];
    for (ix, outlet) in outlets.into_iter().enumerate() {
        if typed.outlet_fact(outlet)?.datum_type == DatumType::TDim {
            let cast = tract_onnx::tract_hir::tract_core::ops::cast::cast(i64::datum_type());
            outputs
                .push(typed.wire_node(format!("trademl.output{ix}.to_i64"), cast, &[outlet])?[0]);
        } else {
            outputs.push(outlet);
        }
    }
    typed.select_output_outlets(&outputs)?;
    let mut output_specs = vec![];
    for (ix, name) in output_names.iter().enumerate() {
        let fact = typed.output_fact(ix)?;
        let datatype = convert::datatype(fact.datum_type)
            .with_context(|| format!("graph output \"{name}\""))?;
        output_specs.push(TensorSpec {
            name: name.clone(),
            datatype,
            shape: fact
                .shape
                .iter()
                .map(|d| d.to_i64().unwrap_or(-1))
                .collect(),
            description: format!("the ONNX graph's output \"{name}\""),
        });
    }
    let plan = typed.into_runnable()?;
    Ok((plan, input_specs, output_specs))
}

export!(Runner);
