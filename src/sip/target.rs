//! What may be dialled: a `sip:`/`sips:` URI with a host we can route to,
//! checked before a call is created for it (and before a REFER is followed).

use rsipstack::sip::Uri;
use rsipstack::transport::SipAddr;

use super::error::SipError;
use super::replaces::split_uri_headers;

/// Check a dial target before a call is created for it. Headers the URI
/// carries (`?Replaces=...`) are not part of the address checked.
pub fn parse_target(to: &str) -> Result<Uri, SipError> {
    let to = split_uri_headers(to).0;
    let bad = |message: &str| SipError::BadUri { uri: to.into(), message: message.into() };
    // rsip's parser accepts almost any text as a URI; insist on the scheme.
    if !(to.starts_with("sip:") || to.starts_with("sips:")) {
        return Err(bad("expected a sip: or sips: URI such as sip:bob@127.0.0.1:5070, or a number with an account"));
    }
    let uri = Uri::try_from(to).map_err(|e| SipError::BadUri { uri: to.into(), message: e.to_string() })?;
    if uri.host_with_port.host.to_string().is_empty() {
        return Err(bad("the URI has no host"));
    }
    SipAddr::try_from(&uri).map_err(|e| SipError::BadUri { uri: to.into(), message: e.to_string() })?;
    Ok(uri)
}
