//! quality (placeholder until its work lands).
