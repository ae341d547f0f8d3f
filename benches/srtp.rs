//! Placeholder until the srtp benchmark lands.
fn main() {}
