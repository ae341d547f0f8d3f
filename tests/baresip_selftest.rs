//! Self-test of the baresip harness (`tests/common/baresip.rs`) with two real
//! baresips on 127.0.0.1 and no softphoned: A (600 Hz) calls B (900 Hz) with
//! each codec and with SDES-SRTP, and each side's receive recording must
//! carry the other's tone; DTMF, hold and manual answer show which events
//! baresip emits for them.

#[path = "common/baresip.rs"]
mod baresip;

use std::time::Duration;

use baresip::{event, Baresip, BaresipOptions, Codec, Recording, Srtp};

const A_TONE: f64 = 600.0;
const B_TONE: f64 = 900.0;
const WAIT: Duration = Duration::from_secs(10);
/// Tone the measured frequency may deviate by: codecs and the 10 Hz scan.
const TOLERANCE_HZ: f64 = 20.0;

/// Caller A and callee B with the same codecs and SRTP mode, B answering on its own.
fn pair(dir: &std::path::Path, codecs: &[Codec], srtp: Option<Srtp>, auto_answer: bool) -> (Baresip, Baresip) {
    let options = |user: &str, tone: f64, auto_answer: bool| BaresipOptions {
        user: user.into(),
        codecs: codecs.to_vec(),
        srtp,
        tone_hz: Some(tone),
        auto_answer,
        ..Default::default()
    };
    let a = Baresip::start(&dir.join("a"), options("alice", A_TONE, true));
    let b = Baresip::start(&dir.join("b"), options("bob", B_TONE, auto_answer));
    (a, b)
}

fn assert_tone(recording: &Recording, hz: f64, what: &str) {
    let found = recording.dominant_frequency();
    assert!(
        found.is_some_and(|f| (f - hz).abs() <= TOLERANCE_HZ),
        "{what}: expected {hz} Hz, found {found:?} in {:.2} s of {}",
        recording.seconds(),
        recording.path.display()
    );
}

/// A dials B, both talk for a second, A hangs up; each hears the other's tone.
async fn tones_cross(codec: Codec, srtp: Option<Srtp>) {
    if !baresip::installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b) = pair(dir.path(), &[codec], srtp, true);
    a.dial(&b.sip_uri());
    let established = b.wait_event_type(event::ESTABLISHED, WAIT).await;
    assert_eq!(established["param"], a.sip_uri(), "B's event names the caller");
    a.wait_event_type(event::ESTABLISHED, WAIT).await;
    if srtp.is_some() {
        for side in [&a, &b] {
            let menc = side.events().into_iter().find(|e| e["type"] == event::MEDIA_ENCRYPTION);
            let suite = menc.as_ref().and_then(|e| e["param"].as_str()).unwrap_or_default();
            assert!(suite.contains("AES_CM_128_HMAC_SHA1_80"), "{}: SRTP not agreed: {menc:?}", side.user);
        }
    }
    assert_eq!(a.negotiated_codec(), Some(codec), "A's codec\n{}", a.log());
    assert_eq!(b.negotiated_codec(), Some(codec), "B's codec\n{}", b.log());
    a.wait_received_audio(Duration::from_secs(1), WAIT).await;
    b.wait_received_audio(Duration::from_secs(1), WAIT).await;
    a.hangup();
    let closed = a.wait_event_type(event::CLOSED, WAIT).await;
    assert_eq!(closed["param"], "Connection reset by user");
    let closed = b.wait_event_type(event::CLOSED, WAIT).await;
    assert_eq!(closed["param"], "Connection reset by peer");

    for (side, heard, sent_hz) in [(&a, B_TONE, A_TONE), (&b, A_TONE, B_TONE)] {
        let received = Recording::read(&side.received_audio());
        assert_eq!(received.rate, codec.recording_rate(), "{} recording rate", side.user);
        assert_eq!(received.channels, codec.recording_channels(), "{} recording channels", side.user);
        assert!(received.seconds() >= 1.0, "{}: only {:.2} s received", side.user, received.seconds());
        assert_tone(&received, heard, &format!("{} heard ({codec:?})", side.user));
        assert_tone(&Recording::read(&side.sent_audio()), sent_hz, &format!("{} sent ({codec:?})", side.user));
    }
}

#[tokio::test]
async fn pcmu_tones_cross() {
    tones_cross(Codec::Pcmu, None).await;
}

#[tokio::test]
async fn pcma_tones_cross() {
    tones_cross(Codec::Pcma, None).await;
}

#[tokio::test]
async fn g722_tones_cross() {
    tones_cross(Codec::G722, None).await;
}

#[tokio::test]
async fn opus_tones_cross() {
    tones_cross(Codec::Opus, None).await;
}

#[tokio::test]
async fn srtp_mandatory_tones_cross() {
    tones_cross(Codec::Pcmu, Some(Srtp::Mandatory)).await;
}

/// DTMF sent by A arrives at B as CALL_DTMF_START per digit; hold and resume
/// by A show up at B only as a re-INVITE whose SDP direction flips.
#[tokio::test]
async fn dtmf_and_hold_reach_the_peer() {
    if !baresip::installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b) = pair(dir.path(), &[Codec::Pcmu], None, true);
    a.dial(&b.sip_uri());
    b.wait_event_type(event::ESTABLISHED, WAIT).await;
    a.wait_event_type(event::ESTABLISHED, WAIT).await;
    assert_eq!(b.last_received_sdp_direction().as_deref(), Some("sendrecv"));

    a.send_dtmf("1#9*");
    b.wait_dtmf("1#9*", WAIT).await;
    let first = b.wait_event_type(event::DTMF_START, WAIT).await;
    assert_eq!(first["param"], "1");
    b.wait_event_type(event::DTMF_END, WAIT).await;
    assert_eq!(b.received_dtmf(), "1#9*", "no extra digits");
    assert!(a.received_dtmf().is_empty(), "DTMF went one way only");

    a.hold();
    let offer = b.wait_event(|e| e["type"] == event::REMOTE_SDP && e["param"] == "offer", WAIT).await;
    assert_eq!(offer["direction"], "incoming");
    b.wait_received_sdp_direction("sendonly", WAIT).await;
    a.wait_received_sdp_direction("recvonly", WAIT).await;
    a.resume();
    b.wait_event(|e| e["type"] == event::REMOTE_SDP && e["param"] == "offer", WAIT).await;
    b.wait_received_sdp_direction("sendrecv", WAIT).await;
    let types: Vec<_> = b.events().into_iter().filter_map(|e| e["type"].as_str().map(str::to_string)).collect();
    assert!(!types.iter().any(|t| t.contains("HOLD")), "1.0.0 has no hold event: {types:?}");

    b.hangup();
    let closed = a.wait_event_type(event::CLOSED, WAIT).await;
    assert_eq!(closed["param"], "Connection reset by peer");
}

/// In manual answer mode B reports CALL_INCOMING and rings until accept().
#[tokio::test]
async fn manual_answer_waits_for_accept() {
    if !baresip::installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b) = pair(dir.path(), &[Codec::Pcmu], None, false);
    a.dial(&b.sip_uri());
    let incoming = b.wait_event_type(event::INCOMING, WAIT).await;
    assert_eq!(incoming["param"], a.sip_uri());
    a.wait_event_type(event::RINGING, WAIT).await;
    assert!(!a.events().iter().any(|e| e["type"] == event::ESTABLISHED), "answered before accept");
    b.accept();
    a.wait_event_type(event::ESTABLISHED, WAIT).await;
    b.wait_event_type(event::ESTABLISHED, WAIT).await;
    b.stop();
    let closed = a.wait_event_type(event::CLOSED, WAIT).await;
    assert_eq!(closed["param"], "Connection reset by peer", "stop() hangs up the call");
    assert!(b.events().iter().any(|e| e["type"] == event::ESTABLISHED), "events outlive stop()");
}

/// Mandatory SRTP refuses a caller offering plain RTP with 488; the callee
/// reports CALL_CLOSED ("No audio codecs") for a call it never announced.
#[tokio::test]
async fn srtp_mandatory_refuses_plain_rtp() {
    if !baresip::installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut a = Baresip::start(&dir.path().join("a"), BaresipOptions { user: "alice".into(), ..Default::default() });
    let options = BaresipOptions { user: "bob".into(), srtp: Some(Srtp::Mandatory), ..Default::default() };
    let mut b = Baresip::start(&dir.path().join("b"), options);
    a.dial(&b.sip_uri());
    let closed = a.wait_event_type(event::CLOSED, WAIT).await;
    assert!(!a.events().iter().any(|e| e["type"] == event::ESTABLISHED), "plain call established: {closed}");
    assert_eq!(closed["param"], "488 Not Acceptable Here");
    let invite = b.received_sip().into_iter().next().unwrap_or_default();
    assert!(invite.starts_with("INVITE ") && invite.contains("RTP/AVP"), "B got the plain offer: {invite}");
    let rejected = b.wait_event_type(event::CLOSED, WAIT).await;
    assert_eq!(rejected["param"], "No audio codecs", "B's reason for the 488");
}
