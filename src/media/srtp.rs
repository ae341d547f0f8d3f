//! srtp (placeholder until its work lands).
