//! Codecs (placeholder until the codec work lands).
