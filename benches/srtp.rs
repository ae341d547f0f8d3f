//! SRTP cost per packet: protect and unprotect of a 20 ms G.711 RTP packet
//! (12-byte header + 160 bytes) with both SDES suites.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use softphoned::media::rtp::RtpSender;
use softphoned::media::srtp::{CryptoSuite, SdesCrypto, SrtpSession};

fn sessions(suite: CryptoSuite) -> (SrtpSession, SrtpSession) {
    let alice = SdesCrypto::generate(1, suite, [0x11; 30]);
    let bob = SdesCrypto::generate(1, suite, [0x22; 30]);
    (SrtpSession::new(&alice, &bob).unwrap(), SrtpSession::new(&bob, &alice).unwrap())
}

fn bench(c: &mut Criterion) {
    for suite in [CryptoSuite::AesCm128HmacSha1_80, CryptoSuite::AesCm128HmacSha1_32] {
        let name = suite.sdp_name();
        let (mut alice, mut bob) = sessions(suite);
        let mut rtp = RtpSender::new(0x1234, 0, 0, 0);
        let mut plain = Vec::with_capacity(200);
        let mut protected = Vec::with_capacity(200);
        let mut out = Vec::with_capacity(200);
        rtp.write_packet(&[0x55; 160], 160, &mut plain);
        assert_eq!(plain.len(), 172);

        c.bench_function(&format!("srtp protect 172 B {name}"), |b| {
            b.iter(|| alice.protect_rtp(std::hint::black_box(&plain), &mut out).unwrap())
        });
        // Each unprotect needs a fresh sequence number, or replay protection refuses it.
        c.bench_function(&format!("srtp unprotect 172 B {name}"), |b| {
            b.iter_batched(
                || {
                    rtp.write_packet(&[0x55; 160], 160, &mut plain);
                    alice.protect_rtp(&plain, &mut protected).unwrap();
                    protected.clone()
                },
                |packet| bob.unprotect_rtp(&packet, &mut out).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
