//! Placeholder until the codecs benchmark lands.
fn main() {}
