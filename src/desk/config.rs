//! The desk's settings as plain values: the shell builds them from the TOML
//! config and the SIP side's resolved accounts, so the desk never reads a
//! config struct. Also the two small rules they feed: where a dialled
//! number goes, and what our end of a new call's media offers.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::call::admission::AgentState;
use crate::call::admission::InboundPolicy;
use crate::callback::CallbackPolicy;
use crate::media::codec::{Codec, OpusParams};
use crate::recording::{RecordingFormat, RecordingMode};
use crate::sdp::SrtpPolicy;
use crate::sdp::{LocalMedia, MediaPolicy};

use super::vocabulary::Line;

#[derive(Debug, Clone)]
pub struct DeskConfig {
    /// At most this many calls at once, consults included (`calls.max`).
    pub calls_max: usize,
    /// Answering a call holds the agent's other answered calls.
    pub hold_on_answer: bool,
    pub callback: CallbackPolicy,
    /// Who may ring the agent, and how calls are answered.
    pub inbound: InboundPolicy,
    pub agent_state: AgentState,
    pub dial_plan: DialPlan,
    /// What a call offers, by account; `default_media` for the rest.
    pub default_media: MediaPolicy,
    pub account_media: HashMap<String, MediaPolicy>,
    pub recording: RecordingPolicy,
}

/// The longest dial or transfer target taken: far beyond any real SIP URI.
pub const MAX_TARGET: usize = 1024;

/// Where a number the agent typed is sent.
#[derive(Debug, Clone)]
pub struct DialPlan {
    /// The account that places a call naming none (the first configured).
    pub default_account: Option<String>,
    /// Each account's domain: a number dialled from it is a user there.
    pub domains: HashMap<String, String>,
    /// Whether the SIP side can route to a URI (its parser's verdict).
    pub check_uri: fn(&str) -> Result<(), String>,
}

impl DialPlan {
    /// A SIP URI as is; a number (or user) at the account's domain. One
    /// longer than [`MAX_TARGET`] is refused at once (it would make an
    /// INVITE nobody answers).
    pub fn target(&self, to: &str, account: Option<&str>) -> Result<String, String> {
        if to.len() > MAX_TARGET {
            return Err(format!("the target is {} bytes long; at most {MAX_TARGET}", to.len()));
        }
        let domain =
            account.map(|id| self.domains.get(id).ok_or_else(|| format!("no such account: {id}"))).transpose()?;
        let text = match domain {
            Some(domain) if !to.contains(':') => format!("sip:{to}@{domain}"),
            _ => to.to_string(),
        };
        (self.check_uri)(&text)?;
        Ok(text)
    }
}

/// `recording.*` and the accounts' `recording`.
#[derive(Debug, Clone)]
pub struct RecordingPolicy {
    pub mode: RecordingMode,
    pub account_modes: HashMap<String, RecordingMode>,
    /// Absolute: events and history name files by full path.
    pub dir: PathBuf,
    pub format: RecordingFormat,
    /// `recording.encrypt_to` is set: files are named `….age`, and the
    /// recorder seals them to its recipients.
    pub encrypted: bool,
    /// Our address as a sidecar names it, by account; `default_local` for calls of none.
    pub local_aors: HashMap<String, String>,
    pub default_local: String,
}

impl RecordingPolicy {
    pub fn mode_for(&self, account: Option<&str>) -> RecordingMode {
        account.and_then(|id| self.account_modes.get(id)).copied().unwrap_or(self.mode)
    }

    pub fn local_for(&self, account: Option<&str>) -> &str {
        account.and_then(|id| self.local_aors.get(id)).unwrap_or(&self.default_local)
    }
}

impl DeskConfig {
    /// Our end of a new call's media on `line`, under its account's policy.
    pub(super) fn local_media(&self, account: Option<&str>, line: &Line) -> LocalMedia {
        let policy = account.and_then(|id| self.account_media.get(id)).unwrap_or(&self.default_media);
        LocalMedia { rtp: line.rtp, session_id: line.session_id, policy: policy.clone(), key_salt: line.key_salt }
    }
}

/// Defaults matching the daemon's own with no account configured: what
/// simulations and benches start from.
impl Default for DeskConfig {
    fn default() -> Self {
        DeskConfig {
            calls_max: 4,
            hold_on_answer: true,
            callback: CallbackPolicy::default(),
            // 480 Temporarily Unavailable while not ready, as `agent.not_ready_code`.
            inbound: InboundPolicy { not_ready_code: 480, ..InboundPolicy::default() },
            agent_state: AgentState::Ready,
            dial_plan: DialPlan {
                default_account: None,
                domains: HashMap::new(),
                check_uri: |uri| match uri.split_once(':') {
                    Some(("sip" | "sips", rest)) if !rest.is_empty() => Ok(()),
                    _ => Err(format!("invalid SIP URI {uri:?}: expected sip: or sips:")),
                },
            },
            default_media: MediaPolicy {
                codecs: vec![Codec::Pcmu, Codec::Pcma],
                srtp: SrtpPolicy::Off,
                opus: OpusParams::offer(),
            },
            account_media: HashMap::new(),
            recording: RecordingPolicy {
                mode: RecordingMode::OnDemand,
                account_modes: HashMap::new(),
                dir: PathBuf::from("recordings"),
                format: RecordingFormat::Wav,
                encrypted: false,
                local_aors: HashMap::new(),
                default_local: "sip:agent@127.0.0.1".into(),
            },
        }
    }
}
