//! One line from a control-socket client, as the dispatcher reads it:
//! `control::rpc::parse_request` (JSON-RPC 2.0 framing), then
//! `control::api::Request::parse` (the method's typed params), then the
//! response line it answers with. A call.dial or transfer target also goes
//! through `sip::parse_target`, which the daemon applies to it.
//!
//! Checked beyond "no panic": every response is one line of valid JSON.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use softphoned::control::api::Request;
use softphoned::control::rpc;

fn check_response(line: String) {
    assert!(!line.contains('\n'), "a response spans lines: {line:?}");
    if let Err(e) = serde_json::from_str::<Value>(&line) {
        panic!("response is not JSON ({e}): {line:?}");
    }
}

fuzz_target!(|line: &[u8]| {
    // The server reads up to '\n' and skips blank lines.
    let line = line.split(|b| *b == b'\n').next().unwrap_or_default();
    if line.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    let request = match rpc::parse_request(line) {
        Ok(request) => request,
        Err((id, error)) => return check_response(rpc::response(id.unwrap_or(Value::Null), Err(error))),
    };
    let id = request.id.unwrap_or(Value::Null);
    match Request::parse(&request.method, request.params) {
        Ok(parsed) => {
            let _ = parsed.method();
            let target = match &parsed {
                Request::CallDial(p) => Some(p.to.as_str()),
                Request::CallTransferBlind(p) => Some(p.to.as_str()),
                Request::CallTransferConsult(p) => Some(p.to.as_str()),
                _ => None,
            };
            if let Some(target) = target {
                let _ = softphoned::sip::parse_target(target);
            }
            check_response(rpc::response(id, Ok(Value::Object(Default::default()))));
        }
        Err(error) => check_response(rpc::response(id, Err(error))),
    }
});
