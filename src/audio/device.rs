//! Sound-card backend (placeholder until its work lands).
