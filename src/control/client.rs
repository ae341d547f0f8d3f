//! A small async client of the control socket, used by `softphonectl`, the
//! demo and the tests: requests get their response by id, notifications
//! that arrive meanwhile are kept in order for [`Client::next_event`].

use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

use super::api;
use super::rpc::RpcError;

/// What can go wrong talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("control socket: {0}")]
    Io(#[from] std::io::Error),
    /// The daemon answered with a JSON-RPC error.
    #[error("error {}: {}", .0.code, .0.message)]
    Rpc(RpcError),
    #[error("the daemon closed the connection")]
    Closed,
    #[error("unexpected line from the daemon: {0}")]
    Protocol(String),
    #[error("no matching event within {0:?}")]
    Timeout(Duration),
}

pub struct Client {
    lines: Lines<BufReader<OwnedReadHalf>>,
    writer: OwnedWriteHalf,
    next_id: u64,
    events: VecDeque<Value>,
}

impl Client {
    pub async fn connect(path: &Path) -> Result<Client, ClientError> {
        let (read, writer) = UnixStream::connect(path).await?.into_split();
        Ok(Client { lines: BufReader::new(read).lines(), writer, next_id: 1, events: VecDeque::new() })
    }

    /// Call `method` and wait for its result.
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let line = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
        self.send_line(line.as_bytes()).await?;
        loop {
            let message = self.read_message().await?;
            if message.get("id") == Some(&json!(id)) {
                return response_result(message);
            }
            self.keep_event(message)?;
        }
    }

    /// Send raw bytes followed by a newline (for tests of bad input).
    pub async fn send_line(&mut self, line: &[u8]) -> Result<(), ClientError> {
        self.writer.write_all(line).await?;
        self.writer.write_all(b"\n").await?;
        Ok(())
    }

    /// The next line from the daemon, parsed, whatever it is.
    pub async fn read_message(&mut self) -> Result<Value, ClientError> {
        let line = self.lines.next_line().await?.ok_or(ClientError::Closed)?;
        serde_json::from_str(&line).map_err(|_| ClientError::Protocol(line))
    }

    /// The next notification (its whole JSON-RPC object).
    pub async fn next_event(&mut self) -> Result<Value, ClientError> {
        if let Some(event) = self.events.pop_front() {
            return Ok(event);
        }
        let message = self.read_message().await?;
        if message.get("id").is_some() {
            return Err(ClientError::Protocol(message.to_string()));
        }
        Ok(message)
    }

    /// Skip notifications until one satisfies `matches`, for at most `limit`.
    pub async fn wait_event(
        &mut self,
        limit: Duration,
        mut matches: impl FnMut(&Value) -> bool,
    ) -> Result<Value, ClientError> {
        let search = async {
            loop {
                let event = self.next_event().await?;
                if matches(&event) {
                    return Ok(event);
                }
            }
        };
        tokio::time::timeout(limit, search).await.map_err(|_| ClientError::Timeout(limit))?
    }

    fn keep_event(&mut self, message: Value) -> Result<(), ClientError> {
        if message.get("method").is_some() && message.get("id").is_none() {
            self.events.push_back(message);
            Ok(())
        } else {
            Err(ClientError::Protocol(message.to_string()))
        }
    }
}

fn response_result(mut message: Value) -> Result<Value, ClientError> {
    if let Some(error) = message.get_mut("error") {
        let error: RpcError = serde_json::from_value(error.take()).map_err(|e| ClientError::Protocol(e.to_string()))?;
        return Err(ClientError::Rpc(error));
    }
    message.get_mut("result").map(Value::take).ok_or_else(|| ClientError::Protocol(message.to_string()))
}

/// True when `event` is a `call.state` for `call` in `state`.
pub fn is_call_state(event: &Value, call: &str, state: &str) -> bool {
    event["method"] == api::event::CALL_STATE && event["params"]["call"] == call && event["params"]["state"] == state
}
