//! The recorder (floor 5): stereo WAV or Ogg/Opus files (left the agent,
//! right the remote party) with a JSON sidecar, written on the recorder's
//! own thread off the media path, and surviving a crash; encrypted at rest
//! when configured (`sealed`), old ones swept away (`at_rest`).

mod at_rest;
pub mod file;
pub mod ogg_opus;
pub mod sealed;
mod writer;

pub use crate::recording::sidecar_of;
pub use at_rest::{decrypt, Decrypted};
pub use writer::{FrameBatch, Recorder, RecorderSettings};
