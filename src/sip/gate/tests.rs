use super::*;

fn at(start: Instant, ms: u64) -> Instant {
    start + Duration::from_millis(ms)
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

const OPTIONS: &[u8] = b"OPTIONS sip:a@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.7;branch=z9hG4bK1\r\n\r\n";

fn limits() -> Limits {
    Limits { requests_per_second: 10, connections: 4, connections_per_source: 2 }
}

#[test]
fn a_stranger_gets_its_burst_then_its_rate_then_silence() {
    let start = Instant::now();
    let mut gate = Gate::new(limits(), vec![]);
    let stranger = addr("198.51.100.7:5060");
    let passed = (0..100).filter(|_| gate.on_message(stranger, None, OPTIONS, start) == Admit::Pass).count();
    assert_eq!(passed, 20, "the bucket holds two seconds' worth");
    // One second later ten more tokens have come back, no more.
    let passed = (0..100).filter(|_| gate.on_message(stranger, None, OPTIONS, at(start, 1000)) == Admit::Pass).count();
    assert_eq!(passed, 10);
    // Another address is not punished for it.
    assert_eq!(gate.on_message(addr("198.51.100.8:5060"), None, OPTIONS, at(start, 1000)), Admit::Pass);
}

#[test]
fn silence_is_logged_once_a_minute_with_its_count() {
    let start = Instant::now();
    let mut gate = Gate::new(limits(), vec![]);
    let stranger = addr("198.51.100.7:5060");
    let notices: Vec<(u64, Option<u64>)> = (0..3000u64)
        .filter_map(|i| match gate.on_message(stranger, None, OPTIONS, at(start, i * 50)) {
            Admit::Silence { why: Silenced::OverRate, notice } => notice.map(|n| (i * 50, Some(n))),
            _ => None,
        })
        .collect();
    // 20 a second for 150 s against a rate of 10: a line at the first
    // silenced request, then one a minute with what was silenced since.
    assert_eq!(notices.len(), 3, "{notices:?}");
    assert_eq!(notices[0].1, Some(1));
    assert!(notices[1].0 - notices[0].0 >= 60_000);
    let silenced_between = notices[1].1.unwrap();
    assert!((550..=650).contains(&silenced_between), "about 10 a second for a minute: {silenced_between}");
}

#[test]
fn trusted_peers_and_responses_are_never_limited() {
    let start = Instant::now();
    let proxy = addr("192.0.2.10:5060");
    let mut gate =
        Gate::new(limits(), vec![AllowedPeer::Socket(proxy), AllowedPeer::Host("192.0.2.20".parse().unwrap())]);
    let response = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\r\n";
    for _ in 0..500 {
        assert_eq!(gate.on_message(proxy, None, OPTIONS, start), Admit::Pass);
        assert_eq!(gate.on_message(addr("192.0.2.20:7000"), None, OPTIONS, start), Admit::Pass);
        assert_eq!(gate.on_message(addr("198.51.100.7:5060"), None, response, start), Admit::Pass);
    }
    // Over UDP the proxy's address at another port is somebody else.
    let other_port = addr("192.0.2.10:6000");
    assert!((0..500).any(|_| gate.on_message(other_port, None, OPTIONS, start) != Admit::Pass));
}

#[test]
fn a_peer_trusted_later_is_no_longer_limited() {
    let start = Instant::now();
    let backup = addr("192.0.2.20:5060");
    let mut gate = Gate::new(limits(), vec![]);
    assert!((0..100).any(|_| gate.on_message(backup, None, OPTIONS, start) != Admit::Pass));
    gate.set_trusted(vec![AllowedPeer::Socket(backup)]);
    assert!((0..500).all(|_| gate.on_message(backup, None, OPTIONS, start) == Admit::Pass));
    gate.set_trusted(vec![]);
    assert!((0..100).any(|_| gate.on_message(backup, None, OPTIONS, start) != Admit::Pass), "and limited again");
}

#[test]
fn scanners_are_never_answered_even_under_their_rate() {
    let start = Instant::now();
    let mut gate = Gate::new(limits(), vec![]);
    let probe =
        b"OPTIONS sip:100@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.9\r\nUser-Agent: friendly-scanner\r\n\r\n";
    assert_eq!(
        gate.on_message(addr("198.51.100.9:5070"), None, probe, start),
        Admit::Silence { why: Silenced::Scanner, notice: Some(1) }
    );
    let sipvicious = b"INVITE sip:100@192.0.2.1 SIP/2.0\r\nuser-agent :  SIPVicious/0.3\r\n\r\n";
    assert!(matches!(
        gate.on_message(addr("198.51.100.9:5070"), None, sipvicious, start),
        Admit::Silence { why: Silenced::Scanner, notice: None }
    ));
    // A word in the body is not a User-Agent.
    let body = b"MESSAGE sip:a@192.0.2.1 SIP/2.0\r\nUser-Agent: baresip\r\n\r\nfriendly-scanner";
    assert_eq!(gate.on_message(addr("198.51.100.10:5060"), None, body, start), Admit::Pass);
}

#[test]
fn connections_are_capped_per_source_and_in_total_evicting_the_stalest() {
    let start = Instant::now();
    let proxy = addr("192.0.2.10:5060");
    let mut gate = Gate::new(limits(), vec![AllowedPeer::Socket(proxy)]);
    let a = gate.on_connect(addr("198.51.100.7:40000"), start).unwrap();
    let b = gate.on_connect(addr("198.51.100.7:40001"), at(start, 10)).unwrap();
    assert_eq!(gate.on_connect(addr("198.51.100.7:40002"), at(start, 20)), Err(Refused::SourceFull));
    // The proxy connects from any port and has no per-source share.
    let p1 = gate.on_connect(addr("192.0.2.10:33000"), at(start, 30)).unwrap();
    let p2 = gate.on_connect(addr("192.0.2.10:33001"), at(start, 40)).unwrap();
    assert_eq!((a.evict, b.evict, p1.evict, p2.evict), (None, None, None, None));
    // Full: `a` did something lately, so `b` makes room.
    gate.on_activity(a.id, true, at(start, 50));
    let c = gate.on_connect(addr("198.51.100.8:40000"), at(start, 60)).unwrap();
    assert_eq!(c.evict, Some(b.id));
    assert_eq!(gate.open_connections(), 4);
    // Its source's share came back with it.
    gate.on_close(c.id);
    assert!(gate.on_connect(addr("198.51.100.7:40003"), at(start, 70)).is_ok());
    // Only trusted ones left to evict: nobody else gets in.
    gate.on_close(a.id);
    let mut only_trusted = Gate::new(Limits { connections: 2, ..limits() }, vec![AllowedPeer::Socket(proxy)]);
    only_trusted.on_connect(addr("192.0.2.10:1"), start).unwrap();
    only_trusted.on_connect(addr("192.0.2.10:2"), start).unwrap();
    assert_eq!(only_trusted.on_connect(addr("198.51.100.7:1"), start), Err(Refused::Full));
}

#[test]
fn deadlines_close_probes_stalls_and_idle_connections_within_seconds() {
    let start = Instant::now();
    let proxy = addr("192.0.2.10:5060");
    let mut gate = Gate::new(limits(), vec![AllowedPeer::Socket(proxy)]);
    let probe = gate.on_connect(addr("198.51.100.7:40000"), start).unwrap().id;
    assert_eq!(gate.deadline(probe, None), Some(start + FIRST_MESSAGE));
    // Bytes that make no whole message do not identify it.
    gate.on_activity(probe, false, at(start, 3000));
    assert_eq!(gate.deadline(probe, None), Some(start + FIRST_MESSAGE));
    assert_eq!(gate.deadline(probe, Some(at(start, 2000))), Some(at(start, 2000) + STALLED));
    gate.on_activity(probe, true, at(start, 4000));
    assert_eq!(gate.deadline(probe, None), Some(at(start, 4000) + IDLE));
    let trusted = gate.on_connect(addr("192.0.2.10:33000"), start).unwrap().id;
    gate.on_activity(trusted, true, start);
    assert_eq!(gate.deadline(trusted, None), Some(start + TRUSTED_IDLE));
    gate.on_close(probe);
    assert_eq!(gate.deadline(probe, None), None);
}

#[test]
fn a_spoofed_source_flood_keeps_the_table_bounded() {
    let start = Instant::now();
    let mut gate = Gate::new(limits(), vec![]);
    for i in 0..20_000u32 {
        // Spoofed sources from the IPv6 documentation prefix.
        let ip = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, (i >> 16) as u16, i as u16);
        let source = SocketAddr::new(IpAddr::V6(ip), 5060);
        gate.on_message(source, None, OPTIONS, at(start, u64::from(i)));
    }
    assert!(gate.sources.len() <= SOURCES);
}
