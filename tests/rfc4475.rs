//! RFC 4475's torture messages (§3.1.1 valid, §3.1.2 invalid, §3.2, §3.3
//! and the RFC 2543-style INVITE of §3.4), sent byte for byte from
//! `tests/rfc4475/*.dat` over UDP to a real daemon that has a call in
//! progress with a second daemon. Each message gets the answer RFC 4475
//! asks for (or silence), the call goes on, and the daemon stays up.
//!
//! `RFC4475_TABLE=1` prints message → expected → ours.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{dial, media_counter, wait_media_counter, Daemon};
use serde_json::json;
use softphoned::control::client::is_call_state;
use tokio::net::UdpSocket;

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

/// Every answer to one datagram: the first within `first`, then whatever
/// follows within a short while (an INVITE gets 100, then 180).
async fn answers(socket: &UdpSocket, first: Duration) -> Vec<String> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    let mut limit = first;
    while let Ok(Ok((len, _))) = tokio::time::timeout(limit, socket.recv_from(&mut buf)).await {
        got.push(String::from_utf8_lossy(&buf[..len]).into_owned());
        limit = Duration::from_millis(300);
    }
    got
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

#[tokio::test]
async fn rfc4475_torture_messages_over_udp_during_a_call() {
    let agent = Daemon::spawn("agent", "[agent]\nring_timeout_ms = 60000").await;
    let customer = Daemon::spawn("customer", "").await;
    let mut ui = agent.client().await;
    let mut customer_ui = customer.client().await;

    // A call in progress: the agent calls the customer, who answers.
    let call = dial(&mut ui, &customer.uri("customer")).await;
    let incoming = customer_ui.wait_event(WAIT, |e| e["params"]["state"] == "incoming").await.unwrap();
    customer_ui.call("call.answer", json!({"call": incoming["params"]["call"]})).await.unwrap();
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
    wait_media_counter(&mut ui, "packets_received", 10).await;

    let target = format!("127.0.0.1:{}", agent.sip_port);
    let mut table = Vec::new();
    let mut wrong = Vec::new();
    for &(section, name, expect) in MESSAGES {
        // A socket of its own: late answers cannot be mistaken for the next one's.
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let bytes = data(name);
        socket.send_to(&bytes, &target).await.unwrap();
        let wait = if expect == Silence { Duration::from_millis(1500) } else { Duration::from_secs(3) };
        let got = answers(&socket, wait).await;
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
        let request_to = header(&String::from_utf8_lossy(&bytes), &["To", "t"]);
        for response in &got {
            let (Some(sent), Some(back)) = (request_to.as_deref(), header(response, &["To", "t"])) else { continue };
            if uri_of(sent) != uri_of(&back) {
                wrong.push(format!("{name}: To changed: sent {sent:?}, got {back:?}"));
            }
        }
        if !ok {
            wrong.push(format!("{name}: expected {expect:?}, got {ours}"));
        }
        table.push(format!("| {section} | {name} | {expect:?} | {ours} | {} |", if ok { "ok" } else { "WRONG" }));
    }
    if let Ok(needle) = std::env::var("RFC4475_LOG") {
        agent.log().lines().filter(|l| l.contains(&needle)).for_each(|l| println!("{l}"));
    }
    if std::env::var_os("RFC4475_TABLE").is_some() {
        println!("| § | message | expected | ours | |\n|---|---|---|---|---|\n{}", table.join("\n"));
    }

    // The call went on through all of it, and the daemon still answers.
    let before = media_counter(&mut ui, "packets_received").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = media_counter(&mut ui, "packets_received").await;
    assert!(after > before + 10, "RTP still flows: {before} → {after}");
    let list = ui.call("call.list", json!({})).await.unwrap();
    let ours = list["calls"].as_array().unwrap().iter().find(|c| c["call"] == call.as_str()).cloned();
    assert_eq!(ours.map(|c| c["state"].clone()), Some(json!("connected")), "{list}");
    assert!(wrong.is_empty(), "{}\n\n{}", wrong.join("\n"), table.join("\n"));
}
