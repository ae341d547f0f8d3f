//! Call recording for ops: stereo WAV files (left the agent, right the
//! remote party) that survive a crash, written off the media path.

pub mod file;
