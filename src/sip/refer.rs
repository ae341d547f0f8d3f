//! Transfers at the SIP level: our REFER (RFC 3515) with Referred-By, to
//! a URI or to a consult call's colleague with Replaces; the transferee's
//! NOTIFYs whose sipfrag body says how its call to the target goes; and
//! REFERs to us, followed only to hosts `transfer.refer_allowed_hosts`
//! names (a REFER must never make us call anywhere on a stranger's word),
//! with our own NOTIFYs back to the referrer.

// rsipstack's own error type is large; it is only ever logged here.
#![allow(clippy::result_large_err)]

use rsipstack::dialog::dialog::TransactionHandle;
use rsipstack::sip::{Header, ReferTo, Request, StatusCode};
use rsipstack::transaction::key::TransactionRole;
use tokio::sync::mpsc;

use super::handle::SipAgent;
use super::headers;
use super::replaces::{address_of, split_uri_headers, with_uri_header, Replaces};
use super::target::parse_target;
use crate::call::{CallId, ReferTarget, Signal};

/// How long a referrer's implicit subscription to our progress lasts.
const REFER_SUBSCRIPTION_S: u32 = 60;

impl SipAgent {
    /// REFER the peer of `call` to `target`; the answer comes back as
    /// [`Signal::ReferAnswered`], the progress as NOTIFYs.
    pub(super) fn refer(&self, call: CallId, target: ReferTarget) {
        let leg = |id: &CallId| self.inner.legs.lock().expect("leg map").get(id).cloned();
        let (Some(customer), refer_to) = (leg(&call), &target) else {
            self.emit(&call, Signal::ReferAnswered { code: 481 });
            return;
        };
        let refer_to = match refer_to {
            ReferTarget::Uri(uri) => format!("<{uri}>"),
            ReferTarget::Replacing { uri, consult } => {
                let Some(consult) = leg(consult) else {
                    tracing::info!(%call, %consult, "the consult call is gone: nothing to replace");
                    self.emit(&call, Signal::ReferAnswered { code: 481 });
                    return;
                };
                let id = consult.dialog.id();
                Replaces::for_peer_of(&id.call_id, &id.local_tag, &id.remote_tag).refer_to(uri)
            }
        };
        let agent = self.clone();
        tokio::spawn(async move {
            if !customer.until_confirmed().await {
                agent.emit(&call, Signal::ReferAnswered { code: 408 });
                return;
            }
            let snapshot = customer.dialog.snapshot();
            let local = match snapshot.role {
                TransactionRole::Client => snapshot.from.uri.to_string(),
                TransactionRole::Server => snapshot.to.uri.to_string(),
            };
            let headers = vec![Header::Other("Referred-By".into(), format!("<{local}>"))];
            let code = match customer.dialog.refer(ReferTo::new(refer_to.clone()), Some(headers), None).await {
                Ok(Some(response)) => response.status_code.code(),
                Ok(None) => 408,
                Err(e) => {
                    tracing::info!(%call, error = %e, "REFER failed");
                    408
                }
            };
            tracing::info!(%call, %refer_to, code, "REFER answered");
            agent.emit(&call, Signal::ReferAnswered { code });
        });
    }

    /// A NOTIFY in the dialog: for the refer package, its sipfrag's status
    /// is the transfer's progress.
    pub(super) async fn on_notify(&self, call: &CallId, request: Request, handle: TransactionHandle) {
        if let Err(e) = handle.respond(StatusCode::OK, None, None).await {
            tracing::warn!(%call, error = %e, "could not answer NOTIFY");
        }
        let event = headers::values(&request.headers, "Event", Some("o")).into_iter().next().unwrap_or_default();
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

    /// The peer asks us to call someone. Followed (202, then NOTIFYs as our
    /// call to the target goes) when the target's host is allowed; else 403.
    pub(super) async fn on_refer(&self, call: &CallId, request: Request, handle: TransactionHandle) {
        let refer_to = headers::values(&request.headers, "Refer-To", Some("r")).into_iter().next();
        let target = refer_to.as_deref().and_then(address_of);
        let verdict = match &target {
            None => Err((StatusCode::BadRequest, "no readable Refer-To".to_string())),
            Some(target) => self.refer_allowed(target),
        };
        let target = match (verdict, target) {
            (Ok(()), Some(target)) => target,
            (verdict, target) => {
                let (status, why) = verdict.err().unwrap_or((StatusCode::Forbidden, String::new()));
                tracing::warn!(%call, target = target.as_deref().unwrap_or(""), %why, "inbound REFER refused");
                if let Err(e) = handle.respond(status, None, None).await {
                    tracing::warn!(%call, error = %e, "could not answer REFER");
                }
                return;
            }
        };
        if let Err(e) = handle.respond(StatusCode::Accepted, None, None).await {
            tracing::warn!(%call, error = %e, "could not accept REFER");
            return;
        }
        tracing::info!(%call, %target, "inbound REFER accepted: calling the target");
        self.notify_referrer(call.clone(), 100);
        let referred_by = headers::values(&request.headers, "Referred-By", Some("b")).into_iter().next();
        let to = match referred_by {
            Some(by) if !target.contains("Referred-By=") => with_uri_header(&target, "Referred-By", &by),
            _ => target,
        };
        self.emit(call, Signal::Referred { to });
    }

    /// Whether policy lets a REFER send us to `target`.
    fn refer_allowed(&self, target: &str) -> Result<(), (StatusCode, String)> {
        let (uri, _) = split_uri_headers(target);
        let uri = parse_target(uri).map_err(|e| (StatusCode::BadRequest, e.to_string()))?;
        let host = uri.host_with_port.host.to_string();
        if self.inner.refer_allowed_hosts.iter().any(|allowed| allowed.eq_ignore_ascii_case(&host)) {
            Ok(())
        } else {
            Err((StatusCode::Forbidden, format!("{host} is not in transfer.refer_allowed_hosts")))
        }
    }

    /// NOTIFY the peer that REFERred `call` with our progress (`code` as a
    /// sipfrag); a final code ends its subscription. The NOTIFYs of a call
    /// go out one at a time, in order: a 180 must never overtake the 200.
    pub(super) fn notify_referrer(&self, call: CallId, code: u16) {
        let mut reports = self.inner.referrer_reports.lock().expect("report map");
        let queue = reports.entry(call.clone()).or_insert_with(|| {
            let (queue, codes) = mpsc::unbounded_channel();
            self.send_reports(call.clone(), codes);
            queue
        });
        let _ = queue.send(code);
        if code >= 200 {
            reports.remove(&call);
        }
    }

    fn send_reports(&self, call: CallId, mut codes: mpsc::UnboundedReceiver<u16>) {
        let agent = self.clone();
        tokio::spawn(async move {
            while let Some(code) = codes.recv().await {
                let Some(leg) = agent.inner.legs.lock().expect("leg map").get(&call).cloned() else { return };
                let state = if code >= 200 {
                    "terminated;reason=noresource".to_string()
                } else {
                    format!("active;expires={REFER_SUBSCRIPTION_S}")
                };
                let headers = vec![
                    Header::Event("refer".into()),
                    Header::SubscriptionState(state.into()),
                    Header::ContentType("message/sipfrag;version=2.0".into()),
                ];
                let body = format!("SIP/2.0 {}\r\n", StatusCode::from(code)).into_bytes();
                match leg.dialog.notify(Some(headers), Some(body)).await {
                    Ok(response) => {
                        let answer = response.map(|r| r.status_code.code());
                        tracing::info!(%call, code, ?answer, "referrer notified");
                    }
                    Err(e) => tracing::info!(%call, code, error = %e, "NOTIFY to the referrer failed"),
                }
            }
        });
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
