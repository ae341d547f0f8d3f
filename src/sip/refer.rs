//! Transfers at the SIP level: our REFER (RFC 3515) with Referred-By, the
//! transferee's NOTIFYs whose sipfrag body says how its call to the target
//! goes, and inbound REFERs, which are refused until a policy allows them
//! (a REFER must never make us call anywhere on a stranger's word).

// rsipstack's own error type is large; it is only ever logged here.
#![allow(clippy::result_large_err)]

use rsipstack::dialog::dialog::TransactionHandle;
use rsipstack::sip::{Header, ReferTo, Request, StatusCode};
use rsipstack::transaction::key::TransactionRole;

use super::SipAgent;
use crate::call::{CallId, Signal};

impl SipAgent {
    /// REFER the peer of `call` to `target`; the answer comes back as
    /// [`Signal::ReferAnswered`], the progress as NOTIFYs.
    pub(super) fn refer(&self, call: CallId, target: String) {
        let Some(leg) = self.inner.legs.lock().expect("leg map").get(&call).cloned() else {
            self.emit(&call, Signal::ReferAnswered { code: 481 });
            return;
        };
        let agent = self.clone();
        tokio::spawn(async move {
            let snapshot = leg.dialog.snapshot();
            let local = match snapshot.role {
                TransactionRole::Client => snapshot.from.uri.to_string(),
                TransactionRole::Server => snapshot.to.uri.to_string(),
            };
            let headers = vec![Header::Other("Referred-By".into(), format!("<{local}>"))];
            let code = match leg.dialog.refer(ReferTo::new(format!("<{target}>")), Some(headers), None).await {
                Ok(Some(response)) => response.status_code.code(),
                Ok(None) => 408,
                Err(e) => {
                    tracing::info!(%call, error = %e, "REFER failed");
                    408
                }
            };
            tracing::info!(%call, %target, code, "REFER answered");
            agent.emit(&call, Signal::ReferAnswered { code });
        });
    }

    /// A NOTIFY in the dialog: for the refer package, its sipfrag's status
    /// is the transfer's progress.
    pub(super) async fn on_notify(&self, call: &CallId, request: Request, handle: TransactionHandle) {
        if let Err(e) = handle.respond(StatusCode::OK, None, None).await {
            tracing::warn!(%call, error = %e, "could not answer NOTIFY");
        }
        let event = super::headers::values(&request.headers, "Event", Some("o")).into_iter().next().unwrap_or_default();
        if !event.trim().to_ascii_lowercase().starts_with("refer") {
            tracing::debug!(%call, %event, "NOTIFY of another package ignored");
            return;
        }
        match sipfrag_status(&request.body) {
            Some(code) => {
                tracing::info!(%call, code, "transfer progress");
                self.emit(call, Signal::TransferProgress { code });
            }
            None => tracing::warn!(%call, "refer NOTIFY without a readable sipfrag status line"),
        }
    }

    /// The peer asks us to call someone: refused (403) until transfers to
    /// us are allowed by policy.
    pub(super) async fn on_refer(&self, call: &CallId, request: Request, handle: TransactionHandle) {
        let target = super::headers::values(&request.headers, "Refer-To", Some("r")).into_iter().next();
        tracing::warn!(%call, target = target.as_deref().unwrap_or(""), "inbound REFER refused: not allowed");
        if let Err(e) = handle.respond(StatusCode::Forbidden, None, None).await {
            tracing::warn!(%call, error = %e, "could not answer REFER");
        }
    }
}

/// The status code of a `message/sipfrag` body's first line (`SIP/2.0 200 OK`).
pub fn sipfrag_status(body: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(body).ok()?;
    let line = text.lines().next()?.trim();
    let mut words = line.split_whitespace();
    if !words.next()?.eq_ignore_ascii_case("SIP/2.0") {
        return None;
    }
    words.next()?.parse().ok().filter(|code| (100..700).contains(code))
}

#[cfg(test)]
mod tests {
    use super::sipfrag_status;

    #[test]
    fn sipfrag_status_lines_are_read_and_anything_else_is_not() {
        assert_eq!(sipfrag_status(b"SIP/2.0 100 Trying\r\n"), Some(100));
        assert_eq!(sipfrag_status(b"SIP/2.0 200 OK"), Some(200));
        assert_eq!(sipfrag_status(b"SIP/2.0 486 Busy Here\r\nContent-Length: 0\r\n"), Some(486));
        assert_eq!(sipfrag_status(b"INVITE sip:x SIP/2.0"), None);
        assert_eq!(sipfrag_status(b"SIP/2.0 99 Weird"), None);
        assert_eq!(sipfrag_status(b""), None);
        assert_eq!(sipfrag_status(&[0xff, 0xfe]), None);
    }
}
