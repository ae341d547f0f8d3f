//! A peer's SDP body through `sdp::parse`, then both roles of offer/answer:
//! `sdp::answer` (it was an offer) and `sdp::on_answer` (it answered ours),
//! under a local policy chosen by the first input byte. What comes out is
//! what a call starts its media with, so each agreement also builds a
//! `MediaStream` (codec state, SRTP contexts from the peer's keys).
//!
//! Checked beyond "no panic": an answer we write parses with our own parser.

#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use softphoned::media::codec::{Codec, OpusParams};
use softphoned::media::params::{MediaDirection, StreamParams};
use softphoned::media::stream::{MediaStream, StreamConfig};
use softphoned::sdp::{self, LocalMedia, MediaPolicy, SrtpPolicy};

const CODEC_ORDERS: [&[Codec]; 4] = [
    &[Codec::Opus, Codec::G722, Codec::Pcmu, Codec::Pcma],
    &[Codec::Pcmu, Codec::Pcma],
    &[Codec::G722, Codec::Pcma],
    &[Codec::Opus],
];
const DIRECTIONS: [MediaDirection; 4] =
    [MediaDirection::SendRecv, MediaDirection::SendOnly, MediaDirection::RecvOnly, MediaDirection::Inactive];

fn local(selector: u8) -> LocalMedia {
    let srtp = [SrtpPolicy::Off, SrtpPolicy::Optional, SrtpPolicy::Mandatory][usize::from(selector >> 2 & 3) % 3];
    LocalMedia {
        rtp: SocketAddr::from(([192, 0, 2, 10], 40000)),
        session_id: 42,
        policy: MediaPolicy { codecs: CODEC_ORDERS[usize::from(selector & 3)].to_vec(), srtp, opus: OpusParams::offer() },
        key_salt: [7; 30],
    }
}

fn start_media(params: StreamParams) {
    let config = StreamConfig {
        ssrc: 1,
        first_sequence: 1,
        first_timestamp: 0,
        jitter_min_ms: 20,
        jitter_max_ms: 200,
        rtcp_interval: Duration::from_secs(5),
        rtcp_seed: 7,
        cname: "fuzz".into(),
        dtmf_tone_ms: 100,
        dtmf_gap_ms: 60,
        rtp_keepalive: Duration::from_secs(15),
    };
    let _ = MediaStream::new(params, &config, Instant::now());
}

fuzz_target!(|input: &[u8]| {
    let Some((&selector, body)) = input.split_first() else { return };
    let local = local(selector);
    let want = DIRECTIONS[usize::from(selector >> 4 & 3)];
    let Ok(remote) = sdp::parse(body) else { return };
    let _ = remote.holds();
    if let Ok((answer, agreed)) = sdp::answer(&remote, &local, 2, want) {
        if let Err(e) = sdp::parse(answer.as_bytes()) {
            panic!("our answer does not parse ({e}):\n{answer}");
        }
        start_media(agreed);
    }
    if let Ok(agreed) = sdp::on_answer(&remote, &local, want) {
        start_media(agreed);
    }
});
