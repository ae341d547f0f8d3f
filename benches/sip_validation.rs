//! What the SIP front door costs per message: `validate::check` on a
//! typical INVITE with SDP (the pass path: no allocation), on an in-dialog
//! BYE, on RFC 4475's long request and whitespace torture INVITE, and on
//! messages that get an answer written (400, 501) or are dropped; and the
//! front's whole per-request path (check, remember From/To, normalize).
//! The gate's verdict before all that: a stranger under its rate, one over
//! it (silenced: the flood's path), a known scanner. For scale,
//! rsipstack's own parse of the same INVITE.
//!
//! `cargo bench --bench sip_validation`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use softphoned::sip::gate::{Gate, Limits};
use softphoned::sip::validate::{check, frame_stream, from_to_of, normalize, Carrier, POLICY};

const INVITE: &str = "INVITE sip:agent@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-524287-1---4f5a2c1b;rport\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:customer@127.0.0.1:5070>\r\n\
To: <sip:agent@127.0.0.1:5060>\r\n\
From: \"Customer\" <sip:customer@127.0.0.1:5070>;tag=8f2e1c07\r\n\
Call-ID: a84b4c76e66710@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY, UPDATE\r\n\
Supported: replaces, timer\r\n\
Session-Expires: 1800\r\n\
User-Agent: bench\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 140\r\n\r\n\
v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 6000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

const BYE: &str = "BYE sip:agent@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-524287-1---77aa;rport\r\n\
Max-Forwards: 70\r\n\
To: <sip:agent@127.0.0.1:5060>;tag=as3f\r\n\
From: \"Customer\" <sip:customer@127.0.0.1:5070>;tag=8f2e1c07\r\n\
Call-ID: a84b4c76e66710@127.0.0.1\r\n\
CSeq: 2 BYE\r\n\
Content-Length: 0\r\n\r\n";

fn bench(c: &mut Criterion) {
    let source: SocketAddr = "127.0.0.1:5070".parse().unwrap();
    let dat = |name: &str| std::fs::read(format!("{}/tests/rfc4475/{name}.dat", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("invite_with_sdp_pass", INVITE.as_bytes().to_vec()),
        ("bye_pass", BYE.as_bytes().to_vec()),
        ("rfc4475_wsinv_pass", dat("wsinv")),
        ("rfc4475_longreq_pass", dat("longreq")),
        ("rfc4475_mismatch01_400", dat("mismatch01")),
        ("rfc4475_intmeth_501", dat("intmeth")),
        ("rfc4475_bigcode_drop", dat("bigcode")),
    ];
    for (name, bytes) in &cases[..4] {
        let verdict = check(bytes, source, Carrier::Datagram, &POLICY);
        assert!(matches!(verdict, softphoned::sip::validate::Verdict::Pass { .. }), "{name}: {verdict:?}");
    }
    let mut group = c.benchmark_group("sip_validation");
    for (name, bytes) in &cases {
        group.bench_function(*name, |b| b.iter(|| check(black_box(bytes), source, Carrier::Datagram, &POLICY)));
    }
    // All the front does with a request on its way to rsipstack.
    group.bench_function("front_invite_check_remember_normalize", |b| {
        b.iter(|| {
            let bytes = black_box(INVITE.as_bytes());
            let pass = check(bytes, source, Carrier::Datagram, &POLICY);
            (pass, from_to_of(bytes), normalize(bytes))
        })
    });
    group.bench_function("front_wsinv_check_remember_normalize", |b| {
        let bytes = dat("wsinv");
        b.iter(|| {
            let bytes = black_box(&bytes[..]);
            (check(bytes, source, Carrier::Datagram, &POLICY), from_to_of(bytes), normalize(bytes))
        })
    });
    // The gate, in simulated time: a source always under its rate (a second
    // passes between requests), and one a flood has put over it.
    let start = std::time::Instant::now();
    let mut under = Gate::new(Limits::default(), Vec::new());
    let mut over = Gate::new(Limits::default(), Vec::new());
    let mut n = 0u64;
    group.bench_function("gate_stranger_under_its_rate", |b| {
        b.iter(|| {
            n += 1;
            under.on_message(source, None, black_box(INVITE.as_bytes()), start + Duration::from_secs(n))
        })
    });
    group.bench_function("gate_stranger_over_its_rate_silenced", |b| {
        b.iter(|| over.on_message(source, None, black_box(INVITE.as_bytes()), start))
    });
    let scanner = INVITE.replace("User-Agent: bench", "User-Agent: friendly-scanner");
    group.bench_function("gate_scanner_silenced", |b| {
        b.iter(|| under.on_message(source, None, black_box(scanner.as_bytes()), start))
    });
    let two = [INVITE.as_bytes(), BYE.as_bytes()].concat();
    group.bench_function("stream_frame_invite", |b| b.iter(|| frame_stream(black_box(&two), 65536)));
    group.bench_function("rsipstack_parse_invite_for_scale", |b| {
        b.iter(|| rsipstack::sip::SipMessage::try_from(black_box(INVITE.as_bytes())).is_ok())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
