//! The harness: builds the test guest components, packs and signs them with
//! the real CLI, lays out model repositories, runs `trademl serve` on a
//! loopback port, and talks to it over real HTTP.
//!
//! Every wait is bounded: a child process that does not finish, or a server
//! that does not come up, fails the test with what it printed.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The `trademl` binary under test.
pub const TRADEML: &str = env!("CARGO_BIN_EXE_trademl");

/// How long a CLI command may take before the test gives up on it (pack
/// compiles a component and runs its examples; keep this generous).
pub const CLI_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a server may take to print its listening line.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The per-request timeout of the HTTP client.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// The interface every manifest names.
pub const INTERFACE: &str = "trademl:model/predict@0.1.0";

/// The factor each test build of the `scale` model multiplies by.
pub const SCALE_V1: (&str, f64) = ("1.0.0", 2.0);
pub const SCALE_V2: (&str, f64) = ("2.0.0", 3.0);

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

// ---------------------------------------------------------------------------
// Child processes with bounded waits

/// Runs a command to completion, failing the test if it takes longer than
/// `timeout`. Never returns a timed-out process.
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> Output {
    let description = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {description}: {e}"));
    let out_reader = drain(child.stdout.take().expect("piped stdout"));
    let err_reader = drain(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait().expect("try_wait") {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                let stdout = out_reader.join().unwrap_or_default();
                let stderr = err_reader.join().unwrap_or_default();
                panic!(
                    "{description} did not finish within {timeout:?}\n--- stdout\n{}\n--- stderr\n{}",
                    String::from_utf8_lossy(&stdout),
                    String::from_utf8_lossy(&stderr)
                );
            }
            None => thread::sleep(Duration::from_millis(10)),
        }
    };
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// What a CLI run printed, and how it ended.
#[derive(Debug)]
pub struct CliRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub command: String,
}

impl CliRun {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Fails the test unless the command exited 0.
    pub fn ok(self) -> Self {
        assert!(
            self.success(),
            "{} failed ({:?})\n--- stdout\n{}\n--- stderr\n{}",
            self.command,
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Fails the test unless the command exited with a non-zero code (not a
    /// signal) and said why on stderr.
    pub fn refused(self) -> Self {
        assert!(
            matches!(self.code, Some(c) if c != 0),
            "{} should have failed with a non-zero exit code, got {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.command,
            self.code,
            self.stdout,
            self.stderr
        );
        assert!(
            !self.stderr.trim().is_empty(),
            "{} failed without saying why on stderr",
            self.command
        );
        self
    }

    /// Fails the test unless stderr mentions `needle` (case-insensitive).
    pub fn says(self, needle: &str) -> Self {
        assert!(
            self.stderr.to_lowercase().contains(&needle.to_lowercase()),
            "{} should say {needle:?} on stderr\n--- stdout\n{}\n--- stderr\n{}",
            self.command,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs `trademl ARGS...` with a bounded wait.
pub fn trademl<I, S>(args: I) -> CliRun
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    trademl_within(args, CLI_TIMEOUT)
}

/// Runs `trademl ARGS...`, waiting at most `timeout` (for commands that
/// compile large components, such as `pack --onnx`).
pub fn trademl_within<I, S>(args: I, timeout: Duration) -> CliRun
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new(TRADEML);
    cmd.args(args).env("NO_COLOR", "1");
    clean_env(&mut cmd);
    let command = format!("{cmd:?}");
    let out = run_bounded(&mut cmd, timeout);
    CliRun {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        command,
    }
}

/// Keeps the developer's configuration out of the process under test.
fn clean_env(cmd: &mut Command) {
    for var in [
        "AI_MODELS_PATH",
        "AI_MAX_MEMORY",
        "AI_PROVIDER",
        "TRADEML_CONFIG",
        "TRADEML_SERVER",
        "TRADEML_MODELS",
        "TRADEML_TRUST",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
}

// ---------------------------------------------------------------------------
// Test guests: built once per test process

/// The raw (unpacked, unsigned) test components.
pub struct Guests {
    pub scale_v1: PathBuf,
    pub scale_v2: PathBuf,
    pub spin: PathBuf,
    pub memory_bomb: PathBuf,
    pub trap: PathBuf,
    pub escape: PathBuf,
    /// Built against `trademl:model@0.2.0`, a version the host does not speak.
    pub other_version: PathBuf,
    /// Exports no `trademl:model/predict` at all.
    pub no_predict: PathBuf,
}

/// Builds the test guests (once per process) and returns their components.
pub fn guests() -> &'static Guests {
    static GUESTS: OnceLock<Guests> = OnceLock::new();
    GUESTS.get_or_init(build_guests)
}

fn build_guests() -> Guests {
    let root = workspace();
    let target = root.join("target").join("test-guests");
    let out = fixtures_dir().join("components");
    std::fs::create_dir_all(&out).unwrap();
    let built = |krate: &str| {
        target
            .join("wasm32-wasip2")
            .join("guest")
            .join(format!("{}.wasm", krate.replace('-', "_")))
    };
    let cargo_build = |packages: &[&str], version: &str, factor: f64| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(&root)
            .args(["build", "--profile", "guest", "--target", "wasm32-wasip2"])
            .arg("--target-dir")
            .arg(&target)
            .env("TRADEML_GUEST_VERSION", version)
            .env("TRADEML_GUEST_FACTOR", factor.to_string())
            // Flags meant for the host build (coverage, sanitizers) do not
            // apply to the guests.
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("CARGO_BUILD_TARGET");
        for p in packages {
            cmd.args(["-p", p]);
        }
        let output = run_bounded(&mut cmd, Duration::from_secs(900));
        assert!(
            output.status.success(),
            "building the test guests failed: {cmd:?}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let copy = |krate: &str, name: &str| {
        let dest = out.join(name);
        std::fs::copy(built(krate), &dest)
            .unwrap_or_else(|e| panic!("{} was not built: {e}", built(krate).display()));
        dest
    };

    cargo_build(
        &[
            "trademl-test-guest-scale",
            "trademl-test-guest-spin",
            "trademl-test-guest-memory-bomb",
            "trademl-test-guest-trap",
            "trademl-test-guest-escape",
            "trademl-test-guest-other-version",
            "trademl-test-guest-no-predict",
        ],
        SCALE_V1.0,
        SCALE_V1.1,
    );
    let scale_v1 = copy("trademl-test-guest-scale", "scale-1.0.0.wasm");
    let spin = copy("trademl-test-guest-spin", "spin.wasm");
    let memory_bomb = copy("trademl-test-guest-memory-bomb", "memory-bomb.wasm");
    let trap = copy("trademl-test-guest-trap", "trap.wasm");
    let escape = copy("trademl-test-guest-escape", "escape.wasm");
    let other_version = copy("trademl-test-guest-other-version", "other-version.wasm");
    let no_predict = copy("trademl-test-guest-no-predict", "no-predict.wasm");
    cargo_build(&["trademl-test-guest-scale"], SCALE_V2.0, SCALE_V2.1);
    let scale_v2 = copy("trademl-test-guest-scale", "scale-2.0.0.wasm");
    assert_ne!(
        std::fs::read(&scale_v1).unwrap(),
        std::fs::read(&scale_v2).unwrap(),
        "the two builds of the scale guest are identical: TRADEML_GUEST_VERSION did not reach the build"
    );
    Guests {
        scale_v1,
        scale_v2,
        spin,
        memory_bomb,
        trap,
        escape,
        other_version,
        no_predict,
    }
}

/// This process's own scratch directory under `target/test-guests`, for
/// fixtures shared by all tests. Directories left by earlier runs whose
/// process is gone are removed.
pub fn fixtures_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = workspace().join("target").join("test-guests");
        std::fs::create_dir_all(&base).unwrap();
        if let Ok(entries) = std::fs::read_dir(&base) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("e2e-fixtures-")
                    && !Path::new("/proc").join(pid).exists()
                {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = base.join(format!("e2e-fixtures-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

// ---------------------------------------------------------------------------
// Manifests, keys and signed artifacts: made once per process with the CLI

/// A tensor description as a manifest carries it.
pub fn tensor_spec(name: &str, datatype: &str, shape: &[i64], description: &str) -> Value {
    json!({"name": name, "datatype": datatype, "shape": shape, "description": description})
}

/// The manifest of a build of the `scale` guest.
pub fn scale_manifest(version: &str, factor: f64) -> Value {
    json!({
        "name": "scale",
        "version": version,
        "description": "Multiplies x by a constant factor (a trademl test model).",
        "interface": INTERFACE,
        "inputs": [tensor_spec("x", "FP64", &[-1], "Values to scale; non-negative, below 1e9.")],
        "outputs": [tensor_spec("y", "FP64", &[-1], "x times the factor.")],
        "memory_limit_mib": 16,
        "examples": [{
            "inputs": [{"name": "x", "datatype": "FP64", "shape": [3], "data": [1.0, 2.0, 0.5]}],
            "outputs": [{"name": "y", "datatype": "FP64", "shape": [3],
                         "data": [factor, 2.0 * factor, 0.5 * factor]}],
            "tolerance": 1e-9
        }]
    })
}

fn hostile_manifest(
    name: &str,
    description: &str,
    inputs: Vec<Value>,
    outputs: Vec<Value>,
) -> Value {
    json!({
        "name": name,
        "version": "1.0.0",
        "description": description,
        "interface": INTERFACE,
        "inputs": inputs,
        "outputs": outputs,
        "memory_limit_mib": 16,
        "examples": []
    })
}

pub fn spin_manifest() -> Value {
    hostile_manifest(
        "spin",
        "Loops forever (a hostile trademl test model).",
        vec![tensor_spec("x", "FP64", &[-1], "Ignored.")],
        vec![tensor_spec("y", "FP64", &[-1], "Never produced.")],
    )
}

pub fn memory_bomb_manifest() -> Value {
    hostile_manifest(
        "memory-bomb",
        "Allocates memory until something stops it (a hostile trademl test model).",
        vec![tensor_spec("x", "FP64", &[-1], "Ignored.")],
        vec![tensor_spec(
            "y",
            "FP64",
            &[-1],
            "The number of MiB it managed to hold (never produced).",
        )],
    )
}

pub fn trap_manifest() -> Value {
    hostile_manifest(
        "trap",
        "Traps on purpose (a hostile trademl test model).",
        vec![tensor_spec(
            "mode",
            "INT64",
            &[1],
            "How to fail: 0 panic, 1 unreachable, 2 stack overflow, 3 out-of-bounds access, 4 model failure, 5 loop until stopped; else answer.",
        )],
        vec![tensor_spec(
            "y",
            "INT64",
            &[1],
            "The mode, when it does not fail.",
        )],
    )
}

pub fn escape_manifest() -> Value {
    hostile_manifest(
        "escape",
        "Tries to read files, the environment and the network (a hostile trademl test model).",
        vec![
            tensor_spec("paths", "BYTES", &[-1], "Files to try to read."),
            tensor_spec(
                "port",
                "INT64",
                &[-1],
                "A port on 127.0.0.1 to try to connect to.",
            ),
        ],
        vec![
            tensor_spec("report", "BYTES", &[-1], "What each attempt gave."),
            tensor_spec("leaked", "BOOL", &[-1], "Whether each attempt got through."),
        ],
    )
}

/// A publisher key pair made by `trademl keygen`.
pub struct KeyPair {
    pub key: PathBuf,
    pub public: PathBuf,
}

/// Keys and packed, signed artifacts shared by all tests (read-only: copy
/// them before changing them).
pub struct Fixtures {
    /// Trusted by every repository [`Repo::new`] makes.
    pub publisher: KeyPair,
    /// Trusted by no one.
    pub stranger: KeyPair,
    /// scale 1.0.0 (factor 2), signed by the publisher.
    pub scale_v1: PathBuf,
    /// scale 2.0.0 (factor 3), signed by the publisher.
    pub scale_v2: PathBuf,
    /// scale 1.0.0 packed with a different manifest (another memory limit),
    /// signed by the publisher: same version, different digest.
    pub scale_v1_alt: PathBuf,
    /// scale 1.0.0 packed but never signed.
    pub scale_v1_unsigned: PathBuf,
    /// scale 1.0.0 signed only by the stranger.
    pub scale_v1_by_stranger: PathBuf,
    /// scale 1.0.0 signed by the stranger, then by the publisher.
    pub scale_v1_by_both: PathBuf,
    pub spin: PathBuf,
    pub memory_bomb: PathBuf,
    pub trap: PathBuf,
    pub escape: PathBuf,
}

/// Builds the guests, makes the keys, and packs and signs every artifact,
/// all with the real CLI (once per process).
pub fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(make_fixtures)
}

fn make_fixtures() -> Fixtures {
    let g = guests();
    let dir = fixtures_dir();
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let publisher = keygen(&keys, "publisher");
    let stranger = keygen(&keys, "stranger");
    let art = dir.join("artifacts");
    std::fs::create_dir_all(&art).unwrap();

    let mut alt_manifest = scale_manifest(SCALE_V1.0, SCALE_V1.1);
    alt_manifest["memory_limit_mib"] = json!(17);

    // Pack in parallel: each pack compiles its component and runs its examples.
    let jobs: Vec<(&str, &Path, Value)> = vec![
        (
            "scale-1.0.0",
            &g.scale_v1,
            scale_manifest(SCALE_V1.0, SCALE_V1.1),
        ),
        (
            "scale-2.0.0",
            &g.scale_v2,
            scale_manifest(SCALE_V2.0, SCALE_V2.1),
        ),
        ("scale-1.0.0-alt", &g.scale_v1, alt_manifest),
        ("spin", &g.spin, spin_manifest()),
        ("memory-bomb", &g.memory_bomb, memory_bomb_manifest()),
        ("trap", &g.trap, trap_manifest()),
        ("escape", &g.escape, escape_manifest()),
    ];
    let packed: Vec<PathBuf> = thread::scope(|s| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|(label, component, manifest)| {
                let art = &art;
                s.spawn(move || {
                    pack(
                        component,
                        manifest,
                        &art.join(format!("{label}.unsigned.wasm")),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let signed = |unsigned: &Path, label: &str, keys: &[&KeyPair]| {
        let out = art.join(format!("{label}.wasm"));
        std::fs::copy(unsigned, &out).unwrap();
        for k in keys {
            trademl([
                "sign".as_ref(),
                out.as_os_str(),
                "--key".as_ref(),
                k.key.as_os_str(),
            ])
            .ok();
        }
        out
    };
    Fixtures {
        scale_v1: signed(&packed[0], "scale-1.0.0", &[&publisher]),
        scale_v2: signed(&packed[1], "scale-2.0.0", &[&publisher]),
        scale_v1_alt: signed(&packed[2], "scale-1.0.0-alt", &[&publisher]),
        scale_v1_unsigned: packed[0].clone(),
        scale_v1_by_stranger: signed(&packed[0], "scale-1.0.0-stranger", &[&stranger]),
        scale_v1_by_both: signed(&packed[0], "scale-1.0.0-both", &[&stranger, &publisher]),
        spin: signed(&packed[3], "spin", &[&publisher]),
        memory_bomb: signed(&packed[4], "memory-bomb", &[&publisher]),
        trap: signed(&packed[5], "trap", &[&publisher]),
        escape: signed(&packed[6], "escape", &[&publisher]),
        publisher,
        stranger,
    }
}

/// `trademl keygen --out DIR --name NAME`.
pub fn keygen(dir: &Path, name: &str) -> KeyPair {
    trademl([
        "keygen".as_ref(),
        "--out".as_ref(),
        dir.as_os_str(),
        "--name".as_ref(),
        name.as_ref(),
    ])
    .ok();
    let pair = KeyPair {
        key: dir.join(format!("{name}.key")),
        public: dir.join(format!("{name}.pub")),
    };
    assert!(pair.key.is_file(), "keygen made no {}", pair.key.display());
    assert!(
        pair.public.is_file(),
        "keygen made no {}",
        pair.public.display()
    );
    pair
}

/// `trademl pack COMPONENT --manifest M --out OUT`; fails the test on error.
pub fn pack(component: &Path, manifest: &Value, out: &Path) -> PathBuf {
    try_pack(component, manifest, out).ok();
    assert!(out.is_file(), "pack wrote no {}", out.display());
    out.to_path_buf()
}

/// `trademl pack COMPONENT --manifest M --out OUT`, whatever its outcome.
pub fn try_pack(component: &Path, manifest: &Value, out: &Path) -> CliRun {
    let manifest_path = out.with_extension("manifest.json");
    std::fs::write(&manifest_path, serde_json::to_vec_pretty(manifest).unwrap()).unwrap();
    trademl([
        "pack".as_ref(),
        component.as_os_str(),
        "--manifest".as_ref(),
        manifest_path.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ])
}

/// `trademl verify FILE --trust DIR`.
pub fn verify(file: &Path, trust: &Path) -> CliRun {
    trademl([
        "verify".as_ref(),
        file.as_os_str(),
        "--trust".as_ref(),
        trust.as_os_str(),
    ])
}

// ---------------------------------------------------------------------------
// Model repositories

/// A model repository in a temporary directory: `trust/` holds the
/// publisher's public key.
pub struct Repo {
    pub dir: tempfile::TempDir,
}

impl Repo {
    /// An empty repository that trusts the fixtures' publisher, in this
    /// process's scratch directory: a repository that is never dropped (one
    /// a test shares through a static, with hundreds of megabytes of
    /// compiled cache) is removed by the next run, not left in /tmp.
    pub fn new() -> Repo {
        let dir = tempfile::Builder::new()
            .prefix("repo-")
            .tempdir_in(fixtures_dir())
            .unwrap();
        let trust = dir.path().join("trust");
        std::fs::create_dir_all(&trust).unwrap();
        std::fs::copy(&fixtures().publisher.public, trust.join("publisher.pub")).unwrap();
        Repo { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn trust(&self) -> PathBuf {
        self.dir.path().join("trust")
    }

    /// Copies `file` to `DIR/name/version.wasm` and returns that path.
    pub fn add(&self, file: &Path, name: &str, version: &str) -> PathBuf {
        self.add_bytes(&std::fs::read(file).unwrap(), name, version)
    }

    /// Writes `bytes` to `DIR/name/version.wasm` and returns that path.
    pub fn add_bytes(&self, bytes: &[u8], name: &str, version: &str) -> PathBuf {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{version}.wasm"));
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

// ---------------------------------------------------------------------------
// The server

/// How to start a server.
#[derive(Default, Clone)]
pub struct ServeOptions {
    pub deadline_ms: Option<u64>,
    pub cwd: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    /// How long the server may take to listen [default: START_TIMEOUT].
    pub start_timeout: Option<Duration>,
    /// A TOML configuration file (`--config`).
    pub config: Option<PathBuf>,
}

/// A running `trademl serve`, killed when dropped.
pub struct Server {
    child: Child,
    pub url: String,
    pub models: PathBuf,
    stderr_path: PathBuf,
    _logs: tempfile::TempDir,
    agent: ureq::Agent,
}

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub what: String,
}

impl Reply {
    /// The body as JSON; fails the test if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!(
                "{}: the body is not JSON ({e}), status {}: {:?}",
                self.what, self.status, self.body
            )
        })
    }

    /// Fails the test unless the status is `status`; returns the reply.
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status, status,
            "{}: expected HTTP {status}, got {} with body {}",
            self.what, self.status, self.body
        );
        self
    }

    /// The `error` string of an error body; fails the test if there is none.
    pub fn error(&self) -> String {
        let v = self.json();
        match v.get("error") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            _ => panic!(
                "{}: error body without an \"error\" message: {}",
                self.what, self.body
            ),
        }
    }

    /// Fails the test unless this is an error reply with `status` whose
    /// message mentions every one of `needles` (case-insensitive).
    pub fn expect_error(self, status: u16, needles: &[&str]) -> Self {
        let reply = self.expect(status);
        let message = reply.error().to_lowercase();
        for needle in needles {
            assert!(
                message.contains(&needle.to_lowercase()),
                "{}: the error message should mention {needle:?}: {}",
                reply.what,
                reply.body
            );
        }
        reply
    }
}

/// A new HTTP client that reports every status as a reply, not an error.
pub fn http_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(HTTP_TIMEOUT))
        .timeout_connect(Some(Duration::from_secs(5)))
        .build()
        .into()
}

impl Server {
    /// Serves `models` on a free loopback port.
    pub fn start(models: &Path) -> Server {
        Server::start_with(models, ServeOptions::default())
    }

    pub fn start_with(models: &Path, options: ServeOptions) -> Server {
        let logs = tempfile::Builder::new()
            .prefix("trademl-e2e-logs-")
            .tempdir()
            .unwrap();
        let stderr_path = logs.path().join("stderr.log");
        let stderr_file = std::fs::File::create(&stderr_path).unwrap();
        let mut cmd = Command::new(TRADEML);
        clean_env(&mut cmd);
        cmd.arg("serve")
            .arg("--models")
            .arg(models)
            .args(["--listen", "127.0.0.1:0"]);
        if let Some(ms) = options.deadline_ms {
            cmd.args(["--deadline-ms", &ms.to_string()]);
        }
        if let Some(config) = &options.config {
            cmd.arg("--config").arg(config);
        }
        cmd.current_dir(options.cwd.as_deref().unwrap_or(logs.path()))
            .env("NO_COLOR", "1");
        for (k, v) in &options.env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr_file))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel::<String>();
        thread::spawn(move || {
            // Keep draining stdout for the server's whole life.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + options.start_timeout.unwrap_or(START_TIMEOUT);
        let mut seen = Vec::new();
        let url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.trim().strip_prefix("trademl listening on ") {
                        break rest.trim().trim_end_matches('/').to_string();
                    }
                    seen.push(line);
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "trademl serve --models {} did not print its listening line ({e:?})\n--- stdout\n{}\n--- stderr\n{}",
                        models.display(),
                        seen.join("\n"),
                        std::fs::read_to_string(&stderr_path).unwrap_or_default()
                    );
                }
            }
        };
        assert!(
            url.starts_with("http://127.0.0.1:"),
            "unexpected listening address {url}"
        );
        Server {
            child,
            url,
            models: models.to_path_buf(),
            stderr_path,
            _logs: logs,
            agent: http_agent(),
        }
    }

    /// Everything the server wrote on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Waits (bounded) until stderr has a line for which `pred` holds.
    pub fn wait_for_log_line(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.stderr();
            if let Some(line) = log.lines().find(|l| pred(l)) {
                return line.to_string();
            }
            if Instant::now() >= deadline {
                panic!("the server logged no such line within {timeout:?}; stderr:\n{log}");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn try_request(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> Result<Reply, String> {
        let url = format!("{}{path}", self.url);
        let what = format!("{method} {path}");
        let result = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("POST", Some((ct, bytes))) => self.agent.post(&url).content_type(ct).send(bytes),
            ("POST", None) => self.agent.post(&url).send_empty(),
            _ => panic!("unsupported method {method}"),
        };
        let mut response = result.map_err(|e| format!("{what}: {e}"))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("{what}: reading the body: {e}"))?;
        Ok(Reply { status, body, what })
    }

    fn request(&self, method: &str, path: &str, body: Option<(&str, &[u8])>) -> Reply {
        self.try_request(method, path, body).unwrap_or_else(|e| {
            panic!("{e}\n--- server stderr\n{}", self.stderr());
        })
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, None)
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.request(
            "POST",
            path,
            Some(("application/json", body.to_string().as_bytes())),
        )
    }

    /// A POST without a body (`Content-Length: 0`).
    pub fn post_empty(&self, path: &str) -> Reply {
        self.request("POST", path, None)
    }

    pub fn post_raw(&self, path: &str, content_type: &str, body: &[u8]) -> Reply {
        self.request("POST", path, Some((content_type, body)))
    }

    /// `POST /v2/models/{model}/infer`.
    pub fn infer(&self, model: &str, body: &Value) -> Reply {
        self.post_json(&format!("/v2/models/{model}/infer"), body)
    }

    /// `POST /v2/repository/models/{name}/versions` with a signed file.
    pub fn publish(&self, name: &str, file_bytes: &[u8]) -> Reply {
        self.post_raw(
            &format!("/v2/repository/models/{name}/versions"),
            "application/wasm",
            file_bytes,
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// Requests and answers

/// An infer request for the `scale` model.
pub fn scale_request(x: &[f64]) -> Value {
    json!({"inputs": [{"name": "x", "datatype": "FP64", "shape": [x.len()], "data": x}]})
}

/// The named output of an infer response, as (datatype, shape, data).
pub fn output(response: &Value, name: &str) -> (String, Vec<u64>, Vec<Value>) {
    let outputs = response["outputs"]
        .as_array()
        .unwrap_or_else(|| panic!("no outputs in {response}"));
    let out = outputs
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no output {name:?} in {response}"));
    let shape = out["shape"]
        .as_array()
        .unwrap_or_else(|| panic!("output {name} has no shape: {response}"))
        .iter()
        .map(|d| d.as_u64().expect("a shape dimension"))
        .collect();
    let data = flatten(&out["data"]);
    (
        out["datatype"].as_str().unwrap_or_default().to_string(),
        shape,
        data,
    )
}

/// Row-major elements of a (possibly nested) JSON data array.
pub fn flatten(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items.iter().flat_map(flatten).collect(),
        other => vec![other.clone()],
    }
}

/// The named output's elements as numbers.
pub fn output_f64(response: &Value, name: &str) -> Vec<f64> {
    output(response, name)
        .2
        .iter()
        .map(|v| {
            v.as_f64()
                .unwrap_or_else(|| panic!("non-numeric {v} in {response}"))
        })
        .collect()
}

/// The versions a repository listing routes traffic to (weight above 0).
pub fn routed_versions(listing: &Value) -> Vec<String> {
    listing["routing"]["versions"]
        .as_array()
        .unwrap_or_else(|| panic!("no routing.versions in {listing}"))
        .iter()
        .filter(|v| {
            v["weight"]
                .as_f64()
                .unwrap_or_else(|| panic!("no weight in {listing}"))
                > 0.0
        })
        .map(|v| v["version"].as_str().expect("a version").to_string())
        .collect()
}

/// Polls `f` until it returns `Some`, failing the test after `timeout`.
pub fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------
// WebAssembly framing, for the tamper tests

/// One top-level section of a module or component.
#[derive(Debug, Clone)]
pub struct Section {
    /// Section id (0 is custom; 1 in a component is a core module).
    pub id: u8,
    /// A custom section's name.
    pub name: Option<String>,
    /// Where the section starts (its id byte).
    pub start: usize,
    /// Where the section's payload starts (after the size; for a custom
    /// section, this is where its name's length starts).
    pub payload: usize,
    /// For a custom section, where its data starts (after the name).
    pub data: usize,
    /// One past the section's last byte.
    pub end: usize,
}

fn leb_u32(bytes: &[u8], pos: &mut usize) -> u32 {
    let mut result: u64 = 0;
    let mut shift = 0;
    loop {
        let b = *bytes.get(*pos).expect("truncated LEB128");
        *pos += 1;
        result |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        assert!(shift < 35, "LEB128 too long");
    }
    u32::try_from(result).expect("LEB128 u32")
}

/// The top-level sections of a WebAssembly binary.
pub fn sections(bytes: &[u8]) -> Vec<Section> {
    assert!(bytes.len() >= 8 && &bytes[..4] == b"\0asm", "not wasm");
    let mut pos = 8;
    let mut out = Vec::new();
    while pos < bytes.len() {
        let start = pos;
        let id = bytes[pos];
        pos += 1;
        let size = leb_u32(bytes, &mut pos) as usize;
        let payload = pos;
        let end = payload + size;
        assert!(
            end <= bytes.len(),
            "section {id} at {start} runs past the end"
        );
        let (name, data) = if id == 0 {
            let mut p = payload;
            let len = leb_u32(bytes, &mut p) as usize;
            let name = String::from_utf8_lossy(&bytes[p..p + len]).into_owned();
            (Some(name), p + len)
        } else {
            (None, payload)
        };
        out.push(Section {
            id,
            name,
            start,
            payload,
            data,
            end,
        });
        pos = end;
    }
    out
}

/// The custom section called `name`; fails the test if there is none.
pub fn custom_section(bytes: &[u8], name: &str) -> Section {
    sections(bytes)
        .into_iter()
        .find(|s| s.id == 0 && s.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no custom section {name:?}"))
}

/// The largest core module embedded in a component (its code and data).
pub fn largest_core_module(bytes: &[u8]) -> Section {
    sections(bytes)
        .into_iter()
        .filter(|s| s.id == 1)
        .max_by_key(|s| s.end - s.payload)
        .expect("a component with a core module")
}

/// A copy of `bytes` with one bit flipped.
pub fn flip_bit(bytes: &[u8], offset: usize, bit: u8) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[offset] ^= 1 << (bit % 8);
    out
}

/// The manifest embedded in a packed file.
pub fn embedded_manifest(bytes: &[u8]) -> Value {
    let s = custom_section(bytes, "trademl-manifest");
    serde_json::from_slice(&bytes[s.data..s.end]).expect("the embedded manifest is JSON")
}
