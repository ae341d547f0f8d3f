//! The SIP front door's checks: one message's bytes in, a [`Verdict`] out
//! (hand it to the stack, answer it ourselves with these bytes, or say
//! nothing). Pure: no socket, no clock, no allocation on the pass path, so
//! it can be fuzzed and benched (`benches/sip_validation.rs`).
//!
//! rsipstack's parser is lenient and silent: it accepts a wrong version,
//! a CSeq naming another method, negative or oversized Content-Length,
//! and it drops without a word what it cannot parse. So every datagram is
//! checked here first (RFC 3261 §§7, 8.2, 18.3, 20; RFC 4475 says what
//! is valid): framing by Content-Length, the version (505), the mandatory
//! headers, CSeq, Max-Forwards, the shape of Via/From/To/Contact, the
//! Request-URI's scheme (416), the method (501, or 405 for one we know
//! and refuse, both with `Allow`), `Require` (420 with `Unsupported`), the
//! body's type (415 with `Accept`) and `Accept` on an INVITE (406). Each
//! answer's reason phrase names the defect, and copies Via, From, To,
//! Call-ID and CSeq from the request byte for byte (a To-tag is added).
//! A response that is malformed, an ACK, or a request without a usable Via
//! is dropped: there is nobody to answer.
//!
//! Where it sits: see `front.rs`.

use std::net::SocketAddr;

/// How the bytes arrived: a datagram is one message, a stream is framed
/// by Content-Length (RFC 3261 §18.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    Datagram,
    Stream,
}

/// What to do with one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Hand the first `len` bytes to the stack (a datagram's bytes past
    /// its Content-Length are dropped, RFC 3261 §18.3).
    Pass { len: usize },
    /// Answer with `response`, sent to `to` (over a stream: the same
    /// connection; `to` is then the peer). The request goes no further.
    Reply { status: u16, response: Vec<u8>, to: SocketAddr },
    /// Say nothing: the message cannot or must not be answered.
    Drop(&'static str),
}

/// What this daemon implements, for `Allow`, `Require` and body types.
pub struct Policy {
    /// Methods handed to the stack; the order is the `Allow` header's.
    pub allow: &'static [&'static str],
    /// Methods handed on but not advertised (only meaningful in dialogs).
    pub also_known: &'static [&'static str],
    /// Methods we know and refuse with 405.
    pub refused: &'static [&'static str],
    /// Option tags we support (`Require`).
    pub supported: &'static [&'static str],
    /// Request-URI schemes we serve.
    pub schemes: &'static [&'static str],
}

/// The daemon's own: an agent's phone, not a registrar or a presence server.
pub const POLICY: Policy = Policy {
    allow: &["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "REFER", "NOTIFY", "UPDATE"],
    also_known: &["PRACK"],
    refused: &["REGISTER", "SUBSCRIBE", "PUBLISH", "MESSAGE"],
    supported: &["replaces", "timer"],
    schemes: &["sip", "sips", "tel"],
};

/// Headers read in one pass: the first of each, and how many there were.
#[derive(Default)]
struct Seen<'a> {
    via_first: Option<&'a [u8]>,
    vias: usize,
    from: Option<&'a [u8]>,
    froms: usize,
    to: Option<&'a [u8]>,
    tos: usize,
    call_id: Option<&'a [u8]>,
    call_ids: usize,
    cseq: Option<&'a [u8]>,
    cseqs: usize,
    max_forwards: Option<&'a [u8]>,
    max_forwardss: usize,
    content_length: Option<&'a [u8]>,
    content_lengths: usize,
    content_type: Option<&'a [u8]>,
    content_types: usize,
    accept: Option<&'a [u8]>,
    expires: Option<&'a [u8]>,
    date: Option<&'a [u8]>,
    retry_after: Option<&'a [u8]>,
    warning: Option<&'a [u8]>,
    require: [Option<&'a [u8]>; 4],
    contacts: [Option<&'a [u8]>; 4],
    /// A header line with no colon, or a name that is not a token.
    broken_line: bool,
}

/// The defect that earns a 4xx/5xx, before it is written out.
struct Refusal {
    status: u16,
    reason: String,
    extra: Option<(&'static str, String)>,
}

fn refuse(status: u16, reason: impl Into<String>) -> Refusal {
    Refusal { status, reason: reason.into(), extra: None }
}

/// Check one message. `source` is where it came from: answers go back
/// there (rsipstack writes `received`/`rport` and answers the source too,
/// so a peer sees one rule whoever answers it).
pub fn check(msg: &[u8], source: SocketAddr, carrier: Carrier, policy: &Policy) -> Verdict {
    // Keep-alives and stray CRLFs belong to the stack.
    if msg.iter().all(|b| b.is_ascii_whitespace()) {
        return Verdict::Pass { len: msg.len() };
    }
    // RFC 3261 §7.5: CRLFs before the start line are ignored.
    let start = msg.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(0);
    let Some(head_end) = find(&msg[start..], b"\r\n\r\n").map(|i| start + i + 4).or_else(|| {
        // A datagram may end right after its last header line.
        (carrier == Carrier::Datagram && msg.ends_with(b"\r\n")).then_some(msg.len())
    }) else {
        return Verdict::Drop("no end of headers");
    };
    let head = &msg[start..head_end];
    let first_end = find(head, b"\r\n").unwrap_or(head.len());
    let start_line = &head[..first_end];
    let mut seen = Seen::default();
    read_headers(&head[first_end..], &mut seen);

    if start_line.starts_with(b"SIP/") {
        return match check_response(start_line, &seen) {
            Ok(()) => frame(msg, start, head_end, &seen, carrier).unwrap_or(Verdict::Drop("bad framing in a response")),
            Err(why) => Verdict::Drop(why),
        };
    }
    let method = start_line.split(|&b| b == b' ').next().unwrap_or_default();
    let is_ack = method == b"ACK";
    // Without a Via that reads there is nobody to answer.
    let Some(via) = seen.via_first else { return Verdict::Drop("request without Via") };
    let Ok(first_via) = parse_via_list(via) else {
        if is_ack {
            return Verdict::Drop("ACK with malformed Via");
        }
        return reply(head, &seen, source, refuse(400, "Malformed Via Header"));
    };
    let checked = check_request(start_line, &seen, &first_via, carrier, policy)
        .and_then(|()| frame(msg, start, head_end, &seen, carrier).ok_or_else(|| framing_refusal(msg, head_end, &seen)))
        .and_then(|pass| check_body(method, &seen, policy).map(|()| pass));
    match checked {
        Ok(pass) => pass,
        Err(_) if is_ack => Verdict::Drop("malformed ACK"),
        Err(refusal) => reply(head, &seen, source, refusal),
    }
}

/// Split a stream's buffer: the length of the first whole message, `None`
/// while it is incomplete, `Err` when it can never frame (answer 400 and
/// close). Leading CRLFs (keep-alives) count as a message of their own.
pub fn frame_stream(buf: &[u8], max_message: usize) -> Result<Option<usize>, &'static str> {
    let lead = buf.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
    if lead > 0 {
        return Ok(Some(lead));
    }
    let Some(head_end) = find(buf, b"\r\n\r\n").map(|i| i + 4) else {
        return if buf.len() > max_message { Err("headers too long") } else { Ok(None) };
    };
    let mut seen = Seen::default();
    let first_end = find(buf, b"\r\n").unwrap_or(head_end);
    read_headers(&buf[first_end..head_end], &mut seen);
    if seen.content_lengths != 1 {
        return Err(if seen.content_lengths == 0 { "no Content-Length on a stream" } else { "several Content-Length" });
    }
    let len = seen.content_length.and_then(|v| parse_u32(trim(v))).ok_or("bad Content-Length")? as usize;
    let total = head_end + len;
    if total > max_message {
        return Err("message too large");
    }
    Ok((buf.len() >= total).then_some(total))
}

/// The marker of a From-tag we made up for an RFC 2543 request that had
/// none (rsipstack keys transactions and dialogs on it); [`strip_made_up_tags`]
/// takes it out of everything we send, so the peer never sees it.
pub const MADE_UP_TAG: &[u8] = b";tag=2543x";

/// Rewrite a request that passed [`check`] into the form rsipstack reads,
/// meaning unchanged (RFC 3261 §7.3.1, §25.1): folded lines unfolded, no
/// white space around `;`, `=` and `,` in Via, From, To, Contact, Route
/// and Record-Route (rsipstack misses `; tag = x`), and a From without tag
/// (RFC 2543) given [`MADE_UP_TAG`] plus a hash of its Call-ID, an
/// INVITE without Contact its From's URI as Contact, a datagram without
/// Content-Length the length of the rest (RFC 3261 §18.3). `None`
/// when nothing needs to change (the usual case: no allocation).
pub fn normalize(msg: &[u8]) -> Option<Vec<u8>> {
    if msg.starts_with(b"SIP/") {
        return None;
    }
    let head_end = find(msg, b"\r\n\r\n").map_or(msg.len(), |i| i + 4);
    let first_end = find(msg, b"\r\n")?;
    let head = &msg[..head_end];
    let mut seen = Seen::default();
    read_headers(&head[first_end..], &mut seen);
    let from_untagged = seen.from.is_some_and(|from| !has_tag(from));
    // RFC 2543: an INVITE without Contact is answered at its From.
    let contact_from = (msg.starts_with(b"INVITE ") && seen.contacts[0].is_none())
        .then(|| seen.from.map(|from| uri_in(trim(from))))
        .flatten();
    let suspicious = [&b"\r\n "[..], b"\r\n\t", b" ;", b"; ", b" =", b"= ", b" ,", b"\t"];
    // A datagram without Content-Length: its body runs to the end (§18.3).
    let length_missing = seen.content_lengths == 0;
    if !from_untagged
        && contact_from.is_none()
        && !length_missing
        && !suspicious.iter().any(|s| find(head, s).is_some())
    {
        return None;
    }
    let mut out = Vec::with_capacity(msg.len() + 32);
    out.extend_from_slice(&msg[..first_end]);
    let mut lines = Lines { rest: &head[first_end..] };
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        out.extend_from_slice(b"\r\n");
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            out.extend_from_slice(line);
            continue;
        };
        let name = trim(&line[..colon]);
        let value = &line[colon + 1..];
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        let structured = ["Via", "v", "From", "f", "To", "t", "Contact", "m", "Route", "Record-Route"]
            .iter()
            .any(|n| n.as_bytes().eq_ignore_ascii_case(name));
        if structured {
            compact_value(value, &mut out);
        } else {
            unfold_value(value, &mut out);
        }
        if from_untagged && (name.eq_ignore_ascii_case(b"From") || name.eq_ignore_ascii_case(b"f")) {
            let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
            for &b in trim(seen.call_id.unwrap_or_default()) {
                hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
            out.extend_from_slice(MADE_UP_TAG);
            out.extend_from_slice(format!("{hash:016x}").as_bytes());
        }
    }
    if length_missing {
        out.extend_from_slice(format!("\r\nContent-Length: {}", msg.len() - head_end).as_bytes());
    }
    if let Some(uri) = contact_from {
        out.extend_from_slice(b"\r\nContact: <");
        out.extend_from_slice(uri);
        out.push(b'>');
    }
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(&msg[head_end..]);
    (out != msg).then_some(out)
}

/// The URI of a name-addr (inside `<>`) or an addr-spec (up to `;`).
fn uri_in(value: &[u8]) -> &[u8] {
    match (value.iter().position(|&b| b == b'<'), value.iter().position(|&b| b == b'>')) {
        (Some(open), Some(close)) if open < close => &value[open + 1..close],
        _ => trim(value.split(|&b| b == b';').next().unwrap_or_default()),
    }
}

/// Take every [`MADE_UP_TAG`] (and its 16 hex digits) out of `msg`.
pub fn strip_made_up_tags(msg: &[u8]) -> Option<Vec<u8>> {
    find(msg, MADE_UP_TAG)?;
    let mut out = Vec::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = find(rest, MADE_UP_TAG) {
        out.extend_from_slice(&rest[..i]);
        let end = (i + MADE_UP_TAG.len() + 16).min(rest.len());
        rest = &rest[end..];
    }
    out.extend_from_slice(rest);
    Some(out)
}

/// (Call-ID, CSeq, From, To) of one request, as [`from_to_of`] reads them.
pub type RequestFromTo = (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>);

/// A request's Call-ID and CSeq values (trimmed) and its raw From and To
/// values: what [`restore_from_to`] needs to answer it with its own From
/// and To. `None` for responses and messages without them.
pub fn from_to_of(msg: &[u8]) -> Option<RequestFromTo> {
    if msg.starts_with(b"SIP/") {
        return None;
    }
    let head_end = find(msg, b"\r\n\r\n").map_or(msg.len(), |i| i + 4);
    let first_end = find(msg, b"\r\n")?;
    let mut seen = Seen::default();
    read_headers(&msg[first_end..head_end], &mut seen);
    Some((trim(seen.call_id?).to_vec(), compact_cseq(seen.cseq?), trim(seen.from?).to_vec(), trim(seen.to?).to_vec()))
}

/// A response's Call-ID and CSeq, as [`from_to_of`] keys them.
pub fn response_key(msg: &[u8]) -> Option<(&[u8], Vec<u8>)> {
    if !msg.starts_with(b"SIP/") {
        return None;
    }
    let head_end = find(msg, b"\r\n\r\n").map_or(msg.len(), |i| i + 4);
    let first_end = find(msg, b"\r\n")?;
    let mut seen = Seen::default();
    read_headers(&msg[first_end..head_end], &mut seen);
    Some((trim(seen.call_id?), compact_cseq(seen.cseq?)))
}

fn compact_cseq(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    unfold_value(v, &mut out);
    out.retain(|&b| b != b' ' && b != b'\t');
    out
}

/// Put the request's own From and To back into a response rsipstack wrote
/// (it re-escapes URIs: `%75` became `%2575`), keeping the To-tag it
/// added. `None` when they already match.
pub fn restore_from_to(response: &[u8], from: &[u8], to: &[u8]) -> Option<Vec<u8>> {
    let head_end = find(response, b"\r\n\r\n").map_or(response.len(), |i| i + 4);
    let first_end = find(response, b"\r\n")?;
    let mut out = Vec::with_capacity(response.len() + 16);
    out.extend_from_slice(&response[..first_end]);
    let mut lines = Lines { rest: &response[first_end..head_end] };
    let (mut from_done, mut to_done) = (false, false);
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        out.extend_from_slice(b"\r\n");
        let colon = line.iter().position(|&b| b == b':').unwrap_or(0);
        let name = trim(&line[..colon]);
        if !from_done && (name.eq_ignore_ascii_case(b"From") || name.eq_ignore_ascii_case(b"f")) {
            from_done = true;
            out.extend_from_slice(b"From: ");
            out.extend_from_slice(from);
        } else if !to_done && (name.eq_ignore_ascii_case(b"To") || name.eq_ignore_ascii_case(b"t")) {
            to_done = true;
            out.extend_from_slice(b"To: ");
            out.extend_from_slice(to);
            if !has_tag(to) {
                if let Some(tag) = tag_of(&line[colon + 1..]) {
                    out.extend_from_slice(b";tag=");
                    out.extend_from_slice(tag);
                }
            }
        } else {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(&response[head_end..]);
    (out != response).then_some(out)
}

/// The value of a From/To's `tag` parameter.
fn tag_of(value: &[u8]) -> Option<&[u8]> {
    let end_of_uri = value.iter().rposition(|&b| b == b'>').map_or(0, |i| i + 1);
    split_outside_quotes(&value[end_of_uri..], b';').skip(usize::from(end_of_uri == 0)).find_map(|param| {
        let mut kv = param.splitn(2, |&b| b == b'=');
        let name = trim(kv.next().unwrap_or_default());
        name.eq_ignore_ascii_case(b"tag").then(|| trim(kv.next().unwrap_or_default()))
    })
}

/// Folded lines become single spaces; the rest is kept.
fn unfold_value(value: &[u8], out: &mut Vec<u8>) {
    let value = trim(value);
    let mut i = 0;
    while i < value.len() {
        if value[i] == b'\r' || value[i] == b'\n' {
            while value.get(i).is_some_and(|&b| is_lws(b)) {
                i += 1;
            }
            out.push(b' ');
        } else {
            out.push(value[i]);
            i += 1;
        }
    }
}

/// Like [`unfold_value`], and outside quotes and `<>` no white space
/// next to `;`, `=` or `,`, and runs of it made one space.
fn compact_value(value: &[u8], out: &mut Vec<u8>) {
    let value = trim(value);
    let (mut quoted, mut escaped, mut angle) = (false, false, false);
    let mut i = 0;
    while i < value.len() {
        let b = value[i];
        if quoted {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                quoted = false;
            }
            if b != b'\r' && b != b'\n' {
                out.push(b);
            }
            i += 1;
            continue;
        }
        if is_lws(b) && !angle {
            let mut j = i;
            while value.get(j).is_some_and(|&c| is_lws(c)) {
                j += 1;
            }
            let next = value.get(j).copied();
            let previous = out.last().copied();
            if !matches!(previous, Some(b';' | b'=' | b',')) && !matches!(next, Some(b';' | b'=' | b',')) {
                out.push(b' ');
            }
            i = j;
            continue;
        }
        match b {
            b'"' => quoted = true,
            b'<' => angle = true,
            b'>' => angle = false,
            _ => {}
        }
        out.push(b);
        i += 1;
    }
}

fn framing_refusal(msg: &[u8], head_end: usize, seen: &Seen) -> Refusal {
    if seen.content_lengths > 1 {
        return refuse(400, "Multiple Content-Length Headers");
    }
    match seen.content_length.map(trim) {
        Some(v) if v.first() == Some(&b'-') => refuse(400, "Negative Content-Length"),
        Some(v) => match parse_u32(v) {
            Some(n) if n as usize > msg.len() - head_end => refuse(400, "Content-Length Larger Than Message"),
            _ => refuse(400, "Malformed Content-Length"),
        },
        None => refuse(400, "Missing Content-Length"),
    }
}

/// The message's length by its Content-Length; `None` when it cannot frame.
fn frame(msg: &[u8], _start: usize, head_end: usize, seen: &Seen, carrier: Carrier) -> Option<Verdict> {
    if seen.content_lengths > 1 {
        return None;
    }
    let available = msg.len() - head_end;
    let body = match seen.content_length {
        Some(v) => parse_u32(trim(v))? as usize,
        // RFC 2543-style datagrams: the body runs to the end (§18.3).
        None if carrier == Carrier::Datagram => available,
        None => return None,
    };
    (body <= available).then_some(Verdict::Pass { len: head_end + body })
}

fn check_response(start_line: &[u8], seen: &Seen) -> Result<(), &'static str> {
    let mut parts = start_line.splitn(3, |&b| b == b' ');
    let (version, code) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    if version != b"SIP/2.0" {
        return Err("response in another SIP version");
    }
    if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) || !(b'1'..=b'6').contains(&code[0]) {
        return Err("response with a bad status code");
    }
    if seen.via_first.is_none() || seen.from.is_none() || seen.to.is_none() || seen.call_id.is_none() {
        return Err("response missing a mandatory header");
    }
    if seen.broken_line {
        return Err("response with a malformed header line");
    }
    let cseq = seen.cseq.ok_or("response without CSeq")?;
    let (number, _) = parse_cseq(cseq).ok_or("response with a bad CSeq")?;
    if number >= 1 << 31 {
        return Err("response with an overlarge CSeq");
    }
    if let Some(v) = seen.retry_after {
        let n = trim(v).split(|b| !b.is_ascii_digit()).next().unwrap_or_default();
        parse_u32(n).ok_or("response with an overlarge Retry-After")?;
    }
    if let Some(v) = seen.warning {
        let code = trim(v).split(|&b| b == b' ').next().unwrap_or_default();
        if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
            return Err("response with a bad Warning code");
        }
    }
    Ok(())
}

fn check_request(
    start_line: &[u8],
    seen: &Seen,
    first_via: &ViaInfo,
    _carrier: Carrier,
    policy: &Policy,
) -> Result<(), Refusal> {
    // Request-Line = Method SP Request-URI SP SIP-Version, single spaces.
    let parts: Vec3 = split3(start_line);
    let Some((method, uri, version)) = parts else {
        return Err(refuse(400, "Malformed Request-Line"));
    };
    if method.is_empty() || !method.iter().all(|&b| is_token(b)) {
        return Err(refuse(400, "Malformed Method"));
    }
    if version != b"SIP/2.0" {
        return Err(if is_sip_version(version) {
            refuse(505, "Version Not Supported")
        } else {
            refuse(400, "Malformed SIP-Version")
        });
    }
    if seen.broken_line {
        return Err(refuse(400, "Malformed Header Line"));
    }
    let missing: Vec<&str> = [("To", seen.tos), ("From", seen.froms), ("Call-ID", seen.call_ids), ("CSeq", seen.cseqs)]
        .into_iter()
        .filter(|&(_, count)| count == 0)
        .map(|(name, _)| name)
        .collect();
    match missing[..] {
        [] => {}
        [one] => return Err(refuse(400, format!("Missing {one} Header"))),
        _ => return Err(refuse(400, format!("Missing Headers: {}", missing.join(", ")))),
    }
    // RFC 3261 senders always send Max-Forwards; RFC 2543 ones had none.
    if seen.max_forwardss == 0 && first_via.rfc3261 {
        return Err(refuse(400, "Missing Max-Forwards Header"));
    }
    for (name, count) in [
        ("To", seen.tos),
        ("From", seen.froms),
        ("Call-ID", seen.call_ids),
        ("CSeq", seen.cseqs),
        ("Max-Forwards", seen.max_forwardss),
        ("Content-Type", seen.content_types),
    ] {
        if count > 1 {
            return Err(refuse(400, format!("Multiple {name} Headers")));
        }
    }
    let Some((number, cseq_method)) = seen.cseq.and_then(parse_cseq) else {
        return Err(refuse(400, "Malformed CSeq"));
    };
    if number >= 1 << 31 {
        return Err(refuse(400, "CSeq Number Out Of Range"));
    }
    if let Some(v) = seen.max_forwards {
        let v = trim(v);
        if v.is_empty() || v.len() > 5 || !v.iter().all(u8::is_ascii_digit) || parse_u32(v).is_none_or(|n| n > 255) {
            return Err(refuse(400, "Max-Forwards Out Of Range"));
        }
    }
    if let Some(v) = seen.expires {
        if parse_u32(trim(v)).is_none() {
            return Err(refuse(400, "Malformed Or Overlarge Expires"));
        }
    }
    let call_id = trim(seen.call_id.unwrap_or_default());
    if call_id.is_empty() || !call_id.iter().all(|&b| is_word(b)) || call_id.iter().filter(|&&b| b == b'@').count() > 1
    {
        return Err(refuse(400, "Malformed Call-ID"));
    }
    for (name, value) in [("From", seen.from), ("To", seen.to)] {
        if let Some(v) = value {
            parse_name_addr(v, false).map_err(|why| refuse(400, format!("Malformed {name} Header: {why}")))?;
        }
    }
    for value in seen.contacts.iter().flatten() {
        if trim(value) != b"*" {
            parse_name_addr(value, true).map_err(|why| refuse(400, format!("Malformed Contact Header: {why}")))?;
        }
    }
    if let Some(v) = seen.date {
        if !trim(v).ends_with(b" GMT") {
            return Err(refuse(400, "Date Not In GMT"));
        }
    }
    if method == b"INVITE" && seen.contacts[0].is_none() && first_via.rfc3261 {
        return Err(refuse(400, "Missing Contact Header"));
    }
    // Only a well-formed request learns which methods we take.
    let method_str = String::from_utf8_lossy(method);
    let known = |list: &[&str]| list.iter().any(|m| m.as_bytes() == method);
    if !known(policy.allow) && !known(policy.also_known) {
        let mut refusal = if known(policy.refused) {
            refuse(405, format!("Method {method_str} Not Allowed"))
        } else {
            refuse(501, format!("Method {} Not Implemented", printable(&method_str)))
        };
        refusal.extra = Some(("Allow", policy.allow.join(", ")));
        return Err(refusal);
    }
    if cseq_method != method {
        return Err(refuse(400, "CSeq Method Does Not Match Request Method"));
    }
    check_request_uri(uri, policy)?;
    // RFC 3261 §8.2.2.3: Require is not checked for ACK and CANCEL.
    if method != b"ACK" && method != b"CANCEL" {
        let mut unsupported = Vec::new();
        for value in seen.require.iter().flatten() {
            for tag in value.split(|&b| b == b',').map(trim).filter(|t| !t.is_empty()) {
                if !policy.supported.iter().any(|s| s.as_bytes().eq_ignore_ascii_case(tag)) {
                    unsupported.push(String::from_utf8_lossy(tag).into_owned());
                }
            }
        }
        if !unsupported.is_empty() {
            let mut refusal = refuse(420, format!("Bad Extension: {}", printable(&unsupported.join(", "))));
            refusal.extra = Some(("Unsupported", unsupported.join(", ")));
            return Err(refusal);
        }
    }
    Ok(())
}

/// The body's type (415) and what the caller accepts (406), for INVITE and
/// UPDATE: the only requests whose body this daemon reads (SDP).
fn check_body(method: &[u8], seen: &Seen, _policy: &Policy) -> Result<(), Refusal> {
    if method != b"INVITE" && method != b"UPDATE" {
        return Ok(());
    }
    let has_body = seen.content_length.and_then(|v| parse_u32(trim(v))).is_none_or(|n| n > 0);
    if has_body {
        if let Some(ct) = seen.content_type {
            let media = trim(ct.split(|&b| b == b';').next().unwrap_or_default());
            if !media.eq_ignore_ascii_case(b"application/sdp") {
                let mut refusal =
                    refuse(415, format!("Unsupported Media Type {}", printable(&String::from_utf8_lossy(media))));
                refusal.extra = Some(("Accept", "application/sdp".into()));
                return Err(refusal);
            }
        }
    }
    if method == b"INVITE" {
        if let Some(accept) = seen.accept {
            let takes_sdp = accept.split(|&b| b == b',').any(|range| {
                let media = trim(range.split(|&b| b == b';').next().unwrap_or_default());
                media.is_empty()
                    || media.eq_ignore_ascii_case(b"application/sdp")
                    || media.eq_ignore_ascii_case(b"application/*")
                    || media == b"*/*"
            });
            if !takes_sdp {
                let mut refusal = refuse(406, "Not Acceptable: Accept Excludes application/sdp");
                refusal.extra = Some(("Accept", "application/sdp".into()));
                return Err(refusal);
            }
        }
    }
    Ok(())
}

fn check_request_uri(uri: &[u8], policy: &Policy) -> Result<(), Refusal> {
    if uri.first() == Some(&b'<') {
        return Err(refuse(400, "Request-URI Enclosed In <>"));
    }
    let Some(colon) = uri.iter().position(|&b| b == b':') else {
        return Err(refuse(400, "Malformed Request-URI"));
    };
    let scheme = &uri[..colon];
    let scheme_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme.iter().all(|&b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    if !scheme_ok {
        return Err(refuse(400, "Malformed Request-URI Scheme"));
    }
    if !policy.schemes.iter().any(|s| s.as_bytes().eq_ignore_ascii_case(scheme)) {
        return Err(refuse(416, format!("Unsupported URI Scheme {}", printable(&String::from_utf8_lossy(scheme)))));
    }
    let rest = &uri[colon + 1..];
    if rest.is_empty() || rest.iter().any(|&b| b <= b' ' || b == b'<' || b == b'>' || b == b'"' || b >= 0x7f) {
        return Err(refuse(400, "Malformed Request-URI"));
    }
    if rest.contains(&b'?') && !scheme.eq_ignore_ascii_case(b"tel") {
        return Err(refuse(400, "Request-URI Carries Headers"));
    }
    Ok(())
}

type Vec3<'a> = Option<(&'a [u8], &'a [u8], &'a [u8])>;

fn split3(line: &[u8]) -> Vec3<'_> {
    let mut parts = line.split(|&b| b == b' ');
    let (a, b, c) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || a.is_empty() || b.is_empty() || c.is_empty() {
        return None;
    }
    Some((a, b, c))
}

fn is_sip_version(v: &[u8]) -> bool {
    let Some(rest) = v.strip_prefix(b"SIP/") else { return false };
    let mut it = rest.split(|&b| b == b'.');
    let (a, b) = (it.next().unwrap_or_default(), it.next().unwrap_or_default());
    it.next().is_none() && !a.is_empty() && !b.is_empty() && a.iter().chain(b).all(u8::is_ascii_digit)
}

/// Read every header line: fold continuation lines into their header, note
/// the ones the checks need. `block` starts with the start line's CRLF.
fn read_headers<'a>(block: &'a [u8], seen: &mut Seen<'a>) {
    let mut lines = Lines { rest: block };
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            seen.broken_line = true;
            continue;
        };
        let name = trim(&line[..colon]);
        if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
            seen.broken_line = true;
            continue;
        }
        let value = &line[colon + 1..];
        let is = |long: &str, short: &str| {
            name.eq_ignore_ascii_case(long.as_bytes())
                || (!short.is_empty() && name.eq_ignore_ascii_case(short.as_bytes()))
        };
        fn note<'a>(slot: &mut Option<&'a [u8]>, count: &mut usize, value: &'a [u8]) {
            if slot.is_none() {
                *slot = Some(value);
            }
            *count += 1;
        }
        fn push<'a, const N: usize>(slots: &mut [Option<&'a [u8]>; N], value: &'a [u8]) {
            if let Some(slot) = slots.iter_mut().find(|s| s.is_none()) {
                *slot = Some(value);
            }
        }
        let mut ignored = 0;
        if is("Via", "v") {
            note(&mut seen.via_first, &mut seen.vias, value);
        } else if is("From", "f") {
            note(&mut seen.from, &mut seen.froms, value);
        } else if is("To", "t") {
            note(&mut seen.to, &mut seen.tos, value);
        } else if is("Call-ID", "i") {
            note(&mut seen.call_id, &mut seen.call_ids, value);
        } else if is("CSeq", "") {
            note(&mut seen.cseq, &mut seen.cseqs, value);
        } else if is("Max-Forwards", "") {
            note(&mut seen.max_forwards, &mut seen.max_forwardss, value);
        } else if is("Content-Length", "l") {
            // "Content-Length: 13, 5" is two values too.
            seen.content_lengths += value.iter().filter(|&&b| b == b',').count();
            note(&mut seen.content_length, &mut seen.content_lengths, value);
        } else if is("Content-Type", "c") {
            note(&mut seen.content_type, &mut seen.content_types, value);
        } else if is("Accept", "") {
            note(&mut seen.accept, &mut ignored, value);
        } else if is("Expires", "") {
            note(&mut seen.expires, &mut ignored, value);
        } else if is("Date", "") {
            note(&mut seen.date, &mut ignored, value);
        } else if is("Retry-After", "") {
            note(&mut seen.retry_after, &mut ignored, value);
        } else if is("Warning", "") {
            note(&mut seen.warning, &mut ignored, value);
        } else if is("Require", "") {
            push(&mut seen.require, value);
        } else if is("Contact", "m") {
            push(&mut seen.contacts, value);
        }
    }
}

/// Logical header lines of a header block (continuations folded in: the
/// slice then spans the CRLFs, which the readers treat as white space).
struct Lines<'a> {
    rest: &'a [u8],
}

impl<'a> Lines<'a> {
    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest.strip_prefix(b"\r\n").unwrap_or(self.rest);
        if rest.is_empty() {
            self.rest = rest;
            return None;
        }
        let mut end = 0;
        loop {
            match find(&rest[end..], b"\r\n") {
                Some(i) => {
                    end += i;
                    if matches!(rest.get(end + 2), Some(b' ' | b'\t')) {
                        end += 2;
                        continue;
                    }
                }
                None => end = rest.len(),
            }
            break;
        }
        self.rest = &rest[end..];
        Some(&rest[..end])
    }
}

/// What the checks need from the top Via.
struct ViaInfo {
    /// The branch starts with RFC 3261's magic cookie.
    rfc3261: bool,
}

/// `SIP / 2.0 / transport sent-by *( ; param )` in a comma-separated list.
fn parse_via_list(value: &[u8]) -> Result<ViaInfo, &'static str> {
    let mut info = None;
    for element in split_outside_quotes(value, b',') {
        let mut p = Parser::new(element);
        p.lws();
        if !p.take_token().is_some_and(|t| t.eq_ignore_ascii_case(b"SIP")) {
            return Err("protocol");
        }
        for _ in 0..2 {
            p.lws();
            if !p.eat(b'/') {
                return Err("protocol");
            }
            p.lws();
            p.take_token().ok_or("protocol")?;
        }
        p.lws();
        let host = p.take_while(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b));
        if host.is_empty() || host.iter().filter(|&&b| b == b':').count() > 1 && host[0] != b'[' {
            return Err("sent-by");
        }
        let params = p.params()?;
        p.lws();
        if !p.done() {
            return Err("trailing characters");
        }
        if info.is_none() {
            let rfc3261 = params.branch.is_some_and(|b| b.starts_with(b"z9hG4bK"));
            info = Some(ViaInfo { rfc3261 });
        }
    }
    info.ok_or("empty")
}

/// `[display-name] <uri> *(;param)` or `addr-spec *(;param)`; `list`: a
/// comma may start another value (Contact).
fn parse_name_addr(value: &[u8], list: bool) -> Result<(), &'static str> {
    let elements: Vec<&[u8]> = if list { split_outside_quotes(value, b',').collect() } else { vec![value] };
    for element in elements {
        let mut p = Parser::new(element);
        p.lws();
        if p.peek() == Some(b'"') {
            p.quoted().ok_or("unterminated quoted string")?;
            p.lws();
            if p.peek() != Some(b'<') {
                return Err("quoted display name without <URI>");
            }
        }
        if p.peek() != Some(b'<') {
            // A display name of tokens, or a bare addr-spec.
            let save = p.pos;
            let mut tokens = 0;
            while p.take_token().is_some() {
                tokens += 1;
                p.lws();
            }
            if p.peek() == Some(b'<') && tokens > 0 {
                // Display name read.
            } else {
                p.pos = save;
                if element.contains(&b'<') {
                    return Err("display name is not a token or quoted string");
                }
                let uri = p.take_while(|b| b != b';' && !is_lws(b));
                check_uri_shape(uri)?;
                if uri.contains(&b'?') || uri.contains(&b',') {
                    return Err("URI with ? or , not enclosed in <>");
                }
                p.params()?;
                p.lws();
                return if p.done() { Ok(()) } else { Err("unexpected characters") };
            }
        }
        if !p.eat(b'<') {
            return Err("display name is not a token or quoted string");
        }
        let uri = p.take_while(|b| b != b'>');
        if !p.eat(b'>') {
            return Err("unterminated <URI>");
        }
        if uri.first().is_some_and(|&b| is_lws(b)) || uri.last().is_some_and(|&b| is_lws(b)) {
            return Err("white space inside <URI>");
        }
        check_uri_shape(uri)?;
        p.params()?;
        p.lws();
        if !p.done() {
            return Err("unexpected characters");
        }
    }
    Ok(())
}

fn check_uri_shape(uri: &[u8]) -> Result<(), &'static str> {
    let colon = uri.iter().position(|&b| b == b':').ok_or("URI without scheme")?;
    let scheme = &uri[..colon];
    if scheme.is_empty()
        || !scheme[0].is_ascii_alphabetic()
        || !scheme.iter().all(|&b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return Err("URI with a bad scheme");
    }
    if uri.iter().any(|&b| b <= b' ') {
        return Err("white space in URI");
    }
    Ok(())
}

/// Parameters of a header value, read by [`Parser::params`].
struct Params<'a> {
    branch: Option<&'a [u8]>,
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(s: &'a [u8]) -> Self {
        Parser { s, pos: 0 }
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }
    fn done(&self) -> bool {
        self.pos >= self.s.len()
    }
    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn lws(&mut self) {
        while self.peek().is_some_and(is_lws) {
            self.pos += 1;
        }
    }
    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }
    fn take_token(&mut self) -> Option<&'a [u8]> {
        let t = self.take_while(is_token);
        (!t.is_empty()).then_some(t)
    }
    /// A quoted string with backslash escapes; `None` if unterminated.
    fn quoted(&mut self) -> Option<&'a [u8]> {
        let start = self.pos;
        if !self.eat(b'"') {
            return None;
        }
        while let Some(b) = self.peek() {
            self.pos += 1;
            match b {
                b'\\' => self.pos += 1,
                b'"' => return Some(&self.s[start..self.pos]),
                _ => {}
            }
        }
        None
    }
    /// `*( LWS ; LWS name [ LWS = LWS value ] )`.
    fn params(&mut self) -> Result<Params<'a>, &'static str> {
        let mut params = Params { branch: None };
        loop {
            self.lws();
            if !self.eat(b';') {
                return Ok(params);
            }
            self.lws();
            let name = self.take_token().ok_or("empty parameter")?;
            self.lws();
            if self.eat(b'=') {
                self.lws();
                let value = if self.peek() == Some(b'"') {
                    self.quoted().ok_or("unterminated quoted parameter")?
                } else {
                    let v = self.take_while(|b| is_token(b) || b"[]:".contains(&b));
                    if v.is_empty() {
                        return Err("empty parameter value");
                    }
                    v
                };
                if name.eq_ignore_ascii_case(b"branch") {
                    params.branch = Some(value);
                }
            }
        }
    }
}

fn split_outside_quotes(value: &[u8], sep: u8) -> impl Iterator<Item = &[u8]> {
    let mut quoted = false;
    let mut escaped = false;
    let mut angle = false;
    value.split(move |&b| {
        if escaped {
            escaped = false;
            return false;
        }
        match b {
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b'<' if !quoted => angle = true,
            b'>' if !quoted => angle = false,
            _ => {}
        }
        b == sep && !quoted && !angle
    })
}

fn parse_cseq(value: &[u8]) -> Option<(u64, &[u8])> {
    let mut p = Parser::new(value);
    p.lws();
    let digits = p.take_while(|b| b.is_ascii_digit());
    if digits.is_empty() {
        return None;
    }
    // Overlarge numbers read as "out of range", not as unreadable.
    let number = if digits.len() > 19 { u64::MAX } else { std::str::from_utf8(digits).ok()?.parse().ok()? };
    p.lws();
    let method = p.take_token()?;
    p.lws();
    p.done().then_some((number, method))
}

fn parse_u32(v: &[u8]) -> Option<u32> {
    if v.is_empty() || v.len() > 10 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// Write the answer: status line, the request's Via/From/To/Call-ID/CSeq
/// copied byte for byte (a To-tag added), the extra header, no body.
fn reply(head: &[u8], seen: &Seen, source: SocketAddr, refusal: Refusal) -> Verdict {
    let mut out = Vec::with_capacity(head.len() + 128);
    out.extend_from_slice(format!("SIP/2.0 {} {}\r\n", refusal.status, refusal.reason).as_bytes());
    let first_end = find(head, b"\r\n").unwrap_or(head.len());
    let mut lines = Lines { rest: &head[first_end..] };
    let (mut from_done, mut to_done, mut call_id_done, mut cseq_done) = (false, false, false, false);
    while let Some(line) = lines.next() {
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let name = trim(&line[..colon]);
        let is = |long: &[u8], short: &[u8]| name.eq_ignore_ascii_case(long) || name.eq_ignore_ascii_case(short);
        let copy = if is(b"Via", b"v") {
            true
        } else if is(b"From", b"f") {
            !std::mem::replace(&mut from_done, true)
        } else if is(b"Call-ID", b"i") {
            !std::mem::replace(&mut call_id_done, true)
        } else if is(b"CSeq", b"CSeq") {
            !std::mem::replace(&mut cseq_done, true)
        } else if is(b"To", b"t") && !to_done {
            to_done = true;
            out.extend_from_slice(trim_end(line));
            if !has_tag(&line[colon + 1..]) {
                out.extend_from_slice(format!(";tag={:016x}", tag_for(seen)).as_bytes());
            }
            out.extend_from_slice(b"\r\n");
            false
        } else {
            false
        };
        if copy {
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
    }
    if let Some((name, value)) = refusal.extra {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    Verdict::Reply { status: refusal.status, response: out, to: source }
}

/// Whether a From/To value carries a `tag` parameter (outside its URI).
fn has_tag(value: &[u8]) -> bool {
    let end_of_uri = match value.iter().rposition(|&b| b == b'>') {
        Some(i) => i + 1,
        None => 0,
    };
    split_outside_quotes(&value[end_of_uri..], b';').skip(usize::from(end_of_uri == 0)).any(|param| {
        let name = trim(param.split(|&b| b == b'=').next().unwrap_or_default());
        name.eq_ignore_ascii_case(b"tag")
    })
}

/// The same request (a retransmission) gets the same To-tag.
fn tag_for(seen: &Seen) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [seen.call_id, seen.cseq, seen.via_first, seen.from].into_iter().flatten() {
        for &b in part {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// A reason phrase is one line of printable text, of a sane length.
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|&b| !is_lws(b)).unwrap_or(v.len());
    let end = v.iter().rposition(|&b| !is_lws(b)).map_or(start, |i| i + 1);
    &v[start..end]
}

fn trim_end(v: &[u8]) -> &[u8] {
    let end = v.iter().rposition(|&b| !is_lws(b)).map_or(0, |i| i + 1);
    &v[..end]
}

/// RFC 3261 §25.1 token characters.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// RFC 3261 §25.1 `word` characters (Call-ID).
fn is_word(b: u8) -> bool {
    is_token(b) || b"()<>:\\\"/[]?{}@".contains(&b)
}

#[cfg(test)]
mod tests;
