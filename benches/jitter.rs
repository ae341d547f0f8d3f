//! Placeholder until the jitter benchmark lands.
fn main() {}
