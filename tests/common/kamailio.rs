//! A real Kamailio on 127.0.0.1 for integration tests: registrar with digest
//! auth and record-routing proxy, run from `tests/kamailio/kamailio.cfg`
//! (see `tests/kamailio/README.md` for what it does and why).
//!
//! ```ignore
//! let kam = Kamailio::start(KamailioOptions::default());
//! // point softphoned at kam.port as registrar / outbound proxy ...
//! kam.wait_registered("alice", Duration::from_secs(5)).await;
//! ```
//!
//! Std only (plus `tempfile`, and tokio for the async waits). Kamailio keeps
//! registrations in memory: `restart()` forgets them.
#![allow(dead_code)] // each test binary uses its own subset

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The config every instance runs.
pub const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kamailio/kamailio.cfg");
/// Digest realm of every challenge.
pub const REALM: &str = "127.0.0.1";
/// The users the config knows; every one has the password [`PASSWORD`].
pub const USERS: [&str; 4] = ["alice", "bob", "agent1", "agent2"];
pub const PASSWORD: &str = "secret";
/// Printed by the config once its first SIP worker runs.
const READY_LINE: &str = "KAMAILIO READY";
/// How long start/restart may take before we give up and panic with the log.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Files made by [`make_test_pki`].
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The CA that signed `server_cert`: what a client must trust.
    pub ca_cert: PathBuf,
    /// Server certificate for IP 127.0.0.1 and DNS localhost.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// A second, unrelated CA: a client trusting only this one must reject Kamailio.
    pub wrong_ca_cert: PathBuf,
}

#[derive(Clone, Debug, Default)]
pub struct KamailioOptions {
    /// INVITEs whose From user is one of [`USERS`] get a 407 challenge
    /// (`-A WITH_INVITE_AUTH`); other callers are routed without one.
    pub invite_auth: bool,
    /// Challenges say `algorithm=SHA-256` and responses are checked with it
    /// (`-A WITH_SHA256`).
    pub sha256: bool,
    /// Also listen on TLS (`-A WITH_TLS`) with these files.
    pub tls: Option<TlsFiles>,
    /// Nonce lifetime in seconds (`-A NONCE_EXPIRE=N`; Kamailio's default is
    /// 300). An expired nonce is answered with a new challenge with `stale=true`.
    pub nonce_expire: Option<u32>,
}

/// One contact of a registered user, as Kamailio's location table has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// The Contact URI the client registered.
    pub address: String,
    /// Where requests really go (source address of the REGISTER, set for
    /// TCP/TLS and for UDP clients whose Contact is not their source).
    pub received: Option<String>,
    /// Kamailio's socket it arrived on, e.g. `tcp:127.0.0.1:5060`.
    pub socket: String,
    pub expires: u64,
}

/// A running Kamailio child process (and its workers, in their own process group).
pub struct Kamailio {
    /// Holds `kamailio.log`, `tls.cfg` and the runtime dir `run/`.
    pub dir: tempfile::TempDir,
    /// UDP and TCP port.
    pub port: u16,
    pub tls_port: Option<u16>,
    pub opts: KamailioOptions,
    child: Option<Child>,
    /// Whether the binrpc control socket is enabled (its path must fit in sun_path).
    ctl: bool,
}

impl Kamailio {
    /// Start on fresh loopback ports and wait until it answers; panics with
    /// the log if it does not. Blocks (for well under a second normally).
    pub fn start(opts: KamailioOptions) -> Kamailio {
        let dir = tempfile::Builder::new().prefix("kamailio-").tempdir().unwrap();
        fs::create_dir_all(dir.path().join("run")).unwrap();
        if let Some(tls) = &opts.tls {
            fs::write(dir.path().join("tls.cfg"), tls_cfg(tls)).unwrap();
        }
        let ctl = ctl_path(dir.path()).as_os_str().len() < 100;
        let mut kam = Kamailio { dir, port: 0, tls_port: None, opts, child: None, ctl };
        // The ports are free when picked but not reserved: another process can
        // take one before Kamailio binds it. Then pick again.
        for attempt in 1..=5 {
            kam.port = free_port(&[]);
            kam.tls_port = kam.opts.tls.as_ref().map(|_| free_port(&[kam.port]));
            match kam.spawn_and_wait() {
                Ok(()) => return kam,
                Err(e) if attempt < 5 && e.contains("Address already in use") => continue,
                Err(e) => panic!("kamailio did not start: {e}\n--- kamailio.log ---\n{}", kam.log()),
            }
        }
        unreachable!()
    }

    /// Stop it (SIGTERM, then SIGKILL for the whole process group after 5 s).
    /// Idempotent.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let group = format!("-{}", child.id());
        signal("-TERM", &group);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // The main process waits for its workers, but make sure no straggler
        // keeps the ports bound.
        signal("-KILL", &group);
        let _ = child.wait();
    }

    /// Stop and start again on the same ports: every registration is lost,
    /// TCP/TLS connections are closed. The log file keeps growing.
    pub fn restart(&mut self) {
        self.stop();
        self.append_log("\n======== softphoned test harness: restart ========\n");
        // A port we just released can be taken by someone else; we cannot move,
        // so retry for a bounded time and then give up loudly.
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return,
                Err(e) if Instant::now() < deadline && e.contains("Address already in use") => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("kamailio did not restart: {e}\n--- kamailio.log ---\n{}", self.log()),
            }
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Everything Kamailio wrote (stdout and stderr), across restarts.
    pub fn log(&self) -> String {
        fs::read(self.log_path()).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("kamailio.log")
    }

    /// How many log lines contain `needle` (e.g. `"REGISTER ok 200 user=alice "`).
    pub fn log_count(&self, needle: &str) -> usize {
        self.log().lines().filter(|l| l.contains(needle)).count()
    }

    /// Wait until the log has at least `count` lines containing `needle`.
    pub async fn wait_log(&self, needle: &str, count: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log_count(needle) >= count {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `127.0.0.1:port` (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `127.0.0.1:tls_port`; panics if TLS is off.
    pub fn tls_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.tls_port.expect("kamailio started without TLS")))
    }

    /// `sip:USER@127.0.0.1:PORT`, an address Kamailio routes by location.
    pub fn uri(&self, user: &str) -> String {
        format!("sip:{user}@127.0.0.1:{}", self.port)
    }

    /// Run `kamcmd` against this instance, e.g. `kamcmd(&["ul.dump"])`.
    /// Panics if the control socket is off (temp path too long) or kamcmd is missing.
    pub fn kamcmd(&self, args: &[&str]) -> String {
        assert!(self.ctl, "kamailio control socket disabled: temp dir path too long for a unix socket");
        let out = Command::new(find_sbin("kamcmd").expect("kamcmd not installed"))
            .arg("-s")
            .arg(format!("unix:{}", ctl_path(self.dir.path()).display()))
            .args(args)
            .output()
            .expect("kamcmd runs");
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }

    /// The user's current contacts in the location table (empty if none).
    pub fn registrations(&self, user: &str) -> Vec<Registration> {
        let out = self.kamcmd(&["ul.lookup", "location", user]);
        let mut regs = Vec::new();
        for line in out.lines().map(str::trim) {
            let Some((key, value)) = line.split_once(": ") else { continue };
            match key {
                "Address" => regs.push(Registration {
                    address: value.to_string(),
                    received: None,
                    socket: String::new(),
                    expires: 0,
                }),
                "Received" if value != "[not set]" => {
                    if let Some(r) = regs.last_mut() {
                        r.received = Some(value.to_string());
                    }
                }
                "Socket" => {
                    if let Some(r) = regs.last_mut() {
                        r.socket = value.to_string();
                    }
                }
                "Expires" => {
                    if let Some(r) = regs.last_mut() {
                        r.expires = value.parse().unwrap_or(0);
                    }
                }
                _ => {}
            }
        }
        regs
    }

    /// Wait until `user` has at least one contact; returns them (empty on timeout).
    pub async fn wait_registered(&self, user: &str, timeout: Duration) -> Vec<Registration> {
        let deadline = Instant::now() + timeout;
        loop {
            let regs = self.registrations(user);
            if !regs.is_empty() || Instant::now() >= deadline {
                return regs;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let bin = find_sbin("kamailio").ok_or("kamailio binary not found (PATH, /usr/sbin, /usr/local/sbin)")?;
        let mark = fs::metadata(self.log_path()).map(|m| m.len()).unwrap_or(0) as usize;
        let log = OpenOptions::new().create(true).append(true).open(self.log_path()).unwrap();
        let run = self.dir.path().join("run");
        let mut cmd = Command::new(bin);
        cmd.arg("-f")
            .arg(CONFIG)
            .args(["-DD", "-E", "-m", "64", "-M", "8"])
            .arg("-Y")
            .arg(&run)
            .arg("-A")
            .arg(format!("SIP_PORT={}", self.port));
        if self.ctl {
            cmd.arg("-A").arg(format!("CTL_SOCK=\"unix:{}\"", ctl_path(self.dir.path()).display()));
        }
        if self.opts.tls.is_some() {
            let cfg = self.dir.path().join("tls.cfg");
            cmd.args(["-A", "WITH_TLS", "-A"]).arg(format!("TLS_PORT={}", self.tls_port.unwrap()));
            cmd.arg("-A").arg(format!("TLS_CFG=\"{}\"", cfg.display()));
        }
        if self.opts.sha256 {
            cmd.args(["-A", "WITH_SHA256"]);
        }
        if self.opts.invite_auth {
            cmd.args(["-A", "WITH_INVITE_AUTH"]);
        }
        if let Some(secs) = self.opts.nonce_expire {
            cmd.arg("-A").arg(format!("NONCE_EXPIRE={secs}"));
        }
        let child = cmd
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            // Own process group: stop() signals the main process and all its workers.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("spawn kamailio: {e}"))?;
        self.child = Some(child);

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let exited = self.child.as_mut().unwrap().try_wait().unwrap();
            let log = self.log();
            let this_run = log.get(mark..).unwrap_or("");
            if let Some(status) = exited {
                self.child = None;
                let reason = this_run.lines().find(|l| l.contains("Address already in use")).unwrap_or("see log");
                return Err(format!("kamailio exited with {status}: {reason}"));
            }
            if this_run.contains(READY_LINE) && self.answers() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.stop();
                return Err(format!("kamailio not ready after {START_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The TCP (and TLS) listeners accept connections.
    fn answers(&self) -> bool {
        let connect = |port: u16| {
            TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_millis(200)).is_ok()
        };
        connect(self.port) && self.tls_port.is_none_or(connect)
    }

    fn append_log(&self, text: &str) {
        if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(self.log_path()) {
            let _ = f.write_all(text.as_bytes());
        }
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Create, with the `openssl` CLI, a test CA, a server certificate for
/// 127.0.0.1 / localhost signed by it, and an unrelated second CA. EC P-256
/// keys (fast to make, accepted by rustls and OpenSSL). Panics on failure.
pub fn make_test_pki(dir: &Path) -> TlsFiles {
    fs::create_dir_all(dir).unwrap();
    let p = |name: &str| dir.join(name);
    let ca_ext = ["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"];
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    for (name, cn) in [("ca", "softphoned test CA"), ("wrong_ca", "unrelated test CA")] {
        openssl(
            Command::new("openssl")
                .args(["req", "-x509", "-days", "3650", "-subj", &format!("/CN={cn}")])
                .args(ec)
                .args(ca_ext)
                .arg("-keyout")
                .arg(p(&format!("{name}.key")))
                .arg("-out")
                .arg(p(&format!("{name}.pem"))),
        );
    }
    openssl(
        Command::new("openssl")
            .args(["req", "-new", "-subj", "/CN=127.0.0.1"])
            .args(ec)
            .arg("-keyout")
            .arg(p("server.key"))
            .arg("-out")
            .arg(p("server.csr")),
    );
    fs::write(
        p("server.ext"),
        "basicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth,clientAuth\n\
         subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        Command::new("openssl")
            .args(["x509", "-req", "-days", "3650", "-set_serial", "2"])
            .arg("-in")
            .arg(p("server.csr"))
            .arg("-CA")
            .arg(p("ca.pem"))
            .arg("-CAkey")
            .arg(p("ca.key"))
            .arg("-extfile")
            .arg(p("server.ext"))
            .arg("-out")
            .arg(p("server.pem")),
    );
    TlsFiles {
        ca_cert: p("ca.pem"),
        server_cert: p("server.pem"),
        server_key: p("server.key"),
        wrong_ca_cert: p("wrong_ca.pem"),
    }
}

fn openssl(cmd: &mut Command) {
    let out = cmd.stdin(Stdio::null()).output().expect("openssl CLI runs");
    assert!(out.status.success(), "{cmd:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

/// The tls module's config: our server cert on every TLS socket; as a client
/// (relaying to a TLS target with no existing connection) it does not verify.
fn tls_cfg(tls: &TlsFiles) -> String {
    format!(
        "[server:default]\n\
         method = TLSv1.2+\n\
         verify_certificate = no\n\
         require_certificate = no\n\
         certificate = {}\n\
         private_key = {}\n\
         ca_list = {}\n\
         \n\
         [client:default]\n\
         method = TLSv1.2+\n\
         verify_certificate = no\n\
         require_certificate = no\n",
        tls.server_cert.display(),
        tls.server_key.display(),
        tls.ca_cert.display()
    )
}

fn ctl_path(dir: &Path) -> PathBuf {
    dir.join("run").join("ctl")
}

/// A loopback port free for both TCP and UDP right now, not in `avoid`.
fn free_port(avoid: &[u16]) -> u16 {
    for _ in 0..100 {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if !avoid.contains(&port) && UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port for both TCP and UDP");
}

/// kamailio and kamcmd live in /usr/sbin, which a non-root PATH often lacks.
pub fn find_sbin(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Whether Kamailio (and its tls module, `kamailio-tls-modules` on Debian,
/// if `tls`) is installed.
pub fn installed(tls: bool) -> bool {
    if find_sbin("kamailio").is_none() {
        return false;
    }
    if !tls {
        return true;
    }
    // Debian: /usr/lib/<multiarch>/kamailio/modules; source builds: /usr/local/lib{,64}.
    let multiarch = fs::read_dir("/usr/lib").into_iter().flatten().flatten().map(|e| e.path());
    let local = ["/usr/local/lib64", "/usr/local/lib", "/usr/lib"].map(PathBuf::from);
    multiarch.chain(local).any(|lib| lib.join("kamailio/modules/tls.so").is_file())
}

fn signal(sig: &str, target: &str) {
    let _ = Command::new("kill").args([sig, "--", target]).stdout(Stdio::null()).stderr(Stdio::null()).status();
}
