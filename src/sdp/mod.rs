//! SDP for one audio stream (RFC 4566) as pure code over `rtc-sdp`: the
//! peer's description read down to what the media path needs, and ours
//! written from what the call decided. The offer/answer decisions
//! themselves live in `negotiate.rs`; they end in media's own
//! [`StreamParams`](crate::media::params::StreamParams), so media never
//! reads SDP while SDP builds on media's codecs and keys.

mod address;
mod negotiate;
#[cfg(test)]
mod tests;

use std::io::Cursor;
use std::net::{IpAddr, SocketAddr};

use rtc_sdp::description::common::{Address, Attribute, ConnectionInformation};
use rtc_sdp::description::media::{MediaDescription, MediaName, RangedPort};
use rtc_sdp::description::session::{Origin, SessionDescription, TimeDescription, Timing};

use crate::media::params::MediaDirection;
use crate::media::srtp::SdesCrypto;

pub use address::with_address;
pub use negotiate::{answer, offer, on_answer, LocalMedia, MediaPolicy, SrtpPolicy};

/// One payload format of an `m=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pub payload_type: u8,
    pub name: String,
    pub clock_rate: u32,
    pub channels: Option<u8>,
    pub fmtp: Option<String>,
}

/// What the peer's SDP says about its audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteMedia {
    /// Where the peer wants RTP sent.
    pub rtp_addr: SocketAddr,
    /// In the peer's order of preference (`a=rtpmap`, or RFC 3551 static).
    pub formats: Vec<Format>,
    pub direction: MediaDirection,
    /// `RTP/SAVP`: the peer will only speak SRTP.
    pub secure_profile: bool,
    /// The `a=crypto` lines we could parse; unusable ones are skipped.
    pub crypto: Vec<SdesCrypto>,
}

impl RemoteMedia {
    /// The peer holds the call: it will not receive (sendonly or inactive,
    /// RFC 3264 §8.4), or it names the RFC 2543 null address.
    pub fn holds(&self) -> bool {
        !self.direction.receives() || self.rtp_addr.ip().is_unspecified()
    }
}

/// Why an SDP could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SdpError {
    /// The body is not SDP the parser understands.
    #[error("unparsable SDP: {0}")]
    Parse(String),
    /// There is no `m=audio` line with a usable port.
    #[error("SDP has no audio stream")]
    NoAudio,
    /// Neither a media-level nor a session-level `c=` address is an IP.
    #[error("SDP has no usable connection address")]
    NoAddress,
    /// None of the peer's audio formats is one we speak.
    #[error("no common codec (offered: {0})")]
    NoCommonCodec(String),
    /// Our policy requires SRTP and the peer offered or answered plain RTP.
    #[error("SRTP is mandatory for this account and the peer did not agree to it")]
    SrtpRequired,
    /// The peer insists on SRTP and our policy is off, or no crypto suite matched.
    #[error("the peer requires SRTP and {0}")]
    SrtpRefused(&'static str),
}

/// Parse the peer's SDP (offer or answer) down to its first audio stream.
pub fn parse(body: &[u8]) -> Result<RemoteMedia, SdpError> {
    let sdp = SessionDescription::unmarshal(&mut Cursor::new(body)).map_err(|e| SdpError::Parse(e.to_string()))?;
    let media = sdp
        .media_descriptions
        .iter()
        .find(|m| m.media_name.media == "audio" && m.media_name.port.value > 0)
        .ok_or(SdpError::NoAudio)?;
    let address = media
        .connection_information
        .as_ref()
        .or(sdp.connection_information.as_ref())
        .and_then(|c| c.address.as_ref())
        .and_then(|a| a.address.parse::<IpAddr>().ok())
        .ok_or(SdpError::NoAddress)?;
    let port = u16::try_from(media.media_name.port.value).map_err(|_| SdpError::NoAudio)?;
    let rtpmaps = media.codecs();
    let formats = media
        .media_name
        .formats
        .iter()
        .filter_map(|f| f.parse::<u8>().ok())
        .filter_map(|pt| {
            let fmtp = attribute_for(media, "fmtp", pt);
            match rtpmaps.get(&pt) {
                Some(c) if !c.name.is_empty() => Some(Format {
                    payload_type: pt,
                    name: c.name.clone(),
                    clock_rate: c.clock_rate,
                    channels: c.encoding_parameters.parse().ok(),
                    fmtp,
                }),
                _ => static_format(pt).map(|(name, clock_rate)| Format {
                    payload_type: pt,
                    name: name.into(),
                    clock_rate,
                    channels: None,
                    fmtp,
                }),
            }
        })
        .collect();
    let direction = direction_of(&media.attributes).or_else(|| direction_of(&sdp.attributes)).unwrap_or_default();
    let crypto = media
        .attributes
        .iter()
        .filter(|a| a.key == "crypto")
        .filter_map(|a| a.value.as_deref())
        .filter_map(|value| SdesCrypto::parse(value).ok())
        .collect();
    Ok(RemoteMedia {
        rtp_addr: SocketAddr::new(address, port),
        formats,
        direction,
        secure_profile: media.media_name.protos.iter().any(|p| p == "SAVP"),
        crypto,
    })
}

/// The `a=` attribute that writes `direction`.
fn direction_attribute(direction: MediaDirection) -> &'static str {
    match direction {
        MediaDirection::SendRecv => "sendrecv",
        MediaDirection::SendOnly => "sendonly",
        MediaDirection::RecvOnly => "recvonly",
        MediaDirection::Inactive => "inactive",
    }
}

fn direction_of(attributes: &[Attribute]) -> Option<MediaDirection> {
    attributes.iter().find_map(|a| match a.key.as_str() {
        "sendrecv" => Some(MediaDirection::SendRecv),
        "sendonly" => Some(MediaDirection::SendOnly),
        "recvonly" => Some(MediaDirection::RecvOnly),
        "inactive" => Some(MediaDirection::Inactive),
        _ => None,
    })
}

/// The value after `PT ` of an attribute such as `a=fmtp:PT value`.
fn attribute_for(media: &MediaDescription, key: &str, pt: u8) -> Option<String> {
    let prefix = format!("{pt} ");
    media
        .attributes
        .iter()
        .filter(|a| a.key == key)
        .find_map(|a| a.value.as_deref()?.strip_prefix(&prefix).map(|v| v.trim().to_string()))
}

/// RFC 3551 static payload types an offer may use without `a=rtpmap`.
fn static_format(pt: u8) -> Option<(&'static str, u32)> {
    match pt {
        0 => Some(("PCMU", 8000)),
        8 => Some(("PCMA", 8000)),
        9 => Some(("G722", 8000)),
        _ => None,
    }
}

/// Everything our SDP says, decided by the caller.
pub struct Description<'a> {
    pub local: SocketAddr,
    pub session_id: u64,
    pub version: u64,
    pub formats: &'a [Format],
    pub direction: MediaDirection,
    /// `a=crypto` lines; with `secure_profile` the m-line says RTP/SAVP.
    pub crypto: &'a [SdesCrypto],
    pub secure_profile: bool,
}

/// Write an SDP body.
pub fn build(d: &Description<'_>) -> String {
    let (addr_type, ip) = match d.local.ip() {
        IpAddr::V4(ip) => ("IP4", ip.to_string()),
        IpAddr::V6(ip) => ("IP6", ip.to_string()),
    };
    let mut attributes = Vec::new();
    for f in d.formats {
        let channels = f.channels.map(|c| format!("/{c}")).unwrap_or_default();
        attributes.push(attr("rtpmap", format!("{} {}/{}{channels}", f.payload_type, f.name, f.clock_rate)));
        if let Some(fmtp) = &f.fmtp {
            attributes.push(attr("fmtp", format!("{} {fmtp}", f.payload_type)));
        }
    }
    attributes.push(attr("ptime", "20".into()));
    for crypto in d.crypto {
        attributes.push(attr("crypto", crypto.to_attribute_value()));
    }
    attributes.push(Attribute { key: direction_attribute(d.direction).into(), value: None });
    let connection = ConnectionInformation {
        network_type: "IN".into(),
        address_type: addr_type.into(),
        address: Some(Address { address: ip.clone(), ttl: None, range: None }),
    };
    let profile = if d.secure_profile { "SAVP" } else { "AVP" };
    let sdp = SessionDescription {
        version: 0,
        origin: Origin {
            username: "-".into(),
            session_id: d.session_id,
            session_version: d.version,
            network_type: "IN".into(),
            address_type: addr_type.into(),
            unicast_address: ip,
        },
        session_name: "softphoned".into(),
        connection_information: Some(connection),
        time_descriptions: vec![TimeDescription {
            timing: Timing { start_time: 0, stop_time: 0 },
            repeat_times: vec![],
        }],
        media_descriptions: vec![MediaDescription {
            media_name: MediaName {
                media: "audio".into(),
                port: RangedPort { value: d.local.port() as isize, range: None },
                protos: vec!["RTP".into(), profile.into()],
                formats: d.formats.iter().map(|f| f.payload_type.to_string()).collect(),
            },
            attributes,
            ..Default::default()
        }],
        ..Default::default()
    };
    sdp.marshal()
}

fn attr(key: &str, value: String) -> Attribute {
    Attribute { key: key.into(), value: Some(value) }
}
