//! RFC 4475's torture messages (§3.1.1 valid, §3.1.2 invalid, §3.2, §3.3
//! and the RFC 2543-style INVITE of §3.4), sent byte for byte from
//! `tests/rfc4475/*.dat` over UDP and over TCP (one connection each) to a
//! real daemon that has a call in progress with a second daemon. Each
//! message gets the answer RFC 4475 asks for (or silence), the call goes
//! on, and the daemon stays up.
//!
//! The RTP the agent sends its customer is captured all through (tcpdump,
//! tshark): no gap over 60 ms.
//!
//! `RFC4475_TABLE=1` prints message → expected → ours.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::capture::{largest_gap_ms, Capture};
use common::{dial, media_counter, require_tool, wait_media_counter, Daemon, Setup};
use serde_json::json;
use softphoned::control::client::is_call_state;
use softphoned::sip::validate::frame_stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const WAIT: Duration = Duration::from_secs(10);

/// What RFC 4475 asks of a user agent for each message.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Valid: processed like any request (any answer but a rejection of
    /// its form: not 400, 406, 415, 416, 420, 501 or 505).
    Handled,
    /// Valid, with a method we take no part in: exactly this answer.
    Refused(u16),
    /// Invalid (or valid but unacceptable): exactly this answer.
    Status(u16),
    /// A response matching no transaction, or one that cannot be read:
    /// nothing comes back.
    Silence,
}
use Expect::*;

const MESSAGES: &[(&str, &str, Expect)] = &[
    ("3.1.1.1", "wsinv", Handled),
    ("3.1.1.2", "intmeth", Status(501)),
    ("3.1.1.3", "esc01", Handled),
    ("3.1.1.4", "escnull", Refused(405)),
    ("3.1.1.5", "esc02", Status(501)),
    ("3.1.1.6", "lwsdisp", Handled),
    ("3.1.1.7", "longreq", Handled),
    ("3.1.1.8", "dblreq", Refused(405)),
    ("3.1.1.9", "semiuri", Handled),
    ("3.1.1.10", "transports", Handled),
    ("3.1.1.11", "mpart01", Refused(405)),
    ("3.1.1.12", "unreason", Silence),
    ("3.1.1.13", "noreason", Silence),
    ("3.1.2.1", "badinv01", Status(400)),
    ("3.1.2.2", "clerr", Status(400)),
    ("3.1.2.3", "ncl", Status(400)),
    ("3.1.2.4", "scalar02", Status(400)),
    ("3.1.2.5", "scalarlg", Silence),
    ("3.1.2.6", "quotbal", Status(400)),
    ("3.1.2.7", "ltgtruri", Status(400)),
    ("3.1.2.8", "lwsruri", Status(400)),
    ("3.1.2.9", "lwsstart", Status(400)),
    ("3.1.2.10", "trws", Status(400)),
    ("3.1.2.11", "escruri", Status(400)),
    ("3.1.2.12", "baddate", Status(400)),
    ("3.1.2.13", "regbadct", Status(400)),
    ("3.1.2.14", "badaspec", Status(400)),
    ("3.1.2.15", "baddn", Status(400)),
    ("3.1.2.16", "badvers", Status(505)),
    ("3.1.2.17", "mismatch01", Status(400)),
    ("3.1.2.18", "mismatch02", Status(501)),
    ("3.1.2.19", "bigcode", Silence),
    ("3.2.1", "badbranch", Handled),
    ("3.3.1", "insuf", Status(400)),
    ("3.3.2", "unkscm", Status(416)),
    ("3.3.3", "novelsc", Status(416)),
    ("3.3.4", "unksm2", Refused(405)),
    ("3.3.5", "bext01", Status(420)),
    ("3.3.6", "invut", Status(415)),
    ("3.3.7", "regaut01", Refused(405)),
    ("3.3.8", "multi01", Status(400)),
    ("3.3.9", "mcl01", Status(400)),
    ("3.3.10", "bcast", Silence),
    ("3.3.11", "zeromf", Handled),
    ("3.3.12", "cparam01", Refused(405)),
    ("3.3.13", "cparam02", Refused(405)),
    ("3.3.14", "regescrt", Refused(405)),
    ("3.3.15", "sdp01", Status(406)),
    ("3.4.1", "inv2543", Handled),
];

const REJECTIONS: [u16; 7] = [400, 406, 415, 416, 420, 501, 505];

fn data(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/rfc4475/{name}.dat", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn status_of(response: &str) -> u16 {
    response.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0)
}

/// A header's value, continuation lines folded in.
fn header(message: &str, names: &[&str]) -> Option<String> {
    let unfolded = message.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded.split("\r\n").skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        names.iter().any(|n| n.eq_ignore_ascii_case(name.trim())).then(|| value.trim().to_string())
    })
}

/// The URI of a From/To value: inside <>, or up to its parameters.
fn uri_of(value: &str) -> &str {
    match (value.find('<'), value.find('>')) {
        (Some(open), Some(close)) if open < close => &value[open + 1..close],
        _ => value.split([';', ' ', '\t']).next().unwrap_or(value),
    }
}

/// Over a stream the framing is Content-Length's, so a few answers differ
/// from a datagram's (RFC 3261 §18.3, §20.14).
fn over_tcp(name: &str, udp: Expect) -> Expect {
    match name {
        // Announces 9999 bytes and sends fewer: the message is not over yet.
        "clerr" => Silence,
        // No blank line after the headers (in this copy): not over yet either.
        "baddn" => Silence,
        // No Content-Length, which a stream requires.
        "inv2543" => Status(400),
        _ => udp,
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Carrier {
    Udp,
    Tcp,
}

/// Send one message and collect every answer: the first within `first`,
/// then whatever follows within a short while (an INVITE gets 100, 180).
async fn exchange(carrier: Carrier, target: &str, bytes: &[u8], first: Duration) -> Vec<String> {
    let mut got = Vec::new();
    let mut limit = first;
    match carrier {
        Carrier::Udp => {
            // A socket of its own: late answers cannot be mistaken for the next one's.
            let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            socket.send_to(bytes, target).await.unwrap();
            let mut buf = vec![0u8; 65536];
            while let Ok(Ok((len, _))) = tokio::time::timeout(limit, socket.recv_from(&mut buf)).await {
                got.push(String::from_utf8_lossy(&buf[..len]).into_owned());
                limit = Duration::from_millis(300);
            }
        }
        Carrier::Tcp => {
            let mut stream = TcpStream::connect(target).await.unwrap();
            stream.write_all(bytes).await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = vec![0u8; 65536];
            while let Ok(Ok(n)) = tokio::time::timeout(limit, stream.read(&mut chunk)).await {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                while let Ok(Some(len)) = frame_stream(&buf, 1 << 20) {
                    let message: Vec<u8> = buf.drain(..len).collect();
                    got.push(String::from_utf8_lossy(&message).into_owned());
                    limit = Duration::from_millis(300);
                }
            }
        }
    }
    got
}

/// Run every message over `carrier`; returns the table's rows and what went wrong.
async fn run_all(carrier: Carrier, target: &str) -> (Vec<String>, Vec<String>) {
    let mut table = Vec::new();
    let mut wrong = Vec::new();
    let label = if carrier == Carrier::Udp { "UDP" } else { "TCP" };
    for &(section, name, udp_expect) in MESSAGES {
        let expect = if carrier == Carrier::Tcp { over_tcp(name, udp_expect) } else { udp_expect };
        let bytes = data(name);
        let wait = if expect == Silence { Duration::from_millis(1500) } else { Duration::from_secs(3) };
        let got = exchange(carrier, target, &bytes, wait).await;
        let codes: Vec<u16> = got.iter().map(|r| status_of(r)).collect();
        let finals: Vec<u16> = codes.iter().copied().filter(|&c| c >= 200).collect();
        let ok = match expect {
            Handled => !codes.is_empty() && !codes.iter().any(|c| REJECTIONS.contains(c)),
            Refused(code) | Status(code) => finals.first() == Some(&code),
            Silence => codes.is_empty(),
        };
        let ours = if got.is_empty() {
            "silence".to_string()
        } else {
            let codes: BTreeSet<u16> = codes.iter().copied().collect();
            let first_final = got.iter().find(|r| status_of(r) >= 200).or(got.first()).unwrap();
            format!("{codes:?} {}", first_final.split("\r\n").next().unwrap_or_default())
        };
        // An answer keeps the request's To as it was (a tag added).
        let request = String::from_utf8_lossy(&bytes);
        let (request_to, request_cseq) = (header(&request, &["To", "t"]), header(&request, &["CSeq"]));
        for response in &got {
            if header(response, &["CSeq"]) != request_cseq {
                continue; // dblreq over TCP: the answer to the second request
            }
            let (Some(sent), Some(back)) = (request_to.as_deref(), header(response, &["To", "t"])) else { continue };
            if uri_of(sent) != uri_of(&back) {
                wrong.push(format!("{label} {name}: To changed: sent {sent:?}, got {back:?}"));
            }
        }
        if !ok {
            wrong.push(format!("{label} {name}: expected {expect:?}, got {ours}"));
        }
        table.push(format!(
            "| {label} | {section} | {name} | {expect:?} | {ours} | {} |",
            if ok { "ok" } else { "WRONG" }
        ));
    }
    (table, wrong)
}

/// The agent's daemon, listening on UDP and TCP; returns their addresses too.
async fn spawn_agent() -> (Daemon, String, String) {
    let listen = &["udp:127.0.0.1:0", "tcp:127.0.0.1:0"];
    let extra = "[agent]\nring_timeout_ms = 60000\n";
    let agent = Daemon::spawn_with("agent", Setup { listen, extra, ..Setup::default() }).await;
    let (udp, tcp) = (agent.listening("udp"), agent.listening("tcp"));
    (agent, udp, tcp)
}

/// The customer's RTP port for its latest call: the `m=audio` of the last
/// 200 OK it sent (its log carries what it sent).
fn customer_media_port(log: &str) -> u16 {
    log.lines()
        .rev()
        .filter(|l| l.contains("udp send") && l.contains("SIP/2.0 200 OK") && l.contains("m=audio "))
        .find_map(|l| l.split("m=audio ").nth(1)?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no 200 OK with SDP in the customer's log"))
}

/// One agent with a call in progress to `customer` takes every message over
/// `carrier`; the call must go on. A fresh agent per carrier: the same bytes
/// twice would be retransmissions of transactions still open.
async fn during_a_call(carrier: Carrier, customer: &Daemon) -> (Vec<String>, Vec<String>) {
    let (agent, udp, tcp) = spawn_agent().await;
    let mut ui = agent.client().await;
    let mut customer_ui = customer.client().await;
    let call = dial(&mut ui, &customer.uri("customer")).await;
    let incoming = customer_ui.wait_event(WAIT, |e| e["params"]["state"] == "incoming").await.unwrap();
    customer_ui.call("call.answer", json!({"call": incoming["params"]["call"]})).await.unwrap();
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
    wait_media_counter(&mut ui, "packets_received", 10).await;
    // What the agent sends the customer is captured all through.
    let media_port = customer_media_port(&customer.log());
    let capture = (require_tool("tcpdump") && require_tool("tshark")).then(|| {
        let dir = agent.dir.path().join(format!("capture-{}", if carrier == Carrier::Udp { "udp" } else { "tcp" }));
        std::fs::create_dir_all(&dir).unwrap();
        Capture::start(&dir, media_port)
    });

    let (mut table, mut wrong) = run_all(carrier, if carrier == Carrier::Udp { &udp } else { &tcp }).await;
    if let Some(capture) = capture {
        let packets = capture.stop(media_port);
        let gap = largest_gap_ms(&packets);
        table.push(format!(
            "RTP to the customer during the {carrier:?} run: {} packets, largest gap {gap:.1} ms",
            packets.len()
        ));
        if packets.len() < 500 || gap > 60.0 {
            wrong.push(format!("RTP during the {carrier:?} run: {} packets, largest gap {gap:.1} ms", packets.len()));
        }
    }
    if let Ok(needle) = std::env::var("RFC4475_LOG") {
        agent.log().lines().filter(|l| l.contains(&needle)).for_each(|l| println!("{l}"));
    }

    // The call went on through all of it, and the daemon still answers.
    let before = media_counter(&mut ui, "packets_received").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = media_counter(&mut ui, "packets_received").await;
    if after <= before + 10 {
        wrong.push(format!("RTP stopped flowing: {before} → {after}"));
    }
    let list = ui.call("call.list", json!({})).await.unwrap();
    let ours = list["calls"].as_array().unwrap().iter().find(|c| c["call"] == call.as_str()).cloned();
    if ours.map(|c| c["state"].clone()) != Some(json!("connected")) {
        wrong.push(format!("the call did not stay connected: {list}"));
    }
    ui.call("call.hangup", json!({"call": call})).await.unwrap();
    (table, wrong)
}

#[tokio::test]
async fn rfc4475_torture_messages_over_udp_and_tcp_during_a_call() {
    let customer = Daemon::spawn("customer", "").await;
    let (mut table, mut wrong) = during_a_call(Carrier::Udp, &customer).await;
    let (tcp_table, tcp_wrong) = during_a_call(Carrier::Tcp, &customer).await;
    table.extend(tcp_table);
    wrong.extend(tcp_wrong);
    if std::env::var_os("RFC4475_TABLE").is_some() {
        println!("| carrier | § | message | expected | ours | |\n|---|---|---|---|---|---|\n{}", table.join("\n"));
    }
    assert!(wrong.is_empty(), "{}\n\n{}", wrong.join("\n"), table.join("\n"));
}

/// A TCP peer that announces a body and stops mid-message is let go in
/// under 10 s; the answer to a whole message on the same connection came first.
#[tokio::test]
async fn a_tcp_connection_stalled_mid_message_is_closed_within_10_s() {
    let (_agent, _udp, tcp) = spawn_agent().await;
    let mut stream = TcpStream::connect(&tcp).await.unwrap();
    let whole = data("mismatch01");
    let clerr = data("clerr");
    stream.write_all(&whole).await.unwrap();
    stream.write_all(&clerr).await.unwrap();
    let started = std::time::Instant::now();
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(15), stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
            Err(_) => panic!("the stalled connection is still open after 15 s"),
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("SIP/2.0 400 CSeq Method Does Not Match Request Method\r\n"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(10), "closed after {:?}", started.elapsed());
}
