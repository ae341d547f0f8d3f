//! The recorder (floor 5): stereo WAV or Ogg/Opus files (left the agent,
//! right the remote party) with a JSON sidecar, written on the recorder's
//! own thread off the media path, and surviving a crash.

pub mod file;
pub mod ogg_opus;
mod writer;

pub use writer::{sidecar_of, FrameBatch, Recorder};
