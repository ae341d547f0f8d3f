//! Which of our addresses a packet to a peer leaves from, and saying so in
//! the top Via of a request sent from a wildcard socket: the kernel picks
//! the source per destination, and the Via must name the same address or a
//! peer without `rport` handling answers an address we do not have.

use std::net::{IpAddr, SocketAddr};

/// The source address the routing table picks for packets to `peer`.
/// Connecting a UDP socket sends nothing; it only asks the kernel.
pub fn route_source(peer: IpAddr) -> Option<IpAddr> {
    let any: SocketAddr = if peer.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("a literal address");
    let socket = std::net::UdpSocket::bind(any).ok()?;
    socket.connect((peer, 9)).ok()?;
    socket.local_addr().ok().map(|local| local.ip())
}

/// `request` with the host of its first Via set to `host` (port and
/// parameters kept). `None` for responses (their Via is the peer's) and
/// when the Via already names `host`.
pub fn with_via_host(request: &[u8], host: IpAddr) -> Option<Vec<u8>> {
    if request.starts_with(b"SIP/") {
        return None;
    }
    let head_end = find(request, b"\r\n\r\n")?;
    let mut at = find(request, b"\r\n")? + 2;
    while at < head_end {
        let end = at + find(&request[at..], b"\r\n")?;
        let line = &request[at..end];
        let is_via = line.len() > 2
            && (line[..4.min(line.len())].eq_ignore_ascii_case(b"via:") || line[..2].eq_ignore_ascii_case(b"v:"));
        if is_via {
            // `Via: SIP/2.0/UDP host:port;params`: the host runs from after
            // the protocol to the port's colon (or `;`, or the end).
            let value = line.iter().position(|&b| b == b':')? + 1;
            let protocol_end = value + line[value..].iter().position(|&b| b == b'/')?;
            let sent_by = protocol_end + line[protocol_end..].iter().position(|&b| b == b' ')? + 1;
            let sent_by = sent_by + line[sent_by..].iter().take_while(|&&b| b == b' ').count();
            let host_len = if line.get(sent_by) == Some(&b'[') {
                line[sent_by..].iter().position(|&b| b == b']')? + 1
            } else {
                line[sent_by..].iter().position(|&b| b == b':' || b == b';').unwrap_or(line.len() - sent_by)
            };
            let text = match host {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("[{v6}]"),
            };
            if &line[sent_by..sent_by + host_len] == text.as_bytes() {
                return None;
            }
            let mut out = Vec::with_capacity(request.len() + 32);
            out.extend_from_slice(&request[..at + sent_by]);
            out.extend_from_slice(text.as_bytes());
            out.extend_from_slice(&request[at + sent_by + host_len..]);
            return Some(out);
        }
        at = end + 2;
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_via_of_a_request_names_the_host_and_nothing_else_changes() {
        let bye = b"BYE sip:bob@203.0.113.1 SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.10:5062;branch=z9hG4bKx;rport\r\n\
                    Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKy\r\nCall-ID: a\r\n\r\n";
        let out = with_via_host(bye, "203.0.113.10".parse().unwrap()).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "BYE sip:bob@203.0.113.1 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.10:5062;branch=z9hG4bKx;rport\r\n\
             Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKy\r\nCall-ID: a\r\n\r\n"
        );
        assert_eq!(with_via_host(bye, "198.51.100.10".parse().unwrap()), None, "already right");
        let v6 = with_via_host(bye, "2001:db8::10".parse().unwrap()).unwrap();
        assert!(String::from_utf8(v6).unwrap().contains("Via: SIP/2.0/UDP [2001:db8::10]:5062;branch"));
        let compact = b"ACK sip:b@x SIP/2.0\r\nv: SIP/2.0/UDP [2001:db8::1]:5062;branch=z\r\n\r\n";
        let out = with_via_host(compact, "2001:db8::10".parse().unwrap()).unwrap();
        assert!(String::from_utf8(out).unwrap().contains("v: SIP/2.0/UDP [2001:db8::10]:5062;branch=z"));
        assert_eq!(
            with_via_host(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 1.2.3.4\r\n\r\n", "192.0.2.1".parse().unwrap()),
            None
        );
    }

    #[test]
    fn the_route_toward_loopback_leaves_from_loopback() {
        assert_eq!(route_source("127.0.0.1".parse().unwrap()), Some("127.0.0.1".parse().unwrap()));
    }
}
