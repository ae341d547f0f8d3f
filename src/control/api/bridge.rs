//! The control API of the browser bridge: pairing a workspace's origin
//! (over the Unix socket only) and a page's first frame.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::control::bridge::pairings::Pairing;

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BridgePairParams {
    /// The page's origin, exactly as in `bridge.allowed_origins`.
    pub origin: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct BridgePairResult {
    pub id: String,
    pub origin: String,
    /// Shown this once: only its hash is kept.
    pub token: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct BridgeListResult {
    pub pairings: Vec<Pairing>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BridgeRevokeParams {
    pub id: String,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BridgeAuthParams {
    pub token: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct BridgeAuthResult {
    pub origin: String,
    /// The methods this origin is limited to; absent: all of them.
    pub methods: Option<Vec<String>>,
}
