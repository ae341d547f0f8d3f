//! JSON-RPC 2.0 framing: one object per line in, responses and
//! notifications out, and the error codes a client can rely on.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The longest request line we read; longer ones are refused, not buffered.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// JSON-RPC error codes. The negative ones below -32000 are JSON-RPC's own;
/// the -320xx range is ours and stable.
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
    /// The call id names no live call.
    pub const UNKNOWN_CALL: i64 = -32000;
    /// The command does not apply in the call's current state.
    pub const INVALID_STATE: i64 = -32001;
    /// The daemon could not carry the command out (no RTP port, SIP send failure...).
    pub const UNAVAILABLE: i64 = -32002;
    /// The callback id names no open callback.
    pub const UNKNOWN_CALLBACK: i64 = -32003;
    /// This connection may not call that method (a browser origin limited
    /// to some methods, or the bridge's own pairing methods).
    pub const FORBIDDEN: i64 = -32004;
}

/// An error as sent to the client: a stable code and a human message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError { code, message: message.into(), data: None }
    }

    pub fn invalid_params(message: impl std::fmt::Display) -> Self {
        RpcError::new(code::INVALID_PARAMS, format!("invalid params: {message}"))
    }
}

/// A request line as read: its method and params not yet checked against
/// the protocol (that is [`crate::control::api::Request::parse`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestLine {
    /// `None` for a notification from the client: it gets no response.
    pub id: Option<Value>,
    pub method: String,
    pub params: Value,
}

#[derive(Deserialize)]
struct RawRequest {
    jsonrpc: Option<String>,
    #[serde(default)]
    id: Option<Value>,
    method: Option<Value>,
    #[serde(default)]
    params: Option<Value>,
}

/// Parse one request line. On error, also returns the id when it could be
/// read, so the error response can name the request it answers.
pub fn parse_request(line: &[u8]) -> Result<RequestLine, (Option<Value>, RpcError)> {
    let raw: RawRequest = match serde_json::from_slice::<Value>(line) {
        Err(e) => return Err((None, RpcError::new(code::PARSE_ERROR, format!("parse error: {e}")))),
        Ok(value @ Value::Object(_)) => serde_json::from_value(value)
            .map_err(|e| (None, RpcError::new(code::INVALID_REQUEST, format!("invalid request: {e}"))))?,
        Ok(_) => return Err((None, RpcError::new(code::INVALID_REQUEST, "invalid request: expected a JSON object"))),
    };
    let id = raw.id;
    if let Some(bad) = id.as_ref().filter(|v| !(v.is_string() || v.is_number() || v.is_null())) {
        return Err((
            None,
            RpcError::new(code::INVALID_REQUEST, format!("invalid request: id must be a string or number, not {bad}")),
        ));
    }
    if raw.jsonrpc.as_deref() != Some("2.0") {
        return Err((id, RpcError::new(code::INVALID_REQUEST, "invalid request: \"jsonrpc\" must be \"2.0\"")));
    }
    let method = match raw.method {
        Some(Value::String(m)) => m,
        _ => return Err((id, RpcError::new(code::INVALID_REQUEST, "invalid request: \"method\" must be a string"))),
    };
    let params = match raw.params {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(p @ Value::Object(_)) => p,
        Some(_) => return Err((id, RpcError::invalid_params("params must be an object (by-name)"))),
    };
    Ok(RequestLine { id, method, params })
}

/// A response line (without the trailing newline).
pub fn response(id: Value, result: Result<Value, RpcError>) -> String {
    let body = match result {
        Ok(result) => serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err(error) => serde_json::json!({"jsonrpc": "2.0", "id": id, "error": error}),
    };
    body.to_string()
}

/// A notification line (without the trailing newline).
pub fn notification(method: &str, params: &Value) -> String {
    serde_json::json!({"jsonrpc": "2.0", "method": method, "params": params}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_requests_and_names_errors() {
        let r = parse_request(br#"{"jsonrpc":"2.0","id":7,"method":"call.dial","params":{"to":"sip:a@b"}}"#).unwrap();
        assert_eq!((r.id, r.method.as_str(), r.params), (Some(json!(7)), "call.dial", json!({"to": "sip:a@b"})));
        let no_params = parse_request(br#"{"jsonrpc":"2.0","id":"x","method":"call.list"}"#).unwrap();
        assert_eq!(no_params.params, json!({}));

        assert_eq!(parse_request(b"{nope").unwrap_err().1.code, code::PARSE_ERROR);
        assert_eq!(parse_request(b"[1,2]").unwrap_err().1.code, code::INVALID_REQUEST);
        let (id, e) = parse_request(br#"{"jsonrpc":"1.0","id":3,"method":"x"}"#).unwrap_err();
        assert_eq!((id, e.code), (Some(json!(3)), code::INVALID_REQUEST));
        let (_, e) = parse_request(br#"{"jsonrpc":"2.0","id":3,"method":"x","params":[1]}"#).unwrap_err();
        assert_eq!(e.code, code::INVALID_PARAMS);
        let (_, e) = parse_request(br#"{"jsonrpc":"2.0","id":{},"method":"x"}"#).unwrap_err();
        assert_eq!(e.code, code::INVALID_REQUEST);
    }

    #[test]
    fn responses_are_single_line_json_rpc() {
        let ok = response(json!(1), Ok(json!({"call": "c1"})));
        assert_eq!(ok, r#"{"id":1,"jsonrpc":"2.0","result":{"call":"c1"}}"#);
        let err = response(json!(2), Err(RpcError::new(code::UNKNOWN_CALL, "no such call: c9")));
        assert!(!err.contains('\n'));
        assert_eq!(serde_json::from_str::<Value>(&err).unwrap()["error"]["code"], json!(-32000));
    }
}
