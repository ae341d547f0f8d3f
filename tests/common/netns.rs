//! Networks a test builds for itself out of Linux network namespaces (root
//! only): hosts ([`Netns`]), the links between them ([`link`]), a home
//! router that masquerades ([`Netns::masquerade`]), and commands run
//! inside ([`Netns::command`]). Only documentation addresses (192.0.2.0/24,
//! 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) are ever given out.
//! Everything is deleted when the [`Netns`] drops, also after a failed
//! assertion.

use std::process::{Command, Stdio};

/// One network namespace, deleted (with its links and processes' sockets) on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A new, empty namespace with its loopback up; `tag` makes the name
    /// readable, the process id unique.
    pub fn new(tag: &str) -> Netns {
        // Tests of one binary run at once in one process: a count tells them apart.
        static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let count = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("sph-{tag}-{}-{count}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).stderr(Stdio::null()).status();
        ip(&["netns", "add", &name]);
        let netns = Netns { name };
        netns.ip(&["link", "set", "lo", "up"]);
        netns
    }

    /// `ip ARGS` inside; panics with its stderr when it fails.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// `program` to be run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    /// Run `program ARGS` inside and wait; panics when it fails.
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        let out = self.command(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(out.status.success(), "{program} {args:?} in {}: {}", self.name, String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether a UDP socket inside is bound to `port` (`ss`).
    pub fn udp_bound(&self, port: u16) -> bool {
        !self.run("ss", &["-Hlun", &format!("sport = :{port}")]).trim().is_empty()
    }

    /// Route everything else through `gateway`.
    pub fn default_route(&self, gateway: &str) {
        self.ip(&["route", "add", "default", "via", gateway]);
    }

    /// Make this namespace a home router: forward, and masquerade what
    /// leaves by `wan` (Linux keeps the source port when it is free, as
    /// most home routers do). UDP mappings are forgotten after
    /// `udp_timeout_s` without traffic, as a home router's are.
    pub fn masquerade(&self, wan: &str, udp_timeout_s: u32) {
        self.run("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
        self.run("nft", &["add table ip nat"]);
        self.run("nft", &["add chain ip nat post { type nat hook postrouting priority srcnat; }"]);
        self.run("nft", &[&format!("add rule ip nat post oifname \"{wan}\" masquerade")]);
        // Conntrack's sysctls exist once the namespace has tracked something.
        for key in ["nf_conntrack_udp_timeout", "nf_conntrack_udp_timeout_stream"] {
            self.run("sysctl", &["-qw", &format!("net.netfilter.{key}={udp_timeout_s}")]);
        }
    }

    /// From now on, give every new flow a random port (`fully-random`), as
    /// a carrier-grade NAT does: a mapping forgotten comes back elsewhere.
    pub fn remap_randomly(&self, wan: &str) {
        self.run("nft", &["flush chain ip nat post"]);
        self.run("nft", &[&format!("add rule ip nat post oifname \"{wan}\" masquerade fully-random")]);
    }

    /// The router forgets every mapping (`conntrack -F`).
    pub fn forget_mappings(&self) {
        // conntrack says how many it deleted on stderr; failure is an error.
        self.run("conntrack", &["-F"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Processes started with `ip netns exec` are the caller's to kill;
        // the namespace goes (and its veth ends with it).
        let _ = Command::new("ip").args(["netns", "del", &self.name]).stderr(Stdio::null()).status();
    }
}

/// A veth cable between `a` (interface `a_if`, address `a_addr/prefix`)
/// and `b`, both ends up.
pub fn link(a: &Netns, a_if: &str, a_addr: &str, b: &Netns, b_if: &str, b_addr: &str) {
    ip(&["link", "add", a_if, "netns", &a.name, "type", "veth", "peer", "name", b_if, "netns", &b.name]);
    for (ns, interface, addr) in [(a, a_if, a_addr), (b, b_if, b_addr)] {
        if addr.contains(':') {
            // IPv6 right away, without duplicate address detection's wait.
            ns.ip(&["addr", "add", addr, "dev", interface, "nodad"]);
        } else {
            ns.ip(&["addr", "add", addr, "dev", interface]);
        }
        ns.ip(&["link", "set", interface, "up"]);
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip (iproute2) runs");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}
