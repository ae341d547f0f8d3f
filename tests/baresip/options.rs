//! What a baresip instance is started with, and the `config` and `accounts`
//! files baresip 1.0.0 reads from them. Quirk: `audio_codecs` names must
//! carry rate and channels where they differ from 8000/1 (`G722/16000/1`,
//! `opus/48000/2`), and a name matching nothing silently offers every codec:
//! hence [`Codec`] rather than strings.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const MODULES_DIR: &str = "/usr/lib/baresip/modules";
/// The modules every instance loads (all in `baresip-core`).
const MODULES: [&str; 6] = ["g711", "g722", "opus", "srtp", "sndfile", "aufile"];
const APP_MODULES: [&str; 3] = ["account", "menu", "ctrl_tcp"];
/// The tone file's rate; `ausrc_srate` makes baresip resample it to the codec's rate
/// (1.0.0's aufile source refuses a file whose rate differs from the codec's otherwise).
pub(super) const TONE_RATE: u32 = 16000;

/// An audio codec baresip offers, named as its `audio_codecs` wants it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Pcmu,
    Pcma,
    G722,
    Opus,
}

impl Codec {
    pub const ALL: [Codec; 4] = [Codec::Pcmu, Codec::Pcma, Codec::G722, Codec::Opus];

    pub(super) fn account_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::G722 => "G722/16000/1",
            Codec::Opus => "opus/48000/2",
        }
    }

    /// As baresip logs it: `audio: Set audio encoder: G722 16000Hz 1ch`.
    pub(super) fn log_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::G722 => "G722",
            Codec::Opus => "opus",
        }
    }

    /// Sample rate of baresip's recordings with this codec (its audio rate, not the RTP clock).
    pub fn recording_rate(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma => 8000,
            Codec::G722 => 16000,
            Codec::Opus => 48000,
        }
    }

    pub fn recording_channels(self) -> u16 {
        if self == Codec::Opus {
            2
        } else {
            1
        }
    }
}

/// SDES-SRTP (RFC 4568) as the account's `mediaenc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Srtp {
    /// `srtp`: offers RTP/AVP with crypto lines, accepts plain RTP.
    Optional,
    /// `srtp-mand`: offers RTP/SAVP, refuses plain RTP.
    Mandatory,
}

#[derive(Clone, Debug)]
pub struct BaresipOptions {
    /// User part of the account's AOR.
    pub user: String,
    /// Offered/accepted in this order; empty = all, in module order (PCMU, PCMA, G722, opus).
    pub codecs: Vec<Codec>,
    pub srtp: Option<Srtp>,
    /// Sine tone sent in calls (half scale); `None` sends silence.
    pub tone_hz: Option<f64>,
    /// Length of the tone file: a call ends (reason "end of file") when it runs out.
    pub tone_secs: u32,
    /// `answermode=auto` (answers at once) or `manual` (waits for [`Baresip::accept`]).
    pub auto_answer: bool,
}

impl Default for BaresipOptions {
    fn default() -> Self {
        BaresipOptions {
            user: "bare".into(),
            codecs: vec![],
            srtp: None,
            tone_hz: None,
            tone_secs: 60,
            auto_answer: true,
        }
    }
}

impl BaresipOptions {
    /// The `accounts` file: one account with AOR `uri`, no registration.
    pub(super) fn account(&self, uri: &str) -> String {
        let answer = if self.auto_answer { "auto" } else { "manual" };
        let mut line = format!("<{uri}>;regint=0;answermode={answer}");
        if !self.codecs.is_empty() {
            let names: Vec<&str> = self.codecs.iter().map(|c| c.account_name()).collect();
            line += &format!(";audio_codecs={}", names.join(","));
        }
        match self.srtp {
            Some(Srtp::Optional) => line += ";mediaenc=srtp",
            Some(Srtp::Mandatory) => line += ";mediaenc=srtp-mand",
            None => {}
        }
        line + "\n"
    }
}

/// The `config` file for ports `sip`/`ctrl`, recordings in `dir`, sending `tone`.
pub(super) fn config(sip: u16, ctrl: u16, dir: &Path, tone: &Path) -> String {
    let mut config = format!(
        "poll_method epoll\n\
         sip_listen 127.0.0.1:{sip}\n\
         net_interface 127.0.0.1\n\
         audio_source aufile,{tone}\n\
         ausrc_srate {TONE_RATE}\n\
         ausrc_channels 1\n\
         module_path {MODULES_DIR}\n\
         ctrl_tcp_listen 127.0.0.1:{ctrl}\n\
         snd_path {dir}\n",
        tone = tone.display(),
        dir = dir.display(),
    );
    // No audio_player: the receive path still decodes (and records) without one.
    for module in MODULES {
        config += &format!("module {module}.so\n");
    }
    for module in APP_MODULES {
        config += &format!("module_app {module}.so\n");
    }
    config
}

/// Whether baresip and the modules the harness loads are installed. Under
/// `CI=true` a missing one fails loudly; elsewhere the caller skips.
pub fn installed() -> bool {
    let binary = Command::new("baresip").arg("-h").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    let missing: Vec<&str> = MODULES
        .iter()
        .chain(APP_MODULES.iter())
        .filter(|m| !Path::new(MODULES_DIR).join(format!("{m}.so")).is_file())
        .copied()
        .collect();
    let found = binary && missing.is_empty();
    if !found {
        let what = if binary { format!("baresip modules {missing:?}") } else { "baresip".to_string() };
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{what} required under CI=true: run tests/run.sh, which installs baresip-core");
        }
        let _ = writeln!(std::io::stderr(), "SKIPPED: {what} not installed (run tests/run.sh)");
    }
    found
}
