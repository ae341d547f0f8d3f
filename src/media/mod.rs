//! Pure media: codecs, RTP and RTCP, SRTP, the jitter buffer, DTMF, call
//! quality and the per-call stream that ties them together. Nothing here
//! touches a socket or a clock; the daemon's media tick feeds it.

pub mod codec;
pub mod dtmf;
pub mod g711;
pub mod jitter;
pub mod mixer;
pub mod params;
pub mod quality;
pub mod rtcp;
pub mod rtp;
pub mod srtp;
pub mod stream;

pub use codec::{Codec, Frame, FRAME_SAMPLES, PCM_RATE};
