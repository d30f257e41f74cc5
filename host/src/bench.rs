//! `trademl bench`: figures of load time, instantiation and prediction
//! latency for every model of a repository, in process and over HTTP on
//! loopback. It prints a table and writes JSON; it asserts nothing.
//!
//! When the caller passes the models' code compiled natively
//! ([`NativeModel`], as the `trademl-bench` binary does), each in-process
//! series is run twice, interleaved: in the sandbox and natively, with the
//! same tensors and the same manifest checks, so that their ratio is the
//! sandbox's overhead measured under the same machine load. Beside them, the
//! floor (`bench/echo.rs`): the same tensors through the same sandbox with
//! no model in them, which no model's sandboxed call can go below.
//!
//! Every figure is a distribution over repeated runs (median and tails), as
//! these machines are shared and noisy. The HTTP client runs in the same
//! process on its own thread with one keep-alive connection, so the latency
//! it sees includes the client's own JSON work and loopback TCP.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::json;
use trademl_sdk::protocol::{Tensor, TensorData};
use trademl_sdk::signing::{self, TrustStore};

use crate::model::{LoadedVersion, PredictError};
use crate::repository::Repository;
use crate::sandbox::{Compiler, Sandbox, SandboxConfig, TIERED_ABOVE, Tier, Tiering};

mod boundary;
mod echo;

pub use self::echo::ECHO;
use self::echo::Echo;

/// A model's own `predict` compiled natively: the function the component
/// exports, called with the same tensors, without the sandbox.
pub type NativePredict = fn(Vec<Tensor>) -> Result<Vec<Tensor>, String>;

/// A request of `n` rows built from a model's first example, for a model
/// whose example cannot be tiled row by row (its request is one case, such as
/// one customer's baskets): what its batch is, and the request.
pub type BatchRequest = fn(&[Tensor], usize) -> Result<Vec<Tensor>, String>;

/// A model whose code is also compiled into the benchmark.
#[derive(Clone, Copy, Debug)]
pub struct NativeModel {
    /// The model's name, as in its manifest.
    pub name: &'static str,
    /// Its `predict`, native.
    pub predict: NativePredict,
    /// How to build its batch request, when tiling its example's rows does
    /// not make one; with what its "rows" are, for the figures.
    pub batch: Option<(&'static str, BatchRequest)>,
    /// The relative difference allowed between its native and sandboxed
    /// outputs: 1e-9 for code that computes the same in both, more for
    /// arithmetic whose order differs (tract's native and WebAssembly SIMD
    /// kernels sum in different orders).
    pub tolerance: f64,
}

/// The command-line options of the in-process series, shared by
/// `trademl bench` and `trademl-bench`.
#[derive(clap::Args, Clone, Debug)]
pub struct SeriesArgs {
    /// The model repository.
    #[arg(long, default_value = "models")]
    pub models: PathBuf,
    /// Only this model (repeatable).
    #[arg(long = "model")]
    pub only: Vec<String>,
    /// Cold loads per model.
    #[arg(long, default_value_t = 5)]
    pub loads: usize,
    /// Requests per latency series.
    #[arg(long, default_value_t = 2000)]
    pub requests: usize,
    /// Rows of the large request over HTTP.
    #[arg(long, default_value_t = 1000)]
    pub batch_rows: usize,
    /// Rows of the batch predicted in process.
    #[arg(long, default_value_t = 100)]
    pub rows: usize,
    /// Instead of the usual figures: each model compiled by each compiler
    /// setting (Cranelift, on all cores and on one; Cranelift without
    /// optimisation; Winch), with its compile time and one-row latency.
    #[arg(long)]
    pub compilers: bool,
}

impl SeriesArgs {
    /// The options of a run, with these native models and JSON output.
    pub fn options(&self, native: Vec<NativeModel>, json_out: Option<PathBuf>) -> BenchOptions {
        BenchOptions {
            models: self.models.clone(),
            only: self.only.clone(),
            loads: self.loads,
            requests: self.requests,
            batch_rows: self.batch_rows,
            rows: self.rows,
            native,
            json_out,
            compilers: self.compilers,
        }
    }
}

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// The model repository.
    pub models: PathBuf,
    /// Only these models (all when empty).
    pub only: Vec<String>,
    /// Cold loads per model.
    pub loads: usize,
    /// Requests per latency series.
    pub requests: usize,
    /// Rows of the large request over HTTP.
    pub batch_rows: usize,
    /// Rows of the in-process batch (sandbox and native).
    pub rows: usize,
    /// The models' code compiled natively (none: no native comparison).
    pub native: Vec<NativeModel>,
    /// Where to write the JSON figures.
    pub json_out: Option<PathBuf>,
    /// Compare the compilers instead (see [`SeriesArgs::compilers`]).
    pub compilers: bool,
}

/// The distribution of a series of durations, in milliseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// How many samples.
    pub n: usize,
    /// The fastest.
    pub min_ms: f64,
    /// The median.
    pub p50_ms: f64,
    /// The 99th percentile.
    pub p99_ms: f64,
    /// The slowest.
    pub max_ms: f64,
}

impl Summary {
    /// Summarise samples.
    pub fn of(samples: &mut [Duration]) -> Summary {
        samples.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let at = |q: f64| ms(samples[((samples.len() - 1) as f64 * q).round() as usize]);
        Summary {
            n: samples.len(),
            min_ms: ms(samples[0]),
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            max_ms: ms(samples[samples.len() - 1]),
        }
    }
}

/// The figures of one model.
#[derive(Debug, Serialize)]
pub struct ModelFigures {
    /// The model.
    pub name: String,
    /// The version measured.
    pub version: String,
    /// The component's size in bytes.
    pub size_bytes: usize,
    /// Signature verification.
    pub verify: Summary,
    /// The compiler of a cold load: Cranelift, or Winch for a component
    /// with more code than the tiering threshold.
    pub cold_load_compiler: Tier,
    /// Compilation with a fresh engine (no cache), by that compiler.
    pub compile: Summary,
    /// Verify, compile and check (metadata and examples): a whole cold load,
    /// after which the version serves.
    pub cold_load: Summary,
    /// For a version that loads with Winch's code: the server's background
    /// compile with Cranelift, and the checks of its code, in ms (one
    /// sample: the server's own load of the version).
    pub cranelift_in_background_ms: Option<f64>,
    /// For a version that loads with Winch's code: one prediction of one
    /// row in process with that code, before Cranelift's replaces it.
    pub predict_1_row_winch: Option<Summary>,
    /// A whole load with the compiled code from the cache (a restart).
    pub cached_load: Summary,
    /// Making a fresh store and instance, as each request gets (off the
    /// request's path when a spare is ready).
    pub instantiate: Summary,
    /// One prediction of one row in process, as the server calls: a fresh
    /// instance, made ahead of the call.
    pub predict_1_row_in_process: Summary,
    /// The same prediction by the model's code compiled natively.
    pub predict_1_row_native: Option<Summary>,
    /// Sandbox over native, one row, at the median.
    pub sandbox_over_native_1_row: Option<f64>,
    /// The same prediction in one instance kept from call to call, which
    /// the server never does (each request gets a fresh instance): what the
    /// fresh instance costs.
    pub predict_1_row_warm_instance: Summary,
    /// Warm instance over native, one row, at the median.
    pub warm_instance_over_native_1_row: Option<f64>,
    /// The same prediction with the instance made in the call, as before
    /// the server kept spares.
    pub predict_1_row_making_instance: Summary,
    /// Instance made in the call over native, one row, at the median.
    pub making_instance_over_native_1_row: Option<f64>,
    /// The echo component's call with the same tensors as the one-row
    /// call ([`ECHO`]): the sandbox's boundary with no model work in it,
    /// the floor under the model's one-row time in the sandbox.
    pub predict_1_row_floor: Summary,
    /// The floor over native, one row, at the median: the sandbox can be
    /// within `1 + floor / native` of native code at best.
    pub floor_over_native_1_row: Option<f64>,
    /// The echo's call with the same bytes in one buffer each way (one
    /// `BYTES` element in, one out, read back into the outputs' tensors on
    /// the host): the floor of an interface that carried tensors as bytes.
    pub predict_1_row_floor_one_buffer: Summary,
    /// That floor over native, one row, at the median.
    pub floor_one_buffer_over_native_1_row: Option<f64>,
    /// The least call carrying the one-row request's bytes in and its
    /// answer's bytes out, bare (`bench/boundary`'s `bytes`): what any
    /// interface would cost at least.
    pub predict_1_row_least_call: Summary,
    /// `1 + least call / native`, one row: the ratio to native code no
    /// interface could take this model below.
    pub least_call_bound_over_native_1_row: Option<f64>,
    /// The least call of all, with no arguments (`bench/boundary`'s
    /// `nothing`), timed in the one-row series.
    pub empty_call: Summary,
    /// Rows of the in-process batch.
    pub rows: usize,
    /// What a row of the batch is, for a model whose batch is not its
    /// example's rows tiled (none: the example's rows, repeated).
    pub rows_are: Option<String>,
    /// One prediction of `rows` rows in process (none for a model whose
    /// request is one case rather than rows, and that has no batch builder).
    pub predict_rows_in_process: Option<Summary>,
    /// The same by the model's code compiled natively.
    pub predict_rows_native: Option<Summary>,
    /// Sandbox over native, `rows` rows, at the median.
    pub sandbox_over_native_rows: Option<f64>,
    /// `rows` rows in one instance kept from call to call.
    pub predict_rows_warm_instance: Option<Summary>,
    /// Warm instance over native, `rows` rows, at the median.
    pub warm_instance_over_native_rows: Option<f64>,
    /// `rows` rows with the instance made in the call.
    pub predict_rows_making_instance: Option<Summary>,
    /// Instance made in the call over native, `rows` rows, at the median.
    pub making_instance_over_native_rows: Option<f64>,
    /// The echo component's call with the same tensors as the `rows` call.
    pub predict_rows_floor: Option<Summary>,
    /// The floor over native, `rows` rows, at the median.
    pub floor_over_native_rows: Option<f64>,
    /// The echo's call with the same bytes as the `rows` call in one buffer
    /// each way.
    pub predict_rows_floor_one_buffer: Option<Summary>,
    /// That floor over native, `rows` rows, at the median.
    pub floor_one_buffer_over_native_rows: Option<f64>,
    /// The least call carrying the `rows` request's bytes and its answer's.
    pub predict_rows_least_call: Option<Summary>,
    /// `1 + least call / native`, `rows` rows.
    pub least_call_bound_over_native_rows: Option<f64>,
    /// Why there is no native figure, when there is none.
    pub native_skipped: Option<String>,
    /// One prediction of one row over HTTP on loopback.
    pub predict_1_row_http: Summary,
    /// A request of `batch_rows` rows over HTTP (none for a model whose
    /// request is one case rather than rows).
    pub predict_batch_http: Option<Summary>,
    /// Rows of the batch request.
    pub batch_rows: usize,
    /// Rows per second of the batch request, at its median.
    pub batch_rows_per_second: Option<f64>,
}

/// Run the benchmark and print its figures.
pub fn run(options: &BenchOptions) -> Result<Vec<ModelFigures>> {
    let trust = TrustStore::load(&options.models.join("trust"))?;
    let files = model_files(&options.models, &options.only)?;
    if files.is_empty() {
        bail!("no model files to measure in {}", options.models.display());
    }
    if options.compilers {
        compilers(options, &trust, &files)?;
        return Ok(Vec::new());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // The server's sandbox, with a compiled cache that the restarts below
    // load from.
    let cache_dir = tempfile::tempdir()?;
    let sandbox = Sandbox::new(SandboxConfig {
        cache_dir: Some(cache_dir.path().to_path_buf()),
        ..SandboxConfig::default()
    })?;
    let deadline = Duration::from_secs(10);
    let echo = Echo::new(&sandbox)?;
    let repo = Arc::new(Repository::open(
        &options.models,
        sandbox.clone(),
        deadline,
    )?);
    // Versions loaded with Winch's code are compiled by Cranelift in the
    // background, one after another: wait for all of them, so that no
    // compile runs while anything is measured.
    let mut in_background = std::collections::BTreeMap::new();
    for model in repo.models() {
        for version in model.versions() {
            if let Some(took) = version.wait_optimised() {
                let took = took.map_err(|e| {
                    anyhow::anyhow!(
                        "{} {}: the Cranelift compile failed: {e}",
                        version.name(),
                        version.version()
                    )
                })?;
                in_background.insert(
                    (version.name().to_string(), version.version().to_string()),
                    took.as_secs_f64() * 1e3,
                );
            }
        }
    }
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let app = crate::server::app(repo.clone(), crate::server::CallPolicy::new(64));
    runtime.spawn(async move { axum::serve(listener, app).await });
    let base = format!("http://{addr}");

    let mut all = Vec::new();
    for file in files {
        let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        let mut verify = Vec::new();
        let mut compile = Vec::new();
        let mut cold = Vec::new();
        let mut cold_loaded = None;
        for _ in 0..options.loads.max(1) {
            // A fresh engine each time: nothing cached between loads. What
            // serves after the load (Winch's code for a large component);
            // the background Cranelift compile is measured on the server's
            // load above, not run again here.
            let fresh = Sandbox::new(SandboxConfig {
                tiering: Tiering::BaselineOnly {
                    above: TIERED_ABOVE,
                },
                ..SandboxConfig::default()
            })?;
            let started = Instant::now();
            signing::verify(&bytes, &trust)?;
            verify.push(started.elapsed());
            let started = Instant::now();
            let l = LoadedVersion::load(&fresh, &bytes, &trust, deadline)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            cold.push(started.elapsed());
            compile.push(l.timings.compile);
            cold_loaded = Some(l);
        }
        let cold_loaded = cold_loaded.expect("at least one load");
        let cold_load_compiler = cold_loaded.tier();
        // What serves from now on: the server's version, with Cranelift's code.
        let loaded = repo
            .model(cold_loaded.name())
            .ok()
            .and_then(|m| m.version(cold_loaded.version()))
            .with_context(|| {
                format!(
                    "{}: {} {} is not in the server's repository",
                    file.display(),
                    cold_loaded.name(),
                    cold_loaded.version()
                )
            })?;
        if loaded.tier() != Tier::Cranelift {
            bail!(
                "{}: the server serves it with {:?}'s code",
                file.display(),
                loaded.tier()
            );
        }
        let cranelift_in_background_ms = in_background
            .get(&(loaded.name().to_string(), loaded.version().to_string()))
            .copied();
        // A restart: a new engine, the compiled code from the authenticated
        // cache the server's sandbox wrote.
        let cached = Sandbox::new(SandboxConfig {
            cache_dir: Some(cache_dir.path().to_path_buf()),
            ..SandboxConfig::default()
        })?;
        let mut cached_load = Vec::new();
        for _ in 0..options.loads.max(1) {
            let started = Instant::now();
            let l = LoadedVersion::load(&cached, &bytes, &trust, deadline)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            cached_load.push(started.elapsed());
            if !l.timings.from_cache {
                bail!("{}: the compiled cache was not used", file.display());
            }
        }
        let name = loaded.name().to_string();
        let version = loaded.version().to_string();
        let Some(example) = loaded.manifest.examples.first() else {
            eprintln!("{name} {version}: no example inputs in its manifest; skipping latency");
            continue;
        };
        let native = options.native.iter().find(|n| n.name == name);
        // Models whose inputs are rows take a tiled batch; models whose
        // request is one case (a user's baskets) take their example as it is,
        // and a batch built by their registry entry (more candidates to rank)
        // or none.
        let tiled = tile(&example.inputs, 1)
            .and_then(|one| Ok((one, tile(&example.inputs, options.batch_rows)?)))
            .ok()
            .filter(|(one, batch)| {
                loaded.predict(one.clone()).is_ok() && loaded.predict(batch.clone()).is_ok()
            });
        let (one, batch, rows_request, rows_are) = match (tiled, native.and_then(|n| n.batch)) {
            (Some((one, batch)), _) => {
                let rows = tile(&one, options.rows)?;
                (one, Some(batch), Some(rows), None)
            }
            (None, Some((what, make))) => {
                let build = |n: usize| {
                    let request = make(&example.inputs, n)
                        .map_err(|e| anyhow::anyhow!("{name}: building {n} {what}: {e}"))?;
                    loaded
                        .predict(request.clone())
                        .map_err(|e| anyhow::anyhow!("{name}: {n} {what}: {e}"))?;
                    Ok::<_, anyhow::Error>(request)
                };
                eprintln!(
                    "{name} {version}: its inputs are not rows; one request is its first example, and a batch of n is {what}"
                );
                let batch = build(options.batch_rows)?;
                let rows = build(options.rows)?;
                (
                    example.inputs.clone(),
                    Some(batch),
                    Some(rows),
                    Some(what.to_string()),
                )
            }
            (None, None) => {
                eprintln!(
                    "{name} {version}: its inputs are not rows; one request is its first example, and there is no batch figure"
                );
                (example.inputs.clone(), None, None, None)
            }
        };

        let mut instantiate = Vec::new();
        for _ in 0..options.requests {
            instantiate.push(loaded.time_instantiation()?);
        }
        let native_skipped = match native {
            Some(native) => {
                check_native(&loaded, native, &one)?;
                None
            }
            None if options.native.is_empty() => {
                Some("this binary has no native code of the models (run trademl-bench)".into())
            }
            None => Some(format!(
                "no native code of {name} in trademl-bench's registry (bench/src/native.rs)"
            )),
        };
        if let Some(why) = &native_skipped {
            eprintln!("{name} {version}: native comparison skipped: {why}");
        }
        let one_row = series(&loaded, native, Some(&echo), &one, options.requests)?;
        let predict_1_row_winch = match cold_load_compiler {
            Tier::Winch => {
                Some(series(&cold_loaded, None, None, &one, options.requests)?.sandboxed)
            }
            Tier::Cranelift => None,
        };
        drop(cold_loaded);
        let rows_series = match &rows_request {
            Some(rows) => Some(series(
                &loaded,
                native,
                Some(&echo),
                rows,
                (options.requests / 4).max(10),
            )?),
            None => None,
        };
        let (rows_in_process, rows_native, rows_warm, rows_making, rows_floors) = match rows_series
        {
            Some(s) => (
                Some(s.sandboxed),
                s.native,
                Some(s.warm),
                Some(s.making_instance),
                s.floors,
            ),
            None => (None, None, None, None, None),
        };
        let Series {
            sandboxed: in_process,
            native: native_one,
            warm: warm_one,
            making_instance: making_one,
            floors,
        } = one_row;
        let floors = floors.context("the one-row series has no floor")?;
        let (rows_floor, rows_one_buffer, rows_least) = match rows_floors {
            Some(f) => (Some(f.tensors), Some(f.one_buffer), Some(f.least)),
            None => (None, None, None),
        };
        let (floor_one, one_buffer_one, least_one) =
            (floors.tensors, floors.one_buffer, floors.least);
        let ratio = |s: Option<&Summary>, n: Option<&Summary>| match (s, n) {
            (Some(s), Some(n)) if n.p50_ms > 0.0 => Some(s.p50_ms / n.p50_ms),
            _ => None,
        };
        let sandbox_over_native_1_row = ratio(Some(&in_process), native_one.as_ref());
        let sandbox_over_native_rows = ratio(rows_in_process.as_ref(), rows_native.as_ref());
        let warm_instance_over_native_1_row = ratio(Some(&warm_one), native_one.as_ref());
        let warm_instance_over_native_rows = ratio(rows_warm.as_ref(), rows_native.as_ref());
        let making_instance_over_native_1_row = ratio(Some(&making_one), native_one.as_ref());
        let making_instance_over_native_rows = ratio(rows_making.as_ref(), rows_native.as_ref());
        let floor_over_native_1_row = ratio(Some(&floor_one), native_one.as_ref());
        let floor_over_native_rows = ratio(rows_floor.as_ref(), rows_native.as_ref());
        let floor_one_buffer_over_native_1_row = ratio(Some(&one_buffer_one), native_one.as_ref());
        let floor_one_buffer_over_native_rows =
            ratio(rows_one_buffer.as_ref(), rows_native.as_ref());
        let bound = |least: Option<&Summary>, n: Option<&Summary>| ratio(least, n).map(|r| 1.0 + r);
        let least_call_bound_over_native_1_row = bound(Some(&least_one), native_one.as_ref());
        let least_call_bound_over_native_rows = bound(rows_least.as_ref(), rows_native.as_ref());

        let agent = ureq::Agent::config_builder()
            .http_status_as_error(true)
            .build()
            .new_agent();
        let url = format!("{base}/v2/models/{name}/versions/{version}/infer");
        let body_one = serde_json::to_vec(&json!({ "inputs": one }))?;
        let post = |body: &[u8]| -> Result<Duration> {
            let started = Instant::now();
            let reply = agent
                .post(&url)
                .content_type("application/json")
                .send(body)
                .with_context(|| format!("POST {url}"))?;
            reply.into_body().read_to_vec()?;
            Ok(started.elapsed())
        };
        for _ in 0..20 {
            post(&body_one)?;
        }
        let mut http_one = Vec::new();
        for _ in 0..options.requests {
            http_one.push(post(&body_one)?);
        }
        let batch_summary = match &batch {
            Some(batch) => {
                let body_batch = serde_json::to_vec(&json!({ "inputs": batch }))?;
                let mut http_batch = Vec::new();
                for _ in 0..(options.requests / 20).max(10) {
                    http_batch.push(post(&body_batch)?);
                }
                Some(Summary::of(&mut http_batch))
            }
            None => None,
        };
        let figures = ModelFigures {
            name,
            version,
            size_bytes: bytes.len(),
            verify: Summary::of(&mut verify),
            cold_load_compiler,
            compile: Summary::of(&mut compile),
            cold_load: Summary::of(&mut cold),
            cranelift_in_background_ms,
            predict_1_row_winch,
            cached_load: Summary::of(&mut cached_load),
            instantiate: Summary::of(&mut instantiate),
            predict_1_row_in_process: in_process,
            predict_1_row_native: native_one,
            sandbox_over_native_1_row,
            predict_1_row_warm_instance: warm_one,
            warm_instance_over_native_1_row,
            predict_1_row_making_instance: making_one,
            making_instance_over_native_1_row,
            predict_1_row_floor: floor_one,
            floor_over_native_1_row,
            predict_1_row_floor_one_buffer: one_buffer_one,
            floor_one_buffer_over_native_1_row,
            predict_1_row_least_call: least_one,
            least_call_bound_over_native_1_row,
            empty_call: floors.nothing,
            rows: options.rows,
            rows_are,
            predict_rows_in_process: rows_in_process,
            predict_rows_native: rows_native,
            sandbox_over_native_rows,
            predict_rows_warm_instance: rows_warm,
            warm_instance_over_native_rows,
            predict_rows_making_instance: rows_making,
            making_instance_over_native_rows,
            predict_rows_floor: rows_floor,
            floor_over_native_rows,
            predict_rows_floor_one_buffer: rows_one_buffer,
            floor_one_buffer_over_native_rows,
            predict_rows_least_call: rows_least,
            least_call_bound_over_native_rows,
            native_skipped,
            predict_1_row_http: Summary::of(&mut http_one),
            batch_rows_per_second: batch_summary
                .as_ref()
                .map(|b| options.batch_rows as f64 / (b.p50_ms / 1e3)),
            predict_batch_http: batch_summary,
            batch_rows: options.batch_rows,
        };
        print_figures(&figures);
        all.push(figures);
    }
    if let Some(path) = &options.json_out {
        let doc = json!({
            "tool": "trademl bench",
            "trademl_version": env!("CARGO_PKG_VERSION"),
            "pooling_allocator": sandbox.pooling(),
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "models": all,
        });
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, serde_json::to_vec_pretty(&doc)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("figures written to {}", path.display());
    }
    Ok(all)
}

/// One model compiled by one compiler setting.
#[derive(Clone, Debug, Serialize)]
pub struct CompilerFigures {
    /// The model.
    pub name: String,
    /// The compiler.
    pub compiler: Compiler,
    /// Whether functions were compiled on every core.
    pub parallel: bool,
    /// Bytes of code in the component.
    pub code_bytes: usize,
    /// Compile time, ms (fresh engine, no cache).
    pub compile_ms: f64,
    /// One prediction of one row in process with that code.
    pub predict_1_row_in_process: Summary,
}

/// `trademl bench --compilers`: each model compiled with each setting, in
/// turn, in a fresh engine, then its one-row latency.
fn compilers(options: &BenchOptions, trust: &TrustStore, files: &[PathBuf]) -> Result<()> {
    let settings = [
        (Compiler::Cranelift, true),
        (Compiler::Cranelift, false),
        (Compiler::CraneliftNoOpt, true),
        (Compiler::Winch, true),
    ];
    let deadline = Duration::from_secs(10);
    let mut all = Vec::new();
    println!(
        "{:<32} {:<16} {:>8} {:>10} {:>12} {:>14}",
        "model", "compiler", "threads", "code MiB", "compile ms", "1 row p50 ms"
    );
    for file in files {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        for (compiler, parallel) in settings {
            let sandbox = Sandbox::new(SandboxConfig {
                tiering: Tiering::Off,
                compiler,
                parallel_compilation: parallel,
                ..SandboxConfig::default()
            })?;
            let loaded = LoadedVersion::load(&sandbox, &bytes, trust, deadline)
                .map_err(|e| anyhow::anyhow!("{} ({compiler:?}): {e}", file.display()))?;
            let Some(example) = loaded.manifest.examples.first() else {
                eprintln!(
                    "{}: no example inputs in its manifest; skipped",
                    file.display()
                );
                break;
            };
            let one = tile(&example.inputs, 1).unwrap_or_else(|_| example.inputs.clone());
            let p = series(&loaded, None, None, &one, options.requests)?.sandboxed;
            let figures = CompilerFigures {
                name: loaded.name().to_string(),
                compiler,
                parallel,
                code_bytes: crate::sandbox::code_size(&bytes),
                compile_ms: loaded.timings.compile.as_secs_f64() * 1e3,
                predict_1_row_in_process: p,
            };
            println!(
                "{:<32} {:<16} {:>8} {:>10.1} {:>12.0} {:>14.4}",
                figures.name,
                format!("{compiler:?}"),
                if parallel { "all" } else { "1" },
                figures.code_bytes as f64 / (1 << 20) as f64,
                figures.compile_ms,
                figures.predict_1_row_in_process.p50_ms
            );
            all.push(figures);
        }
    }
    if let Some(path) = &options.json_out {
        let doc = json!({
            "tool": "trademl bench --compilers",
            "trademl_version": env!("CARGO_PKG_VERSION"),
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "requests_per_series": options.requests,
            "models": all,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&doc)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("figures written to {}", path.display());
    }
    Ok(())
}

fn print_figures(f: &ModelFigures) {
    println!("\n{} {} ({} bytes)", f.name, f.version, f.size_bytes);
    println!(
        "  {:<34} {:>9} {:>9} {:>9} {:>9}",
        "", "min ms", "p50 ms", "p99 ms", "max ms"
    );
    let row = |label: &str, s: &Summary| {
        println!(
            "  {:<34} {:>9.3} {:>9.3} {:>9.3} {:>9.3}   (n={})",
            label, s.min_ms, s.p50_ms, s.p99_ms, s.max_ms, s.n
        );
    };
    if let Some(what) = &f.rows_are {
        println!("  (the batches below: n = {what})");
    }
    row("verify signature", &f.verify);
    row(
        &format!("compile (fresh engine, {:?})", f.cold_load_compiler),
        &f.compile,
    );
    row("cold load (verify+compile+check)", &f.cold_load);
    if let Some(ms) = f.cranelift_in_background_ms {
        println!(
            "  {:<34} {:>19.3}   (n=1)",
            "Cranelift compile in background", ms
        );
    }
    row("load from the compiled cache", &f.cached_load);
    row("instantiate (store + instance)", &f.instantiate);
    row(
        "predict 1 row/case, in process",
        &f.predict_1_row_in_process,
    );
    if let Some(winch) = &f.predict_1_row_winch {
        row("predict 1 row/case, Winch's code", winch);
    }
    if let Some(native) = &f.predict_1_row_native {
        row("predict 1 row/case, native", native);
    }
    row(
        "  same, one warm instance reused",
        &f.predict_1_row_warm_instance,
    );
    row(
        "  same, instance made in the call",
        &f.predict_1_row_making_instance,
    );
    row(
        "  same tensors, no model (the floor)",
        &f.predict_1_row_floor,
    );
    row(
        "  the floor, in one buffer each way",
        &f.predict_1_row_floor_one_buffer,
    );
    row(
        "  the least call with those bytes",
        &f.predict_1_row_least_call,
    );
    row("  the least call of all (no bytes)", &f.empty_call);
    if let Some(rows) = &f.predict_rows_in_process {
        row(&format!("predict {} rows, in process", f.rows), rows);
    }
    if let Some(native) = &f.predict_rows_native {
        row(&format!("predict {} rows, native", f.rows), native);
    }
    if let Some(warm) = &f.predict_rows_warm_instance {
        row("  same, one warm instance reused", warm);
    }
    if let Some(making) = &f.predict_rows_making_instance {
        row("  same, instance made in the call", making);
    }
    if let Some(floor) = &f.predict_rows_floor {
        row("  same tensors, no model (the floor)", floor);
    }
    if let Some(floor) = &f.predict_rows_floor_one_buffer {
        row("  the floor, in one buffer each way", floor);
    }
    if let Some(least) = &f.predict_rows_least_call {
        row("  the least call with those bytes", least);
    }
    for (what, one_row, rows) in [
        (
            "sandbox",
            f.sandbox_over_native_1_row,
            f.sandbox_over_native_rows,
        ),
        (
            "warm instance (not used by the server)",
            f.warm_instance_over_native_1_row,
            f.warm_instance_over_native_rows,
        ),
        (
            "instance made in the call (before spares)",
            f.making_instance_over_native_1_row,
            f.making_instance_over_native_rows,
        ),
        (
            "floor (the boundary alone)",
            f.floor_over_native_1_row,
            f.floor_over_native_rows,
        ),
        (
            "floor in one buffer each way",
            f.floor_one_buffer_over_native_1_row,
            f.floor_one_buffer_over_native_rows,
        ),
        (
            "bound for any interface (1 + least call / native)",
            f.least_call_bound_over_native_1_row,
            f.least_call_bound_over_native_rows,
        ),
    ] {
        if let Some(r) = one_row {
            println!("  {what} / native at the median: {r:.2}x for 1 row/case");
        }
        if let Some(r) = rows {
            println!(
                "  {what} / native at the median: {r:.2}x for {} rows",
                f.rows
            );
        }
    }
    row("predict 1 row/case, HTTP loopback", &f.predict_1_row_http);
    if let (Some(batch), Some(rate)) = (&f.predict_batch_http, f.batch_rows_per_second) {
        row(
            &format!("predict {} rows, HTTP loopback", f.batch_rows),
            batch,
        );
        println!(
            "  {} rows in one request: {:.0} rows/s at the median",
            f.batch_rows, rate
        );
    }
}

/// The series of one request, each timed call by call.
struct Series {
    /// In the sandbox, as the server calls: a fresh instance per call, made
    /// ahead of it (after the call before, as the server makes them).
    sandboxed: Summary,
    /// The model's code compiled natively, when given.
    native: Option<Summary>,
    /// A warm instance reused from call to call ([`WARM_INSTANCE_CALLS`]
    /// calls each).
    warm: Summary,
    /// A fresh instance made in the call, as before spares.
    making_instance: Summary,
    /// The floors and least calls, when the echo is given.
    floors: Option<Floors>,
}

/// The series without the model: the echo's and the boundary's.
struct Floors {
    /// The echo component with the same tensors: the floor.
    tensors: Summary,
    /// The echo component with the same bytes in one buffer each way.
    one_buffer: Summary,
    /// The boundary component with the request's and the answer's bytes.
    least: Summary,
    /// The boundary component's call with no arguments.
    nothing: Summary,
}

/// How many calls one warm instance serves before the bench makes another.
/// A model built with the SDK's `CallArena`, which counts on an instance
/// serving one call, gives back little of its chunk, so an instance reused
/// without end would run the chunk down and go on with the system allocator:
/// not the calls the series stands for.
const WARM_INSTANCE_CALLS: usize = 32;

/// Run `inputs` through the sandbox as the server does, natively when
/// given, through a warm instance reused from call to call, and with the
/// instance made in the call, alternating call by call so that every
/// series sees the same machine load.
fn series(
    loaded: &LoadedVersion,
    native: Option<&NativeModel>,
    echo: Option<&Echo>,
    inputs: &[Tensor],
    n: usize,
) -> Result<Series> {
    let echo = match echo {
        Some(echo) => Some((echo, echo.requests_for(loaded, inputs)?)),
        None => None,
    };
    let mut floor_steps = Vec::with_capacity(n);
    let mut sandboxed = Vec::with_capacity(n);
    let mut natively = Vec::with_capacity(n);
    let mut warmed = Vec::with_capacity(n);
    let mut making = Vec::with_capacity(n);
    let mut warm = loaded.warm_instance()?;
    let mut warm_calls = 0;
    let timed = |samples: &mut Vec<Duration>, call: &mut dyn FnMut(Vec<Tensor>) -> Result<()>| {
        let request = inputs.to_vec();
        let started = Instant::now();
        call(request)?;
        samples.push(started.elapsed());
        anyhow::Ok(())
    };
    for _ in 0..n {
        // As the server calls: timed until the answer, then the instance
        // is torn down on this thread and the next ones are made (not
        // timed: their cost is the instantiation figure).
        let request = inputs.to_vec();
        until_answer(&mut sandboxed, |answer| {
            loaded.predict_answering(request, answer)
        })?;
        loaded.make_spares();
        if let Some(native) = native {
            timed(&mut natively, &mut |r| {
                predict_natively(loaded, native, r).map(drop)
            })?;
        }
        if warm_calls == WARM_INSTANCE_CALLS {
            // Not timed, as the server's instances are made off the call.
            warm = loaded.warm_instance()?;
            warm_calls = 0;
        }
        timed(&mut warmed, &mut |r| Ok(warm.predict(r).map(drop)?))?;
        warm_calls += 1;
        let request = inputs.to_vec();
        until_answer(&mut making, |answer| {
            loaded.predict_making_instance_answering(request, answer)
        })?;
        if let Some((echo, requests)) = &echo {
            floor_steps.push(echo.time(requests, loaded.limits())?);
        }
    }
    Ok(Series {
        sandboxed: Summary::of(&mut sandboxed),
        native: (!natively.is_empty()).then(|| Summary::of(&mut natively)),
        warm: Summary::of(&mut warmed),
        making_instance: Summary::of(&mut making),
        floors: (!floor_steps.is_empty()).then(|| {
            let of = |time: fn(&echo::FloorTimes) -> Duration| {
                Summary::of(&mut floor_steps.iter().map(time).collect::<Vec<_>>())
            };
            Floors {
                tensors: of(|t| t.tensors),
                one_buffer: of(|t| t.one_buffer),
                least: of(|t| t.least.bytes),
                nothing: of(|t| t.least.nothing),
            }
        }),
    })
}

/// Time one call as the server answers: from the call until it hands its
/// answer to `run`'s callback; the instance's teardown, after the answer on
/// the same thread, is not timed.
fn until_answer(
    samples: &mut Vec<Duration>,
    run: impl FnOnce(&mut dyn FnMut(Result<Vec<Tensor>, PredictError>)),
) -> Result<()> {
    let mut answered = None;
    let started = Instant::now();
    run(&mut |result| {
        answered.get_or_insert((started.elapsed(), result.map(drop)));
    });
    let (took, result) = answered.context("the call gave no answer")?;
    result?;
    samples.push(took);
    Ok(())
}

/// The native path of one request: the same manifest checks of inputs and
/// outputs as [`LoadedVersion::predict`], around the model's own `predict`.
fn predict_natively(
    loaded: &LoadedVersion,
    native: &NativeModel,
    inputs: Vec<Tensor>,
) -> Result<Vec<Tensor>> {
    loaded.check_inputs(&inputs)?;
    let outputs =
        (native.predict)(inputs).map_err(|e| anyhow::anyhow!("{} natively: {e}", native.name))?;
    loaded.check_outputs(&outputs)?;
    Ok(outputs)
}

/// Refuse to compare with native code that does not answer as the component
/// does: the same outputs for the same request.
fn check_native(loaded: &LoadedVersion, native: &NativeModel, inputs: &[Tensor]) -> Result<()> {
    let sandboxed = loaded.predict(inputs.to_vec())?;
    let natively = predict_natively(loaded, native, inputs.to_vec())?;
    if sandboxed.len() != natively.len() {
        bail!(
            "{}: the native code returns {} outputs, the component {}",
            native.name,
            natively.len(),
            sandboxed.len()
        );
    }
    for (s, n) in sandboxed.iter().zip(&natively) {
        trademl_sdk::protocol::tensors_close(s, n, native.tolerance).map_err(|e| {
            anyhow::anyhow!(
                "{}: the native code differs from the component: {e}; rebuild models/ from this source",
                native.name
            )
        })?;
    }
    Ok(())
}

/// The newest version of every model in `root` (only those named in `only`,
/// when it is not empty), in name order.
pub fn model_files(root: &Path, only: &[String]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root).with_context(|| format!("reading {}", root.display()))? {
        let dir = entry?.path();
        let Some(name) = dir.file_name().map(|n| n.to_string_lossy().to_string()) else {
            continue;
        };
        if !dir.is_dir() || name == "trust" || (!only.is_empty() && !only.contains(&name)) {
            continue;
        }
        // The newest version of each model.
        let mut versions: Vec<(semver::Version, PathBuf)> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .filter_map(|p| {
                let v = semver::Version::parse(&p.file_stem()?.to_string_lossy()).ok()?;
                Some((v, p))
            })
            .collect();
        versions.sort();
        if let Some((_, p)) = versions.pop() {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// Repeat the rows of example inputs (first dimension) to `rows` rows.
pub fn tile(inputs: &[Tensor], rows: usize) -> Result<Vec<Tensor>> {
    inputs
        .iter()
        .map(|t| {
            let Some(&n) = t.shape.first() else {
                bail!("input \"{}\" has no batch dimension to tile", t.name);
            };
            if n == 0 {
                bail!("input \"{}\" has no rows to tile", t.name);
            }
            let n = n as usize;
            let per_row = t.data.len() / n;
            let pick = |i: usize| (i % n) * per_row..(i % n + 1) * per_row;
            macro_rules! tiled {
                ($v:expr, $variant:ident) => {
                    TensorData::$variant((0..rows).flat_map(|i| $v[pick(i)].to_vec()).collect())
                };
            }
            let data = match &t.data {
                TensorData::Fp32(v) => tiled!(v, Fp32),
                TensorData::Fp64(v) => tiled!(v, Fp64),
                TensorData::Int64(v) => tiled!(v, Int64),
                TensorData::Bool(v) => tiled!(v, Bool),
                TensorData::Bytes(v) => tiled!(v, Bytes),
            };
            let mut shape = t.shape.clone();
            shape[0] = rows as u64;
            Ok(Tensor {
                name: t.name.clone(),
                shape,
                data,
                parameters: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run over one model reports every series, with as many calls as
    /// asked, and writes them as JSON.
    #[test]
    fn a_run_reports_every_series_of_a_model() {
        let dir = crate::test_support::shipped_models(&["anomaly-detection"]);
        let json_out = dir.path().join("figures.json");
        let requests = 20;
        let figures = run(&BenchOptions {
            models: dir.path().to_path_buf(),
            only: vec![],
            loads: 1,
            requests,
            batch_rows: 10,
            rows: 10,
            native: vec![],
            json_out: Some(json_out.clone()),
            compilers: false,
        })
        .unwrap();
        assert_eq!(figures.len(), 1);
        let f = &figures[0];
        assert_eq!(f.name, "anomaly-detection");
        let batches = (requests / 4).max(10);
        let series = [
            ("instantiate", Some(&f.instantiate), requests),
            ("in process", Some(&f.predict_1_row_in_process), requests),
            ("warm", Some(&f.predict_1_row_warm_instance), requests),
            (
                "made in the call",
                Some(&f.predict_1_row_making_instance),
                requests,
            ),
            (
                "rows in process",
                f.predict_rows_in_process.as_ref(),
                batches,
            ),
            ("rows warm", f.predict_rows_warm_instance.as_ref(), batches),
            (
                "rows made in the call",
                f.predict_rows_making_instance.as_ref(),
                batches,
            ),
            ("floor", Some(&f.predict_1_row_floor), requests),
            ("rows floor", f.predict_rows_floor.as_ref(), batches),
            (
                "floor in one buffer",
                Some(&f.predict_1_row_floor_one_buffer),
                requests,
            ),
            (
                "rows floor in one buffer",
                f.predict_rows_floor_one_buffer.as_ref(),
                batches,
            ),
            ("least call", Some(&f.predict_1_row_least_call), requests),
            (
                "rows least call",
                f.predict_rows_least_call.as_ref(),
                batches,
            ),
            ("empty call", Some(&f.empty_call), requests),
            ("HTTP", Some(&f.predict_1_row_http), requests),
        ];
        for (what, summary, n) in series {
            let s = summary.unwrap_or_else(|| panic!("no {what} series"));
            assert_eq!(s.n, n, "{what}");
            assert!(
                0.0 < s.min_ms
                    && s.min_ms <= s.p50_ms
                    && s.p50_ms <= s.p99_ms
                    && s.p99_ms <= s.max_ms,
                "{what}: {s:?}"
            );
        }
        // No native code was given: no ratio, and the run says why.
        assert!(f.native_skipped.is_some());
        assert!(f.sandbox_over_native_1_row.is_none());

        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&json_out).unwrap()).unwrap();
        let model = &doc["models"][0];
        assert_eq!(model["name"], "anomaly-detection", "{doc}");
        assert_eq!(
            model["predict_1_row_making_instance"]["n"], requests,
            "{doc}"
        );
    }
}
