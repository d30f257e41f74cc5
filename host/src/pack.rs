//! `trademl pack`: a component (or an ONNX graph) and its manifest made into
//! one file, checked in the sandbox before anyone signs it.
//!
//! Either way the packed file is loaded as the server would load it, minus
//! the signature: it must export the interface version this host speaks, its
//! `metadata()` must equal the manifest, and the manifest's examples must
//! reproduce.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use serde::Deserialize;
use trademl_sdk::manifest::{self, DataSource, Example, Manifest, Provenance};
use trademl_sdk::protocol::Tensor;

use crate::model::LoadedVersion;
use crate::onnx::{self, OnnxModel};
use crate::sandbox::{Sandbox, SandboxConfig, TIERED_ABOVE, Tier, Tiering};

/// The memory cap an ONNX model gets unless its author says otherwise.
pub const DEFAULT_ONNX_MEMORY_MIB: u32 = 256;

/// The default tolerance of an ONNX model's examples: relative, against
/// `max(|expected|, |actual|, 1)` (see `protocol::tensors_close`).
pub const DEFAULT_ONNX_TOLERANCE: f64 = 1e-5;

/// What a pack produced, and how long it took.
#[derive(Debug)]
pub struct Packed {
    /// The model's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The packed file's size.
    pub bytes: usize,
    /// Examples that reproduced in the sandbox.
    pub examples: usize,
    /// Loading the graph and snapshotting the runner (ONNX only).
    pub specialise: Option<Duration>,
    /// Compiling the packed component.
    pub compile: Duration,
    /// The compiler that made the code the examples were checked with.
    pub tier: Option<Tier>,
    /// All of it, reading to writing.
    pub total: Duration,
}

impl std::fmt::Display for Packed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} ({} bytes; {} example(s) reproduced; ",
            self.name, self.version, self.bytes, self.examples
        )?;
        if let Some(s) = self.specialise {
            write!(f, "graph loaded and snapshotted in {:.0} ms; ", ms(s))?;
        }
        write!(
            f,
            "compiled{} in {:.0} ms; packed in {:.0} ms)",
            match self.tier {
                Some(Tier::Winch) => " by Winch",
                _ => "",
            },
            ms(self.compile),
            ms(self.total)
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The sandbox `pack` checks components in: no pool, a few instances, and
/// the compiled cache in `cache_dir` if given. Given the cache directory of
/// the server that will load the file (`<models>/.cache` by default), the
/// server finds the file already compiled — unless it is a large component
/// (an ONNX model): pack checks those with Winch's code, in seconds rather
/// than minutes, and leaves Cranelift's compile to the server, which serves
/// with Winch's code meanwhile.
pub fn pack_sandbox(cache_dir: Option<PathBuf>) -> Result<Arc<Sandbox>> {
    Sandbox::new(SandboxConfig {
        max_instances: 4,
        pooling: false,
        cache_dir,
        tiering: Tiering::BaselineOnly {
            above: TIERED_ABOVE,
        },
        ..SandboxConfig::default()
    })
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Embed `manifest` into `component`, check the result in `sandbox` and
/// write it to `out`.
pub fn pack_component(
    sandbox: &Arc<Sandbox>,
    component: &[u8],
    manifest: &Manifest,
    out: &Path,
) -> Result<Packed> {
    let started = Instant::now();
    let packed = manifest::embed_manifest(component, manifest)?;
    let loaded = LoadedVersion::load_unverified(sandbox, &packed, Duration::from_secs(10))
        .map_err(|e| anyhow!("{e}"))?;
    crate::routing::write_atomically(out, &packed)?;
    Ok(Packed {
        name: loaded.name().to_string(),
        version: loaded.version().to_string(),
        bytes: packed.len(),
        examples: loaded.manifest.examples.len(),
        specialise: None,
        compile: loaded.timings.compile,
        tier: loaded.timings.tier,
        total: started.elapsed(),
    })
}

/// `trademl pack COMPONENT --manifest FILE --out FILE`.
pub fn pack_files(
    component: &Path,
    manifest_path: &Path,
    out: &Path,
    cache_dir: Option<PathBuf>,
) -> Result<Packed> {
    let bytes = read(component)?;
    let manifest = Manifest::from_json(&read(manifest_path)?)
        .with_context(|| format!("reading the manifest {}", manifest_path.display()))?;
    pack_component(&pack_sandbox(cache_dir)?, &bytes, &manifest, out)
        .with_context(|| format!("packing {}", component.display()))
}

/// What `trademl pack --onnx` is told.
#[derive(Clone, Debug)]
pub struct OnnxPack {
    /// The ONNX file.
    pub onnx: PathBuf,
    /// The model's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// What it predicts, from what.
    pub description: String,
    /// A JSON file of example inputs and the outputs they must give
    /// (`{"inputs": [...], "outputs": [...]}`, Open Inference Protocol
    /// tensors), checked now and at every load.
    pub examples: Option<PathBuf>,
    /// The relative tolerance of the examples.
    pub tolerance: f64,
    /// The memory cap of an instance, in MiB.
    pub memory_limit_mib: u32,
    /// Another build of the ONNX runner instead of the embedded one.
    pub runner: Option<PathBuf>,
    /// Where to write the packed component.
    pub out: PathBuf,
    /// The compiled cache to use (see [`pack_sandbox`]).
    pub cache_dir: Option<PathBuf>,
}

/// An examples file: one example, as the ONNX fixtures store their
/// reference outputs, or a list of them.
#[derive(Deserialize)]
#[serde(untagged)]
enum ExamplesFile {
    One(ExampleEntry),
    Many(Vec<ExampleEntry>),
}

#[derive(Deserialize)]
struct ExampleEntry {
    inputs: Vec<Tensor>,
    outputs: Vec<Tensor>,
    tolerance: Option<f64>,
}

fn read_examples(path: &Path, tolerance: f64) -> Result<Vec<Example>> {
    let text = read(path)?;
    let file: ExamplesFile = serde_json::from_slice(&text).with_context(|| {
        format!(
            "reading the examples {}: expected {{\"inputs\": [tensors], \"outputs\": [tensors]}} or a list of them",
            path.display()
        )
    })?;
    let entries = match file {
        ExamplesFile::One(e) => vec![e],
        ExamplesFile::Many(v) => v,
    };
    Ok(entries
        .into_iter()
        .map(|e| Example {
            inputs: e.inputs,
            outputs: e.outputs,
            tolerance: e.tolerance.unwrap_or(tolerance),
        })
        .collect())
}

/// `trademl pack --onnx FILE`: load the graph into the ONNX runner, snapshot
/// it, and pack it with a manifest made from the graph's inputs and outputs.
pub fn pack_onnx(opts: &OnnxPack) -> Result<Packed> {
    let started = Instant::now();
    let graph = read(&opts.onnx)?;
    let runner = match &opts.runner {
        Some(path) => read(path)?,
        None => onnx::RUNNER.to_vec(),
    };
    let examples = match &opts.examples {
        Some(path) => read_examples(path, opts.tolerance)?,
        None => vec![],
    };
    // Name and version first: a typo should not wait for the graph to load.
    let mut manifest = Manifest {
        name: opts.name.clone(),
        version: opts.version.clone(),
        description: opts.description.clone(),
        interface: manifest::INTERFACE.to_string(),
        inputs: vec![],
        outputs: vec![],
        memory_limit_mib: opts.memory_limit_mib,
        provenance: Provenance {
            trainer: format!(
                "an ONNX graph, packed by trademl {} with tract-onnx 0.23.9",
                env!("CARGO_PKG_VERSION")
            ),
            data: vec![DataSource {
                path: opts
                    .onnx
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&graph)),
                rows: 0,
                description: "the ONNX file this component runs".into(),
            }],
            ..Provenance::default()
        },
        examples: vec![],
    };
    if let Err(e) = manifest.validate() {
        let wrong: Vec<&String> = e
            .problems
            .iter()
            .filter(|p| {
                p.starts_with("name") || p.starts_with("version") || p.starts_with("memory")
            })
            .collect();
        if !wrong.is_empty() {
            return Err(anyhow!(
                "{}",
                wrong
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
    }

    let sandbox = pack_sandbox(opts.cache_dir.clone())?;
    let specialise_started = Instant::now();
    let specialised = onnx::specialise(
        &sandbox,
        &runner,
        &OnnxModel {
            onnx: &graph,
            name: &opts.name,
            version: &opts.version,
            description: &opts.description,
        },
        onnx::load_limits(opts.memory_limit_mib),
    )
    .with_context(|| format!("{}", opts.onnx.display()))?;
    let specialise = specialise_started.elapsed();
    manifest.inputs = specialised.inputs;
    manifest.outputs = specialised.outputs;
    manifest.examples = examples;
    let mut packed = pack_component(&sandbox, &specialised.component, &manifest, &opts.out)
        .with_context(|| format!("packing {}", opts.onnx.display()))?;
    packed.specialise = Some(specialise);
    packed.total = started.elapsed();
    Ok(packed)
}
