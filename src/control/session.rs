//! One control client's JSON-RPC session, whatever carries it (a line on
//! the Unix socket, a text frame on the browser bridge): a request in, its
//! answer out, through the same dispatcher; its own event subscription,
//! with the present (live calls and callbacks) first; and what it may ask
//! (the bridge narrows it).

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::api::{event, NoParams, Request, SubscribeParams, SubscribeResult, Topic};
use super::rpc::{self, code, RpcError};

/// A request handed to the run loop, parsed and checked, with where its
/// answer goes. Every method but `events.subscribe` (which the session
/// answers itself) comes this way.
pub struct ControlRequest {
    pub request: Request,
    pub reply: oneshot::Sender<Result<Value, RpcError>>,
}

/// A notification, serialized once for all subscribers.
#[derive(Debug, Clone)]
pub struct Notification {
    pub topic: Option<Topic>,
    pub line: Arc<str>,
}

impl Notification {
    pub fn new(method: &str, params: &Value) -> Self {
        Notification { topic: Topic::of(method), line: rpc::notification(method, params).into() }
    }
}

/// The connections a server serves at once: one seat each, held while
/// connected. How many are taken is what the metrics show as clients.
#[derive(Debug, Clone)]
pub struct Seats {
    free: Arc<tokio::sync::Semaphore>,
    max: usize,
}

impl Seats {
    pub fn new(max: usize) -> Seats {
        Seats { free: Arc::new(tokio::sync::Semaphore::new(max)), max }
    }

    /// A seat for a new connection, if one is free; freed when dropped.
    pub fn take(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.free.clone().try_acquire_owned().ok()
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Connections served now.
    pub fn taken(&self) -> usize {
        self.max - self.free.available_permits()
    }
}

/// Which methods a session may call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Everything: the Unix socket, whose file mode is the lock.
    Everything,
    /// These methods only (and `events.subscribe`, `daemon.status`).
    Only(Arc<HashSet<String>>),
    /// Everything but these (the bridge: never its own pairing methods).
    AllBut(&'static [&'static str]),
}

impl Access {
    pub fn allows(&self, method: &str) -> bool {
        match self {
            Access::Everything => true,
            Access::Only(methods) => {
                methods.contains(method)
                    || method == super::api::method::EVENTS_SUBSCRIBE
                    || method == super::api::method::DAEMON_STATUS
            }
            Access::AllBut(denied) => !denied.contains(&method),
        }
    }
}

pub struct Session {
    requests: mpsc::Sender<ControlRequest>,
    events: broadcast::Sender<Notification>,
    subscription: Option<(broadcast::Receiver<Notification>, HashSet<Topic>)>,
    access: Access,
}

impl Session {
    pub fn new(
        requests: mpsc::Sender<ControlRequest>,
        events: broadcast::Sender<Notification>,
        access: Access,
    ) -> Self {
        Session { requests, events, subscription: None, access }
    }

    /// Answer one message; `None` when nothing is owed (blank, notification).
    /// Several lines (an answer and a subscription's snapshot) come joined
    /// by `\n`.
    pub async fn handle(&mut self, message: &[u8]) -> Option<String> {
        self.answer(message).await.map(|lines| lines.join("\n"))
    }

    /// [`handle`](Self::handle), one message per element.
    pub async fn answer(&mut self, message: &[u8]) -> Option<Vec<String>> {
        if message.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        let line = match rpc::parse_request(message) {
            Ok(line) => line,
            Err((id, error)) => return Some(vec![rpc::response(id.unwrap_or(Value::Null), Err(error))]),
        };
        let id = line.id;
        if !self.access.allows(&line.method) {
            // One line per refusal, so that ops (and the browser tests) can
            // see a page trying what its origin may not do.
            tracing::warn!(method = %line.method, "method refused on this connection (-32004)");
            let refused = RpcError::new(code::FORBIDDEN, format!("{} is not allowed on this connection", line.method));
            return id.map(|id| vec![rpc::response(id, Err(refused))]);
        }
        let result = match Request::parse(&line.method, line.params) {
            Ok(Request::EventsSubscribe(params)) => {
                let result = Ok(self.subscribe(params));
                let mut lines: Vec<String> = id.map(|id| rpc::response(id, result)).into_iter().collect();
                lines.extend(self.snapshot().await);
                return (!lines.is_empty()).then_some(lines);
            }
            Ok(request) => self.ask(request).await,
            Err(error) => Err(error),
        };
        id.map(|id| vec![rpc::response(id, result)])
    }

    async fn ask(&self, request: Request) -> Result<Value, RpcError> {
        let (reply, answer) = oneshot::channel();
        if self.requests.send(ControlRequest { request, reply }).await.is_err() {
            return Err(RpcError::new(code::INTERNAL_ERROR, "daemon is shutting down"));
        }
        answer.await.unwrap_or_else(|_| Err(RpcError::new(code::INTERNAL_ERROR, "daemon dropped the request")))
    }

    /// A new subscriber hears the present first: a `call.state` for every
    /// live call and a `callback.state` for every open callback, so a UI
    /// that reconnects needs nothing else. Asked after the subscription
    /// began, so no change falls between the two.
    async fn snapshot(&self) -> Vec<String> {
        let Some((_, topics)) = &self.subscription else { return Vec::new() };
        let sources = [
            (Topic::Call, Request::CallList(NoParams {}), "calls", event::CALL_STATE),
            (Topic::Callback, Request::CallbackList(NoParams {}), "callbacks", event::CALLBACK_STATE),
        ];
        let mut lines = Vec::new();
        for (topic, list, key, event) in sources.into_iter().filter(|(topic, ..)| topics.contains(topic)) {
            match self.ask(list).await {
                Ok(result) => {
                    let items = result.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
                    lines.extend(items.iter().map(|item| rpc::notification(event, item)));
                }
                Err(e) => tracing::warn!(?topic, error = %e.message, "no snapshot for a new subscriber"),
            }
        }
        lines
    }

    /// Subscriptions are per session, so they live here, not in the daemon.
    fn subscribe(&mut self, params: SubscribeParams) -> Value {
        let topics: Vec<Topic> = params.topics.unwrap_or_else(|| Topic::ALL.to_vec());
        let receiver = match self.subscription.take() {
            Some((receiver, _)) => receiver,
            None => self.events.subscribe(),
        };
        self.subscription = Some((receiver, topics.iter().copied().collect()));
        serde_json::to_value(SubscribeResult { topics }).expect("plain struct")
    }

    /// The next event this session subscribed to; never, without a
    /// subscription. A session too slow for the stream hears how many it
    /// missed.
    pub async fn next_event(&mut self) -> Option<String> {
        let Some((receiver, topics)) = &mut self.subscription else { return std::future::pending().await };
        loop {
            match receiver.recv().await {
                Ok(event) if event.topic.is_none_or(|t| topics.contains(&t)) => return Some(event.line.to_string()),
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    return Some(rpc::notification(event::EVENTS_OVERFLOW, &json!({ "missed": missed })))
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
