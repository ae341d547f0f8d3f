//! The daemon's TOML configuration: every key has a default, so no file is
//! needed to start; a bad file is refused with a message naming the key.

mod account;
mod bridge;
mod callback;
mod calls;
mod log;
mod media;
mod metrics;
mod nat;
mod recording;
mod reload;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The call core's vocabulary for who may call and whether the agent takes calls.
pub use crate::call::admission::{AgentState, AllowedPeer};
/// Offer/answer's own vocabulary, read here from TOML.
pub use crate::sdp::SrtpPolicy;
pub use account::{AccountConfig, Secret, Transport};
pub use bridge::BridgeConfig;
pub use callback::{CallbackConfig, StoreConfig};
pub use calls::{CallsConfig, TransferConfig};
pub use log::{LogConfig, LogFormat};
pub use media::{parse_codecs, MediaConfig};
pub use metrics::MetricsConfig;
pub use nat::NatConfig;
pub use recording::RecordingConfig;
pub use reload::ReloadPlan;

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The file is not valid TOML, or a key has the wrong type or is unknown.
    #[error("invalid config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A value parses but cannot be used.
    #[error("invalid value for {key}: {message}")]
    Value { key: &'static str, message: String },
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub sip: SipConfig,
    pub control: ControlConfig,
    pub audio: AudioConfig,
    pub media: MediaConfig,
    pub recording: RecordingConfig,
    pub callback: CallbackConfig,
    pub store: StoreConfig,
    pub calls: CallsConfig,
    pub transfer: TransferConfig,
    pub agent: AgentConfig,
    pub bridge: BridgeConfig,
    pub nat: NatConfig,
    pub dns: DnsConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
    pub accounts: Vec<AccountConfig>,
    /// The file this was read from: a reload reads it again.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// Listening points, `udp:IP:PORT`, `tcp:IP:PORT`, `tls:IP:PORT`. A
    /// wildcard (`0.0.0.0`, `[::]`) listens on every interface and
    /// advertises, per destination, the address the route to it leaves from.
    pub listen: Vec<String>,
    /// The address peers reach us at (a NAT's public address with its ports
    /// forwarded), put in Contact, Via and SDP instead of any other.
    pub public_address: Option<IpAddr>,
    /// The user part of our From and Contact when dialing without an account.
    pub user: String,
    /// RFC 3261 T1 in milliseconds; tests shrink it.
    pub t1_ms: u64,
    /// Who may send us INVITEs besides the registrars and proxies of the
    /// accounts: `IP` or `IP:PORT`. Once any account has a registrar, or
    /// this list is not empty, everyone else gets 403.
    pub allow_from: Vec<String>,
    /// Extra trust anchors (PEM) for TLS, on top of the system's roots.
    pub tls_ca_file: Option<PathBuf>,
    /// Verify TLS servers' certificates. Turning this off is for labs only.
    pub tls_verify: bool,
    /// Certificate and key (PEM) for `tls:` listening points.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// RFC 4028 session interval we ask for; 0 turns session timers off.
    pub session_expires_s: u32,
    /// The smallest session interval we accept (Min-SE).
    pub min_se_s: u32,
    /// Requests a second one address may send us unless it is trusted (an
    /// account's registrar or proxy, or in `allow_from`); twice as many in
    /// a burst. Past that it is not answered. 0: no limit.
    pub rate_limit_per_source: u32,
    /// Inbound TCP connections at once, in all (also bounded by the open
    /// files limit) and from one untrusted address.
    pub tcp_connections_max: usize,
    pub tcp_connections_per_source: usize,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen: vec!["udp:127.0.0.1:5060".into()],
            public_address: None,
            user: "agent".into(),
            t1_ms: 500,
            allow_from: Vec::new(),
            tls_ca_file: None,
            tls_verify: true,
            tls_cert_file: None,
            tls_key_file: None,
            session_expires_s: 1800,
            min_se_s: 90,
            rate_limit_per_source: 20,
            tcp_connections_max: 1024,
            tcp_connections_per_source: 32,
        }
    }
}

/// `[dns]`: who locates registrars and proxies (RFC 3263: NAPTR, SRV, A/AAAA).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// Resolvers to ask, `IP` or `IP:PORT` (port 53 by default); none:
    /// the system's, from /etc/resolv.conf. No other resolver is ever asked.
    pub servers: Vec<String>,
}

impl DnsConfig {
    /// `servers`, parsed.
    pub fn server_addrs(&self) -> Result<Vec<SocketAddr>, ConfigError> {
        self.servers
            .iter()
            .map(|entry| {
                let ip = entry.parse().map(|ip| SocketAddr::new(ip, 53));
                ip.or_else(|_| entry.parse()).map_err(|_| ConfigError::Value {
                    key: "dns.servers",
                    message: format!("{entry:?}: expected a numeric IP or IP:PORT"),
                })
            })
            .collect()
    }
}

/// A listening point of `sip.listen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen {
    pub transport: Transport,
    pub addr: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// The agent state at start.
    pub initial_state: AgentState,
    /// The answer to inbound calls while not ready: 486 or 480.
    pub not_ready_code: u16,
    /// An inbound call nobody answers is sent back after this long; 0 = never.
    pub ring_timeout_ms: u64,
    /// ... with this response (480 lets the contact center re-route it).
    pub ring_timeout_code: u16,
    /// Auto-answer for inbound calls that match no account.
    pub auto_answer_after_ms: Option<u64>,
    /// Honour `answer-after` hints on calls that match no account.
    pub answer_after_hint: bool,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            initial_state: AgentState::Ready,
            not_ready_code: 480,
            ring_timeout_ms: 30_000,
            ring_timeout_code: 480,
            auto_answer_after_ms: None,
            answer_after_hint: false,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// The Unix socket path; default `$XDG_RUNTIME_DIR/softphoned/control.sock`.
    pub socket: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AudioConfig {
    /// `tone:HZ`, `wav:PATH` or `null`.
    pub source: String,
    /// `wav:PATH` or `null`.
    pub sink: String,
}

impl Default for AudioConfig {
    fn default() -> Self {
        AudioConfig { source: "null".into(), sink: "null".into() }
    }
}

/// `$XDG_DATA_HOME`, or `~/.local/share`, or `/var/lib` for a system service.
fn data_home() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("/var/lib"))
}

impl Config {
    /// Read `path`, or the defaults when none is given.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else { return Ok(Config::default()) };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let mut config = Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse { path: path.into(), message },
            other => other,
        })?;
        config.source = Some(path.into());
        Ok(config)
    }

    /// Parse and check a configuration text; passwords kept in files or
    /// the environment are read now, so a missing one stops the start.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let mut config: Config =
            toml::from_str(text).map_err(|e| ConfigError::Parse { path: PathBuf::new(), message: e.to_string() })?;
        let listen = config.listen_addrs()?;
        let bad = |key: &'static str, message: &str| Err(ConfigError::Value { key, message: message.into() });
        if config.sip.t1_ms == 0 {
            return bad("sip.t1_ms", "must be positive");
        }
        if listen.iter().any(|l| l.transport == Transport::Tls)
            && (config.sip.tls_cert_file.is_none() || config.sip.tls_key_file.is_none())
        {
            return bad("sip.tls_cert_file", "a tls: listening point needs tls_cert_file and tls_key_file");
        }
        config.allowed_peers()?;
        config.dns.server_addrs()?;
        if config.sip.tcp_connections_max == 0 || config.sip.tcp_connections_per_source == 0 {
            return bad(
                "sip.tcp_connections_max",
                "tcp_connections_max and tcp_connections_per_source must be at least 1",
            );
        }
        if config.sip.session_expires_s != 0 && config.sip.session_expires_s < config.sip.min_se_s.max(90) {
            return bad("sip.session_expires_s", "must be 0 (off) or at least min_se_s (and RFC 4028's 90)");
        }
        for (key, code) in [
            ("agent.not_ready_code", config.agent.not_ready_code),
            ("agent.ring_timeout_code", config.agent.ring_timeout_code),
        ] {
            if !(400..700).contains(&code) {
                return bad(key, "must be a SIP failure status (400-699), e.g. 480 or 486");
            }
        }
        config.media.check()?;
        config.callback.check()?;
        config.calls.check()?;
        config.bridge.check()?;
        config.nat.check()?;
        config.log.check()?;
        config.recording.check()?;
        config.metrics.check()?;
        for account in &mut config.accounts {
            account.resolve()?;
        }
        let mut ids: Vec<&str> = config.accounts.iter().map(|a| a.id.as_str()).collect();
        ids.sort_unstable();
        if let Some(pair) = ids.windows(2).find(|pair| pair[0] == pair[1]) {
            let message = format!("account id {:?} is used twice", pair[0]);
            return Err(ConfigError::Value { key: "accounts.id", message });
        }
        Ok(config)
    }

    /// The SIP listening points.
    pub fn listen_addrs(&self) -> Result<Vec<Listen>, ConfigError> {
        if self.sip.listen.is_empty() {
            return Err(ConfigError::Value { key: "sip.listen", message: "needs at least one address".into() });
        }
        self.sip
            .listen
            .iter()
            .map(|entry| {
                let bad = |message: String| ConfigError::Value { key: "sip.listen", message };
                let (name, addr) = entry.split_once(':').unwrap_or(("", entry));
                let transport = Transport::parse(name)
                    .ok_or_else(|| bad(format!("{entry:?}: expected udp:, tcp: or tls: before the address")))?;
                let addr = addr
                    .parse()
                    .map_err(|e| bad(format!("{entry:?}: {e} (expected {name}:IP:PORT with a numeric IP)")))?;
                Ok(Listen { transport, addr })
            })
            .collect()
    }

    /// `sip.allow_from`, parsed.
    pub fn allowed_peers(&self) -> Result<Vec<AllowedPeer>, ConfigError> {
        self.sip
            .allow_from
            .iter()
            .map(|entry| {
                AllowedPeer::parse(entry).ok_or_else(|| ConfigError::Value {
                    key: "sip.allow_from",
                    message: format!("{entry:?}: expected a numeric IP or IP:PORT"),
                })
            })
            .collect()
    }

    pub fn t1(&self) -> Duration {
        Duration::from_millis(self.sip.t1_ms)
    }

    /// The control socket path, falling back to a per-user runtime folder.
    pub fn control_socket(&self) -> PathBuf {
        self.control.socket.clone().unwrap_or_else(default_control_socket)
    }
}

/// `$XDG_RUNTIME_DIR/softphoned/control.sock`, or a per-user folder in /tmp.
pub fn default_control_socket() -> PathBuf {
    let runtime = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from).unwrap_or_else(|| {
        use std::os::unix::fs::MetadataExt;
        // Our own uid, read without unsafe: /proc/self belongs to us.
        let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0);
        PathBuf::from(format!("/tmp/softphoned-{uid}"))
    });
    runtime.join("softphoned").join("control.sock")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_serve_without_a_file() {
        let c = Config::load(None).unwrap();
        assert_eq!(c.listen_addrs().unwrap()[0].addr, "127.0.0.1:5060".parse().unwrap());
        assert_eq!(c.audio.source, "null");
        assert!(c.control_socket().ends_with("softphoned/control.sock"));
    }

    #[test]
    fn reads_the_protocol_keys() {
        let c = Config::parse(
            r#"
            [sip]
            listen = ["udp:127.0.0.1:5099"]
            [control]
            socket = "/tmp/x.sock"
            [audio]
            source = "tone:1000"
            sink = "wav:/tmp/out.wav"
            [recording]
            dir = "/tmp/rec"
            "#,
        )
        .unwrap();
        assert_eq!(c.listen_addrs().unwrap()[0].addr.port(), 5099);
        assert_eq!(c.control_socket(), PathBuf::from("/tmp/x.sock"));
        assert_eq!((c.audio.source.as_str(), c.audio.sink.as_str()), ("tone:1000", "wav:/tmp/out.wav"));
        assert_eq!(c.recording.dir, PathBuf::from("/tmp/rec"));
        let dns = Config::parse("[dns]\nservers = [\"192.0.2.53\", \"[2001:db8::53]:5353\"]\n").unwrap();
        let servers: Vec<String> = dns.dns.server_addrs().unwrap().iter().map(|s| s.to_string()).collect();
        assert_eq!(servers, ["192.0.2.53:53", "[2001:db8::53]:5353"]);
    }

    #[test]
    fn bad_values_name_the_key() {
        let unknown = Config::parse("[sip]\nlisten = [\"udp:127.0.0.1:5060\"]\nbogus = 1\n").unwrap_err();
        assert!(unknown.to_string().contains("bogus"), "{unknown}");
        let sctp = Config::parse("[sip]\nlisten = [\"sctp:127.0.0.1:5060\"]\n").unwrap_err();
        assert!(sctp.to_string().contains("sip.listen"), "{sctp}");
        let tls = Config::parse("[sip]\nlisten = [\"tls:127.0.0.1:5061\"]\n").unwrap_err();
        assert!(tls.to_string().contains("tls_cert_file"), "{tls}");
        let allow = Config::parse("[sip]\nallow_from = [\"pbx.example.com\"]\n").unwrap_err();
        assert!(allow.to_string().contains("sip.allow_from"), "{allow}");
        let code = Config::parse("[agent]\nnot_ready_code = 200\n").unwrap_err();
        assert!(code.to_string().contains("agent.not_ready_code"), "{code}");
        let host = Config::parse("[sip]\nlisten = [\"udp:pbx:5060\"]\n").unwrap_err();
        assert!(host.to_string().contains("numeric IP"), "{host}");
        let dns = Config::parse("[dns]\nservers = [\"ns.example.test\"]\n").unwrap_err();
        assert!(dns.to_string().contains("dns.servers"), "{dns}");
        let codec = Config::parse("[media]\ncodecs = [\"g729\"]\n").unwrap_err();
        assert!(codec.to_string().contains("media.codecs") && codec.to_string().contains("g729"), "{codec}");
        let twice = Config::parse("[media]\ncodecs = [\"pcmu\", \"PCMU\"]\n").unwrap_err();
        assert!(twice.to_string().contains("twice"), "{twice}");
        let srtp = Config::parse("[media]\nsrtp = \"sometimes\"\n").unwrap_err();
        assert!(srtp.to_string().contains("srtp"), "{srtp}");
        let jitter = Config::parse("[media]\njitter_min_ms = 300\n").unwrap_err();
        assert!(jitter.to_string().contains("media.jitter_min_ms"), "{jitter}");
        let account = "[[accounts]]\nid = \"a\"\naor = \"sip:a@b\"\ncodecs = [\"speex\"]\n";
        let account = Config::parse(account).unwrap_err();
        assert!(account.to_string().contains("accounts.codecs"), "{account}");
    }

    #[test]
    fn the_example_config_is_valid() {
        let example = include_str!("../../examples/softphoned.toml");
        let c = Config::parse(example).unwrap();
        assert_eq!(c.listen_addrs().unwrap().len(), 2);
    }
}
