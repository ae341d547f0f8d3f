//! A wildcard listener on real interfaces, in networks the test builds
//! itself (`common::netns`, root only):
//!
//! - a host with two interfaces on two networks advertises, to each peer,
//!   the address the route to that peer leaves from (Via, Contact, SDP);
//! - an IPv6-only path carries a whole call, signalling and media.
//!
//! Judged by what each sipp peer logged (its INVITE's headers and offer)
//! and by the RTP captured at the peer's interface.

mod common;

use common::capture::{ulaw_window, Capture};
use common::netns::{link, Netns};
use common::sipp::{write_tone_file, Sipp};
use common::{require_tools, Daemon, Setup};
use serde_json::json;
use softphoned::audio::analysis::tone_amplitude;

const PEER_SIP: u16 = 5080;
const PEER_MEDIA: u16 = 40000;

/// The agent, listening on `listen` (a wildcard) inside `home`, sending a 440 Hz tone.
async fn agent(home: &Netns, listen: &str) -> Daemon {
    let extra = "[audio]\nsource = \"tone:440\"\nsink = \"null\"\n[media]\ncodecs = [\"pcmu\"]\n";
    Daemon::spawn_with("agent", Setup { listen: &[listen], extra, netns: Some(&home.name), ..Setup::default() }).await
}

/// Call the sipp customer at `uri` for a moment, hang up, and return
/// sipp's message log and the RTP that reached its media port at `ip`.
async fn call(agent: &Daemon, peer: &Netns, interface: &str, ip: &str, uri: &str) -> (String, f64) {
    let work = tempfile::tempdir().unwrap();
    write_tone_file(work.path());
    let capture = Capture::start_in(peer, interface, work.path(), &format!("dst host {ip} and dst port {PEER_MEDIA}"));
    let customer = Sipp::start_in(peer, ip, work.path(), "uas_tone.xml", (PEER_SIP, PEER_MEDIA), &[]);
    let mut ui = agent.client().await;
    let call = common::dial(&mut ui, uri).await;
    common::wait_call_counter(&mut ui, &call, "packets_received", 60).await;
    ui.call("call.hangup", json!({ "call": call })).await.unwrap();
    let log = customer.expect_success().await;
    let heard = capture.stop(PEER_MEDIA);
    assert!(heard.len() > 50, "the agent's RTP reached {ip}: {} packets", heard.len());
    (log, tone_amplitude(&ulaw_window(&heard, 1.0, 0.8), 8000, 440.0))
}

/// The INVITE as sipp logged it.
fn invite(log: &str) -> &str {
    let from = log.find("INVITE sip:").expect("sipp logged the INVITE");
    let rest = &log[from..];
    &rest[..rest.find("\n\n\n").unwrap_or(rest.len())]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wildcard_listener_advertises_to_each_peer_the_interface_that_reaches_it() {
    if !require_tools(&["sipp", "tcpdump", "tshark", "sox"]) {
        return;
    }
    let (home, office, lab) = (Netns::new("two-if"), Netns::new("office"), Netns::new("lab"));
    link(&home, "office0", "198.51.100.10/24", &office, "eth0", "198.51.100.1/24");
    link(&home, "lab0", "203.0.113.10/24", &lab, "eth0", "203.0.113.1/24");
    let agent = agent(&home, "udp:0.0.0.0:5062").await;
    for (peer, ip, ours) in [(&office, "198.51.100.1", "198.51.100.10"), (&lab, "203.0.113.1", "203.0.113.10")] {
        let (log, level) = call(&agent, peer, "eth0", ip, &format!("sip:customer@{ip}:{PEER_SIP}")).await;
        let invite = invite(&log);
        assert!(invite.contains(&format!("Via: SIP/2.0/UDP {ours}:5062")), "Via names {ours}:\n{invite}");
        assert!(invite.contains(&format!("@{ours}:5062")), "Contact names {ours}:\n{invite}");
        assert!(invite.contains(&format!("c=IN IP4 {ours}")), "the offer names {ours}:\n{invite}");
        assert!(level > 1000.0, "the customer at {ip} hears the agent's tone: {level}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ipv6_only_path_carries_a_whole_call() {
    if !require_tools(&["sipp", "tcpdump", "tshark", "sox"]) {
        return;
    }
    let (home, peer) = (Netns::new("v6-home"), Netns::new("v6-peer"));
    // No IPv4 address anywhere but loopback.
    link(&home, "v6a", "2001:db8::10/64", &peer, "v6b", "2001:db8::1/64");
    let agent = agent(&home, "udp:[::]:5062").await;
    let (log, level) =
        call(&agent, &peer, "v6b", "2001:db8::1", &format!("sip:customer@[2001:db8::1]:{PEER_SIP}")).await;
    let invite = invite(&log);
    assert!(invite.contains("c=IN IP6 2001:db8::10"), "the offer is IPv6:\n{invite}");
    assert!(invite.contains("[2001:db8::10]:5062"), "Via and Contact name our IPv6 address:\n{invite}");
    assert!(log.contains("BYE sip:"), "the call ended with our BYE:\n{log}");
    assert!(level > 1000.0, "the customer hears the agent over IPv6: {level}");
}
