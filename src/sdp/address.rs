//! The address an SDP body gives for our media, set once the network side
//! knows it. The call core writes the address its RTP socket is bound to;
//! bound to a wildcard, or behind a NAT, that is not where a peer can send,
//! and which address is right depends on the peer (the route toward it, or
//! the public address STUN found). The SIP shell asks for it here, per leg.

use std::net::IpAddr;

/// `body` with its connection addresses (`c=` lines) and origin address
/// (`o=`) set to `ip`, the address type following it. Other lines, ports
/// among them, are kept as written.
pub fn with_address(body: &str, ip: IpAddr) -> String {
    let (kind, text) = match ip {
        IpAddr::V4(v4) => ("IP4", v4.to_string()),
        IpAddr::V6(v6) => ("IP6", v6.to_string()),
    };
    let mut out = String::with_capacity(body.len() + 32);
    for line in body.split_inclusive('\n') {
        let content = line.trim_end_matches(['\r', '\n']);
        let ending = &line[content.len()..];
        if let Some(rest) = content.strip_prefix("c=IN ") {
            // `c=IN IP4 addr`, maybe with `/ttl`: multicast never comes from us.
            if rest.starts_with("IP4 ") || rest.starts_with("IP6 ") {
                out.push_str(&format!("c=IN {kind} {text}{ending}"));
                continue;
            }
        }
        if let Some(rest) = content.strip_prefix("o=") {
            // `o=user id version IN IP4 addr`: the last two fields.
            let fields: Vec<&str> = rest.split(' ').collect();
            if fields.len() == 6 && fields[3] == "IN" {
                out.push_str(&format!("o={} {} {} IN {kind} {text}{ending}", fields[0], fields[1], fields[2]));
                continue;
            }
        }
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 42 1 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
                         m=audio 40000 RTP/AVP 0\r\nc=IN IP4 0.0.0.0\r\na=sendrecv\r\n";

    #[test]
    fn connection_and_origin_take_the_address_and_nothing_else_changes() {
        let v4 = with_address(OFFER, "198.51.100.7".parse().unwrap());
        assert_eq!(
            v4,
            "v=0\r\no=- 42 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n\
             m=audio 40000 RTP/AVP 0\r\nc=IN IP4 198.51.100.7\r\na=sendrecv\r\n"
        );
        let v6 = with_address(&v4, "2001:db8::7".parse().unwrap());
        assert!(v6.contains("o=- 42 1 IN IP6 2001:db8::7\r\n") && v6.contains("c=IN IP6 2001:db8::7\r\n"), "{v6}");
        assert!(v6.contains("m=audio 40000 RTP/AVP 0\r\n"));
        assert_eq!(v6.matches("c=IN IP6").count(), 2);
    }

    #[test]
    fn bare_newlines_are_kept() {
        let body = "v=0\no=- 1 1 IN IP4 10.0.0.1\nc=IN IP4 10.0.0.1\nm=audio 5004 RTP/AVP 8\n";
        let out = with_address(body, "203.0.113.9".parse().unwrap());
        assert_eq!(out, "v=0\no=- 1 1 IN IP4 203.0.113.9\nc=IN IP4 203.0.113.9\nm=audio 5004 RTP/AVP 8\n");
    }
}
