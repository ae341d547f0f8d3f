//! Requests that arrive on their own: new INVITEs (read into an
//! [`Inbound`] for the run loop to admit or refuse), in-dialog requests
//! (handed to their dialog), and the out-of-dialog rest.

#![allow(clippy::result_large_err)]

use std::net::SocketAddr;

use rsipstack::dialog::dialog::Dialog;
use rsipstack::sip::prelude::{HeadersExt, ToTypedHeader};
use rsipstack::sip::{Method, StatusCode};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transaction::TransactionReceiver;
use rsipstack::transport::{SipAddr, SipConnection};

use super::handle::{SipAgent, SipEvent};
use super::headers;
use super::replaces::Replaces;
use crate::call::{CallId, Inbound};

pub(super) async fn receive_requests(agent: SipAgent, mut incoming: TransactionReceiver) {
    while let Some(mut tx) = incoming.recv().await {
        let method = tx.original.method;
        let has_to_tag = tx.original.to_header().ok().and_then(|to| to.tag().ok().flatten()).is_some();
        if method == Method::Invite && !has_to_tag {
            new_incoming_call(&agent, tx);
            continue;
        }
        if let Some(Dialog::Invite(mut dialog)) = agent.dialog_layer().match_dialog(&tx) {
            tokio::spawn(async move {
                if let Err(e) = dialog.handle(&mut tx).await {
                    tracing::debug!(error = %e, "in-dialog request failed");
                }
            });
            continue;
        }
        let status = match method {
            Method::Ack => continue,
            Method::Options => StatusCode::OK,
            Method::Bye | Method::Cancel | Method::Invite => StatusCode::CallTransactionDoesNotExist,
            // Only a peer we are talking to may transfer us, and only by policy.
            Method::Refer => {
                tracing::warn!(from = ?tx.original.from_header().map(|f| f.value().to_string()).ok(), "out-of-dialog REFER refused");
                StatusCode::Forbidden
            }
            _ => StatusCode::MethodNotAllowed,
        };
        tokio::spawn(async move { tx.reply(status).await.ok() });
    }
}

fn new_incoming_call(agent: &SipAgent, mut tx: Transaction) {
    let request = &tx.original;
    let (from, display_name) = match request.from_header().and_then(|f| f.typed()) {
        Ok(from) => (from.uri.to_string(), from.display_name),
        Err(e) => {
            tracing::info!(error = %e, "INVITE with unreadable From refused");
            tokio::spawn(async move { tx.reply(StatusCode::BadRequest).await.ok() });
            return;
        }
    };
    let Some(source) = source_of(&tx) else {
        tracing::info!("INVITE with unreadable Via refused");
        tokio::spawn(async move { tx.reply(StatusCode::BadRequest).await.ok() });
        return;
    };
    let replaces = match replaced_call(agent, &request.headers) {
        Ok(replaces) => replaces,
        Err(value) => {
            tracing::info!(replaces = %value, "INVITE with Replaces for no dialog of ours refused");
            tokio::spawn(async move { tx.reply(StatusCode::CallTransactionDoesNotExist).await.ok() });
            return;
        }
    };
    let user = request.uri.auth.as_ref().map(|a| a.user.clone()).unwrap_or_default();
    let account = agent.accounts().find(|a| a.user() == user);
    let inbound = Inbound {
        from,
        display_name,
        account: account.as_ref().map(|a| a.config.id.clone()),
        offer: request.body.clone(),
        answer_after_hint: headers::answer_after(&request.headers),
        session_timer: agent.session_timer_for(&request.headers),
        supports_replaces: headers::supports(&request.headers, "replaces"),
        replaces,
        ..Inbound::default()
    };
    let local = tx.connection.as_ref().map(SipConnection::get_addr).cloned();
    let Some(local) = local else {
        tokio::spawn(async move { tx.reply(StatusCode::ServerInternalError).await.ok() });
        return;
    };
    // A wildcard or NATed UDP socket: the Contact names where this caller reaches us.
    let local = match (local.r#type, local.get_socketaddr()) {
        (Some(rsipstack::sip::Transport::Udp) | None, Ok(bound)) => {
            SipAddr { r#type: local.r#type, addr: agent.inner.reach.advertised_sip(bound, Some(source.ip())).into() }
        }
        _ => local,
    };
    let contact_user = account.as_deref().map_or(user.as_str(), super::Account::user);
    let contact = agent.contact(if contact_user.is_empty() { "softphoned" } else { contact_user }, &local);
    let (state_tx, state_rx) = agent.dialog_layer().new_dialog_state_channel();
    let mut dialog = match agent.dialog_layer().get_or_create_server_invite(&tx, state_tx, None, Some(contact)) {
        Ok(dialog) => dialog,
        Err(e) => {
            tracing::warn!(error = %e, "cannot create dialog for INVITE");
            tokio::spawn(async move { tx.reply(StatusCode::ServerInternalError).await.ok() });
            return;
        }
    };
    let call = agent.new_call_id();
    agent.adopt(&call, dialog.clone(), state_rx, source.ip());
    let _ = agent.inner.events.send(SipEvent::Incoming { call, source, inbound });
    // The INVITE server transaction lives as long as this task: it sends
    // 100 Trying, our 180/200/4xx, and absorbs the ACK or a CANCEL.
    tokio::spawn(async move {
        if let Err(e) = dialog.handle(&mut tx).await {
            tracing::debug!(error = %e, "INVITE transaction ended with error");
        }
    });
}

/// The call an INVITE's Replaces header names (RFC 3891), if it has one;
/// the header's value when it names no dialog of ours (answered 481).
fn replaced_call(agent: &SipAgent, request_headers: &rsipstack::sip::Headers) -> Result<Option<CallId>, String> {
    let Some(value) = headers::values(request_headers, "Replaces", None).into_iter().next() else { return Ok(None) };
    let Some(replaces) = Replaces::parse(&value) else { return Err(value) };
    let legs = agent.inner.legs.lock().expect("leg map");
    let found = legs.iter().find(|(_, leg)| {
        let id = leg.dialog.id();
        replaces.matches(&id.call_id, &id.local_tag, &id.remote_tag)
    });
    match found {
        Some((call, _)) => Ok(Some(call.clone())),
        None => Err(value),
    }
}

/// Where a request really came from: the transport wrote `received` and
/// `rport` into the top Via whenever the sender's claim differed.
fn source_of(tx: &Transaction) -> Option<SocketAddr> {
    let via = tx.original.via_header().ok()?;
    let (_, host_with_port) = SipConnection::parse_target_from_via(via).ok()?;
    let ip = host_with_port.host.to_string().parse().ok()?;
    let port = host_with_port.port.map(|p| p.value()).unwrap_or(5060);
    Some(SocketAddr::new(ip, port))
}
