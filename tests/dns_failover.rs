//! Locating the registrar by DNS (RFC 3263) and failing over, against real
//! servers (issue 18): dnsmasq serves NAPTR, SRV and A records of
//! `pbx.example.test`, two Kamailio registrars stand behind its SRV
//! records, and the daemon runs beside them, all inside a network namespace
//! the test builds (192.0.2.0/24 addresses on its loopback; needs root and
//! `ip`). What counts is what the registrars log: which one got the
//! REGISTER, and when. The failover time is printed (`--nocapture`).

mod common;

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::netns::Netns;
use common::sipp::{logged_message, Sipp};
use common::{require_tools, Daemon, Setup};
use serde_json::{json, Value};

const DAEMON_IP: &str = "192.0.2.1";
const PRIMARY_IP: &str = "192.0.2.10";
const BACKUP_IP: &str = "192.0.2.20";
const DNS_IP: &str = "192.0.2.53";
/// An address of the namespace where no resolver listens.
const SILENT_DNS_IP: &str = "192.0.2.99";
/// A registrar name whose address the test changes (dnsmasq's hosts file).
const MOVING: &str = "moving.pbx.example.test";
/// A customer (sipp) and a STUN server (coturn), known by name only.
const PEER_IP: &str = "192.0.2.40";
const ADDRESSES: [&str; 6] = [DAEMON_IP, PRIMARY_IP, BACKUP_IP, DNS_IP, SILENT_DNS_IP, PEER_IP];
const REGISTRAR_CFG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/dns/registrar.cfg");
const WAIT: Duration = Duration::from_secs(10);

/// The zone: NAPTR sends UDP to a SRV name of its own (so a REGISTER at a
/// target proves the NAPTR was followed), whose priority 1 and 2 are the
/// two registrars. A TCP NAPTR comes first in order, and must be passed
/// over by a UDP account.
const RECORDS: &[&str] = &[
    "--naptr-record=pbx.example.test,10,10,s,SIP+D2T,,_sip._tcp.pbx.example.test",
    "--naptr-record=pbx.example.test,20,10,s,SIP+D2U,,_sip._udp.eu.pbx.example.test",
    "--srv-host=_sip._tcp.pbx.example.test,tcp-only.pbx.example.test,5060,1,10",
    "--srv-host=_sip._udp.eu.pbx.example.test,sip-b.pbx.example.test,5060,2,10",
    "--srv-host=_sip._udp.eu.pbx.example.test,sip-a.pbx.example.test,5060,1,10",
    "--host-record=sip-a.pbx.example.test,192.0.2.10",
    "--host-record=sip-b.pbx.example.test,192.0.2.20",
    "--host-record=tcp-only.pbx.example.test,192.0.2.30",
    "--host-record=stun.pbx.example.test,192.0.2.40",
    "--host-record=customer.pbx.example.test,192.0.2.40",
];

/// A network namespace with the test's addresses on its loopback and
/// dnsmasq as its system resolver; removed, with everything run in it, on drop.
struct Lab {
    dns: Option<Server>,
    netns: Netns,
}

impl Lab {
    fn create(tag: &str) -> Lab {
        let netns = Netns::new(tag);
        for address in ADDRESSES {
            netns.ip(&["addr", "add", &format!("{address}/32"), "dev", "lo"]);
        }
        let lab = Lab { dns: None, netns };
        // `ip netns exec` mounts this over /etc/resolv.conf for what runs inside.
        fs::create_dir_all(lab.etc()).unwrap();
        fs::write(lab.etc().join("resolv.conf"), format!("nameserver {DNS_IP}\n")).unwrap();
        lab
    }

    /// The system's resolver (resolv.conf) becomes an address where no
    /// resolver listens: only `[dns] servers` can locate anything.
    fn silence_system_resolver(&self) {
        fs::write(self.etc().join("resolv.conf"), format!("nameserver {SILENT_DNS_IP}\n")).unwrap();
    }

    /// [`MOVING`] names `ip` from now on (dnsmasq reads its hosts file
    /// again on SIGHUP).
    fn move_name(&self, ip: &str) {
        fs::write(self.etc().join("moving.hosts"), format!("{ip} {MOVING}\n")).unwrap();
        let dns = self.dns.as_ref().and_then(|d| d.child.as_ref()).expect("dnsmasq runs");
        Command::new("kill").args(["-HUP", &dns.id().to_string()]).status().unwrap();
        assert!(wait_until(WAIT, || self.dns_log().contains("read ")), "dnsmasq did not reload");
    }

    fn etc(&self) -> PathBuf {
        PathBuf::from("/etc/netns").join(&self.netns.name)
    }

    /// `program` to run inside, in a process group of its own.
    fn command(&self, program: &str) -> Command {
        let mut command = self.netns.command(program);
        command.stdin(Stdio::null()).process_group(0);
        command
    }

    /// dnsmasq serving [`RECORDS`] and nothing else: names of the zone it
    /// does not know get NXDOMAIN, and it asks no one upstream.
    fn serve_dns(&mut self) {
        self.serve_dns_for(60);
    }

    /// [`Self::serve_dns`] with answers good for `ttl_s`, and
    /// [`MOVING`] at the primary until [`Self::move_name`].
    fn serve_dns_for(&mut self, ttl_s: u32) {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("dnsmasq.log");
        let hosts = self.etc().join("moving.hosts");
        fs::write(&hosts, format!("{PRIMARY_IP} {MOVING}\n")).unwrap();
        let child = self
            .command("dnsmasq")
            .args(["--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--no-poll", "--pid-file="])
            .args(["--bind-interfaces", &format!("--listen-address={DNS_IP}"), "--port=53"])
            .args(["--local=/example.test/", &format!("--local-ttl={ttl_s}"), "--log-queries", "--log-facility=-"])
            .arg(format!("--addn-hosts={}", hosts.display()))
            .args(RECORDS)
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("dnsmasq starts");
        let dns = Server { child: Some(child), log, _dir: dir };
        assert!(wait_until(WAIT, || dns.log().contains("started")), "dnsmasq did not start:\n{}", dns.log());
        self.dns = Some(dns);
    }

    fn registrar(&self, address: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("kamailio.log");
        fs::create_dir_all(dir.path().join("run")).unwrap();
        let kamailio = common::kamailio::find_sbin("kamailio").expect("kamailio installed");
        let child = self
            .command(kamailio.to_str().unwrap())
            .arg("-f")
            .arg(REGISTRAR_CFG)
            .args(["-DD", "-E", "-m", "32", "-M", "4", "-A", &format!("SIP_IP={address}"), "-Y"])
            .arg(dir.path().join("run"))
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("kamailio starts");
        let registrar = Server { child: Some(child), log, _dir: dir };
        let ready = wait_until(WAIT, || registrar.log().contains("REGISTRAR READY"));
        assert!(ready, "registrar {address} did not start:\n{}", registrar.log());
        registrar
    }

    /// coturn answering STUN on the peer's address.
    fn stun(&self) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("coturn.log");
        let child = self
            .command("turnserver")
            .args(["-n", "--stun-only", "--no-cli", "--no-tls", "--no-dtls", "--log-file=stdout", "--simple-log"])
            .args(["-L", PEER_IP, "-p", "3478"])
            .stdout(fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("turnserver starts");
        let stun = Server { child: Some(child), log, _dir: dir };
        assert!(wait_until(WAIT, || self.netns.udp_bound(3478)), "coturn did not start:\n{}", stun.log());
        stun
    }

    async fn daemon(&self, extra: &str) -> Daemon {
        self.daemon_on(&format!("udp:{DAEMON_IP}:0"), extra).await
    }

    async fn daemon_on(&self, listen: &str, extra: &str) -> Daemon {
        let setup = Setup { listen: &[listen], extra, netns: Some(&self.netns.name), ..Setup::default() };
        Daemon::spawn_with("agent1", setup).await
    }

    fn dns_log(&self) -> String {
        self.dns.as_ref().map(Server::log).unwrap_or_default()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // dnsmasq goes first (the field order), the namespace last.
        let _ = fs::remove_dir_all(self.etc());
    }
}

/// A server process of the lab (dnsmasq, a registrar) and its log.
struct Server {
    child: Option<Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    fn log(&self) -> String {
        fs::read(&self.log).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    fn registers(&self) -> usize {
        self.log().lines().filter(|l| l.contains("REGISTER ok user=agent1")).count()
    }

    /// SIGKILL for it and every worker, as a crash or a pulled cable would.
    fn kill(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
        let _ = child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    done()
}

/// The first account's `registration`, once `accepts` it; panics after
/// `limit` with the daemon's log.
async fn registration(daemon: &Daemon, limit: Duration, accepts: impl Fn(&Value) -> bool, why: &str) -> Value {
    let mut ui = daemon.client().await;
    let deadline = Instant::now() + limit;
    loop {
        let list = ui.call("account.list", json!({})).await.unwrap();
        let registration = list["accounts"][0]["registration"].clone();
        if accepts(&registration) {
            return registration;
        }
        assert!(Instant::now() < deadline, "{why}: registration is {registration}\n{}", daemon.log());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn account(dns: &str, registrar: &str) -> String {
    format!(
        "t1_ms = 20\n{dns}\n[[accounts]]\nid = \"main\"\naor = \"sip:agent1@pbx.example.test\"\n\
         registrar = \"{registrar}\"\nexpires_s = 300\nkeepalive_s = 1\n"
    )
}

fn available() -> bool {
    require_tools(&["ip", "dnsmasq", "kamailio"])
}

#[tokio::test]
async fn registers_where_naptr_and_srv_point_and_fails_over_when_that_registrar_dies() {
    if !available() {
        return;
    }
    let mut lab = Lab::create("dns");
    lab.serve_dns();
    let mut primary = lab.registrar(PRIMARY_IP);
    let backup = lab.registrar(BACKUP_IP);
    // No [dns] servers: the system's resolver, the namespace's resolv.conf.
    let daemon = lab.daemon(&account("", "sip:pbx.example.test")).await;
    let logs = |daemon: &Daemon, lab: &Lab| format!("{}\n--- dnsmasq ---\n{}", daemon.log(), lab.dns_log());

    // (a) NAPTR (the UDP one) -> SRV priority 1 -> A: the primary.
    let at_primary = |r: &Value| r["state"] == "registered" && r["target"]["address"] == "192.0.2.10:5060";
    let registered = registration(&daemon, WAIT, at_primary, "never registered at the primary").await;
    assert_eq!(
        registered["target"],
        json!({ "host": "sip-a.pbx.example.test", "address": "192.0.2.10:5060", "transport": "udp" })
    );
    assert!(wait_until(WAIT, || primary.registers() >= 1), "the primary saw no REGISTER:\n{}", primary.log());
    assert!(primary.log().contains(&format!("at={PRIMARY_IP}:5060 src={DAEMON_IP}:")), "{}", primary.log());
    assert_eq!(backup.registers(), 0, "nothing for the backup while the primary answers");
    let dns = lab.dns_log();
    for query in ["query[NAPTR] pbx.example.test", "query[SRV] _sip._udp.eu.pbx.example.test", "sip-a.pbx.example.test"]
    {
        assert!(dns.contains(query), "dnsmasq was not asked {query}:\n{dns}");
    }
    assert!(!dns.contains("_sip._tcp.pbx.example.test"), "a UDP account asked for the TCP service:\n{dns}");

    // (b) The primary dies: the next keep-alive goes unanswered, and the
    // backup gets a REGISTER at once.
    let mut events = daemon.client().await;
    let killed = Instant::now();
    primary.kill();
    let moved = wait_until(Duration::from_secs(15), || backup.registers() >= 1);
    let failover = killed.elapsed();
    assert!(moved, "the backup never saw a REGISTER:\n{}", logs(&daemon, &lab));
    println!(
        "failover: the backup registrar saw the REGISTER {} ms after the primary was killed",
        failover.as_millis()
    );
    let moving = events
        .wait_event(WAIT, |e| e["method"] == "registration.state" && e["params"]["state"] == "registering")
        .await
        .expect("a registration.state on the way to the backup");
    let reason = moving["params"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("failing over to udp:192.0.2.20:5060"), "{moving}");
    assert_eq!(moving["params"]["target"]["address"], "192.0.2.20:5060", "{moving}");
    println!("registration.state on the way: {reason}");
    let at_backup = |r: &Value| r["state"] == "registered" && r["target"]["address"] == "192.0.2.20:5060";
    let registered = registration(&daemon, WAIT, at_backup, "never registered at the backup").await;
    assert_eq!(registered["target"]["host"], "sip-b.pbx.example.test");
    // Keep-alive every 1 s, a transaction gives up after 64 × T1 = 1.28 s.
    assert!(failover < Duration::from_secs(4), "failover took {failover:?}");
    assert!(backup.log().contains(&format!("at={BACKUP_IP}:5060 src={DAEMON_IP}:")), "{}", backup.log());
}

#[tokio::test]
async fn a_name_nobody_can_locate_is_a_clear_registration_error_and_the_daemon_goes_on() {
    if !available() {
        return;
    }
    let mut lab = Lab::create("nx");
    lab.serve_dns();
    // NXDOMAIN: dnsmasq knows the zone but not the name.
    let nxdomain = lab.daemon(&account(&format!("[dns]\nservers = [\"{DNS_IP}\"]"), "sip:nowhere.example.test")).await;
    // Nothing at all: no resolver at that address.
    let silent = format!("[dns]\nservers = [\"{SILENT_DNS_IP}\"]");
    let unanswered = lab.daemon(&account(&silent, "sip:pbx.example.test")).await;
    for (daemon, words) in [(&nxdomain, "NXDOMAIN"), (&unanswered, "pbx.example.test")] {
        let failed = |r: &Value| r["state"] == "failed";
        let report = registration(daemon, Duration::from_secs(30), failed, "no registration error").await;
        let reason = report["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("cannot locate") && reason.contains(words), "unclear reason: {report}");
        assert!(report.get("target").is_none(), "a target without DNS: {report}");
        println!("registration error: {reason}");
        let status = daemon.client().await.call("daemon.status", json!({})).await.expect("the daemon keeps running");
        assert!(status["sip_listen"].is_array());
    }
    assert!(lab.dns_log().contains("nowhere.example.test is NXDOMAIN"), "{}", lab.dns_log());
}

/// A TLS registrar given by name (here `localhost`, which the test CA's
/// certificate names) is reached at the address located for it, through
/// the name pinned for rsipstack, so the TLS connection is opened to the
/// name and the keep-alives and unregister follow it.
#[tokio::test]
async fn a_tls_registrar_given_by_name_registers_through_its_located_address() {
    use common::kamailio::{self, Kamailio, KamailioOptions, PASSWORD};
    if !kamailio::installed(true) {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "kamailio with tls.so is required under CI=true");
        return;
    }
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = kamailio::make_test_pki(pki_dir.path());
    let kam = Kamailio::start(KamailioOptions { tls: Some(pki.clone()), ..Default::default() });
    let port = kam.tls_addr().port();
    let extra = format!(
        "t1_ms = 50\ntls_ca_file = \"{}\"\n[[accounts]]\nid = \"main\"\naor = \"sip:agent1@localhost\"\n\
         registrar = \"sip:localhost:{port}\"\npassword = \"{PASSWORD}\"\ntransport = \"tls\"\nkeepalive_s = 1\n",
        pki.ca_cert.display()
    );
    let mut daemon = Daemon::spawn("agent1", &extra).await;
    let address = format!("127.0.0.1:{port}");
    let at_localhost = |r: &Value| r["state"] == "registered" && r["target"]["address"] == address.as_str();
    let registered = registration(&daemon, WAIT, at_localhost, "never registered over TLS by name").await;
    assert_eq!(registered["target"]["host"], "localhost");
    assert_eq!(registered["target"]["transport"], "tls");
    let bindings = kam.wait_registered("agent1", WAIT).await;
    assert!(bindings.iter().any(|b| b.socket.starts_with("tls")), "kamailio got it over TLS: {bindings:?}");
    daemon.terminate();
    assert!(kam.registrations("agent1").is_empty(), "unregistered over the same TLS connection on shutdown");
}

/// The STUN server and the peers we call, given by name, are located
/// through `[dns] servers` as the registrar is, never through the system's
/// resolver (here an address where none listens): STUN's answer is there
/// once the daemon is up,
/// and a wildcard listener's INVITE to a named customer advertises the
/// route toward the address located for it (on this one host, the
/// customer's own), not the unspecified address.
#[tokio::test]
async fn the_stun_server_and_called_peers_are_located_through_the_configured_dns_servers() {
    if !available() || !require_tools(&["turnserver", "sipp", "sox"]) {
        return;
    }
    let mut lab = Lab::create("names");
    lab.serve_dns();
    lab.silence_system_resolver();
    let dns = format!("[dns]\nservers = [\"{DNS_IP}\"]\n");

    let stun = lab.stun();
    let behind = lab.daemon(&format!("{dns}[nat]\nstun_server = \"stun.pbx.example.test:3478\"\n")).await;
    let status = behind.client().await.call("daemon.status", json!({})).await.unwrap();
    let mapped = format!("{DAEMON_IP}:{}", behind.sip_port);
    assert_eq!(status["public_address"], mapped.as_str(), "STUN answered by name:\n{}", behind.log());
    assert!(lab.dns_log().contains("query[A] stun.pbx.example.test"), "{}", lab.dns_log());
    drop((behind, stun));

    let work = tempfile::tempdir().unwrap();
    common::sipp::write_tone_file(work.path());
    let customer = Sipp::start_in(&lab.netns, PEER_IP, work.path(), "uas_tone.xml", (5080, 40000), &[]);
    let agent = lab.daemon_on("udp:0.0.0.0:0", &dns).await;
    let mut ui = agent.client().await;
    let dialed = Instant::now();
    let call = common::dial(&mut ui, "sip:customer@customer.pbx.example.test:5080").await;
    common::wait_call_counter(&mut ui, &call, "packets_received", 25).await;
    let talking = dialed.elapsed();
    ui.call("call.hangup", json!({ "call": call })).await.unwrap();
    let log = customer.expect_success().await;
    let invite = logged_message(&log, "INVITE sip:customer");
    assert!(invite.contains(&format!("c=IN IP4 {PEER_IP}")), "the SDP names the route's source:\n{invite}");
    assert!(invite.contains(&format!("@{PEER_IP}:")), "so does the Contact:\n{invite}");
    assert!(talking < Duration::from_secs(3), "the call did not wait on a lookup: {talking:?}");
    println!("a named peer called from a wildcard listener: audio back {} ms after the dial", talking.as_millis());
}

/// A registrar found at a new address by a later lookup (its only address
/// died, the name now names another) is trusted from then on: its INVITE
/// rings the agent, where one from an address never located is refused.
#[tokio::test]
async fn a_registrar_located_anew_may_call_the_agent() {
    if !available() || !require_tools(&["sipp"]) {
        return;
    }
    let mut lab = Lab::create("trust");
    lab.serve_dns_for(1);
    let mut primary = lab.registrar(PRIMARY_IP);
    let mut backup = lab.registrar(BACKUP_IP);
    let dns = format!("[dns]\nservers = [\"{DNS_IP}\"]");
    let daemon = lab.daemon(&account(&dns, &format!("sip:{MOVING}"))).await;
    let at = |ip: &'static str| {
        move |r: &Value| r["state"] == "registered" && r["target"]["address"] == format!("{ip}:5060")
    };
    registration(&daemon, WAIT, at(PRIMARY_IP), "never registered at the primary").await;

    lab.move_name(BACKUP_IP);
    let moved = Instant::now();
    primary.kill();
    registration(&daemon, Duration::from_secs(15), at(BACKUP_IP), "never registered where the name moved").await;
    println!("the name moved: registered at its new address {} ms later", moved.elapsed().as_millis());

    // The registrar's address calls (sipp in its place, from its SIP port).
    backup.kill();
    let work = tempfile::tempdir().unwrap();
    let agent = format!("{DAEMON_IP}:{}", daemon.sip_port);
    let call_from = |ip: &str, scenario: &str| {
        let args = [agent.as_str(), "-s", "agent1", "-d", "200"];
        Sipp::start_in(&lab.netns, ip, work.path(), scenario, (5060, 40000), &args)
    };
    // It rings (uac_cancel.xml needs the 180), where a stranger hears 403.
    call_from(BACKUP_IP, "uac_cancel.xml").expect_success().await;
    let refused = call_from(PEER_IP, "uac_call_rejected.xml").expect_success().await;
    assert!(refused.contains("SIP/2.0 403"), "a stranger is refused:\n{refused}");
}
