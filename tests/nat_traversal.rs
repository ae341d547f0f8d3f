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
//! interface (the RTP that crossed the NAT back).

mod common;

use std::path::Path;
use std::time::Duration;

use common::capture::{ulaw_window, Capture, RtpSeen};
use common::netns::{link, Netns};
use common::sipp::{write_tone_file, Sipp};
use common::{require_tools, Daemon, Setup};
use serde_json::{json, Value};
use softphoned::audio::analysis::tone_amplitude;
use softphoned::control::client::Client;

const HOME: &str = "192.0.2.10";
const ROUTER_LAN: &str = "192.0.2.1";
const PUBLIC: &str = "203.0.113.1";
const PBX: &str = "203.0.113.2";
/// The agent's SIP port, which the router's masquerade keeps.
const AGENT_PORT: u16 = 5062;
/// A home router forgets an idle UDP mapping after this long.
const NAT_UDP_TIMEOUT_S: u32 = 4;
const WAIT: Duration = Duration::from_secs(15);

struct Site {
    home: Netns,
    router: Netns,
    pbx: Netns,
    kamailio: Background,
    _stun: Background,
    work: tempfile::TempDir,
}

/// A process started with `ip netns exec`, killed on drop.
struct Background {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Background {
    fn start(mut command: std::process::Command, log: &Path) -> Background {
        let file = std::fs::File::create(log).unwrap();
        let child = command
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("{command:?}: {e}"));
        Background { child, log: log.into() }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Site {
    /// `outbound`: the registrar answers `Require: outbound` (RFC 5626).
    fn build(outbound: bool) -> Site {
        let (home, router, pbx) = (Netns::new("home"), Netns::new("router"), Netns::new("pbx"));
        link(&home, "lan0", &format!("{HOME}/24"), &router, "lan1", &format!("{ROUTER_LAN}/24"));
        link(&router, "wan0", &format!("{PUBLIC}/24"), &pbx, "wan1", &format!("{PBX}/24"));
        home.default_route(ROUTER_LAN);
        router.masquerade("wan0", NAT_UDP_TIMEOUT_S);
        let work = tempfile::tempdir().unwrap();
        write_tone_file(work.path());
        let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kamailio/nat.cfg");
        let mut kamailio = pbx.command("kamailio");
        kamailio.args(["-f", config, "-DD", "-E", "-m", "32", "-M", "4", "-A", &format!("SIP_ADDR={PBX}")]);
        if outbound {
            kamailio.args(["-A", "OUTBOUND"]);
        }
        kamailio.arg("-Y").arg(work.path());
        let kamailio = Background::start(kamailio, &work.path().join("kamailio.log"));
        let mut stun = pbx.command("turnserver");
        stun.args(["-n", "--stun-only", "--no-cli", "--no-tls", "--no-dtls", "--log-file=stdout"]);
        stun.args(["-L", PBX, "-p", "3478", "--simple-log"]);
        let stun = Background::start(stun, &work.path().join("coturn.log"));
        for (what, port) in [("kamailio", 5060), ("coturn", 3478)] {
            wait_bound(&pbx, port, what);
        }
        Site { home, router, pbx, kamailio, _stun: stun, work }
    }

    /// The agent; `stun`: with coturn as `nat.stun_server`.
    async fn agent(&self, stun: bool) -> Daemon {
        let nat =
            if stun { format!("[nat]\nstun_server = \"{PBX}:3478\"\nstun_interval_s = 5\n") } else { String::new() };
        let extra = format!(
            "{nat}\
             [audio]\nsource = \"tone:440\"\nsink = \"null\"\n\
             [[accounts]]\nid = \"alice\"\naor = \"sip:alice@{PBX}\"\nregistrar = \"sip:{PBX}\"\n\
             keepalive_s = 2\nexpires_s = 300\nauto_answer_after_ms = 0\ncodecs = [\"pcmu\"]\n"
        );
        let listen = format!("udp:0.0.0.0:{AGENT_PORT}");
        let setup =
            Setup { listen: &[listen.as_str()], extra: &extra, netns: Some(&self.home.name), ..Setup::default() };
        Daemon::spawn_with("alice", setup).await
    }

    /// The REGISTERs Kamailio logged: (source, Contact).
    fn registers(&self) -> Vec<(String, String)> {
        self.kamailio
            .log()
            .lines()
            .filter_map(|line| {
                let rest = line.split("REGISTER alice from ").nth(1)?;
                let (source, contact) = rest.split_once(" contact ")?;
                let contact = contact.split(" (From").next()?;
                Some((source.to_string(), contact.to_string()))
            })
            .collect()
    }
}

fn wait_bound(netns: &Netns, port: u16, what: &str) {
    for _ in 0..500 {
        if netns.udp_bound(port) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} did not bind port {port} in {}", netns.name);
}

async fn registered(ui: &mut Client) -> Value {
    let list = ui.call("account.list", json!({})).await.unwrap();
    if list["accounts"][0]["registration"]["state"] == "registered" {
        return list["accounts"][0]["registration"].clone();
    }
    let event = ui.wait_event(WAIT, |e| e["method"] == "registration.state" && e["params"]["state"] == "registered");
    event.await.expect("registered through the NAT")["params"].clone()
}

/// The port of the first `m=audio` in an SDP that `log` (sipp's) shows
/// after `marker`.
fn audio_port_after(log: &str, marker: &str) -> u16 {
    let from = log.find(marker).unwrap_or_else(|| panic!("no {marker:?} in sipp's log:\n{log}"));
    let line = log[from..].lines().find(|l| l.starts_with("m=audio ")).expect("an SDP with m=audio");
    line.split(' ').nth(1).unwrap().parse().unwrap()
}

/// Level of `hz` in the last `secs` of μ-law RTP captured.
fn level(packets: &[RtpSeen], hz: f64, secs: f64) -> f64 {
    tone_amplitude(&ulaw_window(packets, secs + 0.2, secs), 8000, hz)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_behind_a_home_nat_registers_stays_reachable_and_talks_both_ways() {
    if !require_tools(&["kamailio", "turnserver", "sipp", "tcpdump", "tshark", "nft", "conntrack", "sox"]) {
        return;
    }
    let site = Site::build(false);
    let agent = site.agent(true).await;
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
    let caller = |scenario: &str, args: &[&str]| {
        Sipp::start_in(&site.pbx, PBX, site.work.path(), scenario, (5090, CUSTOMER_MEDIA), args)
    };
    let talk = Talk::listen(&site);
    let log =
        caller("uac_call_tone.xml", &[&format!("{PBX}:5060"), "-s", "alice", "-d", "3000"]).expect_success().await;
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
    let customer = Sipp::start_in(&site.pbx, PBX, site.work.path(), "uas_tone.xml", (5080, CUSTOMER_MEDIA), &[]);
    let call = common::dial(&mut ui, &format!("sip:customer@{PBX}:5080")).await;
    common::wait_call_counter(&mut ui, &call, "packets_received", 100).await;
    let forgotten = epoch_now();
    site.router.forget_mappings();
    tokio::time::sleep(Duration::from_secs(2)).await;
    ui.call("call.hangup", json!({ "call": call })).await.unwrap();
    let log = customer.expect_success().await;
    let invite = &log[log.find("INVITE sip:customer").expect("the INVITE in sipp's log")..];
    let invite = &invite[..invite.find("\n\n\n").unwrap_or(invite.len())];
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
    let log =
        caller("uac_call_tone.xml", &[&format!("{PBX}:5060"), "-s", "alice", "-d", "3000"]).expect_success().await;
    // A NAT that maps at random also gives our RTP a port our SDP cannot
    // know: the customer hears us (our RTP makes its mapping); the way back
    // needs a relay or a far end that follows where RTP comes from.
    drop(log);
    talk.check_customer_hears(2.0);
    assert!(site.kamailio.log().contains(&format!("goes to sip:{new_source}")), "{}", site.kamailio.log());
    drop(agent);
}

/// The sipp customer's media port on the PBX.
const CUSTOMER_MEDIA: u16 = 40000;

/// RTP captured on both sides of the NAT during one call: what reached
/// the customer's media port at the PBX, and what came back to the agent.
struct Talk {
    dirs: [tempfile::TempDir; 2],
    at_pbx: Capture,
    at_home: Capture,
}

impl Talk {
    fn listen(site: &Site) -> Talk {
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let at_pbx = Capture::start_in(
            &site.pbx,
            "wan1",
            dirs[0].path(),
            &format!("dst host {PBX} and dst port {CUSTOMER_MEDIA}"),
        );
        let at_home = Capture::start_in(
            &site.home,
            "lan0",
            dirs[1].path(),
            &format!("dst host {HOME} and not port {AGENT_PORT}"),
        );
        Talk { dirs, at_pbx, at_home }
    }

    /// Stop both captures: (at the PBX, back home at `agent_media`).
    fn stop(self, agent_media: u16) -> (Vec<RtpSeen>, Vec<RtpSeen>) {
        let seen = (self.at_pbx.stop(CUSTOMER_MEDIA), self.at_home.stop(agent_media));
        drop(self.dirs);
        seen
    }

    /// The customer heard the agent's 440 Hz over the last `secs` of the call.
    fn check_customer_hears(self, secs: f64) {
        let (at_pbx, _) = self.stop(0);
        assert!(at_pbx.len() > 40, "the agent's RTP reached the PBX: {} packets", at_pbx.len());
        assert!(level(&at_pbx, 440.0, secs) > 1000.0, "the customer hears the agent's 440 Hz");
    }

    /// [`check_talk`] over the whole call, the agent's media port being `agent_media`.
    fn check(self, agent_media: u16, secs: f64) {
        let (at_pbx, at_home) = self.stop(agent_media);
        check_talk(&at_pbx, &at_home, secs);
    }
}

/// The customer heard the agent's 440 Hz, and the agent the customer's
/// 1 kHz, over the last `secs` of what was captured.
fn check_talk(at_pbx: &[RtpSeen], at_home: &[RtpSeen], secs: f64) {
    assert!(at_pbx.len() > 40 && at_home.len() > 40, "RTP both ways: {} and {}", at_pbx.len(), at_home.len());
    assert!(level(at_pbx, 440.0, secs) > 1000.0, "the customer hears the agent's 440 Hz");
    assert!(level(at_home, 1000.0, secs) > 1000.0, "the agent hears the customer's 1 kHz");
}

fn epoch_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread")]
async fn with_an_outbound_registrar_the_flow_is_kept_by_stun_and_a_new_mapping_re_registers_at_once() {
    if !require_tools(&["kamailio", "turnserver", "sipp", "tcpdump", "tshark", "nft", "conntrack", "sox"]) {
        return;
    }
    let site = Site::build(true);
    // STUN Binding requests (type 0x0001) that reach the registrar's SIP port.
    let filter = format!("udp and src host {PUBLIC} and dst host {PBX} and dst port 5060 and udp[8:2] = 0x0001");
    let mut tcpdump = site.pbx.command("tcpdump");
    tcpdump.args(["-i", "wan1", "-n", "-l", &filter]);
    let stun_seen = Background::start(tcpdump, &site.work.path().join("stun.txt"));
    // No nat.stun_server: only the flow's own keep-alives can notice a new mapping.
    let agent = site.agent(false).await;
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
    let caller = Sipp::start_in(
        &site.pbx,
        PBX,
        site.work.path(),
        "uac_call_tone.xml",
        (5090, CUSTOMER_MEDIA),
        &[&format!("{PBX}:5060"), "-s", "alice", "-d", "3000"],
    );
    // Signalling reaches the agent through the new mapping; without STUN its
    // SDP names its private address, so only the customer hears (see above).
    caller.expect_success().await;
    talk.check_customer_hears(2.0);
    drop(agent);
}
