//! Offer/answer cases as real peers write them.

use super::*;
use crate::media::codec::{Codec, OpusParams};
use crate::media::params::{EventPayloads, MediaDirection};
use crate::media::srtp::CryptoSuite;

const LOCAL: &str = "127.0.0.1:40000";

fn local(codecs: &[Codec], srtp: SrtpPolicy) -> LocalMedia {
    LocalMedia {
        rtp: LOCAL.parse().unwrap(),
        session_id: 42,
        policy: MediaPolicy { codecs: codecs.to_vec(), srtp, opus: OpusParams::offer() },
        key_salt: [7; 30],
    }
}

fn peer(m_line: &str, extra: &str) -> RemoteMedia {
    let sdp = format!("v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n{m_line}\r\n{extra}");
    parse(sdp.as_bytes()).unwrap()
}

const ALL: [Codec; 4] = [Codec::Opus, Codec::G722, Codec::Pcmu, Codec::Pcma];

#[test]
fn offer_lists_our_preference_with_events_per_clock_rate() {
    let sdp = offer(&local(&ALL, SrtpPolicy::Off), 1, MediaDirection::SendRecv);
    assert!(sdp.contains("m=audio 40000 RTP/AVP 111 9 0 8 101 102\r\n"), "{sdp}");
    assert!(sdp.contains("a=rtpmap:111 opus/48000/2\r\n"), "{sdp}");
    assert!(sdp.contains("a=fmtp:111 "), "{sdp}");
    assert!(sdp.contains("a=rtpmap:9 G722/8000\r\n"), "{sdp}");
    assert!(sdp.contains("a=rtpmap:101 telephone-event/8000\r\n"), "{sdp}");
    assert!(sdp.contains("a=rtpmap:102 telephone-event/48000\r\n"), "{sdp}");
    assert!(sdp.contains("a=sendrecv\r\n") && !sdp.contains("a=crypto"), "{sdp}");
    let back = parse(sdp.as_bytes()).unwrap();
    assert_eq!(back.formats.len(), 6);
    assert_eq!(back.formats[0].channels, Some(2));
    let narrow = offer(&local(&[Codec::Pcma], SrtpPolicy::Off), 1, MediaDirection::SendRecv);
    assert!(narrow.contains("m=audio 40000 RTP/AVP 8 101\r\n"), "no 48 kHz events without Opus: {narrow}");
}

#[test]
fn answer_takes_our_preference_and_the_offers_payload_numbers() {
    let offer = peer(
        "m=audio 5004 RTP/AVP 0 96 9 97",
        "a=rtpmap:96 opus/48000/2\r\na=fmtp:96 useinbandfec=1\r\na=rtpmap:97 telephone-event/48000\r\n",
    );
    let (sdp, agreed) = answer(&offer, &local(&ALL, SrtpPolicy::Off), 1, MediaDirection::SendRecv).unwrap();
    assert_eq!((agreed.codec, agreed.send_pt, agreed.receive_pt), (Codec::Opus, 96, 96));
    assert_eq!(agreed.telephone_event, Some(EventPayloads { send: 97, receive: 97 }));
    assert!(agreed.opus.use_inband_fec);
    assert!(sdp.contains("m=audio 40000 RTP/AVP 96 97\r\n"), "{sdp}");
    assert!(sdp.contains("a=rtpmap:96 opus/48000/2\r\n"), "{sdp}");
    // Events at 8 kHz do not go with a 48 kHz codec.
    let offer =
        peer("m=audio 5004 RTP/AVP 96 101", "a=rtpmap:96 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\n");
    let (_, agreed) = answer(&offer, &local(&ALL, SrtpPolicy::Off), 1, MediaDirection::SendRecv).unwrap();
    assert_eq!(agreed.telephone_event, None);
}

#[test]
fn an_answer_with_other_payload_numbers_makes_the_stream_asymmetric() {
    let ours = local(&ALL, SrtpPolicy::Off);
    let answer =
        peer("m=audio 5004 RTP/AVP 98 100", "a=rtpmap:98 opus/48000/2\r\na=rtpmap:100 telephone-event/48000\r\n");
    let agreed = on_answer(&answer, &ours, MediaDirection::SendRecv).unwrap();
    assert_eq!((agreed.codec, agreed.send_pt, agreed.receive_pt), (Codec::Opus, 98, 111));
    assert_eq!(agreed.telephone_event, Some(EventPayloads { send: 100, receive: 102 }));
    assert_eq!(agreed.remote, "10.0.0.9:5004".parse().unwrap());
}

#[test]
fn nothing_in_common_is_refused_naming_what_was_offered() {
    let offer = peer("m=audio 5004 RTP/AVP 18", "a=rtpmap:18 G729/8000\r\n");
    let err = answer(&offer, &local(&ALL, SrtpPolicy::Off), 1, MediaDirection::SendRecv).unwrap_err();
    assert_eq!(err, SdpError::NoCommonCodec("18 G729/8000".into()));
    let only_g722 = peer("m=audio 5004 RTP/AVP 9", "");
    assert!(answer(&only_g722, &local(&[Codec::Pcmu], SrtpPolicy::Off), 1, MediaDirection::SendRecv).is_err());
}

#[test]
fn hold_directions_follow_rfc3264() {
    let ours = local(&[Codec::Pcmu], SrtpPolicy::Off);
    let held = peer("m=audio 5004 RTP/AVP 0", "a=sendonly\r\n");
    assert!(held.holds());
    let (sdp, agreed) = answer(&held, &ours, 2, MediaDirection::SendRecv).unwrap();
    assert!(sdp.contains("a=recvonly\r\n"), "{sdp}");
    assert_eq!(agreed.direction, MediaDirection::RecvOnly);
    let (sdp, agreed) = answer(&held, &ours, 2, MediaDirection::SendOnly).unwrap();
    assert!(sdp.contains("a=inactive\r\n"), "both hold: {sdp}");
    assert_eq!(agreed.direction, MediaDirection::Inactive);
    let old_style = peer("m=audio 5004 RTP/AVP 0", "").clone();
    let old_style = RemoteMedia { rtp_addr: "0.0.0.0:5004".parse().unwrap(), ..old_style };
    assert!(old_style.holds(), "RFC 2543 hold by c=0.0.0.0");
    let our_hold = offer(&ours, 3, MediaDirection::SendOnly);
    assert!(our_hold.contains("a=sendonly\r\n") && our_hold.contains("o=- 42 3 IN IP4"), "{our_hold}");
    let agreed = on_answer(&peer("m=audio 5004 RTP/AVP 0", "a=recvonly\r\n"), &ours, MediaDirection::SendOnly).unwrap();
    assert_eq!(agreed.direction, MediaDirection::SendOnly);
}

#[test]
fn srtp_policy_decides_profiles_and_keys() {
    let mandatory = local(&[Codec::Pcmu], SrtpPolicy::Mandatory);
    let sdp = offer(&mandatory, 1, MediaDirection::SendRecv);
    assert!(sdp.contains("m=audio 40000 RTP/SAVP 0 101\r\n"), "{sdp}");
    assert!(sdp.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"), "{sdp}");
    assert!(sdp.contains("a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:"), "{sdp}");
    let optional = offer(&local(&[Codec::Pcmu], SrtpPolicy::Optional), 1, MediaDirection::SendRecv);
    assert!(optional.contains("RTP/AVP 0 101") && optional.contains("a=crypto:1"), "{optional}");

    let key = "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n";
    let secure = peer("m=audio 5004 RTP/SAVP 0", key);
    let (sdp, agreed) = answer(&secure, &mandatory, 1, MediaDirection::SendRecv).unwrap();
    let keys = agreed.srtp.expect("SRTP agreed");
    assert_eq!((keys.local.tag, keys.local.suite), (2, CryptoSuite::AesCm128HmacSha1_32));
    assert_eq!(keys.remote, secure.crypto[0]);
    assert!(sdp.contains("RTP/SAVP") && sdp.contains("a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:"), "{sdp}");

    let plain = peer("m=audio 5004 RTP/AVP 0", "");
    assert_eq!(answer(&plain, &mandatory, 1, MediaDirection::SendRecv).unwrap_err(), SdpError::SrtpRequired);
    assert_eq!(on_answer(&plain, &mandatory, MediaDirection::SendRecv).unwrap_err(), SdpError::SrtpRequired);
    let off = local(&[Codec::Pcmu], SrtpPolicy::Off);
    assert!(matches!(answer(&secure, &off, 1, MediaDirection::SendRecv), Err(SdpError::SrtpRefused(_))));
    let best_effort = peer("m=audio 5004 RTP/AVP 0", key);
    let (_, agreed) = answer(&best_effort, &off, 1, MediaDirection::SendRecv).unwrap();
    assert!(agreed.srtp.is_none(), "policy off ignores keys on RTP/AVP");
    let (_, agreed) =
        answer(&best_effort, &local(&[Codec::Pcmu], SrtpPolicy::Optional), 1, MediaDirection::SendRecv).unwrap();
    assert!(agreed.srtp.is_some(), "optional takes keys on RTP/AVP");
}

#[test]
fn media_level_connection_overrides_session_level_and_garbage_is_refused() {
    let sdp = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
               m=audio 6000 RTP/AVP 8\r\nc=IN IP4 10.0.0.2\r\n";
    assert_eq!(parse(sdp.as_bytes()).unwrap().rtp_addr, "10.0.0.2:6000".parse().unwrap());
    let video = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=video 6000 RTP/AVP 96\r\n";
    assert_eq!(parse(video.as_bytes()), Err(SdpError::NoAudio));
    assert!(matches!(parse(b"not sdp at all"), Err(SdpError::Parse(_))));
}
