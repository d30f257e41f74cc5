//! The Open Inference Protocol v2 REST API, over real HTTP on loopback.

use serde_json::json;

use crate::support::*;

/// A server with scale 1.0.0, the trap model and the (two-input) escape model.
fn server() -> (Repo, Server) {
    let f = fixtures();
    let repo = Repo::new();
    repo.add(&f.scale_v1, "scale", "1.0.0");
    repo.add(&f.trap, "trap", "1.0.0");
    repo.add(&f.escape, "escape", "1.0.0");
    let server = Server::start(repo.path());
    (repo, server)
}

#[test]
fn health_and_server_metadata() {
    let (_repo, s) = server();
    assert_eq!(s.get("/v2/health/live").expect(200).json()["live"], true);
    assert_eq!(s.get("/v2/health/ready").expect(200).json()["ready"], true);
    let meta = s.get("/v2").expect(200).json();
    assert_eq!(meta["name"], "trademl", "{meta}");
    assert!(
        meta["version"].as_str().is_some_and(|v| !v.is_empty()),
        "{meta}"
    );
    assert!(meta["extensions"].is_array(), "{meta}");
}

#[test]
fn model_metadata_and_readiness() {
    let (_repo, s) = server();
    for path in ["/v2/models/scale", "/v2/models/scale/versions/1.0.0"] {
        let m = s.get(path).expect(200).json();
        assert_eq!(m["name"], "scale", "{path}: {m}");
        assert_eq!(m["platform"], "trademl-wasm", "{path}: {m}");
        let versions = m["versions"].as_array().expect("versions");
        assert!(versions.iter().any(|v| v == "1.0.0"), "{path}: {m}");
        assert_eq!(
            m["inputs"],
            json!([{"name": "x", "datatype": "FP64", "shape": [-1]}]),
            "{path}: {m}"
        );
        assert_eq!(
            m["outputs"],
            json!([{"name": "y", "datatype": "FP64", "shape": [-1]}]),
            "{path}: {m}"
        );
    }
    for path in [
        "/v2/models/scale/ready",
        "/v2/models/scale/versions/1.0.0/ready",
    ] {
        let r = s.get(path).expect(200).json();
        assert_eq!(r["name"], "scale", "{path}: {r}");
        assert_eq!(r["ready"], true, "{path}: {r}");
    }
    let t = s.get("/v2/models/trap").expect(200).json();
    assert_eq!(
        t["inputs"],
        json!([{"name": "mode", "datatype": "INT64", "shape": [1]}])
    );
    s.get("/v2/models/nope").expect_error(404, &["nope"]);
    s.get("/v2/models/nope/ready").expect(404);
    s.get("/v2/models/scale/versions/9.9.9")
        .expect_error(404, &["9.9.9"]);
    s.get("/v2/models/scale/versions/9.9.9/ready").expect(404);
}

#[test]
fn infer_computes_the_model_answer() {
    let (_repo, s) = server();
    let mut req = scale_request(&[1.0, 2.5, 0.0, 10.0]);
    req["id"] = json!("request-42");
    let r = s.infer("scale", &req).expect(200).json();
    assert_eq!(r["model_name"], "scale", "{r}");
    assert_eq!(r["model_version"], "1.0.0", "{r}");
    assert_eq!(r["id"], "request-42", "{r}");
    let (datatype, shape, _) = output(&r, "y");
    assert_eq!(datatype, "FP64");
    assert_eq!(shape, vec![4]);
    assert_eq!(output_f64(&r, "y"), vec![2.0, 5.0, 0.0, 20.0]);

    // The versioned path, and the outputs filter.
    let mut req = scale_request(&[3.0]);
    req["outputs"] = json!([{"name": "y"}]);
    let r = s
        .post_json("/v2/models/scale/versions/1.0.0/infer", &req)
        .expect(200)
        .json();
    assert_eq!(r["model_version"], "1.0.0");
    assert_eq!(output_f64(&r, "y"), vec![6.0]);

    // A batch of 1000 rows.
    let x: Vec<f64> = (0..1000).map(f64::from).collect();
    let r = s.infer("scale", &scale_request(&x)).expect(200).json();
    let y = output_f64(&r, "y");
    assert_eq!(y.len(), 1000);
    for (xi, yi) in x.iter().zip(&y) {
        assert_eq!(*yi, xi * 2.0);
    }

    // An INT64 model.
    let r = s
        .infer(
            "trap",
            &json!({"inputs": [{"name": "mode", "datatype": "INT64", "shape": [1], "data": [77]}]}),
        )
        .expect(200)
        .json();
    assert_eq!(output(&r, "y").2, vec![json!(77)]);
}

#[test]
fn bad_requests_are_400_and_say_what_is_wrong() {
    let (_repo, s) = server();
    let infer = "/v2/models/scale/infer";
    // Malformed JSON.
    s.post_raw(infer, "application/json", b"{\"inputs\": [")
        .expect(400)
        .error();
    s.post_raw(infer, "application/json", b"not json at all")
        .expect(400)
        .error();
    // JSON, but not an infer request.
    s.post_json(infer, &json!({"inputs": "x"}))
        .expect(400)
        .error();
    // No inputs at all.
    s.infer("scale", &json!({"inputs": []})).expect(400).error();
    // One of two inputs missing: the message names it.
    s.infer(
        "escape",
        &json!({"inputs": [{"name": "paths", "datatype": "BYTES", "shape": [1], "data": ["a"]}]}),
    )
    .expect_error(400, &["port"]);
    // An input the model does not have.
    s.infer(
        "scale",
        &json!({"inputs": [
            {"name": "x", "datatype": "FP64", "shape": [1], "data": [1.0]},
            {"name": "bogus_input", "datatype": "FP64", "shape": [1], "data": [1.0]}
        ]}),
    )
    .expect_error(400, &["bogus_input"]);
    // Wrong datatype.
    s.infer(
        "scale",
        &json!({"inputs": [{"name": "x", "datatype": "INT64", "shape": [2], "data": [1, 2]}]}),
    )
    .expect_error(400, &["x"]);
    // Data that does not match the datatype.
    s.infer(
        "scale",
        &json!({"inputs": [{"name": "x", "datatype": "FP64", "shape": [2], "data": ["a", "b"]}]}),
    )
    .expect(400)
    .error();
    // Shape and element count disagree.
    s.infer(
        "scale",
        &json!({"inputs": [{"name": "x", "datatype": "FP64", "shape": [3], "data": [1.0, 2.0]}]}),
    )
    .expect_error(400, &["x"]);
    // A shape of the wrong rank for [-1].
    s.infer(
        "scale",
        &json!({"inputs": [{"name": "x", "datatype": "FP64", "shape": [2, 2], "data": [1.0, 2.0, 3.0, 4.0]}]}),
    )
    .expect_error(400, &["x"]);
    // A shape of the wrong size for [1].
    s.infer(
        "trap",
        &json!({"inputs": [{"name": "mode", "datatype": "INT64", "shape": [2], "data": [7, 7]}]}),
    )
    .expect_error(400, &["mode"]);
    // The model's own InvalidInput, message passed through.
    s.infer("scale", &scale_request(&[1.0, -5.0]))
        .expect_error(400, &["negative"]);
    // And it still answers.
    let r = s.infer("scale", &scale_request(&[4.0])).expect(200).json();
    assert_eq!(output_f64(&r, "y"), vec![8.0]);
}

#[test]
fn unknown_models_and_versions_are_404() {
    let (_repo, s) = server();
    s.infer("no-such-model", &scale_request(&[1.0]))
        .expect_error(404, &["no-such-model"]);
    s.post_json(
        "/v2/models/scale/versions/7.7.7/infer",
        &scale_request(&[1.0]),
    )
    .expect_error(404, &["7.7.7"]);
}

#[test]
fn a_model_failure_is_500_and_the_server_keeps_serving() {
    let (_repo, s) = server();
    s.infer("scale", &scale_request(&[1e12]))
        .expect_error(500, &["overflow"]);
    let r = s.infer("scale", &scale_request(&[1.5])).expect(200).json();
    assert_eq!(output_f64(&r, "y"), vec![3.0]);
}

#[test]
fn publishing_a_new_model_routes_it_at_once() {
    let f = fixtures();
    let repo = Repo::new();
    repo.add(&f.trap, "trap", "1.0.0");
    let s = Server::start(repo.path());
    s.get("/v2/models/scale").expect(404);
    let r = s
        .publish("scale", &std::fs::read(&f.scale_v1).unwrap())
        .expect(201)
        .json();
    assert_eq!(r["name"], "scale", "{r}");
    assert_eq!(r["version"], "1.0.0", "{r}");
    let digest = r["digest"].clone();
    assert!(
        digest.as_str().is_some_and(|d| d.len() >= 32),
        "no digest in {r}"
    );
    let r = s.infer("scale", &scale_request(&[5.0])).expect(200).json();
    assert_eq!(r["model_version"], "1.0.0");
    assert_eq!(output_f64(&r, "y"), vec![10.0]);
    // Written into the repository, so a restart serves it too.
    assert!(repo.path().join("scale").join("1.0.0.wasm").is_file());
    let versions = s
        .get("/v2/repository/models/scale/versions")
        .expect(200)
        .json();
    assert_eq!(versions["name"], "scale", "{versions}");
    let listed = versions["versions"].as_array().expect("versions");
    assert_eq!(listed.len(), 1, "{versions}");
    assert_eq!(listed[0]["version"], "1.0.0", "{versions}");
    assert_eq!(listed[0]["digest"], digest, "{versions}");
    assert_eq!(routed_versions(&versions), vec!["1.0.0"], "{versions}");
}

#[test]
fn publishing_conflicts_and_mismatches_are_refused() {
    let f = fixtures();
    let repo = Repo::new();
    repo.add(&f.scale_v1, "scale", "1.0.0");
    let s = Server::start(repo.path());
    // Same name and version, different content.
    s.publish("scale", &std::fs::read(&f.scale_v1_alt).unwrap())
        .expect_error(409, &["1.0.0"]);
    // A file whose manifest names another model than the URL.
    s.publish("trap", &std::fs::read(&f.scale_v1).unwrap())
        .expect(400)
        .error();
    s.get("/v2/models/trap").expect(404);
    // Rolling back a model that has no previous routing.
    s.post_empty("/v2/repository/models/scale/rollback")
        .expect(409)
        .error();
    // Promoting a version that does not exist.
    s.post_json(
        "/v2/repository/models/scale/promote",
        &json!({"version": "3.0.0"}),
    )
    .expect(404)
    .error();
    // The original is untouched.
    let r = s.infer("scale", &scale_request(&[1.0])).expect(200).json();
    assert_eq!(r["model_version"], "1.0.0");
    assert_eq!(output_f64(&r, "y"), vec![2.0]);
}

/// Sends `request` on `stream` and reads one HTTP/1.1 response: its status
/// and its body (by Content-Length). The head and the body go in separate
/// writes, a moment apart, as many clients send them (the server must not
/// depend on finding the body already buffered with the head).
fn exchange(stream: &mut std::net::TcpStream, request: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let (head, body) = request
        .split_once("\r\n\r\n")
        .expect("a request with a blank line");
    stream.write_all(format!("{head}\r\n\r\n").as_bytes())?;
    stream.flush()?;
    if !body.is_empty() {
        std::thread::sleep(std::time::Duration::from_millis(50));
        stream.write_all(body.as_bytes())?;
    }
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "connection closed after {:?}",
                    String::from_utf8_lossy(&buf)
                ),
            ));
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body)?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[test]
fn a_keep_alive_connection_survives_every_call() {
    // Clients (ureq, requests, KServe's) reuse connections: a server that
    // drops one after a call, without `Connection: close`, fails the next
    // request on it. Each call here carries a small JSON body, read by its
    // handler or not, then the same connection is used again.
    let f = fixtures();
    let repo = Repo::new();
    repo.add(&f.scale_v1, "scale", "1.0.0");
    let s = Server::start(repo.path());
    s.publish("scale", &std::fs::read(&f.scale_v2).unwrap())
        .expect(201);
    let addr = s.url.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let post = |path: &str, body: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let get = format!("GET /v2/health/live HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let infer = scale_request(&[1.0]).to_string();
    let calls = [
        post("/v2/models/scale/infer", &infer),
        post(
            "/v2/repository/models/scale/promote",
            r#"{"version": "2.0.0"}"#,
        ),
        post("/v2/repository/models/scale/rollback", "{}"),
        post("/v2/repository/models/scale/rollback", "{}"),
        post("/v2/models/nope/infer", &infer),
        get.clone(),
    ];
    for call in &calls {
        let first_line = call.lines().next().unwrap_or_default().to_string();
        let (status, body) =
            exchange(&mut stream, call).unwrap_or_else(|e| panic!("{first_line}: {e}"));
        assert!(status > 0, "{first_line}: no status: {body}");
        let (status, body) = exchange(&mut stream, &get).unwrap_or_else(|e| {
            panic!("the connection broke after {first_line} (HTTP {status}): {e}")
        });
        assert_eq!(status, 200, "after {first_line}: {body}");
    }
}

/// Every request gets an instance of its own, also now that instances are
/// made ahead of their request: scale fails a second prediction in one
/// instance (see its source), so a reused instance would answer 500 here.
/// Requests one after another take the instances made after the one
/// before; concurrent ones take them as they come, or make their own.
#[test]
fn every_request_gets_an_instance_of_its_own() {
    let (_repo, s) = server();
    for i in 0..100 {
        let r = s
            .infer("scale", &scale_request(&[i as f64]))
            .expect(200)
            .json();
        assert_eq!(
            output(&r, "y").2,
            vec![json!(2.0 * i as f64)],
            "request {i}: {r}"
        );
    }
    std::thread::scope(|scope| {
        for t in 0..4 {
            let s = &s;
            scope.spawn(move || {
                for i in 0..50 {
                    let x = (100 * t + i) as f64;
                    let r = s.infer("scale", &scale_request(&[x])).expect(200).json();
                    assert_eq!(output(&r, "y").2, vec![json!(2.0 * x)], "thread {t}: {r}");
                }
            });
        }
    });
}
