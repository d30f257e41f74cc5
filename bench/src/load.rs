//! HTTP load from an existing load generator, `wrk`: a bounded time at a
//! given number of keep-alive connections, one POST body repeated. Its Lua
//! `done` hook prints the figures as one JSON line, read back here.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Figures of one run of the load generator.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LoadFigures {
    /// Concurrent connections.
    pub connections: usize,
    /// The load generator's threads.
    pub threads: usize,
    /// How long it ran, seconds.
    pub seconds: f64,
    /// Completed requests.
    pub requests: u64,
    /// Requests per second.
    pub requests_per_second: f64,
    /// Socket errors (connect, read, write, timeout).
    pub socket_errors: u64,
    /// Answers other than 2xx or 3xx.
    pub non_2xx: u64,
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
    /// wrk times with the wall clock (`gettimeofday`); where that clock is
    /// stepped, as on some virtual machines, its latencies are not figures.
    pub latencies_consistent: bool,
}

const MARK: &str = "trademl-bench-figures ";

/// Whether `wrk` can be run.
pub fn available() -> Result<(), String> {
    match Command::new("wrk").arg("--version").output() {
        Ok(_) => Ok(()),
        Err(e) => Err(format!(
            "the load generator wrk is not installed ({e}); scripts/bench installs it (apt-get install wrk)"
        )),
    }
}

/// POST `body` to `url` from `connections` connections for `duration`.
pub fn run(
    url: &str,
    body: &[u8],
    connections: usize,
    duration: Duration,
    scratch: &Path,
) -> Result<LoadFigures> {
    let body = std::str::from_utf8(body).context("the request body is not UTF-8")?;
    if body.contains("]==]") {
        bail!("the request body cannot be quoted in Lua");
    }
    let script = scratch.join(format!("post-{connections}.lua"));
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
    // Two cores: one generator thread per core at most, never more than connections.
    let threads = connections.clamp(1, 2);
    let output = Command::new("wrk")
        .args([
            "-t",
            &threads.to_string(),
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{}s", duration.as_secs().max(1)),
            "--timeout",
            "10s",
            "-s",
        ])
        .arg(&script)
        .arg(url)
        .output()
        .context("running wrk")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk failed ({}): {}{}",
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let Some(line) = stdout.lines().find_map(|l| l.strip_prefix(MARK)) else {
        bail!("wrk printed no figures: {stdout}");
    };
    let v: Value = serde_json::from_str(line).with_context(|| format!("wrk figures: {line}"))?;
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    let ms = |k: &str| n(k) as f64 / 1e3;
    let seconds = n("duration_us") as f64 / 1e6;
    let waited = ms("mean_us") / 1e3 * n("requests") as f64;
    let latencies_consistent = waited <= connections as f64 * seconds * 1.05;
    Ok(LoadFigures {
        connections,
        threads,
        seconds,
        requests: n("requests"),
        requests_per_second: n("requests") as f64 / seconds.max(1e-9),
        socket_errors: n("socket_errors"),
        non_2xx: n("non_2xx"),
        p50_ms: ms("p50_us"),
        p99_ms: ms("p99_us"),
        p999_ms: ms("p999_us"),
        max_ms: ms("max_us"),
        mean_ms: ms("mean_us"),
        latencies_consistent,
    })
}
