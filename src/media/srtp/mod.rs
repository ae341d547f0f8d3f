//! SRTP and SRTCP (RFC 3711) keyed by SDES (RFC 4568): the `a=crypto:` key
//! lines and one call's protect/unprotect state. The crypto is `rtc-srtp`'s;
//! this layer maps the SDP suites onto its profiles, adds what it lacks for
//! SDES peers (the MKI field, the key lifetime) and reuses the caller's
//! output buffers.
//!
//! `rtc-srtp` returns every (un)protected packet in a fresh buffer, so each
//! call allocates once inside it and we copy into `out`. Replay protection
//! is done here, after authentication (see `replay`), and SRTCP without the
//! E flag is refused because `rtc-srtp` 0.21 would not authenticate it.

mod replay;
mod sdes;
#[cfg(test)]
mod tests;

use rtc_shared::error::Error as RtcError;
use rtc_srtp::context::Context;
use rtc_srtp::option::{srtcp_no_replay_protection, srtp_no_replay_protection};
use rtc_srtp::protection_profile::ProtectionProfile;

use replay::ReplayGuard;
pub use sdes::{Mki, SdesCrypto, KEY_SALT_LEN};

/// SRTCP always carries an 80-bit tag, whatever the suite (RFC 4568 §6.2).
const SRTCP_AUTH_TAG_LEN: usize = 10;
/// The SRTCP index is the low 31 bits of the word whose top bit is E.
const SRTCP_INDEX_MASK: u32 = 0x7fff_ffff;

/// Why a key line or a packet was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SrtpError {
    /// The `a=crypto:` value does not follow RFC 4568's grammar.
    #[error("malformed a=crypto value: {0}")]
    MalformedAttribute(String),
    /// A crypto suite other than AES_CM_128_HMAC_SHA1_80/_32.
    #[error("unsupported SRTP crypto suite {0}")]
    UnsupportedSuite(String),
    /// The inline key is not valid base64.
    #[error("SRTP key is not base64: {0}")]
    Base64(String),
    /// The inline key does not decode to 30 bytes of key and salt.
    #[error("SRTP key||salt must be 30 bytes, got {0}")]
    KeyLength(usize),
    /// A legal key line asks for something we do not implement.
    #[error("unsupported in a=crypto: {0}")]
    Unsupported(String),
    /// `rtc-srtp` could not set up its context.
    #[error("SRTP setup failed: {0}")]
    Setup(String),
    /// The packet's authentication tag is wrong: tampered, or another key.
    #[error("SRTP authentication failed")]
    AuthenticationFailed,
    /// A packet already accepted (or too old to tell) arrived again.
    #[error("replayed SRTP packet")]
    Replayed,
    /// The packet's MKI names a key we were not given.
    #[error("SRTP packet carries an MKI we did not negotiate")]
    MkiMismatch,
    /// An SRTCP packet with the E flag clear: unencrypted SRTCP, which we never negotiate.
    #[error("unencrypted SRTCP refused")]
    UnencryptedSrtcp,
    /// The key line's lifetime is used up; only a new key (re-INVITE) helps.
    #[error("SRTP master key lifetime of {0} packets used up")]
    KeyLifetimeExceeded(u64),
    /// Too short or otherwise not an (S)RTP/(S)RTCP packet.
    #[error("SRTP cannot take this packet: {0}")]
    Malformed(String),
}

fn packet_error(error: RtcError) -> SrtpError {
    match error {
        RtcError::RtpFailedToVerifyAuthTag
        | RtcError::RtcpFailedToVerifyAuthTag
        | RtcError::ErrFailedToVerifyAuthTag => SrtpError::AuthenticationFailed,
        other => SrtpError::Malformed(other.to_string()),
    }
}

/// An SDES crypto suite (RFC 4568 §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CryptoSuite {
    AesCm128HmacSha1_80,
    /// A 32-bit SRTP tag (SRTCP keeps 80 bits); common on phones to save bytes.
    AesCm128HmacSha1_32,
}

impl CryptoSuite {
    pub fn sdp_name(self) -> &'static str {
        match self {
            CryptoSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            CryptoSuite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    pub fn from_sdp_name(name: &str) -> Option<Self> {
        [CryptoSuite::AesCm128HmacSha1_80, CryptoSuite::AesCm128HmacSha1_32].into_iter().find(|s| s.sdp_name() == name)
    }

    fn profile(self) -> ProtectionProfile {
        match self {
            CryptoSuite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            CryptoSuite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
        }
    }

    /// Bytes SRTP adds to an RTP packet (without an MKI).
    pub fn rtp_auth_tag_len(self) -> usize {
        self.profile().rtp_auth_tag_len()
    }
}

/// One direction's key: the context plus what SDES adds to it.
struct Direction {
    context: Context,
    rtp_tag_len: usize,
    mki: Option<Vec<u8>>,
    lifetime: Option<u64>,
    packets: u64,
}

impl Direction {
    fn new(crypto: &SdesCrypto) -> Result<Self, SrtpError> {
        let provider = rtc_srtp::crypto::default_provider().map_err(|e| SrtpError::Setup(e.to_string()))?;
        // Replay protection is ours (see `replay`): no detectors in the context.
        let context = Context::new(
            crypto.master_key(),
            crypto.master_salt(),
            crypto.suite.profile(),
            Some(srtp_no_replay_protection()),
            Some(srtcp_no_replay_protection()),
            provider.crypto(),
        )
        .map_err(|e| SrtpError::Setup(e.to_string()))?;
        Ok(Direction {
            context,
            rtp_tag_len: crypto.suite.rtp_auth_tag_len(),
            mki: crypto.mki.map(Mki::to_bytes),
            lifetime: crypto.lifetime,
            packets: 0,
        })
    }

    fn count_packet(&mut self) -> Result<(), SrtpError> {
        match self.lifetime {
            Some(lifetime) if self.packets >= lifetime => Err(SrtpError::KeyLifetimeExceeded(lifetime)),
            _ => {
                self.packets += 1;
                Ok(())
            }
        }
    }
}

/// Copy a protected packet into `out`, the MKI (if any) going between the
/// authenticated portion and the tag, where RFC 3711 §3.1 puts it.
fn write_with_mki(protected: &[u8], tag_len: usize, mki: Option<&[u8]>, out: &mut Vec<u8>) {
    out.clear();
    let tag_at = protected.len() - tag_len;
    out.extend_from_slice(&protected[..tag_at]);
    out.extend_from_slice(mki.unwrap_or_default());
    out.extend_from_slice(&protected[tag_at..]);
}

/// The packet as `rtc-srtp` expects it: without the MKI, which is not
/// authenticated and so can be cut out before verification (into `scratch`).
fn without_mki<'a>(
    packet: &'a [u8],
    tag_len: usize,
    mki: Option<&[u8]>,
    scratch: &'a mut Vec<u8>,
) -> Result<&'a [u8], SrtpError> {
    let Some(mki) = mki else {
        return Ok(packet);
    };
    let Some(mki_at) = packet.len().checked_sub(tag_len + mki.len()) else {
        return Err(SrtpError::Malformed(format!("{} bytes cannot hold MKI and tag", packet.len())));
    };
    if &packet[mki_at..mki_at + mki.len()] != mki {
        return Err(SrtpError::MkiMismatch);
    }
    scratch.clear();
    scratch.extend_from_slice(&packet[..mki_at]);
    scratch.extend_from_slice(&packet[mki_at + mki.len()..]);
    Ok(scratch)
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// SRTP state of one call: our key protects what we send, the peer's
/// unprotects what we receive (with replay protection).
pub struct SrtpSession {
    outbound: Direction,
    inbound: Direction,
    rtp_replay: ReplayGuard,
    rtcp_replay: ReplayGuard,
    /// Holds an incoming packet while its MKI is cut out.
    scratch: Vec<u8>,
}

impl SrtpSession {
    /// `local` is the key line we sent, `remote` the peer's.
    pub fn new(local: &SdesCrypto, remote: &SdesCrypto) -> Result<Self, SrtpError> {
        Ok(SrtpSession {
            outbound: Direction::new(local)?,
            inbound: Direction::new(remote)?,
            rtp_replay: ReplayGuard::new(u64::from(u16::MAX)),
            rtcp_replay: ReplayGuard::new(SRTCP_INDEX_MASK.into()),
            scratch: Vec::with_capacity(1500),
        })
    }

    /// Encrypt and authenticate an RTP packet into `out` (replacing its contents).
    pub fn protect_rtp(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        self.outbound.count_packet()?;
        let protected = self.outbound.context.encrypt_rtp(packet).map_err(packet_error)?;
        write_with_mki(&protected, self.outbound.rtp_tag_len, self.outbound.mki.as_deref(), out);
        Ok(())
    }

    /// Encrypt and authenticate a (compound) RTCP packet into `out`.
    pub fn protect_rtcp(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        self.outbound.count_packet()?;
        let protected = self.outbound.context.encrypt_rtcp(packet).map_err(packet_error)?;
        write_with_mki(&protected, SRTCP_AUTH_TAG_LEN, self.outbound.mki.as_deref(), out);
        Ok(())
    }

    /// Verify and decrypt an SRTP packet into `out` (replacing its contents).
    pub fn unprotect_rtp(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        let input = without_mki(packet, self.inbound.rtp_tag_len, self.inbound.mki.as_deref(), &mut self.scratch)?;
        let plain = self.inbound.context.decrypt_rtp(input).map_err(packet_error)?;
        // Authentic, so at least a full RTP header.
        let sequence = u16::from_be_bytes([plain[2], plain[3]]);
        Self::accept(&mut self.inbound, &mut self.rtp_replay, be_u32(&plain, 8), sequence.into())?;
        out.clear();
        out.extend_from_slice(&plain);
        Ok(())
    }

    /// Verify and decrypt an SRTCP packet into `out`.
    pub fn unprotect_rtcp(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        let input = without_mki(packet, SRTCP_AUTH_TAG_LEN, self.inbound.mki.as_deref(), &mut self.scratch)?;
        // Header and SSRC, then the E flag and index before the tag.
        let Some(index_at) = input.len().checked_sub(SRTCP_AUTH_TAG_LEN + 4).filter(|at| *at >= 8) else {
            return Err(SrtpError::Malformed(format!("{} bytes is too short for SRTCP", input.len())));
        };
        let e_flag_and_index = be_u32(input, index_at);
        // rtc-srtp 0.21 hands back an E=0 packet without checking its tag;
        // we never negotiate UNENCRYPTED_SRTCP, so such a packet is refused here.
        if e_flag_and_index & !SRTCP_INDEX_MASK == 0 {
            return Err(SrtpError::UnencryptedSrtcp);
        }
        let plain = self.inbound.context.decrypt_rtcp(input).map_err(packet_error)?;
        let index = e_flag_and_index & SRTCP_INDEX_MASK;
        Self::accept(&mut self.inbound, &mut self.rtcp_replay, be_u32(&plain, 4), index.into())?;
        out.clear();
        out.extend_from_slice(&plain);
        Ok(())
    }

    /// Admit an authentic packet: not a replay, and within the key's lifetime.
    fn accept(inbound: &mut Direction, replay: &mut ReplayGuard, ssrc: u32, index: u64) -> Result<(), SrtpError> {
        if !replay.accept(ssrc, index) {
            return Err(SrtpError::Replayed);
        }
        inbound.count_packet()
    }
}
