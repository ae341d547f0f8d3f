//! `proto/` is the contract UIs are written against: it must say exactly
//! what the code implements. Regenerate after a deliberate change with
//! `UPDATE_PROTO=1 cargo test --test proto`, and review the diff.

use std::path::Path;

#[test]
fn openrpc_document_matches_the_code() {
    let generated = serde_json::to_string_pretty(&softphoned::control::openrpc_document()).unwrap() + "\n";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("proto/openrpc.json");
    if std::env::var_os("UPDATE_PROTO").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "proto/openrpc.json disagrees with the code; if the change is deliberate run \
         `UPDATE_PROTO=1 cargo test --test proto` and review the diff"
    );
}

#[test]
fn the_document_names_the_protocol_terms_we_promised() {
    let doc = softphoned::control::openrpc_document();
    let text = doc.to_string();
    for state in ["dialing", "ringing", "early_media", "incoming", "connected", "ended"] {
        assert!(text.contains(&format!("\"{state}\"")), "call state {state} missing from proto");
    }
    let names: Vec<&str> = doc["methods"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    let table: Vec<&str> = softphoned::control::api::Request::METHODS.iter().map(|m| m.name).collect();
    assert_eq!(names, table);
    let dial = doc["methods"].as_array().unwrap().iter().find(|m| m["name"] == "call.dial").unwrap();
    let param = |name: &str| dial["params"].as_array().unwrap().iter().find(|p| p["name"] == name).cloned();
    assert_eq!(param("to").unwrap()["required"], true);
    assert_eq!(param("account").unwrap()["required"], false);
    for state in ["registering", "registered", "failed", "unregistered", "not_ready", "auto_answer"] {
        assert!(text.contains(&format!("\"{state}\"")), "{state} missing from proto");
    }
}
