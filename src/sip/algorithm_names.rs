//! A message inspector that fixes how rsipstack 0.7.14 spells digest
//! algorithms: RFC 7616/8760 name it `SHA-256`, rsip's parser knows only
//! `SHA256` (and writes it so). Challenges are
//! translated on the way in, our answers back on the way out, so SHA-256
//! registrars (Kamailio, Asterisk 18+) accept us. Remove when upstream
//! parses the standard names.

use rsipstack::sip::{Header, SipMessage};
use rsipstack::transaction::endpoint::MessageInspector;
use rsipstack::transport::SipAddr;

pub struct AlgorithmNames;

/// (standard spelling, rsip's spelling). SHA-512-256 is not rsip's SHA512
/// (a different hash), so it is left alone and fails loudly instead.
const NAMES: [(&str, &str); 2] = [("SHA-256-sess", "SHA256-sess"), ("SHA-256", "SHA256")];

impl MessageInspector for AlgorithmNames {
    fn before_send(&self, mut msg: SipMessage, _: Option<&SipAddr>) -> SipMessage {
        if let SipMessage::Request(request) = &mut msg {
            for header in request.headers.iter_mut() {
                match header {
                    Header::Authorization(h) => h.0 = to_standard(&h.0),
                    Header::ProxyAuthorization(h) => h.0 = to_standard(&h.0),
                    _ => {}
                }
            }
        }
        msg
    }

    fn after_received(&self, mut msg: SipMessage, _: Option<&SipAddr>) -> SipMessage {
        if let SipMessage::Response(response) = &mut msg {
            for header in response.headers.iter_mut() {
                match header {
                    Header::WwwAuthenticate(h) => h.0 = to_rsip(&h.0),
                    Header::ProxyAuthenticate(h) => h.0 = to_rsip(&h.0),
                    _ => {}
                }
            }
        }
        msg
    }
}

fn to_rsip(value: &str) -> String {
    replace_algorithm(value, |name| NAMES.iter().find(|(std, _)| std.eq_ignore_ascii_case(name)).map(|(_, r)| *r))
}

fn to_standard(value: &str) -> String {
    replace_algorithm(value, |name| NAMES.iter().find(|(_, r)| r.eq_ignore_ascii_case(name)).map(|(std, _)| *std))
}

/// Rewrite the value of the `algorithm=` parameter, quoted or not.
fn replace_algorithm(value: &str, rename: impl Fn(&str) -> Option<&'static str>) -> String {
    let lower = value.to_ascii_lowercase();
    let Some(start) = lower.find("algorithm=").map(|i| i + "algorithm=".len()) else { return value.to_string() };
    let rest = &value[start..];
    let quoted = rest.starts_with('"');
    let body = rest.trim_start_matches('"');
    let end = body.find(['"', ',', ' ', ';']).unwrap_or(body.len());
    match rename(&body[..end]) {
        Some(new) => {
            let skip = start + usize::from(quoted) + end;
            format!("{}{}{new}{}", &value[..start], if quoted { "\"" } else { "" }, &value[skip..])
        }
        None => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_and_answers_are_translated_both_ways() {
        let challenge = r#"Digest realm="127.0.0.1", nonce="abc", qop="auth", algorithm=SHA-256"#;
        assert_eq!(to_rsip(challenge), r#"Digest realm="127.0.0.1", nonce="abc", qop="auth", algorithm=SHA256"#);
        let quoted = r#"Digest algorithm="SHA-256-sess", realm="x""#;
        assert_eq!(to_rsip(quoted), r#"Digest algorithm="SHA256-sess", realm="x""#);
        let answer = r#"Digest username="a", algorithm=SHA256, response="f""#;
        assert_eq!(to_standard(answer), r#"Digest username="a", algorithm=SHA-256, response="f""#);
        let md5 = r#"Digest realm="x", algorithm=MD5"#;
        assert_eq!((to_rsip(md5), to_standard(md5)), (md5.to_string(), md5.to_string()));
        assert_eq!(to_rsip("Digest realm=\"x\""), "Digest realm=\"x\"");
    }
}
