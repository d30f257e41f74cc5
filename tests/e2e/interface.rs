//! Components built against another contract are refused at load time, with
//! a message that says what the component exports and what the host speaks.

use serde_json::json;

use crate::support::*;

fn identity_manifest(name: &str) -> serde_json::Value {
    json!({
        "name": name,
        "version": "1.0.0",
        "description": "Returns x (built against trademl:model@0.2.0).",
        "interface": INTERFACE,
        "inputs": [tensor_spec("x", "FP64", &[-1], "any number")],
        "outputs": [tensor_spec("y", "FP64", &[-1], "any number")],
        "memory_limit_mib": 16,
    })
}

#[test]
fn a_component_built_against_another_interface_version_is_refused_naming_both() {
    let g = guests();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.wasm");
    try_pack(&g.other_version, &identity_manifest("other-version"), &out)
        .refused()
        .says("exports trademl:model/predict@0.2.0")
        .says("an interface version this host does not speak")
        .says("it speaks trademl:model/predict@0.1.0");
    assert!(!out.exists());
}

#[test]
fn a_component_without_the_model_export_is_refused_saying_what_it_exports() {
    let g = guests();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.wasm");
    try_pack(&g.no_predict, &identity_manifest("no-predict"), &out)
        .refused()
        .says("does not export trademl:model/predict@0.1.0")
        .says("it exports: greet")
        .says("build it against trademl-sdk");
    assert!(!out.exists());
}

#[test]
fn the_server_refuses_a_published_component_of_another_interface_version() {
    // Signed and published, not only packed: the server's own load refuses it.
    let f = fixtures();
    let g = guests();
    let dir = tempfile::tempdir().unwrap();
    // Pack cannot make this file (it checks the exports), so embed the
    // manifest and sign by hand, as a tool outside trademl might.
    let manifest = identity_manifest("other-version");
    let bytes = std::fs::read(&g.other_version).unwrap();
    let m: trademl_sdk::manifest::Manifest = serde_json::from_value(manifest).unwrap();
    let packed = trademl_sdk::manifest::embed_manifest(&bytes, &m).unwrap();
    let file = dir.path().join("other-version.wasm");
    std::fs::write(&file, packed).unwrap();
    trademl([
        "sign".as_ref(),
        file.as_os_str(),
        "--key".as_ref(),
        f.publisher.key.as_os_str(),
    ])
    .ok();
    let repo = Repo::new();
    let server = Server::start(repo.path());
    server
        .publish("other-version", &std::fs::read(&file).unwrap())
        .expect_error(
            400,
            &["trademl:model/predict@0.2.0", "trademl:model/predict@0.1.0"],
        );
}
