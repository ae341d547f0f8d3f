//! An agent at home, behind a NAT, against a PBX across it: networks the
//! test builds itself out of namespaces (`common::netns`, root only).
//!
//! ```text
//!   home 192.0.2.10 ── 192.0.2.1 router 203.0.113.1 ── 203.0.113.2 pbx
//!   (softphoned on            (masquerade, UDP           (Kamailio registrar
//!    udp:0.0.0.0)              mappings forgotten         with nathelper,
//!                              after 4 s idle)            coturn STUN, sipp)
//! ```
//!
//! The PBX has no route to the home network: only the NAT's mappings
//! carry anything back. Judged on the PBX side (Kamailio's log, sipp's
//! message log, the RTP captured on its interface) and at the agent's own
//! interface (the RTP that crossed the NAT back). The site itself is
//! `common::home`; `nat_relay` has the same one with a media relay.

mod common;

use std::time::Duration;

use common::capture::{largest_gap_ms, RtpSeen};
use common::home::{
    audio_port_after, check_talk, epoch_now, level, registered, Background, Pbx, Site, Talk, AGENT_PORT,
    NAT_UDP_TIMEOUT_S, PBX, PUBLIC, WAIT,
};
use common::require_tools;
use common::sipp::logged_message;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_behind_a_home_nat_registers_stays_reachable_and_talks_both_ways() {
    if !require_tools(&["kamailio", "turnserver", "sipp", "tcpdump", "tshark", "nft", "conntrack", "sox"]) {
        return;
    }
    let site = Site::build(Pbx::Plain);
    let agent = site.agent(Some(5), "").await;
    let mut ui = agent.client().await;

    // Registered, with the address STUN (coturn) reported in its Contact.
    registered(&mut ui).await;
    let status = ui.call("daemon.status", json!({})).await.unwrap();
    assert_eq!(status["public_address"], format!("{PUBLIC}:{AGENT_PORT}"), "{status}");
    let registers = site.registers();
    let Some((source, contact)) = registers.last().cloned() else {
        panic!("Kamailio logged no REGISTER:\n{}", site.kamailio.log());
    };
    assert_eq!(source, format!("{PUBLIC}:{AGENT_PORT}"));
    assert!(contact.contains(&format!("@{PUBLIC}:{AGENT_PORT}")), "Contact names the public address: {contact}");

    // Three NAT timeouts later, only the keep-alives have kept the mapping.
    tokio::time::sleep(Duration::from_secs(3 * u64::from(NAT_UDP_TIMEOUT_S))).await;
    let keepalives = site.kamailio.log().matches(&format!("KEEPALIVE OPTIONS from {PUBLIC}")).count();
    assert!(keepalives >= 4, "keep-alives reached the registrar: {keepalives}");
    assert_eq!(site.registers().len(), registers.len(), "no REGISTER was needed meanwhile");

    // A call from the PBX side reaches the agent through the NAT, and
    // audio crosses it both ways.
    let talk = Talk::listen(&site);
    let log = site.call_alice("uac_call_tone.xml", &["-d", "3000"]).expect_success().await;
    talk.check(audio_port_after(&log, "SIP/2.0 200 OK"), 2.0);
    let kamailio = site.kamailio.log();
    assert!(
        kamailio.contains(&format!("goes to sip:{PUBLIC}:{AGENT_PORT}")),
        "routed to the NAT's mapping:\n{kamailio}"
    );

    // The agent calls a customer on the PBX side: the SDP offers the public
    // address STUN found, and audio flows both ways without any relay. Then
    // the router forgets every mapping mid-call: the agent's RTP (sent from
    // the port it receives on) makes a new one and the customer hears the
    // agent again at once.
    let talk = Talk::listen(&site);
    let customer = site.customer("uas_tone.xml", 5080, &[]);
    let call = common::dial(&mut ui, &format!("sip:customer@{PBX}:5080")).await;
    common::wait_call_counter(&mut ui, &call, "packets_received", 100).await;
    let forgotten = epoch_now();
    site.router.forget_mappings();
    tokio::time::sleep(Duration::from_secs(2)).await;
    ui.call("call.hangup", json!({ "call": call })).await.unwrap();
    let log = customer.expect_success().await;
    let invite = logged_message(&log, "INVITE sip:customer");
    assert!(invite.contains(&format!("c=IN IP4 {PUBLIC}")), "the offer names the public address:\n{invite}");
    assert!(invite.contains(&format!("@{PUBLIC}:{AGENT_PORT}>")), "the Contact names the public address:\n{invite}");
    let (at_pbx, at_home) = talk.stop(audio_port_after(invite, "INVITE sip:customer"));
    let before = |p: &[RtpSeen]| p.iter().filter(|p| p.time < forgotten).cloned().collect::<Vec<_>>();
    check_talk(&before(&at_pbx), &before(&at_home), 1.0);
    let after = |p: &[RtpSeen]| p.iter().filter(|p| p.time > forgotten + 0.3).count();
    // Within 2 s: ~100 packets at 50 a second; half of them is "at once".
    assert!(after(&at_pbx) >= 50, "the agent is heard again after the NAT forgot: {} packets", after(&at_pbx));
    // The way back needs the NAT to give the same port again, or a far end
    // that follows where RTP comes from (symmetric RTP): sipp does not.
    println!(
        "after the NAT forgot its mappings: {} packets reached the PBX, {} came back",
        after(&at_pbx),
        after(&at_home)
    );

    // Mid-registration the NAT forgets us and maps us anew elsewhere: the
    // next keep-alive's answer (or STUN) shows it, the agent registers from
    // the new mapping at once, and the PBX's next call reaches it there.
    let registered_from = site.registers().len();
    site.router.remap_randomly("wan0");
    site.router.forget_mappings();
    let forgotten = std::time::Instant::now();
    let new_source = loop {
        let registers = site.registers();
        if let Some((source, _)) = registers.get(registered_from..).and_then(|new| new.last()) {
            break source.clone();
        }
        assert!(forgotten.elapsed() < WAIT, "no REGISTER from the new mapping:\n{}", agent.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!("a new mapping noticed and registered from {new_source} in {:?}", forgotten.elapsed());
    assert_ne!(new_source, format!("{PUBLIC}:{AGENT_PORT}"), "the NAT really mapped us elsewhere");
    let talk = Talk::listen(&site);
    let log = site.call_alice("uac_call_tone.xml", &["-d", "3000"]).expect_success().await;
    // A NAT that maps at random also gives our RTP a port our SDP cannot
    // know: the customer hears us (our RTP makes its mapping); the way back
    // needs a relay or a far end that follows where RTP comes from.
    drop(log);
    talk.check_customer_hears(2.0);
    assert!(site.kamailio.log().contains(&format!("goes to sip:{new_source}")), "{}", site.kamailio.log());
    drop(agent);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_an_outbound_registrar_the_flow_is_kept_by_stun_and_a_new_mapping_re_registers_at_once() {
    if !require_tools(&["kamailio", "turnserver", "sipp", "tcpdump", "tshark", "nft", "conntrack", "sox"]) {
        return;
    }
    let site = Site::build(Pbx::Outbound);
    // STUN Binding requests (type 0x0001) that reach the registrar's SIP port.
    let filter = format!("udp and src host {PUBLIC} and dst host {PBX} and dst port 5060 and udp[8:2] = 0x0001");
    let mut tcpdump = site.pbx.command("tcpdump");
    tcpdump.args(["-i", "wan1", "-n", "-l", &filter]);
    let stun_seen = Background::start(tcpdump, &site.work.path().join("stun.txt"));
    // No nat.stun_server: only the flow's own keep-alives can notice a new mapping.
    let agent = site.agent(None, "").await;
    let mut ui = agent.client().await;
    let registration = registered(&mut ui).await;
    assert_eq!(registration["flow"]["keepalive"], "stun", "{registration}");
    assert_eq!(registration["flow"]["outbound"], true, "{registration}");
    let registers = site.registers();
    let (_, contact) = registers.last().expect("Kamailio logged the REGISTER");
    assert!(
        contact.contains("+sip.instance=\"<urn:uuid:") && contact.contains("reg-id=1"),
        "RFC 5626 Contact: {contact}"
    );

    // Three NAT timeouts: STUN alone keeps the mapping (no OPTIONS at all).
    tokio::time::sleep(Duration::from_secs(3 * u64::from(NAT_UDP_TIMEOUT_S))).await;
    let stun_requests = stun_seen.log().lines().filter(|l| l.contains(" > ")).count();
    assert!(stun_requests >= 4, "STUN keep-alives reached the registrar: {stun_requests}\n{}", stun_seen.log());
    assert!(!site.kamailio.log().contains("KEEPALIVE OPTIONS"), "no OPTIONS keep-alive with an outbound registrar");
    assert_eq!(site.registers().len(), registers.len(), "no REGISTER was needed meanwhile");

    // The NAT forgets us and maps us anew: the next STUN answer shows it.
    let registered_from = site.registers().len();
    site.router.remap_randomly("wan0");
    site.router.forget_mappings();
    let forgotten = std::time::Instant::now();
    let new_source = loop {
        if let Some((source, _)) = site.registers().get(registered_from..).and_then(|new| new.last().cloned()) {
            break source;
        }
        assert!(forgotten.elapsed() < WAIT, "no REGISTER from the new mapping:\n{}", agent.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!("outbound flow: a new mapping noticed and registered from {new_source} in {:?}", forgotten.elapsed());
    let announced = |e: &Value| e["params"]["reason"].as_str().is_some_and(|r| r.contains("the NAT maps us at"));
    let event = ui.wait_event(WAIT, |e| e["method"] == "registration.state" && announced(e));
    let reason = event.await.expect("the flow change is announced")["params"]["reason"].clone();
    assert!(reason.as_str().is_some_and(|r| r.contains("the NAT maps us at")), "{reason}");
    let talk = Talk::listen(&site);
    let caller = site.call_alice("uac_call_tone.xml", &["-d", "3000"]);
    // Signalling reaches the agent through the new mapping; without STUN its
    // SDP names its private address, so only the customer hears (see above).
    caller.expect_success().await;
    talk.check_customer_hears(2.0);
    drop(agent);
}

/// The customer holds the agent (`sendonly`, and sends nothing: no music on
/// hold) for 2.5 NAT timeouts, then resumes. Meanwhile only the agent's
/// empty RTP keep-alives (RFC 6263, every second here) cross the NAT, and
/// they keep its mapping of the agent's RTP port: the customer's audio
/// reaches the agent again at once. From the call's start on the router
/// maps every new flow at random, so a mapping lost would come back
/// elsewhere than the agent's SDP says and the customer would never be
/// heard again (as `media.rtp_keepalive_ms = 1000` shows).
#[tokio::test(flavor = "multi_thread")]
async fn through_a_long_hold_our_rtp_keep_alives_keep_the_nat_mapping() {
    if !require_tools(&["kamailio", "turnserver", "sipp", "tcpdump", "tshark", "nft", "sox"]) {
        return;
    }
    let site = Site::build(Pbx::Plain);
    // STUN asked once, at start: asked again after the router turns random,
    // it would report a new mapping for the SIP socket.
    let agent = site.agent(Some(3600), "[media]\nrtp_keepalive_ms = 1000\n").await;
    let mut ui = agent.client().await;
    registered(&mut ui).await;
    let talk = Talk::listen(&site);
    let hold_ms = 2500 * u64::from(NAT_UDP_TIMEOUT_S);
    let customer = site.call_alice("uac_hold_tone.xml", &["-d", &hold_ms.to_string()]);
    common::wait_media_counter(&mut ui, "packets_received", 25).await;
    site.router.remap_randomly("wan0");
    let log = customer.expect_success().await;
    let (at_pbx, at_home) = talk.stop(audio_port_after(&log, "SIP/2.0 200 OK"));

    // At the PBX: the agent's audio, then keep-alives through the hold.
    let keepalives: Vec<f64> = at_pbx.iter().filter(|p| p.payload.is_empty()).map(|p| p.time).collect();
    let hold_s = hold_ms as f64 / 1000.0;
    assert!(keepalives.len() as f64 >= hold_s / 2.0, "keep-alives while held: {}", keepalives.len());
    // Half the NAT's timeout: no mapping of the agent's port was forgotten.
    let quiet_ms = largest_gap_ms(&at_pbx);
    let limit_ms = 500.0 * f64::from(NAT_UDP_TIMEOUT_S);
    assert!(quiet_ms < limit_ms, "the agent's port was quiet {quiet_ms:.0} ms: a NAT forgets it after {limit_ms:.0}");

    // Back home: the customer's tone, a silence as long as the hold, then
    // the tone again from the first packet sent after the resume on.
    let mut heard: Vec<&RtpSeen> = at_home.iter().collect();
    heard.sort_by(|a, b| a.time.total_cmp(&b.time));
    let end = |p: &[RtpSeen]| p.iter().map(|p| p.time).fold(f64::MIN, f64::max);
    let silent_at_end = end(&at_pbx) - end(&at_home);
    assert!(silent_at_end < 0.5, "the customer's audio stopped reaching the agent {silent_at_end:.1} s before the end");
    let (gap_at, gap_s) = (1..heard.len())
        .map(|i| (i, heard[i].time - heard[i - 1].time))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .expect("the customer's audio reached the agent");
    assert!(gap_s > f64::from(NAT_UDP_TIMEOUT_S), "the customer sent nothing while holding: {gap_s:.1} s");
    let (before, after) = heard.split_at(gap_at);
    let resumed = after.len();
    assert!(resumed >= 120, "3 s of the customer's audio after the resume reached the agent: {resumed} packets");
    let next = before.last().unwrap().sequence.wrapping_add(1) & 0xffff;
    assert_eq!(after[0].sequence, next, "the first packet the customer sent after the resume arrived");
    assert!(level(&at_home, 1000.0, 2.0) > 1000.0, "the agent hears the customer's 1 kHz after the hold");
    println!(
        "held {gap_s:.1} s ({} s NAT timeout): {} keep-alives, the agent's port quiet at most {quiet_ms:.0} ms; \
         after the resume {resumed} packets of the customer reached the agent, none lost",
        NAT_UDP_TIMEOUT_S,
        keepalives.len()
    );
    drop(agent);
}
