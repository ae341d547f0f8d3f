//! RFC 3264 offer/answer for one audio stream: what we offer under an
//! account's media policy, how we answer an offer (the first of *our*
//! preferences the peer has, 488 when none), and what an answer to our
//! offer leaves us with. Payload types may differ per direction: we send
//! with the number the peer's SDP gave a codec and receive with ours.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::{build, Description, Format, RemoteMedia, SdpError};
use crate::media::codec::{Codec, OpusParams};
use crate::media::params::{EventPayloads, MediaDirection, SrtpKeys, StreamParams};
use crate::media::srtp::{CryptoSuite, SdesCrypto};

/// The dynamic payload types of our offers.
const OPUS_PT: u8 = 111;
const EVENTS_8K_PT: u8 = 101;
const EVENTS_48K_PT: u8 = 102;
const TELEPHONE_EVENT: &str = "telephone-event";

/// Whether calls use SRTP (SDES keys, RFC 4568).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SrtpPolicy {
    /// Plain RTP only: an RTP/SAVP offer is refused with 488.
    #[default]
    Off,
    /// Offer keys on RTP/AVP and use SRTP when the peer agrees; plain otherwise.
    Optional,
    /// RTP/SAVP only: a peer without SRTP is refused (488) or hung up on.
    Mandatory,
}

/// What an account lets a call speak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPolicy {
    /// In order of preference; never empty (config checks).
    pub codecs: Vec<Codec>,
    pub srtp: SrtpPolicy,
    pub opus: OpusParams,
}

/// Our end of one call's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    pub rtp: SocketAddr,
    pub session_id: u64,
    pub policy: MediaPolicy,
    /// SRTP master key and salt for what we send, drawn per call by the shell.
    pub key_salt: [u8; 30],
}

/// Our key for the suite and tag the peer's crypto line chose.
fn answering_keys(remote: &SdesCrypto, local: &LocalMedia) -> SrtpKeys {
    SrtpKeys { local: SdesCrypto::generate(remote.tag, remote.suite, local.key_salt), remote: remote.clone() }
}

/// Our offer (or re-offer, with a new `version` when it changed).
pub fn offer(local: &LocalMedia, version: u64, direction: MediaDirection) -> String {
    let policy = &local.policy;
    let mut formats: Vec<Format> = policy.codecs.iter().map(|c| our_format(*c, policy)).collect();
    for (rate, pt) in [(8000, EVENTS_8K_PT), (48000, EVENTS_48K_PT)] {
        if policy.codecs.iter().any(|c| c.rtp_clock_rate() == rate) {
            formats.push(events_format(pt, rate));
        }
    }
    let crypto = match policy.srtp {
        SrtpPolicy::Off => Vec::new(),
        // One key for both lines: the answer picks exactly one of them.
        _ => [(1, CryptoSuite::AesCm128HmacSha1_80), (2, CryptoSuite::AesCm128HmacSha1_32)]
            .into_iter()
            .map(|(tag, suite)| SdesCrypto::generate(tag, suite, local.key_salt))
            .collect(),
    };
    build(&Description {
        local: local.rtp,
        session_id: local.session_id,
        version,
        formats: &formats,
        direction,
        crypto: &crypto,
        secure_profile: policy.srtp == SrtpPolicy::Mandatory,
    })
}

/// Answer the peer's offer. `want` is what we would like (e.g. sendonly
/// while we hold); the answer is its intersection with the offer.
pub fn answer(
    offer: &RemoteMedia,
    local: &LocalMedia,
    version: u64,
    want: MediaDirection,
) -> Result<(String, StreamParams), SdpError> {
    let policy = &local.policy;
    let remote_crypto = choose_offered_crypto(offer, policy.srtp)?;
    let (codec, format) = policy
        .codecs
        .iter()
        .find_map(|c| offer.formats.iter().find(|f| matches_codec(f, *c)).map(|f| (*c, f)))
        .ok_or_else(|| no_common_codec(offer))?;
    let events = offer.formats.iter().find(|f| is_events_at(f, codec.rtp_clock_rate()));
    let direction = MediaDirection::from_flags(
        want.sends() && offer.direction.receives(),
        want.receives() && offer.direction.sends(),
    );
    let mut formats = vec![Format { payload_type: format.payload_type, ..our_format(codec, policy) }];
    formats.extend(events.map(|e| events_format(e.payload_type, e.clock_rate)));
    let srtp = remote_crypto.map(|remote| answering_keys(remote, local));
    let local_crypto: Vec<SdesCrypto> = srtp.iter().map(|k| k.local.clone()).collect();
    let sdp = build(&Description {
        local: local.rtp,
        session_id: local.session_id,
        version,
        formats: &formats,
        direction,
        crypto: &local_crypto,
        secure_profile: offer.secure_profile,
    });
    let negotiated = StreamParams {
        remote: offer.rtp_addr,
        codec,
        send_pt: format.payload_type,
        receive_pt: format.payload_type,
        telephone_event: events.map(|e| EventPayloads { send: e.payload_type, receive: e.payload_type }),
        direction,
        srtp,
        opus: peer_opus(format),
    };
    Ok((sdp, negotiated))
}

/// What the peer's answer to our offer (made with `offered` direction) leaves us with.
pub fn on_answer(answer: &RemoteMedia, local: &LocalMedia, offered: MediaDirection) -> Result<StreamParams, SdpError> {
    let policy = &local.policy;
    let (codec, format) = answer
        .formats
        .iter()
        .find_map(|f| policy.codecs.iter().find(|c| matches_codec(f, **c)).map(|c| (*c, f)))
        .ok_or_else(|| no_common_codec(answer))?;
    let events = answer.formats.iter().find(|f| is_events_at(f, codec.rtp_clock_rate())).map(|e| EventPayloads {
        send: e.payload_type,
        receive: if e.clock_rate == 48000 { EVENTS_48K_PT } else { EVENTS_8K_PT },
    });
    let srtp = match (policy.srtp, answer.crypto.first()) {
        (SrtpPolicy::Off, _) if answer.secure_profile => {
            return Err(SdpError::SrtpRefused("SRTP is off for this account"))
        }
        (SrtpPolicy::Off, _) => None,
        (SrtpPolicy::Mandatory, None) => return Err(SdpError::SrtpRequired),
        (SrtpPolicy::Optional, None) => None,
        (_, Some(remote)) => Some(answering_keys(remote, local)),
    };
    Ok(StreamParams {
        remote: answer.rtp_addr,
        codec,
        send_pt: format.payload_type,
        receive_pt: our_format(codec, policy).payload_type,
        telephone_event: events,
        direction: offered.agreed_with(answer.direction),
        srtp,
        opus: peer_opus(format),
    })
}

/// The crypto line of an offer we take, or why the offer cannot be taken.
fn choose_offered_crypto(offer: &RemoteMedia, policy: SrtpPolicy) -> Result<Option<&SdesCrypto>, SdpError> {
    match policy {
        SrtpPolicy::Off if offer.secure_profile => Err(SdpError::SrtpRefused("SRTP is off for this account")),
        SrtpPolicy::Off => Ok(None),
        _ if offer.secure_profile && offer.crypto.is_empty() => {
            Err(SdpError::SrtpRefused("it offered no crypto suite we support"))
        }
        SrtpPolicy::Mandatory if offer.crypto.is_empty() => Err(SdpError::SrtpRequired),
        _ => Ok(offer.crypto.first()),
    }
}

fn our_format(codec: Codec, policy: &MediaPolicy) -> Format {
    Format {
        payload_type: codec.static_payload_type().unwrap_or(OPUS_PT),
        name: codec.name().into(),
        clock_rate: codec.rtp_clock_rate(),
        channels: codec.sdp_channels(),
        fmtp: (codec == Codec::Opus).then(|| policy.opus.fmtp()),
    }
}

fn events_format(payload_type: u8, clock_rate: u32) -> Format {
    Format { payload_type, name: TELEPHONE_EVENT.into(), clock_rate, channels: None, fmtp: Some("0-16".into()) }
}

fn matches_codec(format: &Format, codec: Codec) -> bool {
    Codec::from_rtpmap(&format.name, format.clock_rate, format.channels) == Some(codec)
}

fn is_events_at(format: &Format, clock_rate: u32) -> bool {
    format.name.eq_ignore_ascii_case(TELEPHONE_EVENT) && format.clock_rate == clock_rate
}

fn peer_opus(format: &Format) -> OpusParams {
    OpusParams::parse_fmtp(format.fmtp.as_deref().unwrap_or(""))
}

fn no_common_codec(remote: &RemoteMedia) -> SdpError {
    let offered: Vec<String> =
        remote.formats.iter().map(|f| format!("{} {}/{}", f.payload_type, f.name, f.clock_rate)).collect();
    SdpError::NoCommonCodec(offered.join(", "))
}
