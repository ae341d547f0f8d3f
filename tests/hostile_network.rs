//! The SIP port under attack, as anyone who can reach it may attack it
//! (issue 15): thousands of TCP connections from several addresses, an
//! INVITE flood from a stranger during a call, a scanner. What counts is
//! what the other side sees: the attacker's connections closed, the
//! stranger's INVITEs refused or unanswered, the customer's RTP (captured)
//! without a gap, the control socket answering, a new call going through.
//!
//! The TCP storm comes from a network namespace this test makes, with
//! addresses of 198.51.100.0/24 (documentation range) on a veth pair; it
//! needs root and `ip`. Figures are printed (`--nocapture`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use common::capture::{largest_gap_ms, Capture};
use common::sipp::tone_peer;
use common::{dial, require_tool, require_tools, wait_media_counter, Daemon, Setup};
use serde_json::json;
use softphoned::control::client::is_call_state;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, UdpSocket};

const WAIT: Duration = Duration::from_secs(10);

/// The storm and the flood each load both cores: run one at a time, or
/// each measures the other (a gap in the call's RTP, a slow answer).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A network namespace holding `clients` addresses, joined to ours by a
/// veth pair whose end here has `host`; removed on drop.
struct Netns {
    name: String,
    host_link: String,
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("ip runs");
    assert!(status.success(), "ip {args:?} failed");
}

impl Netns {
    fn create(host: &str, clients: &[IpAddr]) -> Netns {
        let tag = std::process::id() % 100_000;
        let (name, host_link, far_link) = (format!("softphoned-{tag}"), format!("sph{tag}"), format!("spc{tag}"));
        let netns = Netns { name: name.clone(), host_link: host_link.clone() };
        ip(&["netns", "add", &name]);
        ip(&["link", "add", &host_link, "type", "veth", "peer", "name", &far_link]);
        ip(&["link", "set", &far_link, "netns", &name]);
        ip(&["addr", "add", &format!("{host}/24"), "dev", &host_link]);
        ip(&["link", "set", &host_link, "up"]);
        for client in clients {
            ip(&["-n", &name, "addr", "add", &format!("{client}/24"), "dev", &far_link]);
        }
        ip(&["-n", &name, "link", "set", &far_link, "up"]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        netns
    }

    /// Run `make` on a thread inside the namespace: the sockets it opens
    /// belong there wherever they are used afterwards.
    fn inside<T: Send>(&self, make: impl FnOnce() -> T + Send) -> T {
        let handle = std::fs::File::open(format!("/run/netns/{}", self.name)).expect("the namespace's handle");
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    // SAFETY: setns on this thread alone, with a valid descriptor.
                    let entered = unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) };
                    assert_eq!(entered, 0, "setns: {}", std::io::Error::last_os_error());
                    make()
                })
                .join()
                .unwrap()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
        // Gone with the namespace already, unless creating it stopped half-way.
        let _ = Command::new("ip").args(["link", "del", &self.host_link]).stderr(std::process::Stdio::null()).status();
    }
}

/// Raise this process's own open files limit to `at_least` (the attacker
/// needs thousands of sockets); fails if the hard limit does not allow it.
fn raise_own_open_files(at_least: u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        assert!(limit.rlim_max >= at_least, "the hard open files limit {} is below {at_least}", limit.rlim_max);
        limit.rlim_cur = limit.rlim_cur.max(at_least);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

/// CPU seconds a process has used (user + system), from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
    // Fields 14 and 15 of stat(5), counted after the command's closing parenthesis.
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// What one attacking connection sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attack {
    /// Nothing at all.
    Probe,
    /// Half a request's headers, then nothing.
    Stall,
    /// A whole OPTIONS, then nothing.
    Options,
    /// Headers announcing a 10 MB body.
    Huge,
}

const ATTACKS: [Attack; 4] = [Attack::Probe, Attack::Stall, Attack::Options, Attack::Huge];

fn attack_bytes(attack: Attack, from: SocketAddr, n: usize) -> Vec<u8> {
    let head = format!(
        "OPTIONS sip:agent@198.51.100.1 SIP/2.0\r\nVia: SIP/2.0/TCP {from};branch=z9hG4bK-storm-{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:storm@{}>;tag=s{n}\r\nTo: <sip:agent@198.51.100.1>\r\n\
         Call-ID: storm-{n}@198.51.100.9\r\nCSeq: 1 OPTIONS\r\n",
        from.ip()
    );
    match attack {
        Attack::Probe => Vec::new(),
        Attack::Stall => head.into_bytes(),
        Attack::Options => format!("{head}Content-Length: 0\r\n\r\n").into_bytes(),
        Attack::Huge => format!("{head}Content-Length: 10000000\r\n\r\nv=0\r\n").into_bytes(),
    }
}

/// How one attacking connection ended, seen from the attacker.
struct Outcome {
    attack: Attack,
    connected: bool,
    /// From its last byte sent to the daemon closing it; `None`: still open at the end.
    closed_after: Option<Duration>,
    answer: String,
}

async fn attack(socket: TcpSocket, target: SocketAddr, attack: Attack, n: usize, watch: Duration) -> Outcome {
    let from = socket.local_addr().unwrap();
    let mut outcome = Outcome { attack, connected: false, closed_after: None, answer: String::new() };
    let Ok(Ok(mut stream)) = tokio::time::timeout(WAIT, socket.connect(target)).await else { return outcome };
    outcome.connected = true;
    let _ = stream.write_all(&attack_bytes(attack, from, n)).await;
    let sent = Instant::now();
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    let end = tokio::time::Instant::now() + watch;
    loop {
        match tokio::time::timeout_at(end, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                outcome.closed_after = Some(sent.elapsed());
                break;
            }
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
            Err(_) => break,
        }
    }
    outcome.answer = String::from_utf8_lossy(&got).lines().next().unwrap_or_default().to_string();
    outcome
}

/// 5,000 TCP connections from five addresses, under the default open files
/// limit of 1,024: the control socket answers in time all through, a new
/// call is placed and answered, every probe, stalled message and oversized
/// one is closed within 10 s, the log stays small and the CPU bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_tcp_connections_leave_calls_and_control_working() {
    if !(require_tool("ip") && require_tool("sipp") && require_tool("sox")) {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().await;
    const CONNECTIONS: usize = 5000;
    raise_own_open_files(CONNECTIONS as u64 + 1024);
    let clients: Vec<IpAddr> = (11..16).map(|i| format!("198.51.100.{i}").parse().unwrap()).collect();
    let netns = Netns::create("198.51.100.1", &clients);
    let agent = Daemon::spawn_with(
        "agent",
        Setup {
            listen: &["udp:127.0.0.1:0", "tcp:198.51.100.1:0"],
            // Room per source, so that the total (what the descriptors allow) is what binds.
            extra: "tcp_connections_per_source = 400\n",
            env: &[("RUST_LOG", "info,rsipstack=warn")],
            open_files: Some(1024),
            netns: None,
            watchdog_pid: false,
        },
    )
    .await;
    let target: SocketAddr = agent.listening("tcp").parse().unwrap();
    let mut ui = agent.client().await;

    // The customer: a sipp UAS playing a tone, for the call placed mid-storm.
    let (_work, customer, customer_port, _) = tone_peer();

    let sockets: Vec<TcpSocket> = netns.inside(|| {
        (0..CONNECTIONS)
            .map(|n| {
                let socket = TcpSocket::new_v4().unwrap();
                socket.bind(SocketAddr::new(clients[n % clients.len()], 0)).unwrap();
                socket
            })
            .collect()
    });
    let (cpu_before, started) = (cpu_seconds(agent.pid()), Instant::now());
    let storm = tokio::spawn(async move {
        let mut tasks = tokio::task::JoinSet::new();
        for (n, socket) in sockets.into_iter().enumerate() {
            let kind = ATTACKS[n % ATTACKS.len()];
            tasks.spawn(attack(socket, target, kind, n, Duration::from_secs(12)));
            if n % 250 == 249 {
                // Five waves a second: a storm, not one burst the backlog swallows.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        tasks.join_all().await
    });

    // Meanwhile: the control socket, the descriptors, and a new call.
    let mut latencies = Vec::new();
    let mut most_descriptors = 0;
    let mut call = None;
    while !storm.is_finished() {
        let asked = Instant::now();
        ui.call("daemon.status", json!({})).await.unwrap();
        latencies.push(asked.elapsed().as_secs_f64() * 1000.0);
        most_descriptors = most_descriptors.max(open_descriptors(agent.pid()));
        if call.is_none() && started.elapsed() > Duration::from_secs(2) {
            call = Some(dial(&mut ui, &format!("sip:service@127.0.0.1:{customer_port}")).await);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cpu = (cpu_seconds(agent.pid()) - cpu_before) / started.elapsed().as_secs_f64();
    let outcomes = storm.await.unwrap();
    let call = call.expect("the storm lasted long enough to place a call");
    let mut calls = agent.client().await;
    let list = calls.call("call.list", json!({})).await.unwrap();
    let state =
        list["calls"].as_array().unwrap().iter().find(|c| c["call"] == call.as_str()).map(|c| c["state"].clone());
    assert_eq!(state, Some(json!("connected")), "the call placed during the storm: {list}");
    wait_media_counter(&mut calls, "packets_received", 25).await;
    ui.call("call.hangup", json!({"call": call})).await.unwrap();

    let connected = outcomes.iter().filter(|o| o.connected).count();
    let answered = outcomes.iter().filter(|o| o.answer.starts_with("SIP/2.0 200")).count();
    let max_latency = latencies.iter().copied().fold(0.0, f64::max);
    let log_bytes = std::fs::metadata(agent.path("daemon.log")).unwrap().len();
    println!(
        "storm: {CONNECTIONS} connections, {connected} connected, {answered} OPTIONS answered 200; \
         daemon.status median {:.1} ms, max {max_latency:.1} ms over {} asks; daemon CPU {:.0} % of a core \
         over {:.1} s; descriptors at most {most_descriptors} of 1024; log {log_bytes} bytes",
        median(&mut latencies),
        latencies.len(),
        cpu * 100.0,
        started.elapsed().as_secs_f64()
    );
    for attack in [Attack::Probe, Attack::Stall, Attack::Huge] {
        let of_kind: Vec<&Outcome> = outcomes.iter().filter(|o| o.attack == attack && o.connected).collect();
        let open = of_kind.iter().filter(|o| o.closed_after.is_none()).count();
        let slowest = of_kind.iter().filter_map(|o| o.closed_after).max().unwrap_or_default();
        println!(
            "{attack:?}: {} connections, the last closed {:.1} s after its bytes, {open} still open",
            of_kind.len(),
            slowest.as_secs_f64()
        );
        assert_eq!(open, 0, "{open} {attack:?} connections were left open");
        assert!(slowest < Duration::from_secs(10), "a {attack:?} connection was left open {slowest:?}");
        assert!(slowest < Duration::from_secs(10), "a {attack:?} connection was left open {slowest:?}");
    }
    assert!(connected > CONNECTIONS * 9 / 10, "only {connected} of {CONNECTIONS} connected at all");
    assert!(answered > 0, "no OPTIONS was answered: the port stopped serving");
    assert!(max_latency < 100.0, "daemon.status took {max_latency:.1} ms");
    assert!(most_descriptors < 1024, "the daemon held {most_descriptors} descriptors");
    assert!(log_bytes < 1_000_000, "the log grew to {log_bytes} bytes");
    assert!(cpu < 1.0, "the daemon used {:.0} % of a core", cpu * 100.0);
    drop(customer);
}

fn invite(n: usize, from: SocketAddr, to: &str) -> Vec<u8> {
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    format!(
        "INVITE sip:agent@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK-flood-{n}\r\nMax-Forwards: 70\r\n\
         From: <sip:flood@{from}>;tag=f{n}\r\nTo: <sip:agent@{to}>\r\nCall-ID: flood-{n}@127.0.0.1\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:flood@{from}>\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
    .into_bytes()
}

/// 200 INVITE/s for 10 s from an address that may not call, while the
/// agent is on a call with a trusted peer: every INVITE is refused (403)
/// or not answered at all once the source is over its rate, the call's
/// RTP (captured) has no gap over 60 ms, and the daemon's CPU is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_flood_from_a_stranger_is_refused_or_silenced_during_a_call() {
    if !require_tools(&["sipp", "sox", "tcpdump", "tshark"]) {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().await;
    let (work, customer, customer_port, customer_media) = tone_peer();
    let allow = format!("allow_from = [\"127.0.0.1:{customer_port}\"]\n");
    let agent = Daemon::spawn_with(
        "agent",
        Setup { extra: &allow, env: &[("RUST_LOG", "info,rsipstack=warn")], ..Setup::default() },
    )
    .await;
    let mut ui = agent.client().await;
    let call = dial(&mut ui, &format!("sip:service@127.0.0.1:{customer_port}")).await;
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
    wait_media_counter(&mut ui, "packets_received", 10).await;
    let capture = Capture::start(work.path(), customer_media);

    let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let from = stranger.local_addr().unwrap();
    let to = agent.listening("udp");
    let (cpu_before, started) = (cpu_seconds(agent.pid()), Instant::now());
    // (status, Call-ID) of every answer: a 403 is retransmitted until its
    // ACK (RFC 3261 §17.2.1), which a flooder never sends.
    let mut answers: Vec<(u16, String)> = Vec::new();
    let answer = |bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        let status = text.get(8..11).and_then(|s| s.parse().ok()).unwrap_or(0);
        let call_id = text.lines().find_map(|l| l.strip_prefix("Call-ID: ")).unwrap_or_default().to_string();
        (status, call_id)
    };
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    let mut buf = vec![0u8; 4096];
    const INVITES: usize = 2000;
    let mut sent = 0;
    // Send on the 5 ms tick, read every answer in between; then 2 s for late ones.
    let quiet_end = loop {
        tokio::select! {
            _ = tick.tick(), if sent < INVITES => {
                stranger.send_to(&invite(sent, from, &to), &to).await.unwrap();
                sent += 1;
                if sent == INVITES {
                    break tokio::time::Instant::now() + Duration::from_secs(2);
                }
            }
            Ok((n, _)) = stranger.recv_from(&mut buf) => {
                answers.push(answer(&buf[..n]));
            }
        }
    };
    let flood_seconds = started.elapsed().as_secs_f64();
    let cpu = (cpu_seconds(agent.pid()) - cpu_before) / flood_seconds;
    while let Ok(Ok((n, _))) = tokio::time::timeout_at(quiet_end, stranger.recv_from(&mut buf)).await {
        answers.push(answer(&buf[..n]));
    }
    let packets = capture.stop(customer_media);
    let gap = largest_gap_ms(&packets);
    let refused = answers.iter().filter(|(s, _)| *s == 403).map(|(_, id)| id).collect::<BTreeSet<_>>().len();
    let statuses: BTreeMap<u16, usize> = answers.iter().fold(BTreeMap::new(), |mut m, (s, _)| {
        *m.entry(*s).or_insert(0) += 1;
        m
    });
    println!(
        "flood: {sent} INVITEs in {flood_seconds:.1} s; answers by status (with retransmissions) {statuses:?}; \
         INVITEs refused 403 {refused}, unanswered {}; RTP to the customer {} packets, largest gap {gap:.1} ms; \
         daemon CPU {:.0} % of a core",
        sent - refused,
        packets.len(),
        cpu * 100.0
    );
    assert!(statuses.keys().all(|&s| s == 100 || s == 403), "an INVITE got somewhere: {statuses:?}");
    assert!(refused >= 20, "the stranger was not told 403 while under its rate");
    assert!(refused <= 40 + 20 * 12, "past its rate the stranger still got {refused} answers");
    assert!(packets.len() > 400 && gap < 60.0, "RTP: {} packets, largest gap {gap:.1} ms", packets.len());
    let list = ui.call("call.list", json!({})).await.unwrap();
    assert_eq!(list["calls"][0]["state"], "connected", "{list}");
    let log = agent.log();
    let lines = log.lines().filter(|l| l.contains("over its request rate")).count();
    assert_eq!(lines, 1, "one log line for the flood, not one per INVITE:\n{log}");
    ui.call("call.hangup", json!({"call": call})).await.unwrap();
    drop(customer);
}

/// A scanner's OPTIONS is never answered, and says so once in the log;
/// the same request from the same address with another User-Agent is.
#[tokio::test]
async fn a_known_scanner_is_ignored_with_a_log_line() {
    let agent =
        Daemon::spawn_with("agent", Setup { env: &[("RUST_LOG", "info,rsipstack=warn")], ..Setup::default() }).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (from, to) = (socket.local_addr().unwrap(), agent.listening("udp"));
    let options = |n: u32, agent_name: &str| {
        format!(
            "OPTIONS sip:100@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK-scan-{n}\r\nMax-Forwards: 70\r\n\
             From: \"sipvicious\" <sip:100@{from}>;tag=x{n}\r\nTo: <sip:100@{to}>\r\nCall-ID: scan-{n}\r\n\
             CSeq: 1 OPTIONS\r\nUser-Agent: {agent_name}\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let mut buf = vec![0u8; 4096];
    for n in 0..3 {
        socket.send_to(options(n, "friendly-scanner").as_bytes(), &to).await.unwrap();
    }
    socket.send_to(options(9, "baresip 1.0.0").as_bytes(), &to).await.unwrap();
    // The first answer is to the last request: the scanner's got none.
    let (n, _) = tokio::time::timeout(WAIT, socket.recv_from(&mut buf)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("SIP/2.0 200") && answer.contains("scan-9"), "{answer}");
    let log = agent.log();
    assert_eq!(log.lines().filter(|l| l.contains("SIP scanner ignored")).count(), 1, "{log}");
}

/// TLS gets what TCP gets: a whole request is answered over the TLS
/// session, a malformed one is refused with the defect named, and a
/// connection that never starts its handshake is closed within seconds.
#[tokio::test]
async fn tls_connections_are_checked_and_bounded_like_tcp() {
    if !require_tool("openssl") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let pki = common::kamailio::make_test_pki(&work.path().join("pki"));
    let extra =
        format!("tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n", pki.server_cert.display(), pki.server_key.display());
    let listen = &["udp:127.0.0.1:0", "tls:127.0.0.1:0"];
    let agent = Daemon::spawn_with("agent", Setup { listen, extra: &extra, ..Setup::default() }).await;
    let target: SocketAddr = agent.listening("tls").parse().unwrap();

    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(&pki.ca_cert).unwrap();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(target).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.expect("the daemon's certificate is accepted");
    let from = "127.0.0.1:5999";
    let request = |cseq: &str, n: u32| {
        format!(
            "OPTIONS sip:agent@{target};transport=tls SIP/2.0\r\nVia: SIP/2.0/TLS {from};branch=z9hG4bK-tls-{n}\r\n\
             Max-Forwards: 70\r\nFrom: <sips:peer@{from}>;tag=t{n}\r\nTo: <sips:agent@{target}>\r\n\
             Call-ID: tls-{n}@127.0.0.1\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let mut answers = String::new();
    let mut chunk = [0u8; 4096];
    for (n, cseq) in [(1, "1 OPTIONS"), (2, "2 INVITE")] {
        tls.write_all(request(cseq, n).as_bytes()).await.unwrap();
        let read = tokio::time::timeout(WAIT, tls.read(&mut chunk)).await.unwrap().unwrap();
        answers.push_str(&String::from_utf8_lossy(&chunk[..read]));
    }
    assert!(answers.starts_with("SIP/2.0 200 OK\r\n"), "{answers}");
    assert!(answers.contains("SIP/2.0 400 CSeq Method Does Not Match Request Method\r\n"), "{answers}");

    // A connection that never says hello.
    let mut silent = tokio::net::TcpStream::connect(target).await.unwrap();
    let opened = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(12), silent.read(&mut chunk)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "still open after 12 s");
    assert!(opened.elapsed() < Duration::from_secs(10), "closed after {:?}", opened.elapsed());
}
