//! rtcp (placeholder until its work lands).
