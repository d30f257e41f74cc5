//! The command line: keygen, pack, sign, verify, inspect, publish.

use serde_json::{Value, json};

use crate::support::*;

#[test]
fn keygen_makes_distinct_key_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let a = keygen(dir.path(), "alice");
    let b = keygen(dir.path(), "bob");
    assert_ne!(
        std::fs::read(&a.public).unwrap(),
        std::fs::read(&b.public).unwrap()
    );
    assert_ne!(
        std::fs::read(&a.key).unwrap(),
        std::fs::read(&b.key).unwrap()
    );
    // The private key is not the public key.
    assert_ne!(
        std::fs::read(&a.key).unwrap(),
        std::fs::read(&a.public).unwrap()
    );
    // A file signed by alice verifies against a store that trusts alice, and
    // not against one that trusts only bob.
    let f = fixtures();
    let file = dir.path().join("scale.wasm");
    std::fs::copy(&f.scale_v1_unsigned, &file).unwrap();
    trademl([
        "sign".as_ref(),
        file.as_os_str(),
        "--key".as_ref(),
        a.key.as_os_str(),
    ])
    .ok();
    let alice_trust = dir.path().join("trust-alice");
    let bob_trust = dir.path().join("trust-bob");
    std::fs::create_dir_all(&alice_trust).unwrap();
    std::fs::create_dir_all(&bob_trust).unwrap();
    std::fs::copy(&a.public, alice_trust.join("alice.pub")).unwrap();
    std::fs::copy(&b.public, bob_trust.join("bob.pub")).unwrap();
    verify(&file, &alice_trust).ok();
    verify(&file, &bob_trust)
        .refused()
        .says("not in the trust store");
}

#[test]
fn pack_embeds_the_manifest_and_inspect_shows_it() {
    let f = fixtures();
    let bytes = std::fs::read(&f.scale_v1).unwrap();
    let m = embedded_manifest(&bytes);
    assert_eq!(m["name"], "scale");
    assert_eq!(m["version"], "1.0.0");
    assert_eq!(m["memory_limit_mib"], 16);
    assert_eq!(m["inputs"][0]["name"], "x");

    let signed = trademl(["inspect".as_ref(), f.scale_v1.as_os_str()]).ok();
    for needle in [
        "scale",
        "1.0.0",
        "Multiplies x by a constant factor",
        "FP64",
    ] {
        assert!(
            signed.stdout.contains(needle),
            "inspect does not show {needle:?}:\n{}",
            signed.stdout
        );
    }
    let unsigned = trademl(["inspect".as_ref(), f.scale_v1_unsigned.as_os_str()]).ok();
    assert!(
        unsigned
            .stdout
            .contains("Multiplies x by a constant factor")
    );
    assert_ne!(
        signed.stdout, unsigned.stdout,
        "inspect shows no signature on the signed file"
    );
    let both = trademl(["inspect".as_ref(), f.scale_v1_by_both.as_os_str()]).ok();
    assert_ne!(
        both.stdout, signed.stdout,
        "inspect shows the same for one and two signatures"
    );
    trademl(["inspect", "/nonexistent/file.wasm"]).refused();
}

fn try_pack_scale(edit: impl FnOnce(&mut Value)) -> CliRun {
    let g = guests();
    let dir = tempfile::tempdir().unwrap();
    let mut manifest = scale_manifest(SCALE_V1.0, SCALE_V1.1);
    edit(&mut manifest);
    let out = dir.path().join("out.wasm");
    let run = try_pack(&g.scale_v1, &manifest, &out);
    if !run.success() {
        assert!(!out.exists(), "a failed pack left {} behind", out.display());
    }
    run
}

#[test]
fn pack_refuses_a_manifest_that_does_not_match_the_component() {
    try_pack_scale(|m| m["version"] = json!("1.0.1"))
        .refused()
        .says("version");
    try_pack_scale(|m| m["name"] = json!("scaler"))
        .refused()
        .says("name");
    try_pack_scale(|m| m["inputs"][0]["datatype"] = json!("FP32")).refused();
    try_pack_scale(|m| m["outputs"][0]["name"] = json!("z")).refused();
    try_pack_scale(|m| m["inputs"][0]["shape"] = json!([-1, 3])).refused();
    // The original manifest packs: the refusals were about the differences.
    try_pack_scale(|_| {}).ok();
}

#[test]
fn pack_refuses_examples_that_do_not_reproduce() {
    try_pack_scale(|m| m["examples"][0]["outputs"][0]["data"] = json!([5.0, 10.0, 2.5]))
        .refused()
        .says("example");
    // An example the model refuses as invalid input.
    try_pack_scale(|m| {
        m["examples"][0]["inputs"][0]["data"] = json!([-1.0, 2.0, 0.5]);
    })
    .refused();
}

#[test]
fn pack_refuses_what_is_not_a_component() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"this is not WebAssembly").unwrap();
    let out = dir.path().join("out.wasm");
    try_pack(&junk, &scale_manifest("1.0.0", 2.0), &out).refused();
    assert!(!out.exists());
    // A bare core module (not a component).
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    try_pack(&core, &scale_manifest("1.0.0", 2.0), &out).refused();
    assert!(!out.exists());
}

#[test]
fn pack_runs_examples_in_the_sandbox_so_a_hostile_example_fails() {
    // An infinite loop with an example: pack stops it and refuses, instead
    // of hanging (the CLI runner bounds the wait).
    let g = guests();
    let dir = tempfile::tempdir().unwrap();
    let mut manifest = spin_manifest();
    manifest["examples"] = json!([{
        "inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [1.0]}],
        "outputs": [{"name": "y", "datatype": "FP64", "shape": [1], "data": [1.0]}],
        "tolerance": 0.0
    }]);
    try_pack(&g.spin, &manifest, &dir.path().join("spin.wasm")).refused();
    let mut manifest = memory_bomb_manifest();
    manifest["examples"] = json!([{
        "inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [1.0]}],
        "outputs": [{"name": "y", "datatype": "FP64", "shape": [1], "data": [1.0]}],
        "tolerance": 0.0
    }]);
    try_pack(&g.memory_bomb, &manifest, &dir.path().join("bomb.wasm"))
        .refused()
        .says("memory");
}

#[test]
fn publish_to_a_server_that_is_not_there_fails() {
    // A port that was free a moment ago: nothing listens on it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let f = fixtures();
    trademl([
        "publish".as_ref(),
        f.scale_v1.as_os_str(),
        "--server".as_ref(),
        format!("http://127.0.0.1:{port}").as_ref(),
    ])
    .refused();
}

#[test]
fn promote_and_rollback_commands_report_refusals() {
    let f = fixtures();
    let repo = Repo::new();
    repo.add(&f.scale_v1, "scale", "1.0.0");
    let s = Server::start(repo.path());
    trademl(["promote", "scale", "9.9.9", "--server", s.url.as_str()]).refused();
    trademl(["rollback", "scale", "--server", s.url.as_str()]).refused();
    trademl(["promote", "nope", "1.0.0", "--server", s.url.as_str()]).refused();
    let out = trademl(["versions", "scale", "--server", s.url.as_str()]).ok();
    let v: Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("versions printed no JSON ({e}): {}", out.stdout));
    assert_eq!(v["name"], "scale", "{v}");
    assert_eq!(routed_versions(&v), vec!["1.0.0"], "{v}");
    let r = s.infer("scale", &scale_request(&[1.0])).expect(200).json();
    assert_eq!(r["model_version"], "1.0.0");
}
