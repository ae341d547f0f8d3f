//! Self-test of the Kamailio harness (`tests/common/kamailio.rs`) and of
//! `tests/kamailio/kamailio.cfg`, with plain sockets as the SIP client:
//! digest REGISTER over UDP/TCP (MD5 and SHA-256, hashed by the openssl CLI),
//! 401/403/407 answers, an INVITE delivered over the TCP connection a user
//! registered on, TLS with the test CA, restart and stop.

#[path = "common/kamailio.rs"]
mod kamailio;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::Duration;

use kamailio::{make_test_pki, Kamailio, KamailioOptions, PASSWORD, REALM};

/// Skip (or, under CI=true, fail) when Kamailio or openssl is missing.
fn have_tools(tls: bool) -> bool {
    let ok = kamailio::installed(tls) && Command::new("openssl").arg("version").output().is_ok();
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("kamailio{} and openssl are required under CI=true", if tls { " + tls module" } else { "" });
        }
        let _ = writeln!(std::io::stderr(), "SKIPPED: kamailio/openssl not installed (run tests/run.sh)");
    }
    ok
}

fn hex_digest(alg: &str, input: &str) -> String {
    let flag = if alg == "SHA-256" { "-sha256" } else { "-md5" };
    let mut child = Command::new("openssl")
        .args(["dgst", flag, "-r"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_string()
}

/// A bare SIP client on one UDP socket or one TCP connection.
enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream, Vec<u8>),
}

struct Ua {
    conn: Conn,
    port: u16,
}

impl Ua {
    fn udp(kam_port: u16) -> Ua {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.connect(("127.0.0.1", kam_port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let port = s.local_addr().unwrap().port();
        Ua { conn: Conn::Udp(s), port }
    }

    fn tcp(kam_port: u16) -> Ua {
        let s = TcpStream::connect(("127.0.0.1", kam_port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let port = s.local_addr().unwrap().port();
        Ua { conn: Conn::Tcp(s, Vec::new()), port }
    }

    fn proto(&self) -> &'static str {
        match self.conn {
            Conn::Udp(_) => "UDP",
            Conn::Tcp(..) => "TCP",
        }
    }

    fn send(&mut self, msg: &str) {
        match &mut self.conn {
            Conn::Udp(s) => {
                s.send(msg.as_bytes()).unwrap();
            }
            Conn::Tcp(s, _) => s.write_all(msg.as_bytes()).unwrap(),
        }
    }

    /// The next message, skipping provisional responses.
    fn recv_final(&mut self) -> String {
        loop {
            let msg = self.recv();
            if !msg.starts_with("SIP/2.0 1") {
                return msg;
            }
        }
    }

    fn recv(&mut self) -> String {
        match &mut self.conn {
            Conn::Udp(s) => {
                let mut buf = vec![0; 65535];
                let n = s.recv(&mut buf).expect("a SIP message within 5 s");
                String::from_utf8_lossy(&buf[..n]).into_owned()
            }
            Conn::Tcp(s, pending) => loop {
                if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&pending[..end]).into_owned();
                    let len = header(&head, "Content-Length").and_then(|v| v.parse().ok()).unwrap_or(0);
                    if pending.len() >= end + 4 + len {
                        let msg: Vec<u8> = pending.drain(..end + 4 + len).collect();
                        return String::from_utf8_lossy(&msg).into_owned();
                    }
                }
                let mut buf = [0; 4096];
                let n = s.read(&mut buf).expect("a SIP message within 5 s");
                assert!(n > 0, "kamailio closed the TCP connection");
                pending.extend_from_slice(&buf[..n]);
            },
        }
    }

    fn register_request(&self, kam_port: u16, user: &str, contact_port: u16, cseq: u32, auth: &str) -> String {
        let (proto, port) = (self.proto(), self.port);
        format!(
            "REGISTER sip:127.0.0.1:{kam_port} SIP/2.0\r\n\
             Via: SIP/2.0/{proto} 127.0.0.1:{port};branch=z9hG4bK-{cseq}-{port};rport\r\n\
             From: <sip:{user}@127.0.0.1>;tag=t{port}\r\n\
             To: <sip:{user}@127.0.0.1>\r\n\
             Call-ID: reg-{user}-{port}@selftest\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{user}@127.0.0.1:{contact_port};transport={proto}>\r\n\
             Max-Forwards: 70\r\nExpires: 300\r\n{auth}Content-Length: 0\r\n\r\n"
        )
    }

    /// REGISTER `user` (Contact port `contact_port`) answering the challenge
    /// with `password`; returns (the challenge header, the final status line).
    fn register(&mut self, kam_port: u16, user: &str, password: &str, contact_port: u16) -> (String, String) {
        self.send(&self.register_request(kam_port, user, contact_port, 1, ""));
        let challenge = self.recv_final();
        assert!(challenge.starts_with("SIP/2.0 401"), "{challenge}");
        let www = header(&challenge, "WWW-Authenticate").unwrap().to_string();
        let alg = if www.contains("algorithm=SHA-256") { "SHA-256" } else { "MD5" };
        let auth = digest(kam_port, user, password, &param(&www, "nonce"), alg);
        self.send(&self.register_request(kam_port, user, contact_port, 2, &auth));
        let answer = self.recv_final();
        (www, answer.lines().next().unwrap().to_string())
    }

    /// Send an INVITE for `to` from `from` through Kamailio; returns the first final response.
    fn invite(&mut self, kam_port: u16, from: &str, to: &str) -> String {
        let proto = self.proto();
        self.send(&format!(
            "INVITE sip:{to}@127.0.0.1:{kam_port} SIP/2.0\r\n\
             Via: SIP/2.0/{proto} 127.0.0.1:{port};branch=z9hG4bK-inv-{port};rport\r\n\
             From: <sip:{from}@127.0.0.1>;tag=f{port}\r\n\
             To: <sip:{to}@127.0.0.1>\r\n\
             Call-ID: inv-{port}@selftest\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:{from}@127.0.0.1:{port};transport={proto}>\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            port = self.port
        ));
        self.recv_final()
    }
}

/// An `Authorization` header line answering `nonce` for a REGISTER to Kamailio.
fn digest(kam_port: u16, user: &str, password: &str, nonce: &str, alg: &str) -> String {
    let uri = format!("sip:127.0.0.1:{kam_port}");
    let ha1 = hex_digest(alg, &format!("{user}:{REALM}:{password}"));
    let ha2 = hex_digest(alg, &format!("REGISTER:{uri}"));
    let response = hex_digest(alg, &format!("{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}"));
    format!(
        "Authorization: Digest username=\"{user}\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm={alg}, qop=auth, nc=00000001, cnonce=\"c0ffee\"\r\n"
    )
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn param(header: &str, name: &str) -> String {
    let start = header.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
    header[start..].split('"').next().unwrap().to_string()
}

#[test]
fn register_digest_udp_and_tcp() {
    if !have_tools(false) {
        return;
    }
    let kam = Kamailio::start(KamailioOptions::default());

    let (www, status) = Ua::udp(kam.port).register(kam.port, "alice", PASSWORD, 5999);
    assert!(www.contains("qop=\"auth\"") && www.contains("realm=\"127.0.0.1\""), "{www}");
    assert!(!www.contains("algorithm=SHA-256"), "{www}");
    assert_eq!(status, "SIP/2.0 200 OK");

    let (_, status) = Ua::tcp(kam.port).register(kam.port, "bob", PASSWORD, 5999);
    assert_eq!(status, "SIP/2.0 200 OK");

    let (_, status) = Ua::udp(kam.port).register(kam.port, "agent1", "wrong", 5999);
    assert!(status.starts_with("SIP/2.0 403"), "{status}");

    // UDP with Contact port != source port: routed to the source ("received").
    let alice = kam.registrations("alice");
    assert_eq!(alice.len(), 1, "{alice:?}");
    assert!(alice[0].received.as_deref().is_some_and(|r| r.starts_with("sip:127.0.0.1:")), "{alice:?}");
    let bob = kam.registrations("bob");
    assert!(bob[0].received.as_deref().is_some_and(|r| r.ends_with(";transport=tcp")), "{bob:?}");
    assert!(kam.registrations("agent1").is_empty());
    assert_eq!(kam.log_count("REGISTER ok 200 user=alice "), 1, "{}", kam.log());
    assert_eq!(kam.log_count("REGISTER forbidden 403 user=agent1 reason=wrong-password"), 1);
}

#[test]
fn sha256_challenge() {
    if !have_tools(false) {
        return;
    }
    let kam = Kamailio::start(KamailioOptions { sha256: true, ..Default::default() });
    let (www, status) = Ua::udp(kam.port).register(kam.port, "agent2", PASSWORD, 5999);
    assert!(www.contains("algorithm=SHA-256"), "{www}");
    assert_eq!(status, "SIP/2.0 200 OK");

    // A client ignoring the algorithm and answering with MD5: 403, no loop.
    let mut ua = Ua::udp(kam.port);
    ua.send(&ua.register_request(kam.port, "bob", 5999, 1, ""));
    let nonce = param(header(&ua.recv_final(), "WWW-Authenticate").unwrap(), "nonce");
    ua.send(&ua.register_request(kam.port, "bob", 5999, 2, &digest(kam.port, "bob", PASSWORD, &nonce, "MD5")));
    let reply = ua.recv_final();
    assert!(reply.starts_with("SIP/2.0 403"), "{reply}");
}

/// The INVITE for a user registered over TCP arrives on that connection even
/// though its Contact names a port nobody listens on; with invite_auth a local
/// From user gets a 407, a foreign one does not; unknown users get 404.
#[test]
fn invite_routing_and_auth() {
    if !have_tools(false) {
        return;
    }
    let kam = Kamailio::start(KamailioOptions { invite_auth: true, ..Default::default() });
    let mut agent = Ua::tcp(kam.port);
    let (_, status) = agent.register(kam.port, "agent1", PASSWORD, 9);
    assert_eq!(status, "SIP/2.0 200 OK");

    let mut caller = Ua::udp(kam.port);
    let reply = caller.invite(kam.port, "alice", "agent1");
    assert!(reply.starts_with("SIP/2.0 407"), "{reply}");
    assert!(header(&reply, "Proxy-Authenticate").unwrap().contains("qop=\"auth\""), "{reply}");

    let mut caller = Ua::udp(kam.port);
    let reply = caller.invite(kam.port, "sipp", "nobody");
    assert!(reply.starts_with("SIP/2.0 404"), "{reply}");

    let mut caller = Ua::udp(kam.port);
    let proto = caller.proto();
    let port = caller.port;
    caller.send(&format!(
        "INVITE sip:agent1@127.0.0.1:{kp} SIP/2.0\r\n\
         Via: SIP/2.0/{proto} 127.0.0.1:{port};branch=z9hG4bK-call-{port};rport\r\n\
         From: <sip:sipp@127.0.0.1>;tag=c{port}\r\nTo: <sip:agent1@127.0.0.1>\r\n\
         Call-ID: call-{port}@selftest\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:sipp@127.0.0.1:{port}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        kp = kam.port
    ));
    let invite = agent.recv();
    assert!(invite.starts_with("INVITE sip:agent1@127.0.0.1:9;transport=TCP "), "{invite}");
    assert!(header(&invite, "Record-Route").is_some(), "{invite}");
    // Decline; Kamailio relays the 486 to the caller (and absorbs the ACK).
    let mut busy = String::from("SIP/2.0 486 Busy Here\r\n");
    for line in invite.lines().skip(1).take_while(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap().trim().to_ascii_lowercase();
        if ["via", "from", "call-id", "cseq"].contains(&name.as_str()) {
            busy += &format!("{line}\r\n");
        } else if name == "to" {
            busy += &format!("{line};tag=busy\r\n");
        }
    }
    agent.send(&(busy + "Content-Length: 0\r\n\r\n"));
    let reply = caller.recv_final();
    assert!(reply.starts_with("SIP/2.0 486"), "{reply}");
}

#[test]
fn expired_nonce_is_stale() {
    if !have_tools(false) {
        return;
    }
    let kam = Kamailio::start(KamailioOptions { nonce_expire: Some(1), ..Default::default() });
    let mut ua = Ua::udp(kam.port);
    ua.send(&ua.register_request(kam.port, "alice", 5999, 1, ""));
    let nonce = param(header(&ua.recv_final(), "WWW-Authenticate").unwrap(), "nonce");
    std::thread::sleep(Duration::from_millis(2100));
    ua.send(&ua.register_request(kam.port, "alice", 5999, 2, &digest(kam.port, "alice", PASSWORD, &nonce, "MD5")));
    let reply = ua.recv_final();
    assert!(reply.starts_with("SIP/2.0 401") && reply.contains("stale=true"), "{reply}");
}

#[test]
fn tls_with_test_ca() {
    if !have_tools(true) {
        return;
    }
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = make_test_pki(pki_dir.path());
    let kam = Kamailio::start(KamailioOptions { tls: Some(pki.clone()), ..Default::default() });
    let verify = |ca: &std::path::Path| {
        let out = Command::new("openssl")
            .args(["s_client", "-connect", &kam.tls_addr().to_string(), "-verify_ip", "127.0.0.1"])
            .args(["-verify_return_error", "-CAfile"])
            .arg(ca)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let good = verify(&pki.ca_cert);
    assert!(good.contains("Verify return code: 0 (ok)"), "{good}");
    let bad = verify(&pki.wrong_ca_cert);
    assert!(!bad.contains("Verify return code: 0 (ok)"), "{bad}");
}

#[test]
fn restart_forgets_registrations_and_stop_frees_ports() {
    if !have_tools(false) {
        return;
    }
    let mut kam = Kamailio::start(KamailioOptions::default());
    let port = kam.port;
    let (_, status) = Ua::udp(port).register(port, "bob", PASSWORD, 5999);
    assert_eq!(status, "SIP/2.0 200 OK");
    assert_eq!(kam.registrations("bob").len(), 1);

    // Remember a nonce of this run to present it to the next one.
    let mut ua = Ua::udp(port);
    ua.send(&ua.register_request(port, "bob", 5999, 1, ""));
    let old_nonce = param(header(&ua.recv_final(), "WWW-Authenticate").unwrap(), "nonce");

    kam.restart();
    assert_eq!(kam.port, port);
    assert!(kam.registrations("bob").is_empty());
    // A nonce from before the restart is challenged again, not refused.
    ua.send(&ua.register_request(port, "bob", 5999, 2, &digest(port, "bob", PASSWORD, &old_nonce, "MD5")));
    let reply = ua.recv_final();
    assert!(reply.starts_with("SIP/2.0 401") && !reply.contains("stale=true"), "{reply}");
    let (_, status) = Ua::tcp(port).register(port, "bob", PASSWORD, 5999);
    assert_eq!(status, "SIP/2.0 200 OK");

    kam.stop();
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "still listening after stop");
    UdpSocket::bind(("127.0.0.1", port)).expect("UDP port free after stop");
    TcpListener::bind(("127.0.0.1", port)).expect("TCP port free after stop");
}
