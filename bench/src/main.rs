//! `trademl-bench`: every figure of trademl's performance budget, for every
//! model in a repository, in one run, beside native code and beside what a
//! user would pick instead. Run it through `scripts/bench`, which builds it,
//! installs the load generator and the Python tools, and passes their paths.
//!
//! 1. In process (`trademl::bench`): verification, cold compile, cold load,
//!    cached load, instantiation, and predictions of 1 row and of `--rows`
//!    rows in the sandbox and natively (the model's own code linked into
//!    this binary, [`native::MODELS`]), interleaved, with their ratio.
//! 2. Over HTTP: `trademl serve` started as its own process (cold, then from
//!    its compiled cache), `oha` (or `wrk`, see [`load`]) driving `/infer` of
//!    each model for a bounded time at each of `--connections`, and the
//!    server's resident memory idle and under load.
//! 3. The alternatives ([`equivalent::EQUIVALENTS`]): the equivalent
//!    scikit-learn model exported to ONNX and run by onnxruntime in process,
//!    and served by MLServer, driven by the same load generator with the same
//!    request.
//!
//! What cannot run (no load generator, no Python) is skipped with the reason
//! printed and recorded in the JSON. Nothing here asserts a time.

mod equivalent;
mod load;
mod native;
mod process;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use clap::Parser;
use serde_json::{Value, json};
use trademl::bench::{ModelFigures, SeriesArgs, model_files, tile};
use trademl_sdk::manifest::read_manifest;

use crate::load::LoadFigures;
use crate::process::{Memory, Server, free_port};

/// Measure every model in a repository: in process beside native code, over
/// HTTP under load, memory, and beside onnxruntime and MLServer.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    series: SeriesArgs,
    /// Concurrent connections of the HTTP load (repeatable).
    #[arg(long = "connections", default_values_t = [1, 8, 64])]
    connections: Vec<usize>,
    /// Seconds of each HTTP load run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// The load generator `oha` [default: `oha` on the PATH; without it,
    /// `wrk`, whose latencies are only as good as the wall clock].
    #[arg(long)]
    oha: Option<PathBuf>,
    /// The `trademl` binary to serve with [default: next to this binary].
    #[arg(long)]
    trademl: Option<PathBuf>,
    /// The Python of an environment with bench/python/requirements.txt
    /// installed (none: the comparison with onnxruntime and MLServer is
    /// skipped).
    #[arg(long)]
    python: Option<PathBuf>,
    /// Why Python is not given, to record (from scripts/bench).
    #[arg(long)]
    python_skipped: Option<String>,
    /// Only the in-process figures (no server, no load generator, no Python).
    #[arg(long)]
    in_process_only: bool,
    /// Write the figures as JSON here.
    #[arg(long, default_value = "docs/bench/latest.json")]
    json: PathBuf,
    /// An extra argument for `trademl serve` (repeatable), e.g.
    /// `--serve-arg=--max-instances=8`.
    #[arg(long = "serve-arg", allow_hyphen_values = true)]
    serve_args: Vec<String>,
    /// Keep the servers' logs here (trademl's and MLServer's), so that any
    /// failed answer under load can be explained after the run.
    #[arg(long, default_value = "target/bench-logs")]
    logs: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let started = SystemTime::now();
    let load_before = load_average();
    let mut skipped: Vec<String> = Vec::new();
    let scratch = tempfile::tempdir()?;

    println!("== in process: sandbox and native");
    let figures = trademl::bench::run(&args.series.options(native::MODELS.to_vec(), None))?;
    for f in &figures {
        if let Some(why) = &f.native_skipped {
            skipped.push(format!("{}: native comparison: {why}", f.name));
        }
    }

    let requests = requests(&args, &figures)?;
    let mut http = json!(null);
    let mut alternatives = Vec::new();
    let available = if args.in_process_only {
        Err("--in-process-only".to_string())
    } else {
        load::available(args.oha.as_deref())
    };
    let mut load_generator = Value::Null;
    match available {
        Err(why) => skipped.push(format!("HTTP load and the alternatives: {why}")),
        Ok(generator) => {
            println!(
                "\n== over HTTP: trademl serve, driven by {}",
                generator.name()
            );
            load_generator = json!(generator.name());
            std::fs::create_dir_all(&args.logs)
                .with_context(|| format!("creating {}", args.logs.display()))?;
            http = serve_trademl(&args, &generator, &requests, scratch.path())?;
            match &args.python {
                None => skipped.push(format!(
                    "onnxruntime and MLServer: {}",
                    args.python_skipped
                        .as_deref()
                        .unwrap_or("no --python environment given")
                )),
                Some(python) => {
                    for e in equivalent::EQUIVALENTS {
                        let Some(request) = requests.iter().find(|r| r.name == e.model) else {
                            continue;
                        };
                        println!(
                            "\n== {}: onnxruntime in process, MLServer over HTTP",
                            e.model
                        );
                        match alternative(
                            &args,
                            &generator,
                            python,
                            e,
                            request,
                            &http,
                            scratch.path(),
                        ) {
                            Ok(v) => alternatives.push(v),
                            Err(err) => {
                                eprintln!("{}: the comparison failed: {err:#}", e.model);
                                skipped
                                    .push(format!("{}: the comparison failed: {err:#}", e.model));
                            }
                        }
                    }
                    for r in &requests {
                        if !equivalent::EQUIVALENTS.iter().any(|e| e.model == r.name) {
                            skipped.push(format!(
                                "{}: no equivalent for onnxruntime and MLServer (see docs/benchmarks.md)",
                                r.name
                            ));
                        }
                    }
                }
            }
        }
    }

    for s in &skipped {
        println!("skipped: {s}");
    }
    let doc = json!({
        "tool": "trademl-bench",
        // As run: scripts/bench runs this binary with its tools' paths.
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "trademl_version": env!("CARGO_PKG_VERSION"),
        "date_utc": utc(started),
        "machine": machine(),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "settings": {
            "loads": args.series.loads, "requests": args.series.requests, "rows": args.series.rows,
            "batch_rows": args.series.batch_rows, "connections": args.connections,
            "seconds_per_load_run": args.seconds,
        },
        "models": figures,
        "load_generator": load_generator,
        "http": http,
        "alternatives": alternatives,
        "skipped": skipped,
    });
    if let Some(dir) = args.json.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&args.json, serde_json::to_vec_pretty(&doc)?)
        .with_context(|| format!("writing {}", args.json.display()))?;
    println!("\nfigures written to {}", args.json.display());
    summary(&figures, &doc);
    Ok(())
}

/// The requests a model is driven with: its first manifest example, one row
/// (or the example as it is, for a model whose request is one case) and
/// `rows` rows. The request parameter `content_type: pd` lets MLServer
/// decode the named columns as a table; trademl ignores it.
struct Requests {
    name: String,
    version: String,
    one: Value,
    rows: Option<Value>,
}

fn requests(args: &Args, figures: &[ModelFigures]) -> Result<Vec<Requests>> {
    let mut all = Vec::new();
    for file in model_files(&args.series.models, &args.series.only)? {
        let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        let manifest = read_manifest(&bytes).with_context(|| format!("{}", file.display()))?;
        let Some(example) = manifest.examples.first() else {
            continue;
        };
        let body = |inputs| json!({ "parameters": { "content_type": "pd" }, "inputs": inputs });
        // Rows when the in-process bench found the inputs to be rows.
        let by_rows = figures
            .iter()
            .any(|f| f.name == manifest.name && f.predict_rows_in_process.is_some());
        let (one, rows) = if by_rows {
            let one = tile(&example.inputs, 1)?;
            let rows = tile(&example.inputs, args.series.rows)?;
            (body(one), Some(body(rows)))
        } else {
            (body(example.inputs.clone()), None)
        };
        all.push(Requests {
            name: manifest.name,
            version: manifest.version,
            one,
            rows,
        });
    }
    Ok(all)
}

/// Copy a model repository's signed files and routing (not its compiled
/// cache), so that the server under test starts from nothing compiled.
fn copy_repository(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            copy_repository(&path, &to.join(&name))?;
        } else {
            std::fs::copy(&path, to.join(&name))
                .with_context(|| format!("copying {}", path.display()))?;
        }
    }
    Ok(())
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(true)
        .build()
        .new_agent()
}

fn post(url: &str, body: &Value) -> Result<Value> {
    agent()
        .post(url)
        .send_json(body)
        .with_context(|| format!("POST {url}"))?
        .into_body()
        .read_json()
        .with_context(|| format!("the answer of {url}"))
}

/// The models among `names` whose serving version runs Winch's code (its
/// Cranelift compile still under way in the background).
fn with_winch_code<'a>(base: &str, names: &[&'a str]) -> Result<Vec<&'a str>> {
    let mut winch = Vec::new();
    for &name in names {
        let v = answer_json(
            false,
            &format!("{base}/v2/repository/models/{name}/versions"),
        )?;
        let versions = v["versions"].as_array().context("versions")?;
        if versions.iter().any(|v| v["compiler"] == "winch") {
            winch.push(name);
        }
    }
    Ok(winch)
}

/// The JSON answer of a GET of `url`, or of an empty POST.
fn answer_json(post: bool, url: &str) -> Result<Value> {
    let agent = agent();
    let (method, response) = if post {
        ("POST", agent.post(url).send_empty())
    } else {
        ("GET", agent.get(url).call())
    };
    response
        .with_context(|| format!("{method} {url}"))?
        .into_body()
        .read_json()
        .with_context(|| format!("the answer of {url}"))
}

/// The names of the models the server at `base` serves (its repository
/// index).
fn served_models(base: &str) -> Result<Vec<String>> {
    let index = answer_json(true, &format!("{base}/v2/repository/index"))?;
    let mut names: Vec<String> = index
        .as_array()
        .context("the repository index is not a list")?
        .iter()
        .filter_map(|row| row["name"].as_str().map(str::to_string))
        .collect();
    names.dedup();
    Ok(names)
}

fn memory_json(m: Memory) -> Value {
    json!({ "rss_mib": m.rss_kib as f64 / 1024.0, "pss_mib": m.pss_kib as f64 / 1024.0, "processes": m.processes })
}

/// The settings `trademl serve` started with, defaults included, from the
/// line it logs when it opens its repository: the JSON records what was
/// measured, not only the flags the bench passed.
fn server_settings(log: &Path) -> Result<Value> {
    const LINE: &str = "opening the model repository";
    const KEYS: [&str; 5] = [
        "pooling",
        "max_memory_mib",
        "max_instances",
        "deadline_ms",
        "inline_below_us",
    ];
    let text = std::fs::read_to_string(log)
        .with_context(|| format!("reading the server's log {}", log.display()))?;
    let line = text.lines().find(|l| l.contains(LINE)).with_context(|| {
        format!(
            "the server's log {} has no line \"{LINE}\" with its settings",
            log.display()
        )
    })?;
    let mut settings = serde_json::Map::new();
    for field in line.split_whitespace() {
        if let Some((key, value)) = field.split_once('=')
            && KEYS.contains(&key)
        {
            let value = serde_json::from_str(value).unwrap_or_else(|_| json!(value));
            settings.insert(key.to_string(), value);
        }
    }
    if let Some(missing) = KEYS.iter().find(|k| !settings.contains_key(**k)) {
        bail!("the server's settings line names no {missing}: {line}");
    }
    Ok(Value::Object(settings))
}

/// The distinct lines a log gained after `offset` bytes (timestamps cut
/// off), each with how often it came, most frequent first; at most ten.
fn logged_since(log: &Path, offset: u64) -> Vec<String> {
    let text = std::fs::read(log).unwrap_or_default();
    let text = String::from_utf8_lossy(text.get(offset as usize..).unwrap_or_default());
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for line in text.lines() {
        // tracing's lines start with an RFC 3339 timestamp; group without it.
        let line = match line.split_once(' ') {
            Some((stamp, rest)) if stamp.len() > 19 && stamp.as_bytes()[4] == b'-' => rest.trim(),
            _ => line.trim(),
        };
        if !line.is_empty() {
            *counts.entry(line).or_default() += 1;
        }
    }
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
    let mut lines: Vec<String> = counts
        .iter()
        .take(10)
        .map(|(line, n)| format!("{n} × {line}"))
        .collect();
    if lines.is_empty() {
        lines.push("(nothing)".to_string());
    }
    lines
}

/// Drive one URL with each number of connections; figures and peak memory.
/// When a run gets failed answers, what the server logged meanwhile is
/// printed.
#[allow(clippy::too_many_arguments)]
fn drive(
    generator: &load::Generator,
    server: &Server,
    log: &Path,
    url: &str,
    body: &Value,
    args: &Args,
    scratch: &Path,
) -> Result<(Vec<LoadFigures>, Memory)> {
    let body = serde_json::to_vec(body)?;
    let mut runs = Vec::new();
    let mut peak = Memory::default();
    for &c in &args.connections {
        let logged_before = std::fs::metadata(log).map_or(0, |m| m.len());
        let (figures, memory) = server.peak_memory_during(|| {
            load::run(
                generator,
                url,
                &body,
                c,
                Duration::from_secs(args.seconds),
                scratch,
            )
        })?;
        let figures = figures?;
        println!(
            "  {c:>3} connections: {:>8.0} req/s  p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  ({} requests, {} errors, {} non-2xx)",
            figures.requests_per_second,
            figures.p50_ms,
            figures.p99_ms,
            figures.p999_ms,
            figures.requests,
            figures.socket_errors,
            figures.non_2xx
        );
        if figures.non_2xx > 0 || figures.socket_errors > 0 {
            println!(
                "      answers by status {:?}, errors {:?}; the server logged meanwhile ({}):",
                figures.status_codes,
                figures.errors,
                log.display()
            );
            for line in logged_since(log, logged_before) {
                println!("        {line}");
            }
        }
        if !figures.latencies_consistent {
            println!(
                "      {}'s latencies do not fit the run ({} requests × mean {:.3} ms > {c} connections × {:.1} s): latency figures of this run are not valid",
                figures.generator, figures.requests, figures.mean_ms, figures.seconds
            );
        }
        peak = peak.max(memory);
        runs.push(figures);
    }
    Ok((runs, peak))
}

fn serve_trademl(
    args: &Args,
    generator: &load::Generator,
    requests: &[Requests],
    scratch: &Path,
) -> Result<Value> {
    let program = match &args.trademl {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("this binary's folder")?
            .join("trademl"),
    };
    let models = scratch.join("models");
    copy_repository(&args.series.models, &models)?;
    let cache = scratch.join("compiled-cache");
    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let serve_args: Vec<String> = vec![
        "serve".into(),
        "--models".into(),
        models.display().to_string(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--cache-dir".into(),
        cache.display().to_string(),
    ]
    .into_iter()
    .chain(args.serve_args.iter().cloned())
    .collect();
    let start = |log: &str| -> Result<(Server, Duration)> {
        let started = Instant::now();
        let server = Server::start(
            "trademl serve",
            &program,
            &serve_args,
            // Info for the start line with the settings in force
            // (`server_settings`) and the rare events worth keeping; the
            // server logs nothing per request at this level.
            &[("RUST_LOG", "warn,trademl=info")],
            &args.logs.join(log),
            &format!("{base}/v2/health/ready"),
            Duration::from_secs(120),
        )?;
        Ok((server, started.elapsed()))
    };
    // A first start compiles every model (a large one with Winch first, then
    // Cranelift in the background); once every model serves Cranelift's code,
    // which the cache then holds, the second start loads them from the cache.
    let cold_started = Instant::now();
    let (server, cold_start) = start("trademl-cold.log")?;
    let settings = server_settings(&args.logs.join("trademl-cold.log"))?;
    println!("  server settings: {settings}");
    // Every model the server loaded, not only those measured (`--model`):
    // a model left compiling in the background would be compiled again
    // after the restart, beside the measurements.
    let served = served_models(&base)?;
    let names: Vec<&str> = served.iter().map(String::as_str).collect();
    let winch = with_winch_code(&base, &names)?;
    let cold_cranelift = if winch.is_empty() {
        cold_start
    } else {
        println!("  waiting for Cranelift's code in the background: {winch:?}");
        let deadline = Instant::now() + Duration::from_secs(900);
        while !with_winch_code(&base, &names)?.is_empty() {
            if Instant::now() > deadline {
                bail!("the background Cranelift compiles did not finish within 900 s");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        cold_started.elapsed()
    };
    drop(server);
    let (server, cached_start) = start("trademl-cached.log")?;
    let winch = with_winch_code(&base, &names)?;
    if !winch.is_empty() {
        bail!(
            "after a restart, {winch:?} serve Winch's code: the compiled cache did not hold Cranelift's"
        );
    }
    println!(
        "  start until ready, every model loaded: cold {:.0} ms (every model on Cranelift's code: {:.0} ms), from the compiled cache {:.0} ms",
        cold_start.as_secs_f64() * 1e3,
        cold_cranelift.as_secs_f64() * 1e3,
        cached_start.as_secs_f64() * 1e3
    );
    for r in requests {
        post(&format!("{base}/v2/models/{}/infer", r.name), &r.one)?;
    }
    std::thread::sleep(Duration::from_millis(500));
    let idle = server.memory()?;
    println!(
        "  resident memory, every model loaded, idle: {:.1} MiB",
        idle.rss_kib as f64 / 1024.0
    );
    let mut per_model = Vec::new();
    let mut peak = idle;
    for r in requests {
        println!("  {} {}, 1 row/case per request:", r.name, r.version);
        let url = format!("{base}/v2/models/{}/infer", r.name);
        let log = args.logs.join("trademl-cached.log");
        let (runs, memory) = drive(generator, &server, &log, &url, &r.one, args, scratch)?;
        peak = peak.max(memory);
        per_model.push(json!({ "name": r.name, "version": r.version, "one_row": runs }));
    }
    let after = server.memory()?;
    println!(
        "  resident memory under load: peak {:.1} MiB; idle after: {:.1} MiB",
        peak.rss_kib as f64 / 1024.0,
        after.rss_kib as f64 / 1024.0
    );
    Ok(json!({
        "server": "trademl serve",
        "server_settings": settings,
        "pid_processes": idle.processes,
        "start_cold_ms": cold_start.as_secs_f64() * 1e3,
        "start_cold_until_cranelift_ms": cold_cranelift.as_secs_f64() * 1e3,
        "start_cached_ms": cached_start.as_secs_f64() * 1e3,
        "memory_idle": memory_json(idle),
        "memory_peak_under_load": memory_json(peak),
        "memory_idle_after_load": memory_json(after),
        "models": per_model,
    }))
}

/// The comparison of one model with onnxruntime and MLServer.
#[allow(clippy::too_many_arguments)]
fn alternative(
    args: &Args,
    generator: &load::Generator,
    python: &Path,
    e: &equivalent::Equivalent,
    request: &Requests,
    trademl_http: &Value,
    scratch: &Path,
) -> Result<Value> {
    // trademl's answers, through the in-process sandbox, for the Python side to match.
    let out = scratch.join(format!("alternative-{}", e.model));
    std::fs::create_dir_all(&out)?;
    let mut bodies = serde_json::Map::new();
    let mut expected = serde_json::Map::new();
    let answer = |body: &Value| -> Result<Value> {
        let sandbox = trademl::sandbox::Sandbox::new(Default::default())?;
        let trust = trademl_sdk::signing::TrustStore::load(&args.series.models.join("trust"))?;
        let file = model_files(&args.series.models, &[e.model.to_string()])?
            .pop()
            .context("the model's file")?;
        let loaded = trademl::model::LoadedVersion::load(
            &sandbox,
            &std::fs::read(&file)?,
            &trust,
            Duration::from_secs(10),
        )
        .map_err(|err| anyhow::anyhow!("{err}"))?;
        let inputs = serde_json::from_value(body["inputs"].clone())?;
        let outputs = loaded.predict(inputs)?;
        let t = outputs
            .into_iter()
            .find(|t| t.name == e.output)
            .with_context(|| format!("no output {}", e.output))?;
        Ok(serde_json::to_value(&t)?["data"].clone())
    };
    let mut all = vec![("1".to_string(), &request.one)];
    if let Some(rows) = &request.rows {
        all.push((args.series.rows.to_string(), rows));
    }
    for (n, body) in all {
        expected.insert(n.clone(), answer(body)?);
        bodies.insert(n, body.clone());
    }
    let columns: Vec<Value> = request.one["inputs"]
        .as_array()
        .context("inputs")?
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    let spec = json!({
        "model": e.model, "version": request.version, "kind": e.kind, "params": (e.params)(),
        "columns": columns, "requests": bodies, "expected": expected, "output": e.output,
        "tolerance": e.tolerance,
    });
    let spec_path = out.join("spec.json");
    std::fs::write(&spec_path, serde_json::to_vec(&spec)?)?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/compare.py");
    let (http_port, grpc_port, metrics_port) = (free_port()?, free_port()?, free_port()?);
    let output = std::process::Command::new(python)
        .arg(&script)
        .arg(&spec_path)
        .arg(&out)
        .args(["--requests", &args.series.requests.to_string()])
        .args(["--http-port", &http_port.to_string()])
        .args(["--grpc-port", &grpc_port.to_string()])
        .args(["--metrics-port", &metrics_port.to_string()])
        .output()
        .with_context(|| format!("running {} {}", python.display(), script.display()))?;
    if !output.status.success() {
        bail!(
            "compare.py failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut result: Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .with_context(|| format!("compare.py printed: {stdout}"))?;
    for (rows, v) in result["in_process"].as_object().context("in_process")? {
        let sklearn = v["scikit-learn"]["p50_ms"]
            .as_f64()
            .map_or(String::new(), |p50| {
                format!("; scikit-learn predict: p50 {p50:.3} ms")
            });
        println!(
            "  onnxruntime in process, {rows} row(s): p50 {:.3} ms p99 {:.3} ms{sklearn}",
            v["onnxruntime"]["p50_ms"].as_f64().unwrap_or(f64::NAN),
            v["onnxruntime"]["p99_ms"].as_f64().unwrap_or(f64::NAN),
        );
    }

    let mlserver = python
        .parent()
        .context("the Python's folder")?
        .join("mlserver");
    let repo = result["mlserver_repository"]
        .as_str()
        .context("mlserver_repository")?
        .to_string();
    let base = format!("http://127.0.0.1:{http_port}");
    let started = Instant::now();
    let server = Server::start(
        "MLServer",
        &mlserver,
        &["start".into(), repo],
        &[],
        &args.logs.join(format!("mlserver-{}.log", e.model)),
        &format!("{base}/v2/models/{}/ready", e.model),
        Duration::from_secs(180),
    )?;
    let start_ms = started.elapsed().as_secs_f64() * 1e3;
    let url = format!("{base}/v2/models/{}/infer", e.model);
    let answer = post(&url, &request.one)?;
    // Their output of the same name; MLServer's scikit-learn runtime names its only one
    // "predict".
    let outputs = answer["outputs"].as_array().map_or(&[][..], Vec::as_slice);
    let theirs = match outputs {
        [only] => &only["data"],
        all => all
            .iter()
            .find(|t| t["name"] == e.output)
            .map_or(&Value::Null, |t| &t["data"]),
    };
    if !equivalent::agrees(e, theirs, &expected["1"]) {
        bail!(
            "MLServer answers {theirs} to the one-row request, trademl {}",
            expected["1"]
        );
    }
    println!(
        "  MLServer ready in {start_ms:.0} ms; it answers {} {theirs}, as trademl does",
        e.output
    );
    std::thread::sleep(Duration::from_millis(500));
    let idle = server.memory()?;
    let log = args.logs.join(format!("mlserver-{}.log", e.model));
    let (runs, peak) = drive(generator, &server, &log, &url, &request.one, args, &out)?;
    drop(server);
    println!(
        "  MLServer resident memory ({} processes): idle {:.1} MiB, peak under load {:.1} MiB",
        idle.processes,
        idle.rss_kib as f64 / 1024.0,
        peak.rss_kib as f64 / 1024.0
    );

    // Ratios at the same connections, trademl over the alternative.
    let ours = trademl_http["models"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == e.model))
        .map(|m| m["one_row"].clone())
        .unwrap_or(Value::Null);
    let mut ratios = Vec::new();
    for theirs in &runs {
        let Some(ours) = ours
            .as_array()
            .and_then(|o| o.iter().find(|o| o["connections"] == theirs.connections))
        else {
            continue;
        };
        let f = |k: &str| ours[k].as_f64().unwrap_or(f64::NAN);
        ratios.push(json!({
            "connections": theirs.connections,
            "mlserver_over_trademl_p50": theirs.p50_ms / f("p50_ms"),
            "mlserver_over_trademl_p99": theirs.p99_ms / f("p99_ms"),
            "trademl_over_mlserver_throughput": f("requests_per_second") / theirs.requests_per_second,
        }));
    }
    result["mlserver"] = json!({
        "start_ms": start_ms,
        "memory_idle": memory_json(idle),
        "memory_peak_under_load": memory_json(peak),
        "one_row": runs,
        "ratios": ratios,
    });
    Ok(result)
}

/// The final table: the budget's figures and the ratios, per model ("floor
/// x": the echo component's call with the same tensors, over native: the
/// sandbox's ratio cannot go much below one more than it).
fn summary(figures: &[ModelFigures], doc: &Value) {
    println!(
        "\n{:<22} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "model",
        "1 row p50",
        "1 row p99",
        "x native",
        "floor x",
        "rows p50",
        "x native",
        "floor x",
        "cached"
    );
    let ms = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.3}"));
    let x = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.2}x"));
    for f in figures {
        println!(
            "{:<22} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            f.name,
            ms(Some(f.predict_1_row_in_process.p50_ms)),
            ms(Some(f.predict_1_row_in_process.p99_ms)),
            x(f.sandbox_over_native_1_row),
            x(f.floor_over_native_1_row),
            ms(f.predict_rows_in_process.as_ref().map(|s| s.p50_ms)),
            x(f.sandbox_over_native_rows),
            x(f.floor_over_native_rows),
            ms(Some(f.cached_load.p50_ms)),
        );
    }
    for a in doc["alternatives"].as_array().into_iter().flatten() {
        for r in a["mlserver"]["ratios"].as_array().into_iter().flatten() {
            println!(
                "{}: at {} connections MLServer's p50 is {:.1}x trademl's, its p99 {:.1}x; trademl serves {:.1}x its throughput",
                a["model"].as_str().unwrap_or(""),
                r["connections"],
                r["mlserver_over_trademl_p50"].as_f64().unwrap_or(f64::NAN),
                r["mlserver_over_trademl_p99"].as_f64().unwrap_or(f64::NAN),
                r["trademl_over_mlserver_throughput"]
                    .as_f64()
                    .unwrap_or(f64::NAN),
            );
        }
    }
}

fn load_average() -> Value {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let v: Vec<f64> = text
        .split_whitespace()
        .take(3)
        .filter_map(|x| x.parse().ok())
        .collect();
    json!(v)
}

fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: Option<u64> = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "memory_gib": mem_kib.map(|k| k as f64 / 1024.0 / 1024.0),
        "kernel": kernel.trim(),
        "rustc": rustc,
    })
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
fn utc(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_instants() {
        let at = |secs| utc(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_795_654_861), "2026-11-26T01:01:01Z");
    }

    #[test]
    fn the_server_settings_come_from_its_start_line() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("server.log");
        std::fs::write(
            &log,
            "2026-11-28T14:21:44.1Z  INFO trademl: opening the model repository models=/tmp/m \
             pooling=true max_memory_mib=2048 max_instances=8 deadline_ms=2000 inline_below_us=100\n\
             2026-11-28T14:21:46.0Z  INFO trademl: serving models=[\"a\"]\n",
        )
        .unwrap();
        assert_eq!(
            server_settings(&log).unwrap(),
            json!({"pooling": true, "max_memory_mib": 2048, "max_instances": 8,
                   "deadline_ms": 2000, "inline_below_us": 100})
        );
        std::fs::write(
            &log,
            "INFO trademl: opening the model repository pooling=true max_memory_mib=2048\n",
        )
        .unwrap();
        let err = server_settings(&log).unwrap_err().to_string();
        assert!(err.contains("no max_instances"), "{err}");
        std::fs::write(&log, "INFO trademl: serving\n").unwrap();
        let err = server_settings(&log).unwrap_err().to_string();
        assert!(err.contains("has no line"), "{err}");
    }

    #[test]
    fn the_repository_copy_leaves_the_compiled_cache_behind() {
        let from = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(from.path().join("m")).unwrap();
        std::fs::create_dir_all(from.path().join(".cache")).unwrap();
        std::fs::write(from.path().join("m/1.0.0.wasm"), b"x").unwrap();
        std::fs::write(from.path().join(".cache/entry"), b"y").unwrap();
        let to = tempfile::tempdir().unwrap();
        copy_repository(from.path(), to.path()).unwrap();
        assert_eq!(std::fs::read(to.path().join("m/1.0.0.wasm")).unwrap(), b"x");
        assert!(!to.path().join(".cache").exists());
    }
}
