//! RFC 3263 §4 as a question-and-answer machine: [`Resolution::next_query`]
//! says what to look up, [`Resolution::on_answer`] takes what the resolver
//! said, [`Resolution::finish`] orders what was found into [`Targets`].
//!
//! - A numeric IP, or an explicit port, asks no NAPTR or SRV (§4.1, §4.2).
//! - An explicit transport asks SRV for that transport only.
//! - Otherwise NAPTR of the domain; its `s` records for supported services
//!   ordered by order, then preference, name the SRV queries. Without any
//!   usable NAPTR, SRV is asked for each supported transport in turn.
//! - SRV targets are ordered by priority, and by RFC 2782's weighted draw
//!   within a priority; each target's A/AAAA come in that order.
//! - Without SRV records, the domain's A/AAAA on the default port.
//!
//! Every usable NAPTR record's SRV set goes into the list, one after the
//! other, rather than only the first that resolves: the later ones are
//! more places to fail over to.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{Answer, NaptrRecord, Query, Request, ResolveError, SrvRecord, Target, Targets, Transport};

/// One host name whose addresses take a place in the final order.
struct Slot {
    host: String,
    port: u16,
    transport: Transport,
    addresses: Vec<IpAddr>,
}

pub struct Resolution {
    request: Request,
    /// Questions asked in this order; the first is the one out.
    queries: VecDeque<(Query, Option<Transport>)>,
    slots: Vec<Slot>,
    /// Whether the A/AAAA fallback of the domain has been planned.
    fell_back: bool,
    ttl_s: Option<u32>,
    /// What each failed or empty query met, for the error.
    misses: Vec<String>,
    rng: StdRng,
}

impl Resolution {
    /// Start locating `request`; `seed` drives the SRV weight draw.
    pub fn new(request: Request, seed: u64) -> Resolution {
        let mut resolution = Resolution {
            queries: VecDeque::new(),
            slots: Vec::new(),
            fell_back: false,
            ttl_s: None,
            misses: Vec::new(),
            rng: StdRng::seed_from_u64(seed),
            request,
        };
        resolution.plan_first_queries();
        resolution
    }

    fn plan_first_queries(&mut self) {
        let request = &self.request;
        let transport = self.transport_without_naptr();
        if let Some(ip) = numeric_ip(&request.host) {
            let port = request.port.unwrap_or(transport.default_port());
            let host = ip.to_string();
            self.slots.push(Slot { host, port, transport, addresses: vec![ip] });
        } else if let Some(port) = request.port {
            self.plan_addresses(request.host.clone(), port, transport);
        } else if let Some(transport) = request.transport {
            self.plan_srv(transport);
        } else {
            self.queries.push_back((Query::Naptr(request.host.clone()), None));
        }
    }

    /// The transport when NAPTR does not choose it (§4.1): the URI's own,
    /// else TLS for `sips:` and the first supported one (UDP by RFC) for `sip:`.
    fn transport_without_naptr(&self) -> Transport {
        let request = &self.request;
        let default = if request.secure { Transport::Tls } else { Transport::Udp };
        request.transport.unwrap_or_else(|| {
            if request.secure || request.supported.contains(&default) {
                default
            } else {
                request.supported.first().copied().unwrap_or(default)
            }
        })
    }

    fn usable(&self, transport: Transport) -> bool {
        self.request.supported.contains(&transport) && (!self.request.secure || transport == Transport::Tls)
    }

    fn plan_srv(&mut self, transport: Transport) {
        let name = format!("{}.{}", transport.srv_prefix(), self.request.host);
        self.queries.push_back((Query::Srv(name), Some(transport)));
    }

    fn plan_addresses(&mut self, host: String, port: u16, transport: Transport) {
        let query = Query::Addresses(host.clone());
        if !self.queries.iter().any(|(q, _)| *q == query) {
            self.queries.push_back((query, None));
        }
        self.slots.push(Slot { host, port, transport, addresses: Vec::new() });
    }

    /// The question to put to the resolver now; `None` once all is known.
    pub fn next_query(&self) -> Option<&Query> {
        self.queries.front().map(|(query, _)| query)
    }

    /// The resolver's answer to [`next_query`](Self::next_query).
    pub fn on_answer(&mut self, answer: Answer) {
        let Some((query, transport)) = self.queries.pop_front() else { return };
        match answer {
            Answer::Naptr { records, ttl_s } => self.on_naptr(records, ttl_s),
            Answer::Srv { records, ttl_s } => self.on_srv(&query, records, ttl_s, transport),
            Answer::Addresses { addresses, ttl_s } => self.on_addresses(&query, addresses, ttl_s),
            Answer::Failed(reason) => {
                self.misses.push(format!("{}: {reason}", describe(&query)));
                if matches!(query, Query::Naptr(_)) {
                    self.plan_srv_for_each_transport();
                }
            }
        }
        if self.queries.is_empty() && self.slots.is_empty() && !self.fell_back {
            // §4.2: no SRV records: the domain itself, on the default port.
            self.fell_back = true;
            let transport = self.transport_without_naptr();
            self.plan_addresses(self.request.host.clone(), transport.default_port(), transport);
        }
    }

    fn on_naptr(&mut self, mut records: Vec<NaptrRecord>, ttl_s: u32) {
        records.sort_by_key(|r| (r.order, r.preference));
        let mut planned = false;
        for record in records {
            let Some(transport) = Transport::from_naptr_service(&record.services) else { continue };
            if !record.flags.eq_ignore_ascii_case("s") || !self.usable(transport) {
                continue;
            }
            let query = Query::Srv(record.replacement);
            if !self.queries.iter().any(|(q, _)| *q == query) {
                self.queries.push_back((query, Some(transport)));
                planned = true;
            }
        }
        if planned {
            self.note_ttl(ttl_s);
        } else {
            self.misses.push(format!("NAPTR {}: no record for a supported transport", self.request.host));
            self.plan_srv_for_each_transport();
        }
    }

    /// §4.1: without NAPTR, SRV of each transport we support.
    fn plan_srv_for_each_transport(&mut self) {
        let usable: Vec<Transport> = self.request.supported.iter().copied().filter(|t| self.usable(*t)).collect();
        for transport in usable {
            self.plan_srv(transport);
        }
    }

    fn on_srv(&mut self, query: &Query, records: Vec<SrvRecord>, ttl_s: u32, transport: Option<Transport>) {
        let records: Vec<SrvRecord> = records.into_iter().filter(|r| !matches!(r.target.as_str(), "" | ".")).collect();
        if records.is_empty() {
            self.misses.push(format!("{}: no usable record", describe(query)));
            return;
        }
        self.note_ttl(ttl_s);
        let transport = transport.unwrap_or_else(|| self.transport_without_naptr());
        for record in order_srv(records, &mut self.rng) {
            if !self.slots.iter().any(|s| s.host == record.target && s.port == record.port && s.transport == transport)
            {
                self.plan_addresses(record.target, record.port, transport);
            }
        }
    }

    fn on_addresses(&mut self, query: &Query, addresses: Vec<IpAddr>, ttl_s: u32) {
        let Query::Addresses(host) = query else { return };
        if addresses.is_empty() {
            self.misses.push(format!("{}: no address", describe(query)));
            return;
        }
        self.note_ttl(ttl_s);
        for slot in self.slots.iter_mut().filter(|s| s.host == *host && s.addresses.is_empty()) {
            slot.addresses = addresses.clone();
        }
    }

    fn note_ttl(&mut self, ttl_s: u32) {
        self.ttl_s = Some(self.ttl_s.map_or(ttl_s, |t| t.min(ttl_s)));
    }

    /// The targets in the order to try them, valid until the shortest TTL
    /// met runs out (a numeric IP never expires). Call once
    /// [`next_query`](Self::next_query) is `None`.
    pub fn finish(self, now: Instant) -> Result<Targets, ResolveError> {
        let mut list: Vec<Target> = Vec::new();
        for slot in self.slots {
            for ip in slot.addresses {
                let target = Target {
                    host: slot.host.clone(),
                    address: SocketAddr::new(ip, slot.port),
                    transport: slot.transport,
                };
                if !list.iter().any(|t| t.address == target.address && t.transport == target.transport) {
                    list.push(target);
                }
            }
        }
        if list.is_empty() {
            let detail = if self.misses.is_empty() { "nothing found".into() } else { self.misses.join("; ") };
            return Err(ResolveError::NoTargets { host: self.request.host, detail });
        }
        let valid_until = self.ttl_s.map(|ttl| now + Duration::from_secs(u64::from(ttl)));
        Ok(Targets::new(list, valid_until))
    }
}

fn describe(query: &Query) -> String {
    match query {
        Query::Naptr(name) => format!("NAPTR {name}"),
        Query::Srv(name) => format!("SRV {name}"),
        Query::Addresses(name) => format!("A/AAAA {name}"),
    }
}

/// `host` as an IP literal, with or without IPv6 brackets.
fn numeric_ip(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

/// RFC 2782: lowest priority first; within a priority, repeatedly draw a
/// record with chance proportional to its weight (weight 0 records first in
/// the running sums, so they keep a small chance).
pub(super) fn order_srv(mut records: Vec<SrvRecord>, rng: &mut impl Rng) -> Vec<SrvRecord> {
    records.sort_by_key(|r| (r.priority, r.weight != 0));
    let mut ordered = Vec::with_capacity(records.len());
    while !records.is_empty() {
        let priority = records[0].priority;
        let group_len = records.iter().take_while(|r| r.priority == priority).count();
        let mut group: Vec<SrvRecord> = records.drain(..group_len).collect();
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            let draw = rng.random_range(0..=total);
            let mut running = 0;
            let chosen = group
                .iter()
                .position(|r| {
                    running += u32::from(r.weight);
                    running >= draw
                })
                .unwrap_or(0);
            ordered.push(group.remove(chosen));
        }
    }
    ordered
}
