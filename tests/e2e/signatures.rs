//! Only intact files signed by a trusted key run: tampered (single-bit flips
//! in the code, the manifest, the signature and the header), unsigned,
//! untrusted and malformed files are refused by `trademl verify`, by
//! `trademl serve` at start, and by HTTP publish.

use std::path::PathBuf;

use serde_json::json;

use crate::support::*;

/// What a refusal must say.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Reason {
    /// The signed content changed: "altered after signing".
    Altered,
    /// Refused, for whatever reason the host finds (broken framing or
    /// signature data may read as malformed, unsigned or untrusted).
    Any,
}

struct Variant {
    label: String,
    bytes: Vec<u8>,
    reason: Reason,
}

fn offsets_within(start: usize, end: usize) -> Vec<usize> {
    let len = end - start;
    assert!(len >= 4, "section too small to tamper with");
    vec![start, start + len / 3, start + len / 2, end - 1]
}

/// Single-bit flips of the signed scale 1.0.0 at several places.
fn tampered() -> Vec<Variant> {
    let original = std::fs::read(&fixtures().scale_v1).unwrap();
    let mut out = Vec::new();
    let mut add = |label: String, offset: usize, bit: u8, reason: Reason| {
        out.push(Variant {
            label: format!("{label}-at-{offset}-bit-{bit}"),
            bytes: flip_bit(&original, offset, bit),
            reason,
        });
    };

    // (a) The code: inside the largest core module's payload.
    let code = largest_core_module(&original);
    for (i, off) in offsets_within(code.payload, code.end)
        .into_iter()
        .enumerate()
    {
        add("code".into(), off, [0, 3, 5, 7][i], Reason::Altered);
    }
    // ... and in another core module, if the component has several.
    if let Some(other) = sections(&original)
        .into_iter()
        .filter(|s| s.id == 1 && s.start != code.start)
        .max_by_key(|s| s.end - s.payload)
    {
        add(
            "code2".into(),
            other.payload + (other.end - other.payload) / 2,
            1,
            Reason::Altered,
        );
    }
    // (b) The manifest: its JSON (first byte, middle, last byte) and its name.
    let manifest = custom_section(&original, "trademl-manifest");
    for (i, off) in offsets_within(manifest.data, manifest.end)
        .into_iter()
        .enumerate()
    {
        add("manifest".into(), off, [0, 1, 2, 6][i], Reason::Altered);
    }
    add(
        "manifest-name".into(),
        manifest.data - 3,
        0,
        Reason::Altered,
    );
    // (c) The signature section: its data (first byte, middle, last byte)
    // and its name.
    let signature = custom_section(&original, "signature");
    for (i, off) in offsets_within(signature.data, signature.end)
        .into_iter()
        .enumerate()
    {
        add("signature".into(), off, [0, 4, 2, 7][i], Reason::Any);
    }
    add("signature-name".into(), signature.data - 2, 0, Reason::Any);
    // (d) The header: magic, version, layer; and a section's framing.
    for (off, bit) in [(0, 0), (1, 1), (4, 0), (6, 0)] {
        add("header".into(), off, bit, Reason::Any);
    }
    add("framing".into(), code.start + 1, 6, Reason::Any);
    out
}

/// A signed scale 1.0.0 whose signature section is the one from 2.0.0: a
/// signature by a trusted key, over other content.
fn transplanted_signature() -> Vec<u8> {
    let f = fixtures();
    let v1 = std::fs::read(&f.scale_v1).unwrap();
    let v2 = std::fs::read(&f.scale_v2).unwrap();
    let s1 = custom_section(&v1, "signature");
    let s2 = custom_section(&v2, "signature");
    let mut out = v1[..s1.start].to_vec();
    out.extend_from_slice(&v2[s2.start..s2.end]);
    out.extend_from_slice(&v1[s1.end..]);
    assert_ne!(out, v1, "the two versions carry the same signature bytes");
    out
}

fn not_wasm() -> Vec<u8> {
    b"name: scale\nversion: 1.0.0\nThis is a model card, not a model.\n".to_vec()
}

#[test]
fn tampering_is_seen_by_the_parser_of_this_suite() {
    // The test data is what it claims to be: the flips land in the sections
    // named, and each variant differs from the original in exactly one bit.
    let original = std::fs::read(&fixtures().scale_v1).unwrap();
    let variants = tampered();
    assert!(variants.len() >= 15);
    for v in &variants {
        let diff: u32 = original
            .iter()
            .zip(&v.bytes)
            .map(|(a, b)| (a ^ b).count_ones())
            .sum();
        assert_eq!(diff, 1, "{}", v.label);
    }
    let names: Vec<_> = sections(&original)
        .into_iter()
        .filter_map(|s| s.name)
        .collect();
    assert!(names.iter().any(|n| n == "trademl-manifest"), "{names:?}");
    assert!(names.iter().any(|n| n == "signature"), "{names:?}");
    let manifest = embedded_manifest(&original);
    assert_eq!(manifest["name"], "scale");
    assert_eq!(manifest["version"], "1.0.0");
}

#[test]
fn verify_accepts_intact_files_signed_by_a_trusted_key() {
    let f = fixtures();
    let repo = Repo::new();
    for file in [&f.scale_v1, &f.scale_v2, &f.trap, &f.scale_v1_by_both] {
        verify(file, &repo.trust()).ok();
    }
}

#[test]
fn verify_refuses_every_tampered_file() {
    let repo = Repo::new();
    let dir = tempfile::tempdir().unwrap();
    for v in tampered() {
        let path = dir.path().join(format!("{}.wasm", v.label));
        std::fs::write(&path, &v.bytes).unwrap();
        let run = verify(&path, &repo.trust()).refused();
        if v.reason == Reason::Altered {
            run.says("altered after signing");
        }
    }
    let path = dir.path().join("transplanted.wasm");
    std::fs::write(&path, transplanted_signature()).unwrap();
    verify(&path, &repo.trust())
        .refused()
        .says("altered after signing");
}

#[test]
fn verify_refuses_unsigned_untrusted_and_malformed_files() {
    let f = fixtures();
    let repo = Repo::new();
    verify(&f.scale_v1_unsigned, &repo.trust())
        .refused()
        .says("not signed");
    verify(&f.scale_v1_by_stranger, &repo.trust())
        .refused()
        .says("not in the trust store");
    // Trusting the stranger too makes it pass: the refusal was about trust.
    std::fs::copy(&f.stranger.public, repo.trust().join("stranger.pub")).unwrap();
    verify(&f.scale_v1_by_stranger, &repo.trust()).ok();

    let repo = Repo::new();
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, not_wasm()).unwrap();
    verify(&junk, &repo.trust()).refused();
    let empty = dir.path().join("empty.wasm");
    std::fs::write(&empty, b"").unwrap();
    verify(&empty, &repo.trust()).refused();
    verify(&dir.path().join("missing.wasm"), &repo.trust()).refused();
}

#[test]
fn sign_out_leaves_the_input_unsigned() {
    let f = fixtures();
    let repo = Repo::new();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wasm");
    let output = dir.path().join("out.wasm");
    std::fs::copy(&f.scale_v1_unsigned, &input).unwrap();
    trademl([
        "sign".as_ref(),
        input.as_os_str(),
        "--key".as_ref(),
        f.publisher.key.as_os_str(),
        "--out".as_ref(),
        output.as_os_str(),
    ])
    .ok();
    assert_eq!(
        std::fs::read(&input).unwrap(),
        std::fs::read(&f.scale_v1_unsigned).unwrap(),
        "sign --out changed its input"
    );
    verify(&input, &repo.trust()).refused().says("not signed");
    verify(&output, &repo.trust()).ok();
}

/// Starts a server on a repository holding an intact scale 1.0.0 plus every
/// file of `bad` (each in its own model directory), and checks that each bad
/// file is refused with a log line naming it, and that the server serves the
/// intact model, and nothing else.
fn serve_refuses(bad: Vec<(String, Vec<u8>, Reason)>) {
    let f = fixtures();
    let repo = Repo::new();
    repo.add(&f.scale_v1, "scale", "1.0.0");
    let mut paths: Vec<(String, PathBuf, Reason)> = Vec::new();
    for (label, bytes, reason) in bad {
        let name = format!("bad-{label}");
        paths.push((name.clone(), repo.add_bytes(&bytes, &name, "1.0.0"), reason));
    }
    let s = Server::start(repo.path());
    let log = s.stderr();
    for (name, path, reason) in &paths {
        let path_text = path.display().to_string();
        let line = log
            .lines()
            .find(|l| l.contains(&path_text) && l.to_lowercase().contains("refused"))
            .unwrap_or_else(|| {
                panic!("no \"refused\" log line naming {path_text}; stderr:\n{log}")
            });
        if *reason == Reason::Altered {
            assert!(
                line.to_lowercase().contains("altered after signing"),
                "{name}: the refusal should say \"altered after signing\": {line}"
            );
        }
        s.get(&format!("/v2/models/{name}")).expect(404);
    }
    let m = s.get("/v2/models/scale").expect(200).json();
    assert_eq!(m["versions"], json!(["1.0.0"]), "{m}");
    let r = s.infer("scale", &scale_request(&[2.0])).expect(200).json();
    assert_eq!(output_f64(&r, "y"), vec![4.0]);
    assert_eq!(s.get("/v2/health/ready").expect(200).json()["ready"], true);
}

#[test]
fn serve_refuses_tampered_files_at_start() {
    let mut bad: Vec<_> = tampered()
        .into_iter()
        .map(|v| (v.label, v.bytes, v.reason))
        .collect();
    bad.push((
        "transplanted".into(),
        transplanted_signature(),
        Reason::Altered,
    ));
    serve_refuses(bad);
}

#[test]
fn serve_refuses_unsigned_untrusted_and_malformed_files_at_start() {
    let f = fixtures();
    let repo = Repo::new();
    let unsigned = repo.add(&f.scale_v1_unsigned, "scale", "1.0.0");
    let stranger = repo.add(&f.scale_v1_by_stranger, "stranger", "1.0.0");
    let junk = repo.add_bytes(&not_wasm(), "junk", "1.0.0");
    let empty = repo.add_bytes(b"", "empty", "1.0.0");
    repo.add(&f.trap, "trap", "1.0.0");
    let s = Server::start(repo.path());
    let log = s.stderr();
    for (path, reason) in [
        (&unsigned, Some("not signed")),
        (&stranger, Some("not in the trust store")),
        (&junk, None),
        (&empty, None),
    ] {
        let path_text = path.display().to_string();
        let line = log
            .lines()
            .find(|l| l.contains(&path_text) && l.to_lowercase().contains("refused"))
            .unwrap_or_else(|| {
                panic!("no \"refused\" log line naming {path_text}; stderr:\n{log}")
            });
        if let Some(reason) = reason {
            assert!(
                line.contains(reason),
                "the refusal of {path_text} should say {reason:?}: {line}"
            );
        }
    }
    for name in ["scale", "stranger", "junk", "empty"] {
        s.get(&format!("/v2/models/{name}")).expect(404);
    }
    // The one good model is served.
    let r = s
        .infer(
            "trap",
            &json!({"inputs": [{"name": "mode", "datatype": "INT64", "shape": [1], "data": [9]}]}),
        )
        .expect(200)
        .json();
    assert_eq!(output(&r, "y").2, vec![json!(9)]);
}

#[test]
fn a_file_signed_by_an_untrusted_and_a_trusted_key_is_accepted() {
    let f = fixtures();
    let repo = Repo::new();
    repo.add(&f.scale_v1_by_both, "scale", "1.0.0");
    let s = Server::start(repo.path());
    let r = s.infer("scale", &scale_request(&[1.0])).expect(200).json();
    assert_eq!(output_f64(&r, "y"), vec![2.0]);

    let repo = Repo::new();
    let s = Server::start(repo.path());
    s.publish("scale", &std::fs::read(&f.scale_v1_by_both).unwrap())
        .expect(201);
    let r = s.infer("scale", &scale_request(&[1.0])).expect(200).json();
    assert_eq!(output_f64(&r, "y"), vec![2.0]);
}

#[test]
fn publish_refuses_tampered_unsigned_untrusted_and_malformed_files() {
    let f = fixtures();
    let repo = Repo::new();
    repo.add(&f.scale_v1, "scale", "1.0.0");
    let s = Server::start(repo.path());
    for v in tampered() {
        let reply = s.publish("scale", &v.bytes);
        assert!(
            reply.status == 403 || reply.status == 400,
            "{}: publishing a tampered file gave HTTP {}: {}",
            v.label,
            reply.status,
            reply.body
        );
        let message = reply.error();
        if v.reason == Reason::Altered {
            assert_eq!(reply.status, 403, "{}: {}", v.label, reply.body);
            assert!(
                message.contains("altered after signing"),
                "{}: {}",
                v.label,
                reply.body
            );
        }
    }
    s.publish("scale", &transplanted_signature())
        .expect_error(403, &["altered after signing"]);
    s.publish("scale", &std::fs::read(&f.scale_v1_unsigned).unwrap())
        .expect_error(403, &["not signed"]);
    s.publish("scale", &std::fs::read(&f.scale_v1_by_stranger).unwrap())
        .expect_error(403, &["not in the trust store"]);
    for body in [not_wasm(), Vec::new()] {
        let reply = s.publish("scale", &body);
        assert!(
            reply.status == 400 || reply.status == 403,
            "publishing {} bytes of junk gave HTTP {}: {}",
            body.len(),
            reply.status,
            reply.body
        );
        reply.error();
    }
    // Nothing of it reached the repository or the routing.
    let listing = s
        .get("/v2/repository/models/scale/versions")
        .expect(200)
        .json();
    let versions: Vec<_> = listing["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| v["version"].clone())
        .collect();
    assert_eq!(versions, vec![json!("1.0.0")], "{listing}");
    let files: Vec<_> = std::fs::read_dir(repo.path().join("scale"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wasm"))
        .collect();
    assert_eq!(files, vec!["1.0.0.wasm"]);
    let r = s.infer("scale", &scale_request(&[1.0])).expect(200).json();
    assert_eq!(output_f64(&r, "y"), vec![2.0]);
}

#[test]
fn cli_publish_of_a_tampered_file_fails() {
    let f = fixtures();
    let repo = Repo::new();
    let s = Server::start(repo.path());
    let dir = tempfile::tempdir().unwrap();
    let original = std::fs::read(&f.scale_v2).unwrap();
    let code = largest_core_module(&original);
    let path = dir.path().join("scale-2.0.0.wasm");
    std::fs::write(
        &path,
        flip_bit(&original, code.payload + (code.end - code.payload) / 2, 3),
    )
    .unwrap();
    trademl([
        "publish".as_ref(),
        path.as_os_str(),
        "--server".as_ref(),
        s.url.as_ref(),
    ])
    .refused()
    .says("altered after signing");
    s.get("/v2/models/scale").expect(404);
}
