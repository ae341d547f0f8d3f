//! Opus (RFC 6716, RTP per RFC 7587) over libopus: the negotiated `fmtp`
//! parameters, a 16 kHz mono encoder and decoder, and in-band FEC recovery.

use ::opus::{Application, Bandwidth, Bitrate, Channels};

use super::{CodecError, Frame, PCM_RATE};

/// What we send when the peer allows wideband: SILK wideband speech is
/// transparent here, and it leaves room for the FEC copy.
const BITRATE: i32 = 24_000;
/// The loss rate we tell the encoder to plan for when FEC is on; libopus
/// only adds in-band FEC (LBRR) when this is above zero.
const EXPECTED_LOSS_PERCENT: i32 = 10;

/// The Opus `a=fmtp` parameters of one side (RFC 7587 §6.1). Parsed from the
/// peer's SDP they tell our encoder what the peer can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusParams {
    /// `useinbandfec`: the receiver can use in-band FEC, so the sender should add it.
    pub use_inband_fec: bool,
    /// `maxplaybackrate`: the highest rate the receiver plays out (Hz); we
    /// cap the encoded bandwidth to it.
    pub max_playback_rate: u32,
    /// `minptime` (ms). We always send 20 ms frames.
    pub ptime_ms: u32,
    /// `stereo`: the receiver prefers stereo. We always send mono, which
    /// RFC 7587 allows.
    pub stereo: bool,
}

impl Default for OpusParams {
    /// RFC 7587's defaults: what an `fmtp` without the parameter means.
    fn default() -> Self {
        OpusParams { use_inband_fec: false, max_playback_rate: 48_000, ptime_ms: 20, stereo: false }
    }
}

impl OpusParams {
    /// What we offer: FEC on, and audio at our own 16 kHz rate.
    pub fn offer() -> Self {
        OpusParams { use_inband_fec: true, max_playback_rate: PCM_RATE, ptime_ms: 20, stereo: false }
    }

    /// The `a=fmtp` value, e.g.
    /// `useinbandfec=1;maxplaybackrate=16000;sprop-maxcapturerate=16000;minptime=20`.
    pub fn fmtp(&self) -> String {
        let mut fmtp = format!(
            "useinbandfec={};maxplaybackrate={};sprop-maxcapturerate={PCM_RATE};minptime={}",
            u8::from(self.use_inband_fec),
            self.max_playback_rate,
            self.ptime_ms
        );
        if self.stereo {
            fmtp.push_str(";stereo=1");
        }
        fmtp
    }

    /// Reads an `a=fmtp` value. Unknown keys and unparsable values are
    /// ignored (the default stands), keys are case-insensitive, and both `;`
    /// and `; ` separate parameters, as peers differ.
    pub fn parse_fmtp(value: &str) -> OpusParams {
        let mut params = OpusParams::default();
        for (key, value) in value.split(';').filter_map(|pair| pair.split_once('=')) {
            let (key, value) = (key.trim(), value.trim());
            let flag = match value {
                "1" => Some(true),
                "0" => Some(false),
                _ => None,
            };
            let number = value.parse::<u32>().ok();
            if key.eq_ignore_ascii_case("useinbandfec") {
                params.use_inband_fec = flag.unwrap_or(params.use_inband_fec);
            } else if key.eq_ignore_ascii_case("stereo") {
                params.stereo = flag.unwrap_or(params.stereo);
            } else if key.eq_ignore_ascii_case("maxplaybackrate") {
                params.max_playback_rate = number.filter(|&rate| rate > 0).unwrap_or(params.max_playback_rate);
            } else if key.eq_ignore_ascii_case("minptime") || key.eq_ignore_ascii_case("ptime") {
                params.ptime_ms = number.filter(|&ms| ms > 0).unwrap_or(params.ptime_ms);
            }
        }
        params
    }

    /// The widest band worth encoding for a receiver that plays out at
    /// `max_playback_rate`; never wider than our 16 kHz input.
    fn max_bandwidth(&self) -> Bandwidth {
        match self.max_playback_rate {
            0..=8_000 => Bandwidth::Narrowband,
            8_001..=12_000 => Bandwidth::Mediumband,
            _ => Bandwidth::Wideband,
        }
    }
}

/// libopus's default complexity (9) is near its top; 5 is pjsip's default
/// for VoIP, and for 24 kbit/s wideband speech the difference is small
/// while the encoder gets cheaper (10 Opus calls in the load harness:
/// 0.88 → 0.79 % of a core per call, everything else included).
const COMPLEXITY: i32 = 5;

pub(super) struct OpusEncoder(::opus::Encoder);

impl OpusEncoder {
    pub(super) fn new(params: &OpusParams) -> Result<Self, CodecError> {
        let mut encoder = ::opus::Encoder::new(PCM_RATE, Channels::Mono, Application::Voip)?;
        encoder.set_bitrate(Bitrate::Bits(BITRATE))?;
        encoder.set_complexity(COMPLEXITY)?;
        encoder.set_max_bandwidth(params.max_bandwidth())?;
        encoder.set_inband_fec(params.use_inband_fec)?;
        if params.use_inband_fec {
            encoder.set_packet_loss_perc(EXPECTED_LOSS_PERCENT)?;
        }
        Ok(OpusEncoder(encoder))
    }

    pub(super) fn encode(&mut self, pcm: &Frame, out: &mut [u8]) -> Result<usize, CodecError> {
        Ok(self.0.encode(pcm, out)?)
    }
}

pub(super) struct OpusDecoder(::opus::Decoder);

impl OpusDecoder {
    /// libopus resamples and downmixes itself, so a 48 kHz stereo sender
    /// decodes to our 16 kHz mono all the same.
    pub(super) fn new() -> Result<Self, CodecError> {
        Ok(OpusDecoder(::opus::Decoder::new(PCM_RATE, Channels::Mono)?))
    }

    pub(super) fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        Ok(self.0.decode(payload, out, false)?)
    }

    pub(super) fn conceal(&mut self, out: &mut Frame) {
        // An empty packet asks libopus for its own PLC. It cannot fail for a
        // 20 ms buffer; should it, silence is the honest fill.
        if self.0.decode(&[], out, false).is_err() {
            out.fill(0);
        }
    }

    /// Without LBRR in `next` libopus would silently fall back to PLC, so
    /// we look first and report `false` instead.
    pub(super) fn decode_fec(&mut self, next: &[u8], out: &mut Frame) -> bool {
        has_lbrr(next) && self.0.decode(next, out, true).is_ok_and(|samples| samples == out.len())
    }
}

/// Whether `packet` carries SILK LBRR data, i.e. in-band FEC for the packet
/// before it. A port of libopus 1.5's `opus_packet_has_lbrr`, which the
/// `opus` crate does not expose: SILK codes its per-frame VAD flags and then
/// the LBRR flag at even odds, so they are the first bits of the first frame.
pub(super) fn has_lbrr(packet: &[u8]) -> bool {
    lbrr_flag(packet).unwrap_or(false)
}

fn lbrr_flag(packet: &[u8]) -> Option<bool> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    if config >= 16 {
        return Some(false); // CELT only: no SILK layer
    }
    // Configs 0–11 are SILK-only at 10/20/40/60 ms; a 40 or 60 ms Opus
    // frame holds 2 or 3 SILK frames, each with a VAD flag before LBRR.
    let silk_frames = if config < 12 { [1, 1, 2, 3][(config & 3) as usize] } else { 1 };
    let stereo = toc & 0x04 != 0;
    let first = first_frame(packet)?;
    let mid = (first.first()? >> (7 - silk_frames)) & 1 == 1;
    let side = stereo && (first[0] >> (6 - 2 * silk_frames)) & 1 == 1;
    Some(mid || side)
}

/// The first compressed frame of an Opus packet (RFC 6716 §3.2).
fn first_frame(packet: &[u8]) -> Option<&[u8]> {
    let body = packet.get(1..)?;
    match packet[0] & 3 {
        0 | 1 => Some(body),
        2 => {
            let (len, header) = frame_length(body)?;
            body.get(header..header + len)
        }
        _ => {
            let flags = *body.first()?;
            let (vbr, padded, count) = (flags & 0x80 != 0, flags & 0x40 != 0, (flags & 0x3F) as usize);
            let (mut pos, mut padding) = (1, 0);
            if padded {
                // Each 255 adds 254 bytes of padding and another length byte follows.
                let more = body.get(1..)?.iter().position(|&byte| byte != 255)?;
                padding = 254 * more + body[1 + more] as usize;
                pos += more + 1;
            }
            if count == 0 {
                return None;
            }
            // VBR lists every length but the last; CBR frames share what is left.
            let mut first_len = None;
            if vbr {
                for _ in 1..count {
                    let (len, header) = frame_length(body.get(pos..)?)?;
                    first_len.get_or_insert(len);
                    pos += header;
                }
            }
            let len = match first_len {
                Some(len) => len,
                None => body.len().checked_sub(pos + padding)? / count,
            };
            body.get(pos..pos + len)
        }
    }
}

/// A frame length field: (length, bytes it took).
fn frame_length(data: &[u8]) -> Option<(usize, usize)> {
    match *data.first()? {
        short @ 0..=251 => Some((short as usize, 1)),
        long => Some((4 * *data.get(1)? as usize + long as usize, 2)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fmtp_round_trips_and_tolerates_peers() {
        let ours = OpusParams::offer();
        assert_eq!(ours.fmtp(), "useinbandfec=1;maxplaybackrate=16000;sprop-maxcapturerate=16000;minptime=20");
        assert_eq!(OpusParams::parse_fmtp(&ours.fmtp()), ours);
        let stereo = OpusParams { use_inband_fec: false, max_playback_rate: 48_000, ptime_ms: 10, stereo: true };
        assert_eq!(OpusParams::parse_fmtp(&stereo.fmtp()), stereo);

        let peer = OpusParams::parse_fmtp("minptime=10; UseInbandFEC=1; sprop-stereo=1; foo; maxplaybackrate=bad");
        assert_eq!(peer, OpusParams { use_inband_fec: true, max_playback_rate: 48_000, ptime_ms: 10, stereo: false });
        assert_eq!(OpusParams::parse_fmtp(""), OpusParams::default());
        assert_eq!(OpusParams::parse_fmtp("maxplaybackrate=8000;stereo=1").max_bandwidth(), Bandwidth::Narrowband);
    }

    #[test]
    fn lbrr_flag_is_read_from_every_framing() {
        // SILK-only WB 20 ms mono (config 9); first data byte has VAD=1, LBRR=1.
        let toc = 9 << 3;
        assert!(has_lbrr(&[toc, 0b1100_0000, 0x12]));
        assert!(!has_lbrr(&[toc, 0b1000_0000, 0x12]));
        // 60 ms (config 11): three VAD flags, then LBRR.
        assert!(has_lbrr(&[11 << 3, 0b0001_0000]));
        assert!(!has_lbrr(&[11 << 3, 0b1110_0000]));
        // Stereo: the side channel's LBRR flag counts too.
        assert!(has_lbrr(&[toc | 0x04, 0b0001_0000]));
        // Code 2: frame 0's length (1) precedes it.
        assert!(has_lbrr(&[toc | 2, 1, 0b0100_0000, 0]));
        assert!(!has_lbrr(&[toc | 2, 0, 0b0100_0000]));
        // Code 3, VBR, two frames, one padding byte: lengths 1 and 1.
        assert!(has_lbrr(&[toc | 3, 0x80 | 0x40 | 2, 1, 1, 0b0100_0000, 0, 0xAA]));
        // Code 3, CBR, two frames of one byte each.
        assert!(has_lbrr(&[toc | 3, 2, 0b0100_0000, 0]));
        // CELT-only never has LBRR; truncated packets are not FEC.
        assert!(!has_lbrr(&[16 << 3, 0xFF]));
        assert!(!has_lbrr(&[]));
        assert!(!has_lbrr(&[toc | 2, 200]));
        assert!(!has_lbrr(&[toc | 3, 0xC2, 255]));
    }
}
