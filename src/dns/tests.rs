//! The RFC 3263 procedure played with the RFCs' own examples: the
//! resolver's answers are scripted, so each test shows the questions asked
//! and the order of the targets.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::rfc3263::order_srv;
use super::*;

fn naptr(order: u16, preference: u16, services: &str, replacement: &str) -> NaptrRecord {
    NaptrRecord { order, preference, flags: "s".into(), services: services.into(), replacement: replacement.into() }
}

fn srv(priority: u16, weight: u16, port: u16, target: &str) -> SrvRecord {
    SrvRecord { priority, weight, port, target: target.into() }
}

fn request(host: &str, supported: &[Transport]) -> Request {
    Request { host: host.into(), port: None, transport: None, secure: false, supported: supported.to_vec() }
}

/// A scripted DNS: answers by query; anything not scripted is NXDOMAIN.
#[derive(Default)]
struct Zone {
    answers: HashMap<Query, Answer>,
}

impl Zone {
    fn naptr(mut self, name: &str, records: Vec<NaptrRecord>) -> Self {
        self.answers.insert(Query::Naptr(name.into()), Answer::Naptr { records, ttl_s: 300 });
        self
    }
    fn srv(mut self, name: &str, records: Vec<SrvRecord>, ttl_s: u32) -> Self {
        self.answers.insert(Query::Srv(name.into()), Answer::Srv { records, ttl_s });
        self
    }
    fn a(mut self, name: &str, ip: &str) -> Self {
        let addresses = vec![ip.parse::<IpAddr>().unwrap()];
        self.answers.insert(Query::Addresses(name.into()), Answer::Addresses { addresses, ttl_s: 600 });
        self
    }

    /// Run the machine against the zone: the queries asked, and the outcome.
    fn locate(&self, request: Request, now: Instant) -> (Vec<Query>, Result<Targets, ResolveError>) {
        let mut resolution = Resolution::new(request, 1);
        let mut asked = Vec::new();
        while let Some(query) = resolution.next_query().cloned() {
            let answer = self.answers.get(&query).cloned().unwrap_or(Answer::Failed("NXDOMAIN".into()));
            asked.push(query);
            resolution.on_answer(answer);
        }
        (asked, resolution.finish(now))
    }
}

fn addresses(targets: &Targets) -> Vec<String> {
    targets.all().iter().map(|t| t.to_string()).collect()
}

/// RFC 3263 §4.1's example zone: TLS, then TCP, then UDP.
fn rfc3263_example() -> Zone {
    Zone::default()
        .naptr(
            "example.com",
            vec![
                naptr(90, 50, "SIP+D2T", "_sip._tcp.example.com"),
                naptr(100, 50, "SIP+D2U", "_sip._udp.example.com"),
                naptr(50, 50, "SIPS+D2T", "_sips._tcp.example.com"),
            ],
        )
        .srv("_sips._tcp.example.com", vec![srv(0, 0, 5061, "tls.example.com")], 300)
        .srv("_sip._tcp.example.com", vec![srv(0, 0, 5060, "tcp.example.com")], 300)
        .srv("_sip._udp.example.com", vec![srv(0, 0, 5060, "udp.example.com")], 300)
        .a("tls.example.com", "192.0.2.3")
        .a("tcp.example.com", "192.0.2.2")
        .a("udp.example.com", "192.0.2.1")
}

#[test]
fn naptr_order_decides_among_the_supported_transports() {
    let now = Instant::now();
    let all = [Transport::Udp, Transport::Tcp, Transport::Tls];
    let (asked, targets) = rfc3263_example().locate(request("example.com", &all), now);
    assert_eq!(asked[0], Query::Naptr("example.com".into()));
    assert_eq!(asked[1], Query::Srv("_sips._tcp.example.com".into()), "order 50 first");
    let expected = ["tls:192.0.2.3:5061 (tls.example.com)", "tcp:192.0.2.2:5060 (tcp.example.com)"];
    assert_eq!(addresses(&targets.unwrap())[..2], expected);
}

#[test]
fn naptr_records_for_transports_we_lack_are_passed_over() {
    let (asked, targets) = rfc3263_example().locate(request("example.com", &[Transport::Udp]), Instant::now());
    assert_eq!(asked[1], Query::Srv("_sip._udp.example.com".into()));
    assert!(!asked.contains(&Query::Srv("_sips._tcp.example.com".into())));
    assert_eq!(addresses(&targets.unwrap()), ["udp:192.0.2.1:5060 (udp.example.com)"]);
}

#[test]
fn a_sips_uri_takes_only_tls() {
    let mut sips = request("example.com", &[Transport::Udp, Transport::Tcp, Transport::Tls]);
    sips.secure = true;
    let (_, targets) = rfc3263_example().locate(sips, Instant::now());
    assert_eq!(addresses(&targets.unwrap()), ["tls:192.0.2.3:5061 (tls.example.com)"]);
}

#[test]
fn a_numeric_ip_or_an_explicit_port_asks_no_naptr_or_srv() {
    let zone = rfc3263_example();
    let mut numeric = request("192.0.2.9", &[Transport::Udp]);
    let (asked, targets) = zone.locate(numeric.clone(), Instant::now());
    assert!(asked.is_empty());
    let targets = targets.unwrap();
    assert_eq!(addresses(&targets), ["udp:192.0.2.9:5060"]);
    assert!(!targets.is_stale(Instant::now() + Duration::from_secs(1_000_000)), "an IP never expires");
    numeric.host = "[2001:db8::1]".into();
    numeric.port = Some(5070);
    assert_eq!(addresses(&zone.locate(numeric, Instant::now()).1.unwrap()), ["udp:[2001:db8::1]:5070"]);

    let mut with_port = request("udp.example.com", &[Transport::Udp]);
    with_port.port = Some(5080);
    let (asked, targets) = zone.locate(with_port, Instant::now());
    assert_eq!(asked, [Query::Addresses("udp.example.com".into())]);
    assert_eq!(addresses(&targets.unwrap()), ["udp:192.0.2.1:5080 (udp.example.com)"]);
}

#[test]
fn an_explicit_transport_asks_srv_for_it_alone() {
    let mut tcp = request("example.com", &[Transport::Tcp]);
    tcp.transport = Some(Transport::Tcp);
    let (asked, targets) = rfc3263_example().locate(tcp, Instant::now());
    assert_eq!(asked[0], Query::Srv("_sip._tcp.example.com".into()));
    assert_eq!(addresses(&targets.unwrap()), ["tcp:192.0.2.2:5060 (tcp.example.com)"]);
}

/// RFC 3263 §4.2: no NAPTR: SRV for each supported transport; the
/// priority-0 records before the priority-1 one.
#[test]
fn without_naptr_srv_gives_the_failover_order_by_priority() {
    let zone = Zone::default()
        .srv(
            "_sip._udp.pbx.example.test",
            vec![srv(2, 0, 5060, "backup.example.test"), srv(1, 0, 5060, "main.example.test")],
            120,
        )
        .a("main.example.test", "192.0.2.10")
        .a("backup.example.test", "192.0.2.20");
    let now = Instant::now();
    let (asked, targets) = zone.locate(request("pbx.example.test", &[Transport::Udp]), now);
    assert_eq!(asked[..2], [Query::Naptr("pbx.example.test".into()), Query::Srv("_sip._udp.pbx.example.test".into())]);
    let mut targets = targets.unwrap();
    assert_eq!(
        addresses(&targets),
        ["udp:192.0.2.10:5060 (main.example.test)", "udp:192.0.2.20:5060 (backup.example.test)"]
    );
    assert_eq!(targets.current().unwrap().address.to_string(), "192.0.2.10:5060");
    assert_eq!(targets.fail_over().unwrap().address.to_string(), "192.0.2.20:5060");
    assert!(!targets.is_stale(now + Duration::from_secs(119)));
    assert!(targets.is_stale(now + Duration::from_secs(120)), "the SRV's TTL, the shortest met");
    let mut relocated = zone.locate(request("pbx.example.test", &[Transport::Udp]), now).1.unwrap();
    relocated.stay_on(targets.current());
    assert_eq!(relocated.current().unwrap().address.to_string(), "192.0.2.20:5060", "the working one is kept");
    assert!(targets.fail_over().is_none());
    assert!(targets.is_stale(now), "every target failed");
    let mut relocated = zone.locate(request("pbx.example.test", &[Transport::Udp]), now).1.unwrap();
    relocated.stay_on(targets.current());
    assert_eq!(relocated.current().unwrap().address.to_string(), "192.0.2.10:5060", "after all failed: from the top");
}

#[test]
fn without_srv_the_domain_itself_on_the_default_port() {
    let zone = Zone::default().a("pbx.example.test", "192.0.2.5");
    let mut tls = request("pbx.example.test", &[Transport::Tls]);
    let (asked, targets) = zone.locate(tls.clone(), Instant::now());
    assert_eq!(asked.last(), Some(&Query::Addresses("pbx.example.test".into())));
    assert_eq!(addresses(&targets.unwrap()), ["tls:192.0.2.5:5061 (pbx.example.test)"]);
    tls.supported = vec![Transport::Udp];
    assert_eq!(addresses(&zone.locate(tls, Instant::now()).1.unwrap()), ["udp:192.0.2.5:5060 (pbx.example.test)"]);
}

#[test]
fn nothing_found_says_what_each_query_met() {
    let (_, outcome) = Zone::default().locate(request("nowhere.example.test", &[Transport::Udp]), Instant::now());
    let message = outcome.unwrap_err().to_string();
    for part in ["nowhere.example.test", "NAPTR", "SRV _sip._udp.nowhere.example.test", "A/AAAA", "NXDOMAIN"] {
        assert!(message.contains(part), "{part} missing from: {message}");
    }
}

#[test]
fn an_srv_target_of_dot_means_no_service() {
    let zone =
        Zone::default().srv("_sip._udp.example.test", vec![srv(0, 0, 0, ".")], 60).a("example.test", "192.0.2.7");
    let (_, targets) = zone.locate(request("example.test", &[Transport::Udp]), Instant::now());
    assert_eq!(addresses(&targets.unwrap()), ["udp:192.0.2.7:5060 (example.test)"]);
}

/// RFC 2782's weights: within one priority, a record of weight 3 comes
/// first about three times as often as one of weight 1.
#[test]
fn weights_share_the_first_place_in_proportion() {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let records =
        vec![srv(0, 0, 5060, "zero"), srv(0, 1, 5060, "one"), srv(0, 3, 5060, "three"), srv(1, 50, 5060, "later")];
    let mut first = HashMap::new();
    for _ in 0..4000 {
        let ordered = order_srv(records.clone(), &mut rng);
        assert_eq!(ordered.last().unwrap().target, "later", "a higher priority value always comes last");
        *first.entry(ordered[0].target.clone()).or_insert(0) += 1;
    }
    let (one, three, zero) = (first["one"], first["three"], first.get("zero").copied().unwrap_or(0));
    assert!((2.4..3.6).contains(&(f64::from(three) / f64::from(one))), "{first:?}");
    // Weight 0 wins only a draw of exactly 0: 1 in (sum + 1) = 1 in 5.
    assert!((650..950).contains(&zero), "{first:?}");
}
