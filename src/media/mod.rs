//! Pure media: codecs, RTP packetization and the per-call media stream.
//! Nothing here touches a socket or a clock; the daemon's media tick feeds it.

pub mod codec;
pub mod dtmf;
pub mod g711;
pub mod jitter;
pub mod quality;
pub mod rtcp;
pub mod rtp;
pub mod srtp;
pub mod stream;

use serde::Serialize;

/// Samples per 20 ms frame at 8 kHz, the only packet time we send.
pub const FRAME_SAMPLES: usize = 160;
/// The narrowband rate the audio path runs at.
pub const SAMPLE_RATE: u32 = 8000;

/// An audio codec we can send and receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Codec {
    /// G.711 μ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
}

impl Codec {
    /// The encoding name used in SDP `a=rtpmap`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// The RFC 3551 static payload type.
    pub fn static_payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    pub fn clock_rate(self) -> u32 {
        SAMPLE_RATE
    }

    /// Encode one frame; G.711 is one byte per sample.
    pub fn encode(self, pcm: &[i16], out: &mut [u8]) {
        match self {
            Codec::Pcmu => g711::encode_ulaw_frame(pcm, out),
            Codec::Pcma => g711::encode_alaw_frame(pcm, out),
        }
    }

    pub fn decode(self, payload: &[u8], out: &mut [i16]) {
        match self {
            Codec::Pcmu => g711::decode_ulaw_frame(payload, out),
            Codec::Pcma => g711::decode_alaw_frame(payload, out),
        }
    }
}
