//! dtmf (placeholder until its work lands).
