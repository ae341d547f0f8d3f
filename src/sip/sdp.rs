//! SDP offer/answer for one audio stream (RFC 3264), as pure functions over
//! `rtc-sdp`: building our offer or answer, reading the peer's, and choosing
//! the codec both sides speak.

use std::io::Cursor;
use std::net::{IpAddr, SocketAddr};

use rtc_sdp::description::common::{Address, Attribute, ConnectionInformation};
use rtc_sdp::description::media::{MediaDescription, MediaName, RangedPort};
use rtc_sdp::description::session::{Origin, SessionDescription, TimeDescription, Timing};

use crate::media::Codec;

/// What the peer's SDP says about its audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteMedia {
    /// Where the peer wants RTP sent.
    pub rtp_addr: SocketAddr,
    /// Payload types in the peer's order of preference, with the encoding name
    /// and clock rate (`a=rtpmap`, or the RFC 3551 static assignment).
    pub formats: Vec<(u8, String, u32)>,
}

/// The outcome of a successful offer/answer: how this call's RTP flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub remote: SocketAddr,
    pub codec: Codec,
    /// The payload type the peer uses for `codec` (static types are fixed, but
    /// a peer may still map PCMU elsewhere).
    pub payload_type: u8,
    /// RFC 4733 events, when both sides offered them at 8 kHz.
    pub telephone_event: Option<u8>,
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
}

/// Our preference order; the offer lists them in this order.
pub const SUPPORTED_CODECS: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];
/// The payload type we offer for RFC 4733 telephone-event.
pub const TELEPHONE_EVENT_PT: u8 = 101;

/// The SDP we send, either as an offer or as an answer naming one codec.
pub fn build(local: SocketAddr, session_id: u64, version: u64, codecs: &[(u8, &str, u32)], te: Option<u8>) -> String {
    let (addr_type, ip) = match local.ip() {
        IpAddr::V4(ip) => ("IP4", ip.to_string()),
        IpAddr::V6(ip) => ("IP6", ip.to_string()),
    };
    let mut formats: Vec<String> = codecs.iter().map(|(pt, _, _)| pt.to_string()).collect();
    let mut attributes: Vec<Attribute> =
        codecs.iter().map(|(pt, name, rate)| attr("rtpmap", format!("{pt} {name}/{rate}"))).collect();
    if let Some(te) = te {
        formats.push(te.to_string());
        attributes.push(attr("rtpmap", format!("{te} telephone-event/8000")));
        attributes.push(attr("fmtp", format!("{te} 0-16")));
    }
    attributes.push(attr("ptime", "20".into()));
    attributes.push(Attribute { key: "sendrecv".into(), value: None });
    let connection = ConnectionInformation {
        network_type: "IN".into(),
        address_type: addr_type.into(),
        address: Some(Address { address: ip.clone(), ttl: None, range: None }),
    };
    let sdp = SessionDescription {
        version: 0,
        origin: Origin {
            username: "-".into(),
            session_id,
            session_version: version,
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
                port: RangedPort { value: local.port() as isize, range: None },
                protos: vec!["RTP".into(), "AVP".into()],
                formats,
            },
            attributes,
            ..Default::default()
        }],
        ..Default::default()
    };
    sdp.marshal()
}

/// Our offer: every codec we speak, plus telephone-event.
pub fn offer(local: SocketAddr, session_id: u64) -> String {
    let codecs: Vec<(u8, &str, u32)> =
        SUPPORTED_CODECS.iter().map(|c| (c.static_payload_type(), c.name(), c.clock_rate())).collect();
    build(local, session_id, 1, &codecs, Some(TELEPHONE_EVENT_PT))
}

/// Answer an offer: the first of *our* preferences the peer offered, and
/// telephone-event when the peer has it. Returns the SDP and what was agreed.
pub fn answer(offer: &RemoteMedia, local: SocketAddr, session_id: u64) -> Result<(String, Negotiated), SdpError> {
    let negotiated = negotiate(offer)?;
    let codec = negotiated.codec;
    let sdp = build(
        local,
        session_id,
        1,
        &[(negotiated.payload_type, codec.name(), codec.clock_rate())],
        negotiated.telephone_event,
    );
    Ok((sdp, negotiated))
}

/// What we agree on with the peer's SDP: for its answer to our offer, the
/// outcome; for its offer, whether (and how) we could answer it.
pub fn negotiate(remote: &RemoteMedia) -> Result<Negotiated, SdpError> {
    let find = |name: &str, rate: u32| {
        remote.formats.iter().find(|(_, n, r)| n.eq_ignore_ascii_case(name) && *r == rate).map(|(pt, _, _)| *pt)
    };
    let (codec, payload_type) =
        SUPPORTED_CODECS.iter().find_map(|c| find(c.name(), c.clock_rate()).map(|pt| (*c, pt))).ok_or_else(|| {
            let offered: Vec<String> = remote.formats.iter().map(|(pt, n, r)| format!("{pt} {n}/{r}")).collect();
            SdpError::NoCommonCodec(offered.join(", "))
        })?;
    Ok(Negotiated { remote: remote.rtp_addr, codec, payload_type, telephone_event: find("telephone-event", 8000) })
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
        .filter_map(|pt| match rtpmaps.get(&pt) {
            Some(c) if !c.name.is_empty() => Some((pt, c.name.clone(), c.clock_rate)),
            _ => static_format(pt).map(|(name, rate)| (pt, name.to_string(), rate)),
        })
        .collect();
    Ok(RemoteMedia { rtp_addr: SocketAddr::new(address, port), formats })
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

fn attr(key: &str, value: String) -> Attribute {
    Attribute { key: key.into(), value: Some(value) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: &str = "127.0.0.1:40000";

    #[test]
    fn offer_lists_pcmu_pcma_and_telephone_event_and_parses_back() {
        let sdp = offer(LOCAL.parse().unwrap(), 42);
        assert!(sdp.contains("m=audio 40000 RTP/AVP 0 8 101\r\n"), "{sdp}");
        assert!(sdp.contains("c=IN IP4 127.0.0.1\r\n"));
        assert!(sdp.contains("a=fmtp:101 0-16\r\n"));
        let parsed = parse(sdp.as_bytes()).unwrap();
        assert_eq!(parsed.rtp_addr, LOCAL.parse().unwrap());
        assert_eq!(
            parsed.formats,
            vec![(0, "PCMU".into(), 8000), (8, "PCMA".into(), 8000), (101, "telephone-event".into(), 8000)]
        );
    }

    #[test]
    fn answer_picks_our_preference_among_offered_and_keeps_peer_payload_types() {
        let peer = "v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n\
                    m=audio 5004 RTP/AVP 8 0 96\r\na=rtpmap:96 telephone-event/8000\r\n";
        let offer = parse(peer.as_bytes()).unwrap();
        let (sdp, neg) = answer(&offer, LOCAL.parse().unwrap(), 7).unwrap();
        assert_eq!(neg.codec, Codec::Pcmu, "our preference wins, not the offer's order");
        assert_eq!(neg.telephone_event, Some(96));
        assert_eq!(neg.remote, "10.0.0.9:5004".parse().unwrap());
        assert!(sdp.contains("m=audio 40000 RTP/AVP 0 96\r\n"), "{sdp}");
    }

    #[test]
    fn media_level_connection_overrides_session_level() {
        let peer = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
                    m=audio 6000 RTP/AVP 8\r\nc=IN IP4 10.0.0.2\r\n";
        let remote = parse(peer.as_bytes()).unwrap();
        assert_eq!(remote.rtp_addr, "10.0.0.2:6000".parse().unwrap());
        assert_eq!(negotiate(&remote).unwrap().codec, Codec::Pcma);
    }

    #[test]
    fn refuses_offer_without_common_codec_or_audio() {
        let g729 = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 18\r\n\
                    a=rtpmap:18 G729/8000\r\n";
        assert!(matches!(
            answer(&parse(g729.as_bytes()).unwrap(), LOCAL.parse().unwrap(), 1),
            Err(SdpError::NoCommonCodec(_))
        ));
        let video =
            "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=video 6000 RTP/AVP 96\r\n";
        assert_eq!(parse(video.as_bytes()), Err(SdpError::NoAudio));
        assert!(matches!(parse(b"not sdp at all"), Err(SdpError::Parse(_))));
    }
}
