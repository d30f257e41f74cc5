//! Hostile components, built by this suite and signed by a trusted key: an
//! infinite loop, a memory bomb, traps of several kinds, and one that tries
//! to read files, the environment and the network. Each fails its own request
//! (or gets nothing); the server and every other model keep serving.

use std::io::{ErrorKind, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::thread;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

fn repo_with_hostiles() -> Repo {
    let f = fixtures();
    let repo = Repo::new();
    repo.add(&f.scale_v1, "scale", "1.0.0");
    repo.add(&f.spin, "spin", "1.0.0");
    repo.add(&f.memory_bomb, "memory-bomb", "1.0.0");
    repo.add(&f.trap, "trap", "1.0.0");
    repo.add(&f.escape, "escape", "1.0.0");
    repo
}

fn start(repo: &Repo) -> Server {
    Server::start_with(
        repo.path(),
        ServeOptions {
            deadline_ms: Some(250),
            ..ServeOptions::default()
        },
    )
}

/// A server with a deadline and a configuration file that says `config`;
/// the file's directory lives as long as the server is used.
fn start_configured(repo: &Repo, deadline_ms: u64, config: &str) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trademl.toml");
    std::fs::write(&path, config).unwrap();
    let server = Server::start_with(
        repo.path(),
        ServeOptions {
            deadline_ms: Some(deadline_ms),
            config: Some(path),
            ..ServeOptions::default()
        },
    );
    (dir, server)
}

fn x_request() -> Value {
    scale_request(&[1.0, 2.0])
}

fn trap_request(mode: i64) -> Value {
    json!({"inputs": [{"name": "mode", "datatype": "INT64", "shape": [1], "data": [mode]}]})
}

/// A well-behaved request to scale, and one to `model` itself, both answered.
fn still_serving(s: &Server) {
    let r = s.infer("scale", &scale_request(&[21.0])).expect(200).json();
    assert_eq!(output_f64(&r, "y"), vec![42.0]);
    let r = s.infer("trap", &trap_request(7)).expect(200).json();
    assert_eq!(output(&r, "y").2, vec![json!(7)]);
    assert_eq!(s.get("/v2/health/live").expect(200).json()["live"], true);
}

fn mentions_deadline(message: &str) -> bool {
    let m = message.to_lowercase();
    m.contains("deadline") || m.contains("time")
}

#[test]
fn an_infinite_loop_hits_the_deadline() {
    let repo = repo_with_hostiles();
    let mut s = start(&repo);
    for _ in 0..2 {
        let reply = s.infer("spin", &x_request()).expect(500);
        assert!(mentions_deadline(&reply.error()), "{}", reply.body);
        still_serving(&s);
    }
    // Several at once, while good requests go on.
    let server = &s;
    thread::scope(|scope| {
        let spins: Vec<_> = (0..3)
            .map(|_| scope.spawn(move || server.infer("spin", &x_request())))
            .collect();
        for _ in 0..5 {
            still_serving(server);
        }
        for h in spins {
            let reply = h.join().unwrap().expect(500);
            assert!(mentions_deadline(&reply.error()), "{}", reply.body);
        }
    });
    still_serving(&s);
    assert!(s.is_running());
}

#[test]
fn an_infinite_loop_is_stopped_by_the_default_deadline_too() {
    // No --deadline-ms: the default deadline ends it (within the client's
    // bounded timeout).
    let repo = repo_with_hostiles();
    let s = Server::start(repo.path());
    let reply = s.infer("spin", &x_request()).expect(500);
    assert!(mentions_deadline(&reply.error()), "{}", reply.body);
    still_serving(&s);
}

/// A client that hangs up while its call runs does not give the call's place
/// to the next request: the call runs on to its end (here, the deadline), and
/// counts against `max_instances` until then. With one call allowed at a
/// time, the next request is answered only after the abandoned call ended,
/// which the server logs before it lets the place go.
#[test]
fn a_client_that_hangs_up_mid_call_keeps_its_place_until_the_call_ends() {
    let repo = repo_with_hostiles();
    // A deadline long enough that the call is surely running when the
    // client hangs up, a second after sending, on a loaded machine too.
    let (_config, mut s) = start_configured(&repo, 3000, "max_instances = 1\n");
    let gone = |l: &str| l.contains("spin 1.0.0: the client went away before the answer");

    // The spin request, sent whole over a socket of our own; its answer is
    // never read. The call starts, then the client hangs up.
    let addr = s.url.trim_start_matches("http://").to_string();
    let body = x_request().to_string();
    let mut client = TcpStream::connect(&addr).unwrap();
    write!(
        client,
        "POST /v2/models/spin/infer HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    thread::sleep(Duration::from_millis(1000));
    client.shutdown(Shutdown::Both).unwrap();
    drop(client);

    // The only place is still the spin call's: this request waits for it.
    let r = s.infer("scale", &scale_request(&[21.0])).expect(200).json();
    assert_eq!(output_f64(&r, "y"), vec![42.0]);
    let log = s.stderr();
    let line = log.lines().find(|l| gone(l)).unwrap_or_else(|| {
        panic!(
            "scale was answered while the abandoned spin call still held the only place \
             (or that call never ran); stderr:\n{log}"
        )
    });
    assert!(mentions_deadline(line), "{line}");
    still_serving(&s);
    assert!(s.is_running());
}

#[test]
fn a_memory_bomb_hits_the_memory_cap() {
    let repo = repo_with_hostiles();
    let mut s = start(&repo);
    for _ in 0..3 {
        s.infer("memory-bomb", &x_request())
            .expect_error(500, &["memory"]);
        still_serving(&s);
    }
    assert!(s.is_running());
}

/// The same limits hold for Winch's code, which a large component serves
/// with until Cranelift's is ready: here every component keeps it.
#[test]
fn winch_code_hits_the_deadline_and_the_memory_cap_too() {
    let repo = repo_with_hostiles();
    let (_config, mut s) = start_configured(&repo, 250, "winch_above_kib = 0\ntier_up = false\n");
    for name in ["spin", "memory-bomb", "scale", "trap"] {
        let v = s
            .get(&format!("/v2/repository/models/{name}/versions"))
            .expect(200)
            .json();
        assert_eq!(v["versions"][0]["compiler"], "winch", "{name}: {v}");
    }
    let reply = s.infer("spin", &x_request()).expect(500);
    assert!(mentions_deadline(&reply.error()), "{}", reply.body);
    s.infer("memory-bomb", &x_request())
        .expect_error(500, &["memory"]);
    s.infer("trap", &trap_request(1)).expect(500);
    still_serving(&s);
    assert!(s.is_running());
}

/// A call the server expects to be short runs on the thread that received
/// its request, under a deadline of its own (10 ms). One that runs past it
/// there was misjudged: it is stopped, run again on a blocking thread under
/// the model's whole deadline, and the server says so in its log.
#[test]
fn a_call_misjudged_as_short_runs_again_under_the_whole_deadline() {
    let repo = repo_with_hostiles();
    // The longest allowed: a test build's calls are slower than a release's.
    let (_config, mut s) = start_configured(&repo, 250, "inline_below_us = 1000\n");
    // Quick calls, from which the server learns that trap's calls are short.
    for _ in 0..20 {
        let r = s.infer("trap", &trap_request(7)).expect(200).json();
        assert_eq!(output(&r, "y").2, vec![json!(7)]);
    }
    let reply = s.infer("trap", &trap_request(5)).expect(500);
    // The whole deadline stopped it, not the short one.
    assert!(
        reply.error().contains("deadline of 250 ms"),
        "{}",
        reply.body
    );
    let log = s.stderr();
    assert!(
        log.contains(
            "trap 1.0.0: a call ran past the 10 ms allowed on an I/O thread; running it again on a blocking thread"
        ),
        "the looping call was not run on the receiving thread first, or not run again; stderr:\n{log}"
    );
    still_serving(&s);
    assert!(s.is_running());
}

#[test]
fn traps_fail_one_request_each() {
    let repo = repo_with_hostiles();
    let mut s = start(&repo);
    for mode in [0, 1, 2, 3, 0] {
        let reply = s.infer("trap", &trap_request(mode)).expect(500);
        reply.error();
        still_serving(&s);
    }
    // A typed model failure: 500 with the model's own message.
    s.infer("trap", &trap_request(4))
        .expect_error(500, &["fails on purpose"]);
    still_serving(&s);
    assert!(s.is_running());
}

#[test]
fn hostile_requests_interleaved_with_good_ones() {
    let repo = repo_with_hostiles();
    let mut s = start(&repo);
    thread::scope(|scope| {
        let bad = scope.spawn(|| {
            for i in 0..4 {
                s.infer("trap", &trap_request(i % 4)).expect(500);
                s.infer("memory-bomb", &x_request()).expect(500);
                s.infer("spin", &x_request()).expect(500);
            }
        });
        let good = scope.spawn(|| {
            for i in 0..40 {
                let x = f64::from(i);
                let r = s.infer("scale", &scale_request(&[x])).expect(200).json();
                assert_eq!(output_f64(&r, "y"), vec![2.0 * x]);
            }
        });
        bad.join().unwrap();
        good.join().unwrap();
    });
    still_serving(&s);
    assert!(s.is_running());
}

#[test]
fn a_component_cannot_reach_files_environment_or_network() {
    let repo = repo_with_hostiles();
    let secret = format!("TOP-SECRET-{}", std::process::id());
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(cwd.path().join("secret.txt"), &secret).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let udp = UdpSocket::bind(("127.0.0.1", port)).unwrap();
    udp.set_nonblocking(true).unwrap();

    let s = Server::start_with(
        repo.path(),
        ServeOptions {
            deadline_ms: Some(2000),
            cwd: Some(cwd.path().to_path_buf()),
            env: vec![("TRADEML_E2E_SECRET".into(), secret.clone())],
            ..ServeOptions::default()
        },
    );
    let paths = [
        "/etc/passwd".to_string(),
        "/etc/hostname".to_string(),
        "secret.txt".to_string(),
        "./secret.txt".to_string(),
        cwd.path().join("secret.txt").display().to_string(),
        repo.path()
            .join("trust/publisher.pub")
            .display()
            .to_string(),
        "/proc/self/environ".to_string(),
    ];
    let request = json!({"inputs": [
        {"name": "paths", "datatype": "BYTES", "shape": [paths.len()], "data": paths},
        {"name": "port", "datatype": "INT64", "shape": [1], "data": [port]}
    ]});
    let r = s.infer("escape", &request).expect(200).json();
    let (_, _, report) = output(&r, "report");
    let report: Vec<String> = report
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string())
        })
        .collect();
    let (_, _, leaked) = output(&r, "leaked");
    // Every attempt ran: two per path, four listings, a create, env, cwd,
    // TCP and UDP.
    assert_eq!(report.len(), paths.len() * 2 + 9, "{report:#?}");
    assert_eq!(leaked.len(), report.len(), "{r}");
    for (line, leak) in report.iter().zip(&leaked) {
        assert_eq!(leak, &json!(false), "the component got through: {line}");
    }
    let all = report.join("\n");
    eprintln!("what the escape component got:\n{all}");
    assert!(!all.contains(&secret), "the secret leaked: {all}");
    assert!(!all.contains("root:"), "/etc/passwd leaked: {all}");
    assert!(
        !all.contains("TRADEML_E2E_SECRET"),
        "the environment leaked: {all}"
    );
    assert!(
        !cwd.path().join("trademl-escape-was-here").exists(),
        "the component created a file in the server's directory"
    );
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Ok((_, peer)) => panic!("the component opened a TCP connection from {peer}"),
        Err(e) => panic!("accept: {e}"),
    }
    let mut buf = [0u8; 64];
    match udp.recv_from(&mut buf) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Ok((n, peer)) => panic!("the component sent a {n}-byte datagram from {peer}"),
        Err(e) => panic!("recv_from: {e}"),
    }
    // And it is an ordinary model otherwise: the server goes on.
    let r = s.infer("scale", &scale_request(&[1.0])).expect(200).json();
    assert_eq!(output_f64(&r, "y"), vec![2.0]);
}
