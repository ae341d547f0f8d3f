//! jitter (placeholder until its work lands).
