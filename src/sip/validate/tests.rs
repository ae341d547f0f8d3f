use super::*;

fn source() -> SocketAddr {
    "192.0.2.7:5062".parse().unwrap()
}

fn run(msg: &[u8]) -> Verdict {
    check(msg, source(), Carrier::Datagram, &POLICY)
}

/// The status we answer with, 0 for "pass", -1 for "drop".
fn outcome(msg: &[u8]) -> i32 {
    match run(msg) {
        Verdict::Pass { .. } => 0,
        Verdict::Reply { status, .. } => i32::from(status),
        Verdict::Drop(_) => -1,
    }
}

fn reply_text(msg: &[u8]) -> String {
    match run(msg) {
        Verdict::Reply { response, to, .. } => {
            assert_eq!(to, source(), "answers go back where the request came from");
            String::from_utf8_lossy(&response).into_owned()
        }
        other => panic!("expected an answer, got {other:?}"),
    }
}

const OPTIONS: &str = "OPTIONS sip:agent@192.0.2.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bKabc;rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:peer@example.com>;tag=f1\r\n\
To: <sip:%75ser@example.com>\r\n\
Call-ID: c1@example.com\r\n\
CSeq: 7 OPTIONS\r\n\
Content-Length: 0\r\n\r\n";

fn with(replace: &str, by: &str) -> String {
    assert!(OPTIONS.contains(replace), "{replace}");
    OPTIONS.replacen(replace, by, 1)
}

const INVITE: &str = "INVITE sip:agent@192.0.2.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bKinv\r\n\
Max-Forwards: 70\r\n\
From: \"Caller\" <sip:peer@example.com>;tag=f1\r\n\
To: <sip:agent@example.com>\r\n\
Call-ID: i1@example.com\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:peer@192.0.2.7:5062>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\r\nv=0\n";

fn invite_with(replace: &str, by: &str) -> String {
    assert!(INVITE.contains(replace), "{replace}");
    INVITE.replacen(replace, by, 1)
}

#[test]
fn a_good_request_passes_whole() {
    assert_eq!(run(OPTIONS.as_bytes()), Verdict::Pass { len: OPTIONS.len() });
    assert_eq!(run(INVITE.as_bytes()), Verdict::Pass { len: INVITE.len() });
    assert_eq!(run(b"\r\n\r\n"), Verdict::Pass { len: 4 }, "keep-alives go to the stack");
}

#[test]
fn content_length_frames_a_datagram() {
    // Bytes past the Content-Length are not part of the message.
    let extra = format!("{INVITE}garbage");
    assert_eq!(run(extra.as_bytes()), Verdict::Pass { len: INVITE.len() });
    let short = invite_with("Content-Length: 4", "Content-Length: 40");
    assert!(reply_text(short.as_bytes()).starts_with("SIP/2.0 400 Content-Length Larger Than Message\r\n"));
    let negative = invite_with("Content-Length: 4", "Content-Length: -4");
    assert!(reply_text(negative.as_bytes()).starts_with("SIP/2.0 400 Negative Content-Length\r\n"));
    let two = invite_with("Content-Length: 4", "Content-Length: 4\r\nl: 2");
    assert!(reply_text(two.as_bytes()).starts_with("SIP/2.0 400 Multiple Content-Length Headers\r\n"));
    let none = invite_with("Content-Length: 4\r\n", "");
    assert_eq!(run(none.as_bytes()), Verdict::Pass { len: none.len() }, "no length: the datagram's end");
}

#[test]
fn content_length_frames_a_stream() {
    let two = format!("{INVITE}{OPTIONS}");
    assert_eq!(frame_stream(two.as_bytes(), 65536), Ok(Some(INVITE.len())));
    assert_eq!(frame_stream(&INVITE.as_bytes()[..INVITE.len() - 1], 65536), Ok(None), "body incomplete");
    assert_eq!(frame_stream(&OPTIONS.as_bytes()[..40], 65536), Ok(None), "headers incomplete");
    assert_eq!(frame_stream(b"\r\n\r\nINVITE", 65536), Ok(Some(4)), "keep-alive first");
    let none = invite_with("Content-Length: 4\r\n", "");
    assert!(frame_stream(none.as_bytes(), 65536).is_err(), "a stream needs Content-Length");
    let huge = invite_with("Content-Length: 4", "Content-Length: 10000000");
    assert_eq!(frame_stream(huge.as_bytes(), 65536), Err("message too large"));
    assert_eq!(frame_stream(&[b'a'; 70000], 65536), Err("headers too long"));
    let negative = invite_with("Content-Length: 4", "Content-Length: -1");
    assert!(frame_stream(negative.as_bytes(), 65536).is_err());
}

#[test]
fn another_version_is_505_and_garbage_400() {
    let v7 = with("SIP/2.0\r\nVia", "SIP/7.0\r\nVia");
    assert!(reply_text(v7.as_bytes()).starts_with("SIP/2.0 505 Version Not Supported\r\n"));
    let bad = with("SIP/2.0\r\nVia", "SIP/2\r\nVia");
    assert!(reply_text(bad.as_bytes()).starts_with("SIP/2.0 400 Malformed SIP-Version\r\n"));
    let spaces = with("OPTIONS sip:agent@192.0.2.1 SIP/2.0", "OPTIONS  sip:agent@192.0.2.1 SIP/2.0");
    assert!(reply_text(spaces.as_bytes()).starts_with("SIP/2.0 400 Malformed Request-Line\r\n"));
}

#[test]
fn cseq_must_match_and_be_in_range() {
    let other = with("CSeq: 7 OPTIONS", "CSeq: 7 INVITE");
    assert!(reply_text(other.as_bytes()).starts_with("SIP/2.0 400 CSeq Method Does Not Match Request Method\r\n"));
    let big = with("CSeq: 7 OPTIONS", "CSeq: 2147483648 OPTIONS");
    assert!(reply_text(big.as_bytes()).starts_with("SIP/2.0 400 CSeq Number Out Of Range\r\n"));
    let huge = with("CSeq: 7 OPTIONS", "CSeq: 36893488147419103232 OPTIONS");
    assert!(reply_text(huge.as_bytes()).starts_with("SIP/2.0 400 CSeq Number Out Of Range\r\n"));
    let top = with("CSeq: 7 OPTIONS", "CSeq: 2147483647 OPTIONS");
    assert_eq!(outcome(top.as_bytes()), 0);
    let junk = with("CSeq: 7 OPTIONS", "CSeq: seven OPTIONS");
    assert!(reply_text(junk.as_bytes()).starts_with("SIP/2.0 400 Malformed CSeq\r\n"));
}

#[test]
fn a_missing_mandatory_header_is_named() {
    for (line, name) in [
        ("From: <sip:peer@example.com>;tag=f1\r\n", "From"),
        ("To: <sip:%75ser@example.com>\r\n", "To"),
        ("Call-ID: c1@example.com\r\n", "Call-ID"),
        ("CSeq: 7 OPTIONS\r\n", "CSeq"),
        ("Max-Forwards: 70\r\n", "Max-Forwards"),
    ] {
        let msg = with(line, "");
        assert!(reply_text(msg.as_bytes()).starts_with(&format!("SIP/2.0 400 Missing {name} Header\r\n")), "{name}");
    }
    // Without Via there is nowhere to answer.
    let msg = with("Via: SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bKabc;rport\r\n", "");
    assert!(matches!(run(msg.as_bytes()), Verdict::Drop(_)));
    // RFC 2543 senders (no magic cookie) had no Max-Forwards.
    let old = with("Max-Forwards: 70\r\n", "").replace(";branch=z9hG4bKabc", "");
    assert_eq!(outcome(old.as_bytes()), 0);
}

#[test]
fn single_headers_come_once() {
    let msg = with("Call-ID: c1@example.com\r\n", "Call-ID: c1@example.com\r\ni: c2@example.com\r\n");
    assert!(reply_text(msg.as_bytes()).starts_with("SIP/2.0 400 Multiple Call-ID Headers\r\n"));
    let mf = with("Max-Forwards: 70", "Max-Forwards: 300");
    assert!(reply_text(mf.as_bytes()).starts_with("SIP/2.0 400 Max-Forwards Out Of Range\r\n"));
}

#[test]
fn the_request_uri_scheme_is_checked() {
    let unknown = with("OPTIONS sip:agent@192.0.2.1 SIP", "OPTIONS urn:x:y SIP");
    assert!(reply_text(unknown.as_bytes()).starts_with("SIP/2.0 416 Unsupported URI Scheme urn\r\n"));
    let tel = with("OPTIONS sip:agent@192.0.2.1 SIP", "OPTIONS tel:+15551234 SIP");
    assert_eq!(outcome(tel.as_bytes()), 0);
    let angle = with("OPTIONS sip:agent@192.0.2.1 SIP", "OPTIONS <sip:agent@192.0.2.1> SIP");
    assert!(reply_text(angle.as_bytes()).starts_with("SIP/2.0 400 Request-URI Enclosed In <>\r\n"));
}

#[test]
fn methods_we_do_not_take_get_501_or_405_with_allow() {
    let ext = with("OPTIONS sip:agent@192.0.2.1", "FROB sip:agent@192.0.2.1").replace("7 OPTIONS", "7 FROB");
    let text = reply_text(ext.as_bytes());
    assert!(text.starts_with("SIP/2.0 501 Method FROB Not Implemented\r\n"), "{text}");
    assert!(text.contains("\r\nAllow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY, UPDATE\r\n"));
    let reg = with("OPTIONS sip:agent@192.0.2.1", "REGISTER sip:agent@192.0.2.1").replace("7 OPTIONS", "7 REGISTER");
    let text = reply_text(reg.as_bytes());
    assert!(text.starts_with("SIP/2.0 405 Method REGISTER Not Allowed\r\n") && text.contains("\r\nAllow: "));
}

#[test]
fn require_of_an_unknown_extension_is_420_with_unsupported() {
    let msg = with("Content-Length", "Require: timer, 100rel\r\nContent-Length");
    let text = reply_text(msg.as_bytes());
    assert!(text.starts_with("SIP/2.0 420 Bad Extension: 100rel\r\n"), "{text}");
    assert!(text.contains("\r\nUnsupported: 100rel\r\n"));
    let known = with("Content-Length", "Require: replaces\r\nContent-Length");
    assert_eq!(outcome(known.as_bytes()), 0);
}

#[test]
fn an_invite_body_must_be_sdp_and_sdp_acceptable() {
    let text = reply_text(invite_with("application/sdp", "application/unknownformat").as_bytes());
    assert!(text.starts_with("SIP/2.0 415 Unsupported Media Type application/unknownformat\r\n"), "{text}");
    assert!(text.contains("\r\nAccept: application/sdp\r\n"));
    let text = reply_text(invite_with("CSeq: 1 INVITE\r\n", "CSeq: 1 INVITE\r\nAccept: text/plain\r\n").as_bytes());
    assert!(text.starts_with("SIP/2.0 406 Not Acceptable: Accept Excludes application/sdp\r\n"), "{text}");
    for ok in ["application/sdp", "application/*;q=0.5", "text/plain, */*", ""] {
        let msg = invite_with("CSeq: 1 INVITE\r\n", &format!("CSeq: 1 INVITE\r\nAccept: {ok}\r\n"));
        assert_eq!(outcome(msg.as_bytes()), 0, "{ok}");
    }
}

#[test]
fn address_headers_are_checked() {
    for (bad, why) in [
        ("From: <sip:peer@example.com>;tag=f1", "From: \"Peer <sip:peer@example.com>;tag=f1"),
        ("From: <sip:peer@example.com>;tag=f1", "From: Peer, Mr <sip:peer@example.com>;tag=f1"),
        ("To: <sip:%75ser@example.com>", "To: < sip:user@example.com >"),
        ("To: <sip:%75ser@example.com>", "To: <sip:user@example.com>;;x"),
        ("Content-Length", "Contact: sip:a@example.com?Route=x\r\nContent-Length"),
    ] {
        let msg = with(bad, why);
        let text = reply_text(msg.as_bytes());
        assert!(text.starts_with("SIP/2.0 400 Malformed "), "{why}: {text}");
    }
    for good in [
        "From: Peer Name <sip:peer@example.com>;tag=f1",
        "From: \"Peer \\\"x\\\"\" <sip:peer@example.com> ; tag = f1",
        "From: sip:peer@example.com;tag=f1",
        "From:\r\n <sip:peer@example.com>\r\n ;tag=f1",
    ] {
        let msg = with("From: <sip:peer@example.com>;tag=f1", good);
        assert_eq!(outcome(msg.as_bytes()), 0, "{good}");
    }
}

#[test]
fn answers_copy_the_request_headers_byte_for_byte_and_add_a_to_tag() {
    let msg = with("CSeq: 7 OPTIONS", "CSeq: 7 INVITE").replace("Via: SIP", "v:  SIP").replace("From:", "f:");
    let text = reply_text(msg.as_bytes());
    let expected = "SIP/2.0 400 CSeq Method Does Not Match Request Method\r\n\
v:  SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bKabc;rport\r\n\
f: <sip:peer@example.com>;tag=f1\r\n";
    assert!(text.starts_with(expected), "{text}");
    assert!(text.contains("\r\nTo: <sip:%75ser@example.com>;tag="), "the To URI is not re-escaped: {text}");
    assert!(text.contains("\r\nCall-ID: c1@example.com\r\nCSeq: 7 INVITE\r\n"), "{text}");
    assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
    assert_eq!(text, reply_text(msg.as_bytes()), "a retransmission gets the same tag");
    // A To that has a tag keeps it, and gets no second one.
    let tagged = msg.replace("To: <sip:%75ser@example.com>", "To: <sip:%75ser@example.com>;tag=t9");
    let text = reply_text(tagged.as_bytes());
    assert_eq!(text.matches("tag=").count(), 2, "{text}");
}

#[test]
fn an_ack_and_a_bad_response_are_never_answered() {
    let ack = with("OPTIONS sip", "ACK sip").replace("7 OPTIONS", "7 INVITE");
    assert!(matches!(run(ack.as_bytes()), Verdict::Drop(_)), "an ACK with a mismatched CSeq is dropped");
    let response = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\n\
To: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(outcome(response.as_bytes()), 0, "a good response goes to the stack (its transactions decide)");
    let bare = response.replace("SIP/2.0 200 OK", "SIP/2.0 200");
    assert_eq!(outcome(bare.as_bytes()), 0, "a status line without its space is forgiven");
    for bad in ["SIP/2.0 2000 OK", "SIP/3.0 200 OK", "SIP/2.0 099 Low"] {
        let msg = response.replace("SIP/2.0 200 OK", bad);
        assert_eq!(outcome(msg.as_bytes()), -1, "{bad}");
    }
}

#[test]
fn nonsense_never_panics() {
    for msg in
        [&b""[..], b"\0\0\0", b"INVITE", b"INVITE sip:a SIP/2.0\r\nVia:\r\n\r\n", b"SIP/2.0\r\n\r\n", b"v:\r\n\r\n"]
    {
        let _ = run(msg);
        let _ = frame_stream(msg, 100);
    }
}

/// Every RFC 4475 message, and what the validator alone decides (0: pass
/// to the stack, -1: drop, else the status we answer).
#[test]
fn rfc4475_torture_messages() {
    macro_rules! dat {
        ($name:literal) => {
            ($name, &include_bytes!(concat!("../../../tests/rfc4475/", $name, ".dat"))[..])
        };
    }
    let table: &[((&str, &[u8]), i32)] = &[
        // 3.1.1 valid
        (dat!("wsinv"), 0),
        (dat!("intmeth"), 501),
        (dat!("esc01"), 0),
        (dat!("escnull"), 405),
        (dat!("esc02"), 501),
        (dat!("lwsdisp"), 0),
        (dat!("longreq"), 0),
        (dat!("dblreq"), 405),
        (dat!("semiuri"), 0),
        (dat!("transports"), 0),
        (dat!("mpart01"), 405),
        (dat!("unreason"), 0),
        (dat!("noreason"), 0),
        // 3.1.2 invalid
        (dat!("badinv01"), 400),
        (dat!("clerr"), 400),
        (dat!("ncl"), 400),
        (dat!("scalar02"), 400),
        (dat!("scalarlg"), -1),
        (dat!("quotbal"), 400),
        (dat!("ltgtruri"), 400),
        (dat!("lwsruri"), 400),
        (dat!("lwsstart"), 400),
        (dat!("trws"), 400),
        (dat!("escruri"), 400),
        (dat!("baddate"), 400),
        (dat!("regbadct"), 400),
        (dat!("badaspec"), 400),
        (dat!("baddn"), 400),
        (dat!("badvers"), 505),
        (dat!("mismatch01"), 400),
        (dat!("mismatch02"), 501),
        (dat!("bigcode"), -1),
        // 3.2
        (dat!("badbranch"), 0),
        // 3.3
        (dat!("insuf"), 400),
        (dat!("unkscm"), 416),
        (dat!("novelsc"), 416),
        (dat!("unksm2"), 405),
        (dat!("bext01"), 420),
        (dat!("invut"), 415),
        (dat!("regaut01"), 405),
        (dat!("multi01"), 400),
        (dat!("mcl01"), 400),
        (dat!("bcast"), 0),
        (dat!("zeromf"), 0),
        (dat!("cparam01"), 405),
        (dat!("cparam02"), 405),
        (dat!("regescrt"), 405),
        (dat!("sdp01"), 406),
        // 3.4
        (dat!("inv2543"), 0),
    ];
    let mut wrong = Vec::new();
    for ((name, bytes), expected) in table {
        let verdict = run(bytes);
        let got = match &verdict {
            Verdict::Pass { .. } => 0,
            Verdict::Reply { status, .. } => i32::from(*status),
            Verdict::Drop(_) => -1,
        };
        if got != *expected {
            let detail = match &verdict {
                Verdict::Reply { response, .. } => {
                    String::from_utf8_lossy(&response[..response.len().min(80)]).into_owned()
                }
                other => format!("{other:?}"),
            };
            wrong.push(format!("{name}: expected {expected}, got {got} ({detail})"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // dblreq: only the REGISTER is the message; the INVITE after it is not.
    assert_eq!(run(include_bytes!("../../../tests/rfc4475/esc01.dat")), Verdict::Pass { len: 543 });
}

#[test]
fn normalizing_keeps_the_meaning_in_the_form_rsipstack_reads() {
    assert_eq!(normalize(INVITE.as_bytes()), None, "an ordinary request is left alone");
    let spaced = invite_with(";tag=f1", "\r\n ;\r\n  tag = f1").replace("Call-ID: i1", "Call-ID:  i1");
    let text = String::from_utf8(normalize(spaced.as_bytes()).unwrap()).unwrap();
    assert!(text.contains("\r\nFrom: \"Caller\" <sip:peer@example.com>;tag=f1\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nv=0\n"), "the body is untouched: {text}");
    let wsinv = include_bytes!("../../../tests/rfc4475/wsinv.dat");
    let text = String::from_utf8_lossy(&normalize(wsinv).unwrap()).into_owned();
    assert!(text.contains("\r\nfrom: \"J Rosenberg \\\\\\\"\" <sip:jdrosen@example.com>;tag=98asjd8\r\n"), "{text}");
    assert!(text.contains("\r\nv: SIP / 2.0 / TCP spindle.example.com;branch=z9hG4bK9ikj8,SIP / 2.0 / UDP 192.168.255.111;branch=z9hG4bK30239\r\n"), "{text}");
    assert!(text.contains("\r\nTO: sip:vivekg@chair-dnrc.example.com;tag=1918181833n\r\n"), "{text}");
    assert!(text.contains("\r\ncseq: 0009 INVITE\r\n"), "{text}");
    assert_eq!(outcome(text.as_bytes()), 0, "still valid");
    // RFC 2543: a From without tag gets one we strip again on the way out.
    let old = include_bytes!("../../../tests/rfc4475/inv2543.dat");
    let text = String::from_utf8_lossy(&normalize(old).unwrap()).into_owned();
    let tagged = text.lines().find(|l| l.starts_with("From:")).unwrap().to_string();
    assert!(tagged.starts_with("From: <sip:+13035551111@ift.client.example.net;user=phone>;tag=2543x"), "{tagged}");
    assert!(
        text.contains(
            "\r\nContent-Length: 105\r\nContact: <sip:+13035551111@ift.client.example.net;user=phone>\r\n\r\n"
        ),
        "{text}"
    );
    let no_contact = invite_with("Contact: <sip:peer@192.0.2.7:5062>\r\n", "");
    assert!(reply_text(no_contact.as_bytes()).starts_with("SIP/2.0 400 Missing Contact Header\r\n"));
    let answer = format!("SIP/2.0 180 Ringing\r\n{tagged}\r\nContent-Length: 0\r\n\r\n");
    let stripped = strip_made_up_tags(answer.as_bytes()).unwrap();
    assert_eq!(
        String::from_utf8(stripped).unwrap(),
        "SIP/2.0 180 Ringing\r\nFrom: <sip:+13035551111@ift.client.example.net;user=phone>\r\nContent-Length: 0\r\n\r\n"
    );
    assert_eq!(strip_made_up_tags(INVITE.as_bytes()), None);
}

#[test]
fn a_response_gets_the_requests_own_from_and_to_back() {
    let esc01 = include_bytes!("../../../tests/rfc4475/esc01.dat");
    let (call_id, cseq, from, to) = from_to_of(esc01).unwrap();
    assert_eq!(to, b"sip:%75se%72@example.com");
    let written = format!(
        "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw;received=127.0.0.1\r\n\
From: <sip:I%20have%20spaces@example.net>;tag=938\r\nTo: <sip:%2575se%2572@example.com>;tag=Nfd6\r\n\
Call-ID: {}\r\nCSeq: 234234 INVITE\r\nContent-Length: 0\r\n\r\n",
        String::from_utf8_lossy(&call_id)
    );
    let (rcall, rcseq) = response_key(written.as_bytes()).unwrap();
    assert_eq!((rcall, rcseq), (&call_id[..], cseq.clone()));
    let fixed = String::from_utf8(restore_from_to(written.as_bytes(), &from, &to).unwrap()).unwrap();
    assert!(fixed.contains("\r\nTo: sip:%75se%72@example.com;tag=Nfd6\r\n"), "{fixed}");
    assert!(fixed.contains(&format!("\r\nFrom: {}\r\n", String::from_utf8_lossy(&from))), "{fixed}");
    assert!(fixed.contains(";received=127.0.0.1\r\n"), "the Via rsipstack wrote is kept");
}
