//! The daemon's TOML configuration: every key has a default, so no file is
//! needed to start; a bad file is refused with a message naming the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

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

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub sip: SipConfig,
    pub control: ControlConfig,
    pub audio: AudioConfig,
    pub recording: RecordingConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// Listening points, `udp:HOST:PORT`.
    pub listen: Vec<String>,
    /// The user part of our From and Contact when dialing without an account.
    pub user: String,
    /// RFC 3261 T1 in milliseconds; tests shrink it.
    pub t1_ms: u64,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig { listen: vec!["udp:127.0.0.1:5060".into()], user: "agent".into(), t1_ms: 500 }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// The Unix socket path; default `$XDG_RUNTIME_DIR/softphoned/control.sock`.
    pub socket: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    /// Where recordings will be written.
    pub dir: PathBuf,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        let base = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("/var/lib"));
        RecordingConfig { dir: base.join("softphoned/recordings") }
    }
}

impl Config {
    /// Read `path`, or the defaults when none is given.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else { return Ok(Config::default()) };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let config = Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse { path: path.into(), message },
            other => other,
        })?;
        Ok(config)
    }

    /// Parse and check a configuration text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config =
            toml::from_str(text).map_err(|e| ConfigError::Parse { path: PathBuf::new(), message: e.to_string() })?;
        config.listen_addrs()?;
        if config.sip.t1_ms == 0 {
            return Err(ConfigError::Value { key: "sip.t1_ms", message: "must be positive".into() });
        }
        Ok(config)
    }

    /// The SIP listening points; only UDP exists until the transports issue.
    pub fn listen_addrs(&self) -> Result<Vec<SocketAddr>, ConfigError> {
        if self.sip.listen.is_empty() {
            return Err(ConfigError::Value { key: "sip.listen", message: "needs at least one address".into() });
        }
        self.sip
            .listen
            .iter()
            .map(|entry| {
                let (transport, addr) = entry.split_once(':').unwrap_or(("", entry));
                if transport != "udp" {
                    return Err(ConfigError::Value {
                        key: "sip.listen",
                        message: format!("{entry:?}: only udp:HOST:PORT is supported so far"),
                    });
                }
                addr.parse().map_err(|e| ConfigError::Value {
                    key: "sip.listen",
                    message: format!("{entry:?}: {e} (expected udp:HOST:PORT with a numeric IP)"),
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
        assert_eq!(c.listen_addrs().unwrap()[0], "127.0.0.1:5060".parse().unwrap());
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
        assert_eq!(c.listen_addrs().unwrap()[0].port(), 5099);
        assert_eq!(c.control_socket(), PathBuf::from("/tmp/x.sock"));
        assert_eq!((c.audio.source.as_str(), c.audio.sink.as_str()), ("tone:1000", "wav:/tmp/out.wav"));
        assert_eq!(c.recording.dir, PathBuf::from("/tmp/rec"));
    }

    #[test]
    fn bad_values_name_the_key() {
        let unknown = Config::parse("[sip]\nlisten = [\"udp:127.0.0.1:5060\"]\nbogus = 1\n").unwrap_err();
        assert!(unknown.to_string().contains("bogus"), "{unknown}");
        let tcp = Config::parse("[sip]\nlisten = [\"tcp:127.0.0.1:5060\"]\n").unwrap_err();
        assert!(tcp.to_string().contains("sip.listen"), "{tcp}");
        let host = Config::parse("[sip]\nlisten = [\"udp:pbx:5060\"]\n").unwrap_err();
        assert!(host.to_string().contains("numeric IP"), "{host}");
    }
}
