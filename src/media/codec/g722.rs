//! G.722 at 64 kbit/s over `ezk-g722` (a port of SpanDSP's public-domain
//! codec): 16 kHz PCM, one byte per two samples.
//!
//! ezk-g722 returns a fresh `Vec` from every call, so this is the one codec
//! that allocates per frame; the bytes are copied into the caller's buffer.

use ezk_g722::libg722::{decoder, encoder, Bitrate};

pub(super) struct G722Encoder(encoder::Encoder);

impl G722Encoder {
    pub(super) fn new() -> Self {
        // Not 8 kHz input, not bit-packed: one code byte per sample pair, as RFC 3551 sends it.
        G722Encoder(encoder::Encoder::new(Bitrate::Mode1_64000, false, false))
    }

    /// Bytes produced for `pcm_len` 16 kHz samples.
    pub(super) const fn encoded_len(pcm_len: usize) -> usize {
        pcm_len / 2
    }

    /// `pcm.len()` must be even; `out` must hold `encoded_len(pcm.len())`.
    pub(super) fn encode(&mut self, pcm: &[i16], out: &mut [u8]) {
        let codes = self.0.encode(pcm);
        out[..codes.len()].copy_from_slice(&codes);
    }
}

pub(super) struct G722Decoder(decoder::Decoder);

impl G722Decoder {
    pub(super) fn new() -> Self {
        G722Decoder(decoder::Decoder::new(Bitrate::Mode1_64000, false, false))
    }

    /// `out` must hold `2 * payload.len()` samples.
    pub(super) fn decode(&mut self, payload: &[u8], out: &mut [i16]) {
        let pcm = self.0.decode(payload);
        out[..pcm.len()].copy_from_slice(&pcm);
    }
}
