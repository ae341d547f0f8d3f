//! NAT traversal logic that needs no socket: a STUN Binding transaction
//! (RFC 8489) that discovers the address a NAT maps us to, and serves as
//! an RFC 5626 flow keep-alive whose answer is checked. The SIP shell
//! (`crate::sip::reach`) sends and receives its bytes on the SIP socket.

pub mod stun;
