//! `trademl new` and `trademl build`: a model crate from nothing to a
//! packed component, for authors who write their model in Rust.
//!
//! `trademl new NAME` writes a crate that depends on `trademl-sdk` by path
//! (by default the SDK beside the source this binary was built from; `--sdk`
//! names another checkout), is its own workspace wherever it lives, and
//! keeps its arithmetic in a dependency-free `model.rs` that its tests run
//! natively. `trademl build` compiles it for `wasm32-wasip2` (adding the
//! target with rustup if it is missing), reads the model's `metadata()` in
//! the sandbox, writes the manifest from it and packs the component, so that
//! it is ready for `trademl sign`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, anyhow, bail};
use trademl_sdk::manifest::{self, Example, Manifest, Provenance};

use crate::bindings::ModelPre;
use crate::pack::{self, Packed};
use crate::sandbox::{CallLimits, Sandbox};

/// The SDK beside the source this binary was built from.
pub const DEFAULT_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk");

/// The memory cap a new model asks for, unless its Cargo.toml says otherwise
/// (`[package.metadata.trademl] memory-limit-mib`).
pub const DEFAULT_MEMORY_MIB: u32 = 64;

/// `trademl new`.
#[derive(Clone, Debug, clap::Args)]
pub struct NewArgs {
    /// The model's name: lower-case letters, digits and '-', starting with a
    /// letter. It names the crate, the directory and the model's URL.
    pub name: String,
    /// Where to create the crate's directory.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// The trademl-sdk crate to depend on (a path to its directory).
    #[arg(long, default_value = DEFAULT_SDK)]
    pub sdk: PathBuf,
}

/// `trademl build`.
#[derive(Clone, Debug, clap::Args)]
pub struct BuildArgs {
    /// The model crate's directory.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Where to write the packed component
    /// [default: <crate>/target/trademl/<name>-<version>.wasm]
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn valid_crate_name(name: &str) -> bool {
    let b = name.as_bytes();
    manifest::valid_name(name)
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !name.ends_with('-')
}

/// Write a new model crate.
pub fn new(args: &NewArgs) -> Result<()> {
    if !valid_crate_name(&args.name) {
        bail!(
            "\"{}\" is not a model name trademl new accepts: use lower-case letters, digits and '-', starting with a letter (e.g. promo-uplift)",
            args.name
        );
    }
    let sdk = args.sdk.canonicalize().map_err(|e| {
        anyhow!(
            "the trademl SDK is not at {} ({e}); pass --sdk with the path of the sdk/ directory of a trademl checkout",
            args.sdk.display()
        )
    })?;
    let sdk_manifest = std::fs::read_to_string(sdk.join("Cargo.toml")).with_context(|| {
        format!(
            "{} is not the trademl SDK: it has no Cargo.toml",
            sdk.display()
        )
    })?;
    if !sdk_manifest.contains("name = \"trademl-sdk\"") {
        bail!(
            "{} is not the trademl SDK: its Cargo.toml does not name trademl-sdk",
            sdk.display()
        );
    }
    let root = args.dir.join(&args.name);
    if root.exists() {
        bail!(
            "{} already exists; choose another name or --dir",
            root.display()
        );
    }
    let sdk_text = sdk.to_str().ok_or_else(|| {
        anyhow!(
            "the SDK path {} is not UTF-8; pass --sdk with another path",
            sdk.display()
        )
    })?;
    let fill = |template: &str| {
        template
            .replace("{{name}}", &args.name)
            .replace("{{crate}}", &args.name.replace('-', "_"))
            .replace("{{sdk}}", &sdk_text.replace('\\', "\\\\"))
    };
    std::fs::create_dir_all(root.join("src"))
        .with_context(|| format!("creating {}", root.display()))?;
    for (path, template) in [
        ("Cargo.toml", templates::CARGO_TOML),
        ("examples.json", templates::EXAMPLES_JSON),
        (".gitignore", "/target\n"),
        ("src/lib.rs", templates::LIB_RS),
        ("src/model.rs", templates::MODEL_RS),
        ("src/component.rs", templates::COMPONENT_RS),
    ] {
        let file = root.join(path);
        std::fs::write(&file, fill(template))
            .with_context(|| format!("writing {}", file.display()))?;
    }
    // The versions the SDK is tested with, so that the first build resolves
    // the same dependencies (cargo drops what the model does not use).
    let lock = sdk.join("..").join("Cargo.lock");
    if lock.is_file() {
        std::fs::copy(&lock, root.join("Cargo.lock"))
            .with_context(|| format!("copying {}", lock.display()))?;
    }
    println!(
        "created model crate {} (trademl-sdk from {})",
        root.display(),
        sdk.display()
    );
    println!("next: cd {} && cargo test && trademl build", root.display());
    Ok(())
}

/// What `[package]` of a model crate says.
struct CrateInfo {
    name: String,
    memory_limit_mib: u32,
}

fn crate_info(dir: &Path) -> Result<CrateInfo> {
    let path = dir.join("Cargo.toml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let doc: toml::Table = text
        .parse()
        .with_context(|| format!("parsing {}", path.display()))?;
    let package = doc
        .get("package")
        .and_then(|p| p.as_table())
        .ok_or_else(|| anyhow!("{} has no [package]", path.display()))?;
    let name = package
        .get("name")
        .and_then(|n| n.as_str())
        .ok_or_else(|| anyhow!("{} has no package name", path.display()))?
        .to_string();
    let memory = package
        .get("metadata")
        .and_then(|m| m.get("trademl"))
        .and_then(|t| t.get("memory-limit-mib"));
    let memory_limit_mib = match memory {
        None => DEFAULT_MEMORY_MIB,
        Some(v) => v
            .as_integer()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| {
                anyhow!(
                    "{}: [package.metadata.trademl] memory-limit-mib must be a whole number of MiB, not {v}",
                    path.display()
                )
            })?,
    };
    Ok(CrateInfo {
        name,
        memory_limit_mib,
    })
}

/// Make sure rustc can build for wasm32-wasip2, adding the target with
/// rustup when it is missing.
fn ensure_wasm_target() -> Result<()> {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .context("running rustc (is Rust installed?)")?;
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    if Path::new(&sysroot)
        .join("lib/rustlib/wasm32-wasip2")
        .is_dir()
    {
        return Ok(());
    }
    println!("adding the wasm32-wasip2 target with rustup");
    let status = Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2"])
        .status()
        .context("the wasm32-wasip2 target is missing and rustup could not be run to add it")?;
    if !status.success() {
        bail!("`rustup target add wasm32-wasip2` failed; add the target and build again");
    }
    Ok(())
}

/// Build, describe and pack a model crate.
pub fn build(args: &BuildArgs) -> Result<Packed> {
    let dir = &args.path;
    let info = crate_info(dir)?;
    ensure_wasm_target()?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("target"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(&cargo)
        .current_dir(dir)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .arg("--target-dir")
        .arg(&target_dir)
        .status()
        .with_context(|| format!("running {}", cargo.to_string_lossy()))?;
    if !status.success() {
        bail!("cargo build of {} failed (see above)", dir.display());
    }
    let wasm = target_dir
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", info.name.replace('-', "_")));
    let component = std::fs::read(&wasm).with_context(|| {
        format!(
            "reading {} (is the crate a cdylib, [lib] crate-type = [\"cdylib\", ...]?)",
            wasm.display()
        )
    })?;

    let sandbox = pack::pack_sandbox(None)?;
    let metadata = read_metadata(&sandbox, &component, info.memory_limit_mib)
        .with_context(|| format!("reading the metadata of {}", wasm.display()))?;
    let examples_path = dir.join("examples.json");
    let examples: Vec<Example> = if examples_path.is_file() {
        let text = std::fs::read(&examples_path)
            .with_context(|| format!("reading {}", examples_path.display()))?;
        serde_json::from_slice(&text).with_context(|| {
            format!(
                "{}: expected a list of {{\"inputs\": [tensors], \"outputs\": [tensors]}}",
                examples_path.display()
            )
        })?
    } else {
        vec![]
    };
    let manifest = Manifest {
        name: metadata.name,
        version: metadata.version,
        description: metadata.description,
        interface: manifest::INTERFACE.to_string(),
        inputs: metadata.inputs.iter().map(crate::bindings::spec).collect(),
        outputs: metadata.outputs.iter().map(crate::bindings::spec).collect(),
        memory_limit_mib: info.memory_limit_mib,
        provenance: Provenance {
            trainer: format!("crate {} built by trademl build", info.name),
            ..Provenance::default()
        },
        examples,
    };
    manifest
        .validate()
        .map_err(|e| anyhow!("the model's metadata() does not make a valid manifest: {e}"))?;
    let out_dir = dir.join("target").join("trademl");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let manifest_path = out_dir.join("manifest.json");
    std::fs::write(&manifest_path, manifest.to_json_pretty())
        .with_context(|| format!("writing {}", manifest_path.display()))?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| out_dir.join(format!("{}-{}.wasm", manifest.name, manifest.version)));
    let packed = pack::pack_component(&sandbox, &component, &manifest, &out)?;
    println!("built {packed}");
    println!("  manifest: {}", manifest_path.display());
    println!("  packed:   {}", out.display());
    println!(
        "next: trademl sign {} --key <your secret key>",
        out.display()
    );
    Ok(packed)
}

/// Instantiate a component in the sandbox and call its `metadata()`.
fn read_metadata(
    sandbox: &Sandbox,
    component: &[u8],
    memory_limit_mib: u32,
) -> Result<crate::bindings::ModelMetadata> {
    let compiled = crate::sandbox::Compiled {
        component: sandbox.compile(component)?,
        tier: crate::sandbox::Tier::Cranelift,
        from_cache: false,
    };
    crate::model::check_exports(sandbox, &compiled).map_err(|e| anyhow!("{e}"))?;
    let pre = sandbox
        .linker()
        .instantiate_pre(&compiled.component)
        .map_err(|e| anyhow!("{e:#}"))?;
    let pre = ModelPre::new(pre).map_err(|e| anyhow!("{e:#}"))?;
    let mut call = sandbox.store(CallLimits {
        max_memory_bytes: (memory_limit_mib as usize) << 20,
        deadline: std::time::Duration::from_secs(10),
    });
    let model = pre
        .instantiate(&mut call.store)
        .map_err(|e| anyhow!("instantiating: {}", call.classify(e)))?;
    model
        .trademl_model_predict()
        .call_metadata(&mut call.store)
        .map_err(|e| anyhow!("calling metadata(): {}", call.classify(e)))
}

/// The files of a new model crate. `{{name}}` is the model's name,
/// `{{crate}}` its Rust identifier, `{{sdk}}` the SDK's directory.
mod templates {
    pub const CARGO_TOML: &str = include_str!("author/template/Cargo.toml.in");
    pub const EXAMPLES_JSON: &str = include_str!("author/template/examples.json");
    pub const LIB_RS: &str = include_str!("author/template/lib.rs.in");
    pub const MODEL_RS: &str = include_str!("author/template/model.rs.in");
    pub const COMPONENT_RS: &str = include_str!("author/template/component.rs.in");
}
