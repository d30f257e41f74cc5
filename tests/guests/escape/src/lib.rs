//! A hostile test model: `predict` tries to reach outside its sandbox.
//!
//! It tries to read each file named in its input `paths`, to list `/` and the
//! current directory, to create a file in the current directory, to read the
//! environment, to open a TCP connection to 127.0.0.1:`port` and to send a UDP
//! datagram there. It answers, for every attempt, a line saying what happened
//! (`report`) and whether the attempt got through (`leaked`), so that a test
//! can assert that it got nothing.

// Only the wasm32 build exports the model; a native build (cargo test --workspace) leaves it unused.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};

use trademl_sdk::{Datatype, Error, Model, ModelMetadata, Tensor, TensorData, TensorSpec};

struct Escape;

fn spec(name: &str, datatype: Datatype, description: &str) -> TensorSpec {
    TensorSpec {
        name: name.to_string(),
        datatype,
        shape: vec![-1],
        description: description.to_string(),
    }
}

impl Model for Escape {
    fn metadata() -> ModelMetadata {
        ModelMetadata {
            name: "escape".to_string(),
            version: "1.0.0".to_string(),
            description: "Tries to read files, the environment and the network (a hostile trademl test model)."
                .to_string(),
            inputs: vec![
                spec("paths", Datatype::Bytes, "Files to try to read."),
                spec("port", Datatype::Int64, "A port on 127.0.0.1 to try to connect to."),
            ],
            outputs: vec![
                spec("report", Datatype::Bytes, "What each attempt gave."),
                spec("leaked", Datatype::Boolean, "Whether each attempt got through."),
            ],
        }
    }

    fn predict(inputs: Vec<Tensor>) -> Result<Vec<Tensor>, Error> {
        let mut paths = Vec::new();
        let mut port = 0u16;
        for t in &inputs {
            match (t.name.as_str(), &t.data) {
                ("paths", TensorData::Bytes(p)) => {
                    paths = p
                        .iter()
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                        .collect()
                }
                ("port", TensorData::Int64(p)) if !p.is_empty() => port = p[0] as u16,
                _ => return Err(Error::InvalidInput(format!("unexpected input {}", t.name))),
            }
        }
        let mut attempts: Vec<(String, bool)> = Vec::new();
        for path in &paths {
            attempts.push(match std::fs::read(path) {
                Ok(content) => (
                    format!(
                        "read {path}: got {} bytes: {}",
                        content.len(),
                        String::from_utf8_lossy(&content[..content.len().min(200)])
                    ),
                    true,
                ),
                Err(e) => (format!("read {path}: {e}"), false),
            });
            attempts.push(match std::fs::File::open(path) {
                Ok(mut f) => {
                    let mut s = String::new();
                    let _ = f.read_to_string(&mut s);
                    (format!("open {path}: opened: {s}"), true)
                }
                Err(e) => (format!("open {path}: {e}"), false),
            });
        }
        for dir in ["/", ".", "/etc", "/tmp"] {
            attempts.push(match std::fs::read_dir(dir) {
                Ok(entries) => {
                    let names: Vec<String> = entries
                        .filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect();
                    (format!("list {dir}: {}", names.join(",")), true)
                }
                Err(e) => (format!("list {dir}: {e}"), false),
            });
        }
        attempts.push(match std::fs::File::create("trademl-escape-was-here") {
            Ok(mut f) => {
                let _ = f.write_all(b"escaped");
                (
                    "create ./trademl-escape-was-here: created".to_string(),
                    true,
                )
            }
            Err(e) => (format!("create ./trademl-escape-was-here: {e}"), false),
        });
        let vars: Vec<String> = std::env::vars_os()
            .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
            .collect();
        attempts.push((
            format!("env: {} variables: {}", vars.len(), vars.join(" ")),
            !vars.is_empty(),
        ));
        attempts.push(match std::env::current_dir() {
            Ok(d) if d.as_os_str().len() > 1 => (format!("cwd: {}", d.display()), true),
            Ok(d) => (format!("cwd: {}", d.display()), false),
            Err(e) => (format!("cwd: {e}"), false),
        });
        attempts.push(match TcpStream::connect(("127.0.0.1", port)) {
            Ok(mut s) => {
                let _ = s.write_all(b"escaped");
                (format!("tcp 127.0.0.1:{port}: connected"), true)
            }
            Err(e) => (format!("tcp 127.0.0.1:{port}: {e}"), false),
        });
        attempts.push(match UdpSocket::bind(("127.0.0.1", 0)) {
            Ok(s) => match s.send_to(b"escaped", ("127.0.0.1", port)) {
                Ok(n) => (format!("udp 127.0.0.1:{port}: sent {n} bytes"), true),
                Err(e) => (
                    format!("udp 127.0.0.1:{port}: bound, send failed: {e}"),
                    true,
                ),
            },
            Err(e) => (format!("udp bind: {e}"), false),
        });
        let n = attempts.len() as u64;
        let (report, leaked): (Vec<Vec<u8>>, Vec<bool>) = attempts
            .into_iter()
            .map(|(line, leaked)| (line.into_bytes(), leaked))
            .unzip();
        Ok(vec![
            Tensor {
                name: "report".to_string(),
                shape: vec![n],
                data: TensorData::Bytes(report),
            },
            Tensor {
                name: "leaked".to_string(),
                shape: vec![n],
                data: TensorData::Boolean(leaked),
            },
        ])
    }
}

trademl_sdk::export_model!(Escape);
