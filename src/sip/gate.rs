//! Who may use the SIP port, and how much: per-source request rates, known
//! scanners, and the TCP connections a source and everyone together may
//! hold. Pure: the time is an argument; the shell (`front.rs`) reads the
//! clock, closes what this says to close and writes the log lines this
//! says are due.
//!
//! Why these rules. A softphone's port is scanned from the day it is
//! reachable; answering every probe costs CPU and, over UDP, makes us a
//! reflector. Our own registrars, proxies and `sip.allow_from` peers (the
//! contact center's infrastructure, which may carry many calls) are
//! trusted and never limited; everyone else gets a token bucket of
//! requests per source address, and once it is empty is not answered at
//! all. Known scanner User-Agents are never answered. Over TCP each
//! connection costs a descriptor, so their number is capped, in total and
//! per untrusted source, and the least recently active untrusted
//! connection makes room when the total is reached; a connection that
//! says nothing valid, stalls mid-message or sits idle is closed within
//! seconds.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::call::admission::AllowedPeer;
use crate::timing::TokenBucket;

/// The numbers, from `[sip]` and the descriptor budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Requests per second an untrusted source may send (its bucket holds
    /// twice that); 0: no limit.
    pub requests_per_second: u32,
    /// TCP connections open at once, from everyone.
    pub connections: usize,
    /// TCP connections open at once from one untrusted address.
    pub connections_per_source: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { requests_per_second: 20, connections: 1024, connections_per_source: 32 }
    }
}

/// A connection that has not sent one whole valid message by then is a
/// probe, and one silent this long in the middle of a message has stalled.
pub const FIRST_MESSAGE: Duration = Duration::from_secs(5);
pub const STALLED: Duration = Duration::from_secs(5);
/// How long an untrusted connection may sit idle: long enough for a
/// transaction to end (64 × T1), and for an INVITE to ring its 30 s.
pub const IDLE: Duration = Duration::from_secs(32);
/// How long a trusted one may (rsipstack's own connections kept about this).
pub const TRUSTED_IDLE: Duration = Duration::from_secs(300);

/// Sources remembered at once; past that the longest quiet one is
/// forgotten (a spoofed-source flood only churns this table).
const SOURCES: usize = 4096;
/// At most one log line per source and cause in this time.
const NOTICE_EVERY: Duration = Duration::from_secs(60);

/// User-Agent words of SIP scanners (SIPVicious and its forks, sundayddr,
/// sipcli, iWar, VaxSIPUserAgent…), compared without case.
const SCANNERS: [&str; 8] =
    ["friendly-scanner", "sipvicious", "sip-scan", "sipscan", "sundayddr", "sipcli", "iwar", "vaxsipuseragent"];

/// Why a message goes unanswered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Silenced {
    /// Its User-Agent is a known scanner's.
    Scanner,
    /// Its source sent more than its share.
    OverRate,
}

/// Why a message never reached rsipstack, counted for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Scanner,
    OverRate,
    /// Malformed, and answered (400, 501...) by the validation.
    Invalid,
    /// Malformed beyond answering: dropped.
    Unreadable,
}

impl Refusal {
    pub const ALL: [Refusal; 4] = [Refusal::Scanner, Refusal::OverRate, Refusal::Invalid, Refusal::Unreadable];

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Scanner => "scanner",
            Refusal::OverRate => "rate_limit",
            Refusal::Invalid => "invalid",
            Refusal::Unreadable => "unreadable",
        }
    }
}

/// What to do with one incoming message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Pass,
    /// Drop it unanswered. `notice`: log it, with how many this source had
    /// silenced since the last line (at most one line a minute each).
    Silence {
        why: Silenced,
        notice: Option<u64>,
    },
}

/// A TCP connection that may not stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Every seat is taken by trusted or busy connections.
    Full,
    /// This untrusted address holds its share already.
    SourceFull,
}

/// One accepted TCP connection, as the gate knows it.
pub type ConnectionId = u64;

/// A seat for a new connection, and maybe one to close to make room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seat {
    pub id: ConnectionId,
    pub evict: Option<ConnectionId>,
}

struct Source {
    bucket: TokenBucket,
    silenced: u64,
    noticed: Option<Instant>,
    connections: usize,
}

struct Connection {
    ip: IpAddr,
    trusted: bool,
    opened: Instant,
    last: Instant,
    /// It has sent at least one whole message that passed the checks.
    identified: bool,
}

pub struct Gate {
    limits: Limits,
    trusted: Vec<AllowedPeer>,
    sources: HashMap<IpAddr, Source>,
    connections: HashMap<ConnectionId, Connection>,
    next_id: ConnectionId,
    /// Messages refused since start, by [`Refusal`] (in `Refusal::ALL` order).
    refused: [u64; Refusal::ALL.len()],
}

impl Gate {
    pub fn new(limits: Limits, trusted: Vec<AllowedPeer>) -> Gate {
        Gate {
            limits,
            trusted,
            sources: HashMap::new(),
            connections: HashMap::new(),
            next_id: 1,
            refused: [0; Refusal::ALL.len()],
        }
    }

    /// From now on these are trusted, and only these (a registrar located
    /// anew, an account a reload removed). A connection keeps what it was
    /// admitted as.
    pub fn set_trusted(&mut self, peers: Vec<AllowedPeer>) {
        self.trusted = peers;
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Count one message refused (the gate counts its own silences); the
    /// count of that kind so far.
    pub fn refused(&mut self, why: Refusal) -> u64 {
        let count = &mut self.refused[why as usize];
        *count += 1;
        *count
    }

    /// (why, count) for every kind of refusal so far.
    pub fn refusals(&self) -> impl Iterator<Item = (Refusal, u64)> + '_ {
        Refusal::ALL.into_iter().zip(self.refused)
    }

    /// Over UDP a trusted peer sends from the address and port it is
    /// known by; over TCP it connects from any port (`any_port`).
    fn is_trusted(&self, source: SocketAddr, any_port: bool) -> bool {
        let same_host = |peer: &AllowedPeer| matches!(peer, AllowedPeer::Socket(s) if s.ip() == source.ip());
        self.trusted.iter().any(|peer| peer.matches(source) || (any_port && same_host(peer)))
    }

    /// A message arrived from `source`, as a datagram or on TCP connection
    /// `connection`: a request counts against the source's rate (whether
    /// it is well-formed or not); a response is always let through, for
    /// the stack to match with its transactions.
    pub fn on_message(
        &mut self,
        source: SocketAddr,
        connection: Option<ConnectionId>,
        msg: &[u8],
        now: Instant,
    ) -> Admit {
        let trusted = match connection {
            Some(id) => self.connections.get(&id).is_some_and(|c| c.trusted),
            None => self.is_trusted(source, false),
        };
        if trusted || msg.starts_with(b"SIP/") || msg.iter().all(|b| b.is_ascii_whitespace()) {
            return Admit::Pass;
        }
        let why = if user_agent(msg).is_some_and(is_scanner) {
            self.refused(Refusal::Scanner);
            Silenced::Scanner
        } else if self.take_token(source.ip(), now) {
            return Admit::Pass;
        } else {
            self.refused(Refusal::OverRate);
            Silenced::OverRate
        };
        let state = self.source(source.ip(), now);
        state.silenced += 1;
        let due = state.noticed.is_none_or(|at| now.saturating_duration_since(at) >= NOTICE_EVERY);
        let notice = due.then(|| {
            state.noticed = Some(now);
            std::mem::take(&mut state.silenced)
        });
        Admit::Silence { why, notice }
    }

    fn take_token(&mut self, ip: IpAddr, now: Instant) -> bool {
        let rate = self.limits.requests_per_second;
        rate == 0 || self.source(ip, now).bucket.take(rate, now)
    }

    /// The state of `ip`, made if new (making room if the table is full).
    fn source(&mut self, ip: IpAddr, now: Instant) -> &mut Source {
        if !self.sources.contains_key(&ip) && self.sources.len() >= SOURCES {
            self.forget_a_source(now);
        }
        let bucket = TokenBucket::full(self.limits.requests_per_second, now);
        self.sources.entry(ip).or_insert(Source { bucket, silenced: 0, noticed: None, connections: 0 })
    }

    /// Forget the sources a fresh entry would equal (bucket full again, no
    /// connection); if there are none, the one quiet for longest.
    fn forget_a_source(&mut self, now: Instant) {
        let rate = self.limits.requests_per_second;
        self.sources.retain(|_, s| s.connections > 0 || !s.bucket.is_full(rate, now));
        if self.sources.len() >= SOURCES {
            let oldest =
                self.sources.iter().filter(|(_, s)| s.connections == 0).min_by_key(|(_, s)| s.bucket.updated());
            if let Some(ip) = oldest.map(|(ip, _)| *ip) {
                self.sources.remove(&ip);
            }
        }
    }

    /// A TCP connection from `source` was accepted: give it a seat, or say
    /// why not. At the total cap the untrusted connection active longest
    /// ago is evicted for it.
    pub fn on_connect(&mut self, source: SocketAddr, now: Instant) -> Result<Seat, Refused> {
        let trusted = self.is_trusted(source, true);
        let per_source = self.limits.connections_per_source;
        if !trusted && self.sources.get(&source.ip()).is_some_and(|s| s.connections >= per_source) {
            return Err(Refused::SourceFull);
        }
        let mut evict = None;
        if self.connections.len() >= self.limits.connections {
            let oldest = self.connections.iter().filter(|(_, c)| !c.trusted).min_by_key(|(_, c)| c.last);
            let Some(id) = oldest.map(|(id, _)| *id) else { return Err(Refused::Full) };
            self.on_close(id);
            evict = Some(id);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.source(source.ip(), now).connections += 1;
        let connection = Connection { ip: source.ip(), trusted, opened: now, last: now, identified: false };
        self.connections.insert(id, connection);
        Ok(Seat { id, evict })
    }

    /// Bytes moved on connection `id`; `whole` when a valid message was
    /// completed by them.
    pub fn on_activity(&mut self, id: ConnectionId, whole: bool, now: Instant) {
        if let Some(connection) = self.connections.get_mut(&id) {
            connection.last = now;
            connection.identified |= whole;
        }
    }

    /// When connection `id` is to be closed if nothing more happens on it;
    /// `message_began`: when the part of a message waiting for the rest
    /// began (a peer that trickles a byte at a time gains nothing).
    /// `None`: it has no seat (any more).
    pub fn deadline(&self, id: ConnectionId, message_began: Option<Instant>) -> Option<Instant> {
        let c = self.connections.get(&id)?;
        Some(if let Some(began) = message_began {
            began + STALLED
        } else if !c.identified {
            c.opened + FIRST_MESSAGE
        } else {
            c.last + if c.trusted { TRUSTED_IDLE } else { IDLE }
        })
    }

    /// Connection `id` is gone (closed by either side, or evicted).
    pub fn on_close(&mut self, id: ConnectionId) {
        if let Some(connection) = self.connections.remove(&id) {
            if let Some(source) = self.sources.get_mut(&connection.ip) {
                source.connections = source.connections.saturating_sub(1);
            }
        }
    }

    pub fn open_connections(&self) -> usize {
        self.connections.len()
    }
}

/// The User-Agent header's value, if the message has one.
fn user_agent(msg: &[u8]) -> Option<&[u8]> {
    let head = &msg[..msg.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(msg.len())];
    head.split(|&b| b == b'\n').skip(1).find_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        let name = line[..colon].trim_ascii();
        name.eq_ignore_ascii_case(b"user-agent").then(|| line[colon + 1..].trim_ascii())
    })
}

fn is_scanner(user_agent: &[u8]) -> bool {
    let lower = user_agent.to_ascii_lowercase();
    SCANNERS.iter().any(|word| lower.windows(word.len()).any(|w| w == word.as_bytes()))
}

#[cfg(test)]
mod tests;
