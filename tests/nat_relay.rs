//! An agent behind a NAT that maps every flow to a random port, as a
//! carrier-grade NAT does (`common::home`, root only): no SDP of ours can
//! name the port our RTP comes from, so a customer sending to what our SDP
//! says would never be heard back home (`nat_traversal` shows that one
//! way). Kamailio anchors the call's media on Debian's rtpengine
//! (userspace forwarding, no kernel module), which sends to where our RTP
//! really comes from: audio crosses both ways. Judged by the RTP the
//! customer received on the PBX and the RTP that came back through the NAT
//! to the agent's interface.

mod common;

use common::capture::RtpSeen;
use common::home::{check_talk, registered, Pbx, Site, Talk, PBX, PUBLIC};
use common::require_tools;

#[tokio::test(flavor = "multi_thread")]
async fn through_a_nat_that_maps_at_random_rtpengine_carries_the_audio_both_ways() {
    if !require_tools(&["kamailio", "turnserver", "rtpengine", "sipp", "tcpdump", "tshark", "nft", "sox"]) {
        return;
    }
    let site = Site::build(Pbx::Relay);
    site.router.remap_randomly("wan0");
    let agent = site.agent(Some(5), "").await;
    let mut ui = agent.client().await;
    registered(&mut ui).await;

    let talk = Talk::listen(&site);
    let log = site.call_alice("uac_call_tone.xml", &["-d", "4000"]).expect_success().await;
    let answer = &log[log.find("SIP/2.0 200 OK").expect("sipp's log shows the answer")..];
    assert!(answer.contains(&format!("c=IN IP4 {PBX}")), "the customer is answered by the relay:\n{answer}");

    // The agent's own SDP (Kamailio logged it before the relay rewrote it)
    // names STUN's public address and the port it receives on; the NAT
    // carried its RTP from another port, where rtpengine found it.
    let kamailio = site.kamailio.log();
    let ours = kamailio.lines().find_map(|l| l.split(" ANSWER from ").nth(1)).expect("Kamailio logged the answer");
    let agent_media: u16 = ours.split("m=audio ").nth(1).and_then(|m| m.split(' ').next()?.parse().ok()).unwrap();
    assert!(ours.contains(&format!("c=IN IP4 {PUBLIC}")), "our SDP names the STUN address: {ours}");
    let relay = site.relay.as_ref().unwrap().log();
    let found = format!("Confirmed peer address as {PUBLIC}:");
    let mapped: u16 = relay.split(&found).nth(1).and_then(|p| p.split_whitespace().next()?.parse().ok()).unwrap();
    assert_ne!(mapped, agent_media, "the NAT mapped our RTP elsewhere than our SDP says");

    let (at_pbx, at_home) = talk.stop(agent_media);
    check_talk(&at_pbx, &at_home, 2.0);
    let first = |p: &[RtpSeen]| p.iter().map(|p| p.time).fold(f64::MAX, f64::min);
    println!(
        "relayed: our SDP said {PUBLIC}:{agent_media}, the NAT sent from {PUBLIC}:{mapped}; \
         the customer's audio reached the agent {:.0} ms after the agent's reached the customer",
        (first(&at_home) - first(&at_pbx)) * 1000.0
    );
    drop(agent);
}
