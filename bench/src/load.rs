//! HTTP load from an existing load generator: a bounded time at a given
//! number of keep-alive connections, one POST body repeated.
//!
//! The generator is `oha`, which times each request with the monotonic clock
//! (`Instant`) and prints its figures as JSON. `wrk` is the fallback when
//! `oha` cannot be had: it times with the wall clock (`gettimeofday`), which
//! on some virtual machines is stepped during a run, so its latencies are
//! checked for consistency with the run and flagged when they cannot be
//! true. Its Lua `done` hook prints the figures as one JSON line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// The load generator a run uses.
#[derive(Clone, Debug)]
pub enum Generator {
    /// `oha` at this path (monotonic clock).
    Oha(PathBuf),
    /// `wrk` on the `PATH` (wall clock).
    Wrk,
}

impl Generator {
    /// The generator's name, for the output and the JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Generator::Oha(_) => "oha",
            Generator::Wrk => "wrk",
        }
    }
}

/// Figures of one run of the load generator.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LoadFigures {
    /// The load generator (`oha` or `wrk`).
    pub generator: &'static str,
    /// Concurrent connections.
    pub connections: usize,
    /// The load generator's threads.
    pub threads: usize,
    /// How long it ran, seconds.
    pub seconds: f64,
    /// Completed requests (answered, whatever the status).
    pub requests: u64,
    /// Requests per second.
    pub requests_per_second: f64,
    /// Socket errors (connect, read, write, timeout).
    pub socket_errors: u64,
    /// Answers other than 2xx or 3xx.
    pub non_2xx: u64,
    /// Answers by HTTP status (oha only; wrk counts only non-2xx).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub status_codes: BTreeMap<String, u64>,
    /// Socket errors by oha's description of them (oha only).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, u64>,
    /// Latency percentiles, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// The slowest.
    pub max_ms: f64,
    /// The mean.
    pub mean_ms: f64,
    /// Whether the latencies fit the run: `connections` sequential
    /// connections cannot spend more than `connections × seconds` waiting.
    /// A generator timing with a stepped wall clock (wrk on some virtual
    /// machines) fails this check; its latencies are then not figures.
    pub latencies_consistent: bool,
}

/// Whether the latencies of a run can be true: `requests` over `connections`
/// sequential connections cannot have waited longer in all than the run
/// lasted on each connection (with 5% slack for the last requests).
pub fn latencies_consistent(requests: u64, mean_ms: f64, connections: usize, seconds: f64) -> bool {
    requests as f64 * mean_ms / 1e3 <= connections as f64 * seconds * 1.05
}

/// The load generator to use: `oha` (the given path, else on the `PATH`),
/// else `wrk`; an error saying what is missing when neither runs.
pub fn available(oha: Option<&Path>) -> Result<Generator, String> {
    let oha = oha.map_or_else(|| PathBuf::from("oha"), Path::to_path_buf);
    let oha_error = match Command::new(&oha).arg("--version").output() {
        Ok(o) if o.status.success() => return Ok(Generator::Oha(oha)),
        Ok(o) => format!("{} --version failed ({})", oha.display(), o.status),
        Err(e) => format!("{}: {e}", oha.display()),
    };
    match Command::new("wrk").arg("--version").output() {
        Ok(_) => Ok(Generator::Wrk),
        Err(e) => Err(format!(
            "no load generator: oha cannot run ({oha_error}; scripts/bench installs it with cargo install) and wrk is not installed ({e})"
        )),
    }
}

/// POST `body` to `url` from `connections` connections for `duration`.
pub fn run(
    generator: &Generator,
    url: &str,
    body: &[u8],
    connections: usize,
    duration: Duration,
    scratch: &Path,
) -> Result<LoadFigures> {
    let run = Run {
        url,
        body,
        connections,
        // Two cores: one generator thread per core at most, never more than connections.
        threads: connections.clamp(1, 2),
        seconds: format!("{}s", duration.as_secs().max(1)),
        scratch,
    };
    match generator {
        Generator::Oha(oha) => run_oha(oha, &run),
        Generator::Wrk => run_wrk(&run),
    }
}

/// One load run, whichever generator drives it.
struct Run<'a> {
    url: &'a str,
    body: &'a [u8],
    connections: usize,
    threads: usize,
    /// The duration as both generators take it (`5s`).
    seconds: String,
    scratch: &'a Path,
}

/// The standard output of a generator that ran to success.
fn stdout_of(mut command: Command, name: &str) -> Result<String> {
    let output = command
        .output()
        .with_context(|| format!("running {name}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "{name} failed ({}): {stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(stdout)
}

fn run_oha(oha: &Path, run: &Run) -> Result<LoadFigures> {
    let Run {
        url,
        body,
        connections,
        threads,
        ..
    } = *run;
    let body_file = run.scratch.join(format!("post-{connections}.json"));
    std::fs::write(&body_file, body)?;
    let mut command = Command::new(oha);
    command
        .args(["--no-tui", "--output-format", "json", "-m", "POST"])
        .args(["-T", "application/json", "-t", "10s"])
        .args(["-c", &connections.to_string()])
        .args(["--worker-threads", &threads.to_string()])
        // Wait for the requests under way at the deadline rather than
        // counting them as errors.
        .args(["-z", &run.seconds, "-w"])
        .arg("-D")
        .arg(&body_file)
        .arg(url);
    let stdout = stdout_of(command, "oha")?;
    let v: Value =
        serde_json::from_str(&stdout).with_context(|| format!("oha's JSON output: {stdout}"))?;
    oha_figures(&v, connections, threads)
}

/// Figures from oha's JSON output (times in seconds).
fn oha_figures(v: &Value, connections: usize, threads: usize) -> Result<LoadFigures> {
    let secs = |section: &str, key: &str| -> Result<f64> {
        v[section][key]
            .as_f64()
            .with_context(|| format!("oha's JSON has no number {section}.{key}"))
    };
    let count = |section: &str, keep: &dyn Fn(&str) -> bool| -> u64 {
        v[section]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| keep(k))
                    .filter_map(|(_, n)| n.as_u64())
                    .sum()
            })
            .unwrap_or(0)
    };
    let requests = count("statusCodeDistribution", &|_| true);
    let non_2xx = count("statusCodeDistribution", &|code| {
        !(code.starts_with('2') || code.starts_with('3'))
    });
    let socket_errors = count("errorDistribution", &|_| true);
    let distribution = |section: &str| -> BTreeMap<String, u64> {
        v[section]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, n)| Some((k.clone(), n.as_u64()?)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let seconds = secs("summary", "total")?;
    if requests == 0 {
        bail!("oha completed no request in {seconds:.1} s ({socket_errors} errors): {v}");
    }
    let mean_ms = secs("summary", "average")? * 1e3;
    Ok(LoadFigures {
        generator: "oha",
        connections,
        threads,
        seconds,
        requests,
        requests_per_second: requests as f64 / seconds.max(1e-9),
        socket_errors,
        non_2xx,
        status_codes: distribution("statusCodeDistribution"),
        errors: distribution("errorDistribution"),
        p50_ms: secs("latencyPercentiles", "p50")? * 1e3,
        p99_ms: secs("latencyPercentiles", "p99")? * 1e3,
        p999_ms: secs("latencyPercentiles", "p99.9")? * 1e3,
        max_ms: secs("summary", "slowest")? * 1e3,
        mean_ms,
        latencies_consistent: latencies_consistent(requests, mean_ms, connections, seconds),
    })
}

const MARK: &str = "trademl-bench-figures ";

fn run_wrk(run: &Run) -> Result<LoadFigures> {
    let Run {
        url,
        connections,
        threads,
        ..
    } = *run;
    let body = std::str::from_utf8(run.body).context("the request body is not UTF-8")?;
    if body.contains("]==]") {
        bail!("the request body cannot be quoted in Lua");
    }
    let script = run.scratch.join(format!("post-{connections}.lua"));
    std::fs::write(
        &script,
        format!(
            r#"wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{body}]==]
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{MARK}{{"requests":%d,"duration_us":%d,"socket_errors":%d,"non_2xx":%d,"p50_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%d}}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))
end
"#
        ),
    )?;
    let mut command = Command::new("wrk");
    command
        .args([
            "-t",
            &threads.to_string(),
            "-c",
            &connections.to_string(),
            "-d",
            &run.seconds,
            "--timeout",
            "10s",
            "-s",
        ])
        .arg(&script)
        .arg(url);
    let stdout = stdout_of(command, "wrk")?;
    let Some(line) = stdout.lines().find_map(|l| l.strip_prefix(MARK)) else {
        bail!("wrk printed no figures: {stdout}");
    };
    let v: Value = serde_json::from_str(line).with_context(|| format!("wrk figures: {line}"))?;
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    let ms = |k: &str| n(k) as f64 / 1e3;
    let seconds = n("duration_us") as f64 / 1e6;
    Ok(LoadFigures {
        generator: "wrk",
        connections,
        threads,
        seconds,
        requests: n("requests"),
        requests_per_second: n("requests") as f64 / seconds.max(1e-9),
        socket_errors: n("socket_errors"),
        non_2xx: n("non_2xx"),
        status_codes: BTreeMap::new(),
        errors: BTreeMap::new(),
        p50_ms: ms("p50_us"),
        p99_ms: ms("p99_us"),
        p999_ms: ms("p999_us"),
        max_ms: ms("max_us"),
        mean_ms: ms("mean_us"),
        latencies_consistent: latencies_consistent(
            n("requests"),
            ms("mean_us"),
            connections,
            seconds,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_cannot_wait_longer_than_it_lasted() {
        // 10,057 requests on one connection in 5 s cannot average 1 ms each...
        assert!(!latencies_consistent(10_057, 1.0, 1, 5.0));
        // ...but can average 0.45 ms; 64 connections share the wait.
        assert!(latencies_consistent(10_057, 0.45, 1, 5.0));
        assert!(latencies_consistent(64_000, 4.5, 64, 5.0));
    }

    #[test]
    fn oha_json_is_read_in_milliseconds_with_errors_and_statuses_counted() {
        // The shape oha 1.16 prints with `--output-format json` (trimmed).
        let v: Value = serde_json::from_str(
            r#"{
              "summary": {"successRate": 1.0, "total": 5.0, "slowest": 0.004,
                          "fastest": 0.0001, "average": 0.0002, "requestsPerSec": 2000.0},
              "latencyPercentiles": {"p10": 0.0001, "p50": 0.00015, "p99": 0.0009,
                                     "p99.9": 0.002, "p99.99": 0.0035},
              "statusCodeDistribution": {"200": 9990, "503": 10},
              "errorDistribution": {"connection closed": 3}
            }"#,
        )
        .unwrap();
        let f = oha_figures(&v, 1, 1).unwrap();
        assert_eq!(f.generator, "oha");
        assert_eq!(f.requests, 10_000);
        assert_eq!(f.non_2xx, 10);
        assert_eq!(f.socket_errors, 3);
        assert_eq!(f.status_codes.get("503"), Some(&10));
        assert_eq!(f.status_codes.get("200"), Some(&9990));
        assert_eq!(f.errors.get("connection closed"), Some(&3));
        assert!((f.p50_ms - 0.15).abs() < 1e-9);
        assert!((f.p99_ms - 0.9).abs() < 1e-9);
        assert!((f.p999_ms - 2.0).abs() < 1e-9);
        assert!((f.max_ms - 4.0).abs() < 1e-9);
        assert!((f.requests_per_second - 2000.0).abs() < 1e-9);
        // 10,000 × 0.2 ms = 2 s of waiting in a 5 s run on one connection.
        assert!(f.latencies_consistent);
    }

    #[test]
    fn oha_output_without_answers_or_figures_is_an_error() {
        let none: Value = serde_json::from_str(
            r#"{"summary": {"total": 5.0, "average": null, "slowest": null},
                "latencyPercentiles": {}, "statusCodeDistribution": {},
                "errorDistribution": {"connection refused": 40}}"#,
        )
        .unwrap();
        let err = oha_figures(&none, 1, 1).unwrap_err().to_string();
        assert!(err.contains("no request"), "{err}");
        let missing: Value = serde_json::from_str(
            r#"{"summary": {"total": 5.0, "average": 0.001, "slowest": 0.002},
                "latencyPercentiles": {"p50": 0.001},
                "statusCodeDistribution": {"200": 5}, "errorDistribution": {}}"#,
        )
        .unwrap();
        let err = oha_figures(&missing, 1, 1).unwrap_err().to_string();
        assert!(err.contains("latencyPercentiles.p99"), "{err}");
    }
}
