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

    /// Checks a checked-in component against the record its build script
    /// wrote beside it (`scripts/record-sources`): a `# sources:` line naming
    /// the files and folders it was built from, then `sha256sum` lines for
    /// each of their files and for the component. Fails, naming each file,
    /// if a source changed, appeared or went since, or if the component is
    /// not the one recorded: the component was not rebuilt with `script`.
    /// It cannot tell whether the recorded sources built the component;
    /// it catches a source change committed without a rebuild.
    pub fn assert_built_from_recorded_sources(record: &str, script: &str) {
        use sha2::{Digest, Sha256};
        use std::collections::BTreeMap;

        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let text = std::fs::read_to_string(root.join(record))
            .unwrap_or_else(|e| panic!("{record}: {e}; run {script}"));
        let mut lines = text.lines();
        let sources: Vec<&str> = lines
            .next()
            .and_then(|l| l.strip_prefix("# sources: "))
            .unwrap_or_else(|| panic!("{record}: the first line must be `# sources: ...`"))
            .split_whitespace()
            .collect();
        let recorded: BTreeMap<&str, &str> = lines
            .map(|l| {
                l.split_once("  ")
                    .unwrap_or_else(|| panic!("{record}: `{l}` is not `DIGEST  PATH`"))
            })
            .map(|(digest, path)| (path, digest))
            .collect();

        fn files(root: &Path, path: &Path, into: &mut Vec<String>) {
            let full = root.join(path);
            if full.is_dir() {
                for entry in std::fs::read_dir(&full).unwrap() {
                    files(root, &path.join(entry.unwrap().file_name()), into);
                }
            } else if full.exists() {
                into.push(path.to_str().unwrap().to_owned());
            }
        }
        let mut present = Vec::new();
        for source in &sources {
            files(&root, Path::new(source), &mut present);
        }
        let component = recorded
            .keys()
            .copied()
            .filter(|p| p.ends_with(".wasm"))
            .filter(|p| !sources.iter().any(|s| p.starts_with(s)))
            .collect::<Vec<_>>();
        assert_eq!(
            component.len(),
            1,
            "{record}: one recorded .wasm outside the sources"
        );

        let digest =
            |path: &str| hex::encode(Sha256::digest(std::fs::read(root.join(path)).unwrap()));
        let mut wrong = Vec::new();
        for path in present
            .iter()
            .map(String::as_str)
            .chain(component.iter().copied())
        {
            match recorded.get(path) {
                None => wrong.push(format!("{path} is new")),
                Some(&d) if d != digest(path) => wrong.push(format!("{path} changed")),
                Some(_) => {}
            }
        }
        for path in recorded.keys() {
            if !present.iter().any(|p| p == path) && !component.contains(path) {
                wrong.push(format!("{path} is gone"));
            }
        }
        assert!(
            wrong.is_empty(),
            "{} is not built from the sources in the repository ({}): run {script} \
             and commit the component with {record}",
            component[0],
            wrong.join("; ")
        );
    }
}
