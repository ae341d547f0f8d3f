//! The control protocol: JSON-RPC framing, the method and event types that
//! `proto/` documents, and the Unix socket server.

pub mod api;
pub mod bridge;
pub mod client;
mod openrpc;
pub mod rpc;
pub mod server;
pub mod session;

pub use openrpc::openrpc_document;
