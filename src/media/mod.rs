//! Pure media: codecs, RTP and RTCP, SRTP, the jitter buffer, DTMF, call
//! quality, the per-call stream that ties them together and the engine that
//! runs every call's tick. Nothing here touches a socket or a clock; the
//! daemon's media shell feeds it.

pub mod codec;
pub mod dtmf;
pub mod engine;
pub mod g711;
pub mod jitter;
pub mod level;
pub mod mixer;
pub mod params;
pub mod quality;
pub mod report;
pub mod rtcp;
pub mod rtp;
pub mod srtp;
pub mod stream;

pub use codec::{Codec, Frame, FRAME_SAMPLES, PCM_RATE};
