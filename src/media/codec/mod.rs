//! The codec layer of the wideband media path: which codecs we speak and how
//! SDP names them, and one encoder and one decoder per call direction that
//! turn 20 ms frames of 16 kHz mono PCM into RTP payloads and back —
//! including what to play when a packet is lost.
//!
//! G.711 runs at 8 kHz behind a halfband resampler ([`narrowband`]), G.722
//! and Opus take 16 kHz directly. Opus conceals and recovers losses itself;
//! for G.711 and G.722 [`plc`] repeats the last pitch period and fades out.
//! Encoders and decoders hold all their state from `new()` on; the per-frame
//! calls do not allocate, except inside the G.722 crate (see [`g722`]).

mod g722;
mod narrowband;
mod opus;
mod plc;
#[cfg(test)]
mod tests;

use serde::Serialize;

use self::g722::{G722Decoder, G722Encoder};
use self::narrowband::{Law, NarrowbandDecoder, NarrowbandEncoder};
use self::opus::{OpusDecoder, OpusEncoder};
use self::plc::Concealment;

pub use self::opus::OpusParams;

/// A filtered sample back to 16-bit PCM, rounded half away from zero and
/// saturated. Not `f32::round`: without SSE4.1 that is a libm call per
/// sample, which a thousand G.711 calls spent a twelfth of the media
/// thread on; the truncating cast (SSE2) saturates by itself.
#[inline]
fn to_pcm(sample: f32) -> i16 {
    // Bounded first (minss/maxss), so the integer steps cannot overflow.
    let sample = sample.clamp(-40_000.0, 40_000.0);
    let whole = sample as i32;
    let fraction = sample - whole as f32;
    let rounded = whole + i32::from(fraction >= 0.5) - i32::from(fraction <= -0.5);
    rounded.clamp(i16::MIN.into(), i16::MAX.into()) as i16
}

/// The media path's sample rate.
pub const PCM_RATE: u32 = 16_000;
/// Samples in one 20 ms frame at [`PCM_RATE`], the only packet time we send.
pub const FRAME_SAMPLES: usize = 320;
/// One 20 ms frame of mono PCM.
pub type Frame = [i16; FRAME_SAMPLES];

/// An audio codec we can send and receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema)]
pub enum Codec {
    /// G.711 μ-law, 8 kHz.
    #[serde(rename = "PCMU")]
    Pcmu,
    /// G.711 A-law, 8 kHz.
    #[serde(rename = "PCMA")]
    Pcma,
    /// G.722 at 64 kbit/s, 16 kHz.
    #[serde(rename = "G722")]
    G722,
    /// Opus, sent as 16 kHz mono.
    #[serde(rename = "opus")]
    Opus,
}

impl Codec {
    /// The encoding name in SDP `a=rtpmap`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::G722 => "G722",
            Codec::Opus => "opus",
        }
    }

    /// The RTP timestamp rate. G.722 samples at 16 kHz but RFC 3551 fixed its
    /// RTP clock at 8000 by mistake, and everyone kept it; Opus always
    /// counts at 48 kHz (RFC 7587), whatever it actually carries.
    pub fn rtp_clock_rate(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma | Codec::G722 => 8000,
            Codec::Opus => 48_000,
        }
    }

    /// The channel count in `a=rtpmap`: RFC 7587 writes Opus as `opus/48000/2`
    /// even for mono; the others omit it.
    pub fn sdp_channels(self) -> Option<u8> {
        match self {
            Codec::Opus => Some(2),
            Codec::Pcmu | Codec::Pcma | Codec::G722 => None,
        }
    }

    /// The RFC 3551 static payload type; Opus needs a dynamic one.
    pub fn static_payload_type(self) -> Option<u8> {
        match self {
            Codec::Pcmu => Some(0),
            Codec::Pcma => Some(8),
            Codec::G722 => Some(9),
            Codec::Opus => None,
        }
    }

    /// RTP timestamp increment per 20 ms frame.
    pub fn timestamp_step(self) -> u32 {
        self.rtp_clock_rate() / 50
    }

    /// The codec an `a=rtpmap` line names (name case-insensitive), if we
    /// speak it at that clock rate and channel count.
    pub fn from_rtpmap(name: &str, clock_rate: u32, channels: Option<u8>) -> Option<Codec> {
        let codec = Codec::from_config(name)?;
        let channels_match = match codec.sdp_channels() {
            Some(required) => channels == Some(required),
            None => matches!(channels, None | Some(1)),
        };
        (clock_rate == codec.rtp_clock_rate() && channels_match).then_some(codec)
    }

    /// The codec a configuration file names: `pcmu`, `pcma`, `g722` or
    /// `opus`, in any case.
    pub fn from_config(name: &str) -> Option<Codec> {
        [Codec::Pcmu, Codec::Pcma, Codec::G722, Codec::Opus]
            .into_iter()
            .find(|codec| codec.name().eq_ignore_ascii_case(name))
    }

    /// How many [`PCM_RATE`] samples `payload` decodes to; `None` if it is
    /// empty or not a valid packet of this codec.
    pub fn payload_samples(self, payload: &[u8]) -> Option<usize> {
        if payload.is_empty() {
            return None;
        }
        match self {
            // One byte per 8 kHz sample, or per pair of 16 kHz samples.
            Codec::Pcmu | Codec::Pcma | Codec::G722 => Some(payload.len() * 2),
            Codec::Opus => ::opus::packet::get_nb_samples(payload, PCM_RATE).ok(),
        }
    }
}

/// Why a codec call failed. A lost or late packet is not an error: it is
/// [`Decoder::conceal`].
#[derive(thiserror::Error, Debug)]
pub enum CodecError {
    /// libopus refused: it could not create its state, or it rejected a
    /// packet as corrupt.
    #[error("opus: {0}")]
    Opus(#[from] ::opus::Error),
    /// An empty payload carries no audio. (To libopus it would mean "lost",
    /// which is [`Decoder::conceal`]'s job.)
    #[error("empty payload")]
    EmptyPayload,
    /// The payload's length or header does not describe valid audio of the
    /// negotiated codec.
    #[error("payload is not a valid {0:?} packet")]
    InvalidPayload(Codec),
    /// The caller's buffer is smaller than the result.
    #[error("buffer holds {available} but {needed} are needed")]
    OutputTooSmall { needed: usize, available: usize },
}

fn check_room(needed: usize, available: usize) -> Result<(), CodecError> {
    if needed > available {
        return Err(CodecError::OutputTooSmall { needed, available });
    }
    Ok(())
}

/// Turns our 20 ms frames into payloads for one outgoing stream.
pub struct Encoder {
    codec: Codec,
    state: EncoderState,
}

/// G.722's state is the largest by far: boxed, so a G.711 stream is not
/// sized for it.
enum EncoderState {
    Narrowband(NarrowbandEncoder),
    G722(Box<G722Encoder>),
    Opus(OpusEncoder),
}

impl Encoder {
    /// `opus` is the peer's negotiated `fmtp` (ignored for other codecs):
    /// it decides FEC and the encoded bandwidth.
    pub fn new(codec: Codec, opus: &OpusParams) -> Result<Encoder, CodecError> {
        let state = match codec {
            Codec::Pcmu => EncoderState::Narrowband(NarrowbandEncoder::new(Law::Mu)),
            Codec::Pcma => EncoderState::Narrowband(NarrowbandEncoder::new(Law::A)),
            Codec::G722 => EncoderState::G722(Box::new(G722Encoder::new())),
            Codec::Opus => EncoderState::Opus(OpusEncoder::new(opus)?),
        };
        Ok(Encoder { codec, state })
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Encodes one frame into `out` (1500 bytes always suffice) and returns
    /// the payload length: 160 bytes for G.711 and G.722, variable for Opus.
    pub fn encode(&mut self, pcm: &Frame, out: &mut [u8]) -> Result<usize, CodecError> {
        match &mut self.state {
            EncoderState::Narrowband(encoder) => {
                let len = NarrowbandEncoder::encoded_len(pcm.len());
                check_room(len, out.len())?;
                encoder.encode(pcm, &mut out[..len]);
                Ok(len)
            }
            EncoderState::G722(encoder) => {
                let len = G722Encoder::encoded_len(pcm.len());
                check_room(len, out.len())?;
                encoder.encode(pcm, &mut out[..len]);
                Ok(len)
            }
            EncoderState::Opus(encoder) => encoder.encode(pcm, out),
        }
    }
}

/// Turns one incoming stream's payloads back into 16 kHz PCM, and fills in
/// for the packets that never came.
pub struct Decoder {
    codec: Codec,
    state: DecoderState,
}

enum DecoderState {
    Narrowband(NarrowbandDecoder, Concealment),
    G722(Box<G722Decoder>, Concealment),
    Opus(OpusDecoder),
}

impl Decoder {
    pub fn new(codec: Codec) -> Result<Decoder, CodecError> {
        let state = match codec {
            Codec::Pcmu => DecoderState::Narrowband(NarrowbandDecoder::new(Law::Mu), Concealment::new()),
            Codec::Pcma => DecoderState::Narrowband(NarrowbandDecoder::new(Law::A), Concealment::new()),
            Codec::G722 => DecoderState::G722(Box::new(G722Decoder::new()), Concealment::new()),
            Codec::Opus => DecoderState::Opus(OpusDecoder::new()?),
        };
        Ok(Decoder { codec, state })
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Decodes one payload (10–60 ms) into the start of `out` and returns
    /// the number of samples written, as [`Codec::payload_samples`] predicts.
    /// 960 samples of room always suffice.
    pub fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        if payload.is_empty() {
            return Err(CodecError::EmptyPayload);
        }
        let samples = self.codec.payload_samples(payload).ok_or(CodecError::InvalidPayload(self.codec))?;
        check_room(samples, out.len())?;
        let out = &mut out[..samples];
        match &mut self.state {
            DecoderState::Narrowband(decoder, concealment) => {
                decoder.decode(payload, out);
                concealment.on_decoded(out);
            }
            DecoderState::G722(decoder, concealment) => {
                decoder.decode(payload, out);
                concealment.on_decoded(out);
            }
            DecoderState::Opus(decoder) => return decoder.decode(payload, out),
        }
        Ok(samples)
    }

    /// Fills `out` for one lost 20 ms frame. Successive calls continue the
    /// concealment and fade it to silence; the next [`decode`](Self::decode)
    /// fades the real audio back in.
    pub fn conceal(&mut self, out: &mut Frame) {
        match &mut self.state {
            DecoderState::Narrowband(_, concealment) | DecoderState::G722(_, concealment) => concealment.conceal(out),
            DecoderState::Opus(decoder) => decoder.conceal(out),
        }
    }

    /// Recovers a lost 20 ms frame from the in-band FEC that Opus carries in
    /// the packet after it. Returns `false`, leaving `out` as it was, when
    /// the codec has no FEC or `next_payload` carries none; then use
    /// [`conceal`](Self::conceal). Either way, decode `next_payload`
    /// normally afterwards.
    pub fn decode_fec(&mut self, next_payload: &[u8], out: &mut Frame) -> bool {
        match &mut self.state {
            DecoderState::Opus(decoder) => decoder.decode_fec(next_payload, out),
            DecoderState::Narrowband(..) | DecoderState::G722(..) => false,
        }
    }
}
