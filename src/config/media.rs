//! `[media]`: which codecs and SRTP policy calls use (accounts may
//! override both), how the jitter buffer may adapt, when silence on the
//! wire ends a call, how often quality is reported, DTMF timing, hold
//! music, noise suppression and how many threads carry the media.

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;
use crate::media::codec::Codec;
use crate::sdp::SrtpPolicy;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Codec preference, best first: `opus`, `g722`, `pcmu`, `pcma`.
    pub codecs: Vec<String>,
    pub srtp: SrtpPolicy,
    /// Bounds of the adaptive jitter buffer's target delay.
    pub jitter_min_ms: u32,
    pub jitter_max_ms: u32,
    /// A call that receives no RTP for this long ends with `media_timeout`; 0 = never.
    pub media_timeout_ms: u64,
    /// RTCP report interval (randomized ±50 % as RFC 3550 asks).
    pub rtcp_interval_ms: u64,
    /// How often `call.quality` is published for each call; 0 = never.
    pub quality_interval_ms: u64,
    /// RFC 4733 tone length and the pause between digits.
    pub dtmf_tone_ms: u32,
    pub dtmf_gap_ms: u32,
    /// While we send no audio (the peer holds us), an empty RTP packet
    /// this often keeps the NAT's mapping of our RTP port (RFC 6263); 0 = never.
    pub rtp_keepalive_ms: u64,
    /// Opus in-band FEC (and `useinbandfec=1` in our fmtp).
    pub opus_fec: bool,
    /// A WAV file played to the party we hold; silence when absent.
    pub hold_music: Option<PathBuf>,
    /// RNNoise suppression on the microphone.
    pub noise_suppression: bool,
    /// Threads a busy media tick is spread over (from 32 calls on); 0 =
    /// one per core. At most 8.
    pub threads: usize,
    /// A tick is spread when one thread would spend more than this on it
    /// (of the 20 ms period); 0 = whenever there are 32 calls or more.
    pub spread_above_ms: u64,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            codecs: ["opus", "g722", "pcmu", "pcma"].map(String::from).to_vec(),
            srtp: SrtpPolicy::Off,
            jitter_min_ms: 20,
            jitter_max_ms: 200,
            media_timeout_ms: 30_000,
            rtcp_interval_ms: 5_000,
            quality_interval_ms: 5_000,
            dtmf_tone_ms: 100,
            dtmf_gap_ms: 60,
            rtp_keepalive_ms: 15_000,
            opus_fec: true,
            hold_music: None,
            noise_suppression: false,
            threads: 0,
            spread_above_ms: 10,
        }
    }
}

/// A codec list from the config, checked.
pub fn parse_codecs(key: &'static str, names: &[String]) -> Result<Vec<Codec>, ConfigError> {
    if names.is_empty() {
        return Err(ConfigError::Value { key, message: "needs at least one codec".into() });
    }
    let mut codecs = Vec::with_capacity(names.len());
    for name in names {
        let codec = Codec::from_config(name).ok_or_else(|| ConfigError::Value {
            key,
            message: format!("unknown codec {name:?} (expected opus, g722, pcmu or pcma)"),
        })?;
        if codecs.contains(&codec) {
            return Err(ConfigError::Value { key, message: format!("codec {name:?} is listed twice") });
        }
        codecs.push(codec);
    }
    Ok(codecs)
}

impl MediaConfig {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        parse_codecs("media.codecs", &self.codecs)?;
        let bad = |key: &'static str, message: &str| Err(ConfigError::Value { key, message: message.into() });
        if self.jitter_min_ms == 0 || self.jitter_min_ms > self.jitter_max_ms || self.jitter_max_ms > 1000 {
            return bad("media.jitter_min_ms", "needs 0 < jitter_min_ms <= jitter_max_ms <= 1000");
        }
        if self.rtcp_interval_ms < 500 {
            return bad("media.rtcp_interval_ms", "must be at least 500");
        }
        if !(40..=2000).contains(&self.dtmf_tone_ms) || !(20..=2000).contains(&self.dtmf_gap_ms) {
            return bad("media.dtmf_tone_ms", "dtmf_tone_ms must be 40-2000 and dtmf_gap_ms 20-2000");
        }
        Ok(())
    }
}
