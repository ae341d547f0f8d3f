//! `[[accounts]]`: who the agent is at a registrar, how to reach it, and
//! how inbound calls for that identity are answered. Passwords are read
//! here once (from the file, an env var or a path) and held in a
//! [`Secret`] that neither logs nor serializes.

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

/// A SIP transport as the config names it: DNS location's own vocabulary.
pub use crate::dns::Transport;

/// A password: printed as `***`, never serialized, compared only to see
/// whether a reloaded config changed it.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The only way to read it: at the moment a digest is computed.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// Names the account in methods and events.
    pub id: String,
    /// Address of record, `sip:user@domain`.
    pub aor: String,
    /// Where to REGISTER; absent means the account never registers.
    pub registrar: Option<String>,
    /// Every request of this account goes here first (an SBC or edge proxy).
    pub outbound_proxy: Option<String>,
    /// Digest user name; the AOR's user part when absent.
    pub username: Option<String>,
    /// Digest realm to answer; any realm the server names when absent.
    pub realm: Option<String>,
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    #[serde(default)]
    pub transport: Transport,
    /// Registration lifetime asked of the registrar.
    #[serde(default = "default_expires")]
    pub expires_s: u32,
    pub display_name: Option<String>,
    /// Answer inbound calls for this account after this long (customer-first).
    pub auto_answer_after_ms: Option<u64>,
    /// Honour an `answer-after` hint in Call-Info/Alert-Info of inbound calls.
    #[serde(default)]
    pub answer_after_hint: bool,
    /// Keep-alive interval towards the registrar: CRLF on TCP/TLS, OPTIONS on UDP; 0 = off.
    #[serde(default = "default_keepalive")]
    pub keepalive_s: u64,
    /// Codec preference for this account's calls; `[media] codecs` when absent.
    pub codecs: Option<Vec<String>>,
    /// SRTP policy for this account's calls; `[media] srtp` when absent.
    pub srtp: Option<super::SrtpPolicy>,
    /// Recording of this account's calls; `[recording] mode` when absent.
    pub recording: Option<crate::recording::RecordingMode>,
}

fn default_expires() -> u32 {
    600
}

fn default_keepalive() -> u64 {
    30
}

impl AccountConfig {
    /// Check the fields and read the password from where it is kept.
    pub(super) fn resolve(&mut self) -> Result<(), ConfigError> {
        let bad = |key: &'static str, message: String| ConfigError::Value { key, message };
        if self.id.is_empty() {
            return Err(bad("accounts.id", "must not be empty".into()));
        }
        let id = &self.id;
        if !(self.aor.starts_with("sip:") || self.aor.starts_with("sips:")) || !self.aor.contains('@') {
            return Err(bad("accounts.aor", format!("account {id}: {:?} is not sip:user@domain", self.aor)));
        }
        for (key, uri) in [("accounts.registrar", &self.registrar), ("accounts.outbound_proxy", &self.outbound_proxy)] {
            if let Some(uri) = uri {
                if !(uri.starts_with("sip:") || uri.starts_with("sips:")) {
                    return Err(bad(key, format!("account {id}: {uri:?} is not a sip: URI")));
                }
            }
        }
        if self.expires_s == 0 {
            return Err(bad("accounts.expires_s", format!("account {id}: must be positive")));
        }
        if let Some(codecs) = &self.codecs {
            super::parse_codecs("accounts.codecs", codecs)
                .map_err(|e| bad("accounts.codecs", format!("account {id}: {e}")))?;
        }
        let sources = [self.password.is_some(), self.password_file.is_some(), self.password_env.is_some()];
        if sources.iter().filter(|s| **s).count() > 1 {
            return Err(bad(
                "accounts.password",
                format!("account {id}: give one of password, password_file, password_env"),
            ));
        }
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| bad("accounts.password_file", format!("account {id}: {}: {e}", path.display())))?;
            self.password = Some(Secret::new(text.trim_end_matches(['\r', '\n'])));
        }
        if let Some(var) = &self.password_env {
            let value =
                std::env::var(var).map_err(|e| bad("accounts.password_env", format!("account {id}: ${var}: {e}")))?;
            self.password = Some(Secret::new(value));
        }
        Ok(())
    }

    /// The digest user name: `username`, or the AOR's user part.
    pub fn auth_user(&self) -> String {
        self.username.clone().unwrap_or_else(|| self.aor_user().to_string())
    }

    /// The user part of the AOR (`alice` of `sip:alice@example.com`).
    pub fn aor_user(&self) -> &str {
        let rest = self.aor.split_once(':').map(|(_, r)| r).unwrap_or(&self.aor);
        rest.split('@').next().unwrap_or(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn parse(accounts: &str) -> Result<Config, ConfigError> {
        Config::parse(&format!("[sip]\nlisten = [\"udp:127.0.0.1:5060\"]\n{accounts}"))
    }

    #[test]
    fn accounts_read_all_keys_and_hide_the_password() {
        let c = parse(
            r#"
            [[accounts]]
            id = "main"
            aor = "sip:alice@pbx.example.com"
            registrar = "sip:pbx.example.com"
            outbound_proxy = "sip:127.0.0.1:5070"
            password = "s3cret"
            transport = "tcp"
            expires_s = 300
            display_name = "Alice"
            auto_answer_after_ms = 9000
            [[accounts]]
            id = "second"
            aor = "sip:bob@example.org"
            "#,
        )
        .unwrap();
        let main = &c.accounts[0];
        assert_eq!((main.transport, main.expires_s, main.auth_user().as_str()), (Transport::Tcp, 300, "alice"));
        assert_eq!(main.password.as_ref().unwrap().expose(), "s3cret");
        assert!(!format!("{c:?}").contains("s3cret"), "Debug must not show the password");
        assert_eq!(c.accounts[1].registrar, None);
        assert_eq!(c.accounts[1].transport, Transport::Udp);
    }

    #[test]
    fn passwords_come_from_a_file_or_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-file\n").unwrap();
        std::env::set_var("SOFTPHONED_TEST_PW", "from-env");
        let c = parse(&format!(
            "[[accounts]]\nid = \"a\"\naor = \"sip:a@x\"\npassword_file = \"{}\"\n\
             [[accounts]]\nid = \"b\"\naor = \"sip:b@x\"\npassword_env = \"SOFTPHONED_TEST_PW\"\n",
            file.display()
        ))
        .unwrap();
        assert_eq!(c.accounts[0].password.as_ref().unwrap().expose(), "from-file");
        assert_eq!(c.accounts[1].password.as_ref().unwrap().expose(), "from-env");
    }

    #[test]
    fn bad_accounts_name_the_key() {
        let cases = [
            ("[[accounts]]\nid = \"a\"\naor = \"alice\"\n", "accounts.aor"),
            ("[[accounts]]\nid = \"a\"\naor = \"sip:a@x\"\npassword = \"p\"\npassword_env = \"P\"\n", "password"),
            ("[[accounts]]\nid = \"a\"\naor = \"sip:a@x\"\npassword_file = \"/nonexistent/pw\"\n", "password_file"),
            ("[[accounts]]\nid = \"a\"\naor = \"sip:a@x\"\ntransport = \"sctp\"\n", "transport"),
            ("[[accounts]]\nid = \"a\"\naor = \"sip:a@x\"\n[[accounts]]\nid = \"a\"\naor = \"sip:b@x\"\n", "twice"),
        ];
        for (text, key) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text:?} gave {err}");
        }
    }
}
