//! An agent at home, behind a NAT, against a PBX across it: the network the
//! NAT tests (`nat_traversal`, `nat_relay`) build out of namespaces
//! ([`super::netns`], root only), the servers on its PBX side, and the
//! captures that judge the audio on both sides of the NAT.
//!
//! ```text
//!   home 192.0.2.10 ── 192.0.2.1 router 203.0.113.1 ── 203.0.113.2 pbx
//!   (softphoned on            (masquerade, UDP           (Kamailio registrar
//!    udp:0.0.0.0)              mappings forgotten         with nathelper,
//!                              after 4 s idle)            coturn STUN, sipp,
//!                                                         rtpengine if asked)
//! ```
//!
//! The PBX has no route to the home network: only the NAT's mappings
//! carry anything back.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use softphoned::audio::analysis::tone_amplitude;
use softphoned::control::client::Client;

use super::capture::{ulaw_window, Capture, RtpSeen};
use super::netns::{link, Netns};
use super::sipp::{write_tone_file, Sipp};
use super::{Daemon, Setup};

pub const HOME: &str = "192.0.2.10";
pub const ROUTER_LAN: &str = "192.0.2.1";
pub const PUBLIC: &str = "203.0.113.1";
pub const PBX: &str = "203.0.113.2";
/// The agent's SIP port, which the router's masquerade keeps.
pub const AGENT_PORT: u16 = 5062;
/// A home router forgets an idle UDP mapping after this long.
pub const NAT_UDP_TIMEOUT_S: u32 = 4;
pub const WAIT: Duration = Duration::from_secs(15);
/// The sipp customer's media port on the PBX.
pub const CUSTOMER_MEDIA: u16 = 40000;
/// rtpengine's ng control port on the PBX, and the ports it relays on.
const RTPENGINE_NG: u16 = 2223;
const RELAY_PORTS: (u16, u16) = (30000, 30100);

/// What the PBX side runs besides its registrar and STUN server.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Pbx {
    /// Kamailio as registrar and proxy; media goes end to end.
    Plain,
    /// The registrar answers `Require: outbound` (RFC 5626).
    Outbound,
    /// Kamailio anchors every call's media on rtpengine (userspace, no
    /// kernel module), which learns where the agent's RTP really comes from.
    Relay,
}

pub struct Site {
    pub home: Netns,
    pub router: Netns,
    pub pbx: Netns,
    pub kamailio: Background,
    _stun: Background,
    /// rtpengine, with [`Pbx::Relay`].
    pub relay: Option<Background>,
    pub work: tempfile::TempDir,
}

/// A process started with `ip netns exec`, killed on drop with every
/// process it forked (Kamailio's workers outlive a killed main process).
pub struct Background {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Background {
    pub fn start(mut command: std::process::Command, log: &Path) -> Background {
        use std::os::unix::process::CommandExt;
        let file = std::fs::File::create(log).unwrap();
        let child = command
            .process_group(0)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("{command:?}: {e}"));
        Background { child, log: log.into() }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = std::process::Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

impl Site {
    pub fn build(pbx_kind: Pbx) -> Site {
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
        match pbx_kind {
            Pbx::Plain => {}
            Pbx::Outbound => {
                kamailio.args(["-A", "OUTBOUND"]);
            }
            Pbx::Relay => {
                kamailio.args(["-A", &format!("RTPENGINE=\"udp:{PBX}:{RTPENGINE_NG}\"")]);
            }
        }
        kamailio.arg("-Y").arg(work.path());
        let mut bound = vec![("coturn", 3478)];
        let mut stun = pbx.command("turnserver");
        stun.args(["-n", "--stun-only", "--no-cli", "--no-tls", "--no-dtls", "--log-file=stdout"]);
        stun.args(["-L", PBX, "-p", "3478", "--simple-log"]);
        let stun = Background::start(stun, &work.path().join("coturn.log"));
        let relay = (pbx_kind == Pbx::Relay).then(|| {
            // Userspace forwarding only (table -1): no kernel module is loaded
            // or needed; no config file of the host's is read.
            let mut rtpengine = pbx.command("rtpengine");
            rtpengine.args(["--config-file=none", "--foreground", "--log-stderr", "--table=-1", "-L", "6"]);
            rtpengine.args([&format!("--interface={PBX}"), &format!("--listen-ng={PBX}:{RTPENGINE_NG}")]);
            rtpengine.args([&format!("--port-min={}", RELAY_PORTS.0), &format!("--port-max={}", RELAY_PORTS.1)]);
            bound.push(("rtpengine", RTPENGINE_NG));
            Background::start(rtpengine, &work.path().join("rtpengine.log"))
        });
        // Kamailio last: its rtpengine module asks the relay at start.
        for (what, port) in bound {
            wait_bound(&pbx, port, what);
        }
        let kamailio = Background::start(kamailio, &work.path().join("kamailio.log"));
        wait_bound(&pbx, 5060, "kamailio");
        Site { home, router, pbx, kamailio, _stun: stun, relay, work }
    }

    /// The agent; `stun_interval_s`: with coturn as `nat.stun_server`,
    /// asked that often; `more`: TOML tables appended to its config.
    pub async fn agent(&self, stun_interval_s: Option<u32>, more: &str) -> Daemon {
        let nat = match stun_interval_s {
            Some(every) => format!("[nat]\nstun_server = \"{PBX}:3478\"\nstun_interval_s = {every}\n"),
            None => String::new(),
        };
        let extra = format!(
            "{nat}\
             [audio]\nsource = \"tone:440\"\nsink = \"null\"\n\
             [[accounts]]\nid = \"alice\"\naor = \"sip:alice@{PBX}\"\nregistrar = \"sip:{PBX}\"\n\
             keepalive_s = 2\nexpires_s = 300\nauto_answer_after_ms = 0\ncodecs = [\"pcmu\"]\n{more}"
        );
        let listen = format!("udp:0.0.0.0:{AGENT_PORT}");
        let setup =
            Setup { listen: &[listen.as_str()], extra: &extra, netns: Some(&self.home.name), ..Setup::default() };
        Daemon::spawn_with("alice", setup).await
    }

    /// The REGISTERs Kamailio logged: (source, Contact).
    pub fn registers(&self) -> Vec<(String, String)> {
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

    /// A sipp on the PBX side, SIP on `port`, media on [`CUSTOMER_MEDIA`].
    pub fn customer(&self, scenario: &str, port: u16, args: &[&str]) -> Sipp {
        Sipp::start_in(&self.pbx, PBX, self.work.path(), scenario, (port, CUSTOMER_MEDIA), args)
    }

    /// A sipp customer calling alice through Kamailio, `more` args after
    /// the target (e.g. `-d` for the call's length).
    pub fn call_alice(&self, scenario: &str, more: &[&str]) -> Sipp {
        let registrar = format!("{PBX}:5060");
        let mut args = vec![registrar.as_str(), "-s", "alice"];
        args.extend_from_slice(more);
        self.customer(scenario, 5090, &args)
    }
}

pub fn wait_bound(netns: &Netns, port: u16, what: &str) {
    for _ in 0..500 {
        if netns.udp_bound(port) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} did not bind port {port} in {}", netns.name);
}

pub async fn registered(ui: &mut Client) -> Value {
    let list = ui.call("account.list", json!({})).await.unwrap();
    if list["accounts"][0]["registration"]["state"] == "registered" {
        return list["accounts"][0]["registration"].clone();
    }
    let event = ui.wait_event(WAIT, |e| e["method"] == "registration.state" && e["params"]["state"] == "registered");
    event.await.expect("registered through the NAT")["params"].clone()
}

/// The port of the first `m=audio` in an SDP that `log` (sipp's) shows
/// after `marker`.
pub fn audio_port_after(log: &str, marker: &str) -> u16 {
    let from = log.find(marker).unwrap_or_else(|| panic!("no {marker:?} in sipp's log:\n{log}"));
    let line = log[from..].lines().find(|l| l.starts_with("m=audio ")).expect("an SDP with m=audio");
    line.split(' ').nth(1).unwrap().parse().unwrap()
}

/// Level of `hz` in the last `secs` of μ-law RTP captured.
pub fn level(packets: &[RtpSeen], hz: f64, secs: f64) -> f64 {
    tone_amplitude(&ulaw_window(packets, secs + 0.2, secs), 8000, hz)
}

/// RTP captured on both sides of the NAT during one call: what reached
/// the customer's media port at the PBX, and what came back to the agent.
pub struct Talk {
    dirs: [tempfile::TempDir; 2],
    at_pbx: Capture,
    at_home: Capture,
}

impl Talk {
    pub fn listen(site: &Site) -> Talk {
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        // A relay beside the customer hands the agent's audio over on the
        // PBX's own loopback; without one it comes in from the NAT.
        let way_in = if site.relay.is_some() { "lo" } else { "wan1" };
        let at_pbx = Capture::start_in(
            &site.pbx,
            way_in,
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
    pub fn stop(self, agent_media: u16) -> (Vec<RtpSeen>, Vec<RtpSeen>) {
        let seen = (self.at_pbx.stop(CUSTOMER_MEDIA), self.at_home.stop(agent_media));
        drop(self.dirs);
        seen
    }

    /// The customer heard the agent's 440 Hz over the last `secs` of the call.
    pub fn check_customer_hears(self, secs: f64) {
        let (at_pbx, _) = self.stop(0);
        assert!(at_pbx.len() > 40, "the agent's RTP reached the PBX: {} packets", at_pbx.len());
        assert!(level(&at_pbx, 440.0, secs) > 1000.0, "the customer hears the agent's 440 Hz");
    }

    /// [`check_talk`] over the whole call, the agent's media port being `agent_media`.
    pub fn check(self, agent_media: u16, secs: f64) {
        let (at_pbx, at_home) = self.stop(agent_media);
        check_talk(&at_pbx, &at_home, secs);
    }
}

/// The customer heard the agent's 440 Hz, and the agent the customer's
/// 1 kHz, over the last `secs` of what was captured.
pub fn check_talk(at_pbx: &[RtpSeen], at_home: &[RtpSeen], secs: f64) {
    assert!(at_pbx.len() > 40 && at_home.len() > 40, "RTP both ways: {} and {}", at_pbx.len(), at_home.len());
    assert!(level(at_pbx, 440.0, secs) > 1000.0, "the customer hears the agent's 440 Hz");
    assert!(level(at_home, 1000.0, secs) > 1000.0, "the agent hears the customer's 1 kHz");
}

pub fn epoch_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}
