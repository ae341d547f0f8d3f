use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::media::rtp::RtpSender;

const SUITES: [CryptoSuite; 2] = [CryptoSuite::AesCm128HmacSha1_80, CryptoSuite::AesCm128HmacSha1_32];

// libsrtp's srtp_validate() reference vectors (test/srtp_driver.c): default
// policy, SSRC 0xcafebabe, sequence 0x1234, ROC 0.
const LIBSRTP_KEY_SALT: [u8; 30] = [
    0xe1, 0xf9, 0x7a, 0x0d, 0x3e, 0x01, 0x8b, 0xe0, 0xd6, 0x4f, 0xa3, 0x2c, 0x06, 0xde, 0x41, 0x39, // key
    0x0e, 0xc6, 0x75, 0xad, 0x49, 0x8a, 0xfe, 0xeb, 0xb6, 0x96, 0x0b, 0x3a, 0xab, 0xe6, // salt
];
const LIBSRTP_RTP: [u8; 28] = [
    0x80, 0x0f, 0x12, 0x34, 0xde, 0xca, 0xfb, 0xad, 0xca, 0xfe, 0xba, 0xbe, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab,
    0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab,
];
const LIBSRTP_SRTP_80: [u8; 38] = [
    0x80, 0x0f, 0x12, 0x34, 0xde, 0xca, 0xfb, 0xad, 0xca, 0xfe, 0xba, 0xbe, 0x4e, 0x55, 0xdc, 0x4c, 0xe7, 0x99, 0x78,
    0xd8, 0x8c, 0xa4, 0xd2, 0x15, 0x94, 0x9d, 0x24, 0x02, 0xb7, 0x8d, 0x6a, 0xcc, 0x99, 0xea, 0x17, 0x9b, 0x8d, 0xbb,
];
const LIBSRTP_RTCP: [u8; 24] = [
    0x81, 0xc8, 0x00, 0x0b, 0xca, 0xfe, 0xba, 0xbe, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab,
    0xab, 0xab, 0xab, 0xab, 0xab,
];
// The first SRTCP packet carries index 1 (E flag set: 0x80000001).
const LIBSRTP_SRTCP: [u8; 38] = [
    0x81, 0xc8, 0x00, 0x0b, 0xca, 0xfe, 0xba, 0xbe, 0x71, 0x28, 0x03, 0x5b, 0xe4, 0x87, 0xb9, 0xbd, 0xbe, 0xf8, 0x90,
    0x41, 0xf9, 0x77, 0xa5, 0xa8, 0x80, 0x00, 0x00, 0x01, 0x99, 0x3e, 0x08, 0xcd, 0x54, 0xd6, 0xc1, 0x23, 0x07, 0x98,
];

fn key(suite: CryptoSuite, seed: u64) -> SdesCrypto {
    SdesCrypto::generate(1, suite, StdRng::seed_from_u64(seed).random())
}

/// Alice's and Bob's sessions for one call: each protects with its own key.
fn pair(alice: &SdesCrypto, bob: &SdesCrypto) -> (SrtpSession, SrtpSession) {
    (SrtpSession::new(alice, bob).unwrap(), SrtpSession::new(bob, alice).unwrap())
}

#[test]
fn matches_libsrtp_reference_vectors() {
    let mut out = Vec::new();
    for suite in SUITES {
        let reference = SdesCrypto::generate(1, suite, LIBSRTP_KEY_SALT);
        let mut sender = SrtpSession::new(&reference, &key(suite, 0)).unwrap();
        sender.protect_rtp(&LIBSRTP_RTP, &mut out).unwrap();
        // The 32-bit tag is the 80-bit one truncated.
        assert_eq!(out, LIBSRTP_SRTP_80[..28 + suite.rtp_auth_tag_len()], "{suite:?}");
        sender.protect_rtcp(&LIBSRTP_RTCP, &mut out).unwrap();
        assert_eq!(out, LIBSRTP_SRTCP, "{suite:?}: SRTCP keeps an 80-bit tag");

        let mut receiver = SrtpSession::new(&key(suite, 0), &reference).unwrap();
        receiver.unprotect_rtp(&LIBSRTP_SRTP_80[..28 + suite.rtp_auth_tag_len()], &mut out).unwrap();
        assert_eq!(out, LIBSRTP_RTP);
        receiver.unprotect_rtcp(&LIBSRTP_SRTCP, &mut out).unwrap();
        assert_eq!(out, LIBSRTP_RTCP);
    }
}

#[test]
fn round_trip_both_ways_across_a_sequence_wrap() {
    for suite in SUITES {
        let (mut alice, mut bob) = pair(&key(suite, 1), &key(suite, 2));
        let mut rtp = RtpSender::new(0x1111, 65_530, 0, 0);
        let (mut plain, mut protected, mut back) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..20u8 {
            rtp.write_packet(&[i; 160], 160, &mut plain);
            alice.protect_rtp(&plain, &mut protected).unwrap();
            assert_eq!(protected.len(), plain.len() + suite.rtp_auth_tag_len());
            assert_ne!(protected[12..172], plain[12..], "payload encrypted");
            bob.unprotect_rtp(&protected, &mut back).unwrap();
            assert_eq!(back, plain, "{suite:?} packet {i}");
            // And the other way, with Bob's key.
            bob.protect_rtp(&plain, &mut protected).unwrap();
            alice.unprotect_rtp(&protected, &mut back).unwrap();
            assert_eq!(back, plain);
        }
        let rtcp = &LIBSRTP_RTCP;
        for _ in 0..3 {
            alice.protect_rtcp(rtcp, &mut protected).unwrap();
            bob.unprotect_rtcp(&protected, &mut back).unwrap();
            assert_eq!(back, rtcp);
        }
    }
}

#[test]
fn tampering_and_wrong_keys_fail_authentication() {
    for suite in SUITES {
        let (mut alice, mut bob) = pair(&key(suite, 1), &key(suite, 2));
        let mut protected = Vec::new();
        let mut out = Vec::new();
        alice.protect_rtp(&LIBSRTP_RTP, &mut protected).unwrap();
        for byte in [2, 20, protected.len() - 1] {
            let mut tampered = protected.clone();
            tampered[byte] ^= 0x01;
            assert_eq!(bob.unprotect_rtp(&tampered, &mut out), Err(SrtpError::AuthenticationFailed), "byte {byte}");
        }
        let mut stranger = SrtpSession::new(&key(suite, 9), &key(suite, 3)).unwrap();
        assert_eq!(stranger.unprotect_rtp(&protected, &mut out), Err(SrtpError::AuthenticationFailed));
        // The genuine packet still passes after the forgeries.
        bob.unprotect_rtp(&protected, &mut out).unwrap();

        alice.protect_rtcp(&LIBSRTP_RTCP, &mut protected).unwrap();
        protected[10] ^= 0x80;
        assert_eq!(bob.unprotect_rtcp(&protected, &mut out), Err(SrtpError::AuthenticationFailed));
    }
}

#[test]
fn replays_are_refused() {
    let (mut alice, mut bob) =
        pair(&key(CryptoSuite::AesCm128HmacSha1_80, 1), &key(CryptoSuite::AesCm128HmacSha1_80, 2));
    let (mut protected, mut out) = (Vec::new(), Vec::new());
    alice.protect_rtp(&LIBSRTP_RTP, &mut protected).unwrap();
    bob.unprotect_rtp(&protected, &mut out).unwrap();
    assert_eq!(bob.unprotect_rtp(&protected, &mut out), Err(SrtpError::Replayed));
    alice.protect_rtcp(&LIBSRTP_RTCP, &mut protected).unwrap();
    bob.unprotect_rtcp(&protected, &mut out).unwrap();
    assert_eq!(bob.unprotect_rtcp(&protected, &mut out), Err(SrtpError::Replayed));
}

#[test]
fn a_forgery_ahead_of_the_first_packet_does_not_shift_the_replay_window() {
    let suite = CryptoSuite::AesCm128HmacSha1_80;
    let (mut alice, mut bob) = pair(&key(suite, 1), &key(suite, 2));
    let (mut plain, mut protected, mut out) = (Vec::new(), Vec::new(), Vec::new());
    let mut rtp = RtpSender::new(5, 1000, 0, 0);
    rtp.write_packet(&[1; 160], 160, &mut plain);
    alice.protect_rtp(&plain, &mut protected).unwrap();
    let mut forged = protected.clone();
    forged[2..4].copy_from_slice(&30_000u16.to_be_bytes());
    assert_eq!(bob.unprotect_rtp(&forged, &mut out), Err(SrtpError::AuthenticationFailed));
    bob.unprotect_rtp(&protected, &mut out).unwrap();
    assert_eq!(out, plain);
}

#[test]
fn reordering_within_the_window_is_accepted_once() {
    let suite = CryptoSuite::AesCm128HmacSha1_32;
    let (mut alice, mut bob) = pair(&key(suite, 1), &key(suite, 2));
    let mut rtp = RtpSender::new(5, 65_534, 0, 0);
    let mut plain = Vec::new();
    let packets: Vec<Vec<u8>> = (0..4)
        .map(|_| {
            let mut protected = Vec::new();
            rtp.write_packet(&[1; 160], 160, &mut plain);
            alice.protect_rtp(&plain, &mut protected).unwrap();
            protected
        })
        .collect();
    let mut out = Vec::new();
    for i in [0, 2, 1, 3] {
        bob.unprotect_rtp(&packets[i], &mut out).unwrap();
    }
    assert_eq!(bob.unprotect_rtp(&packets[1], &mut out), Err(SrtpError::Replayed));
}

#[test]
fn unencrypted_srtcp_is_refused_because_rtc_srtp_would_not_authenticate_it() {
    let suite = CryptoSuite::AesCm128HmacSha1_80;
    let (mut alice, mut bob) = pair(&key(suite, 1), &key(suite, 2));
    let (mut protected, mut out) = (Vec::new(), Vec::new());
    alice.protect_rtcp(&LIBSRTP_RTCP, &mut protected).unwrap();
    let e_flag = protected.len() - SRTCP_AUTH_TAG_LEN - 4;
    let mut forged = protected.clone();
    forged[e_flag] &= 0x7f;
    assert_eq!(bob.unprotect_rtcp(&forged, &mut out), Err(SrtpError::UnencryptedSrtcp));
    // A forged BYE with E=0 and a made-up tag.
    let mut bye = vec![0x81, 203, 0, 1, 0, 0, 0, 9, 0, 0, 0, 1];
    bye.extend_from_slice(&[0; SRTCP_AUTH_TAG_LEN]);
    assert_eq!(bob.unprotect_rtcp(&bye, &mut out), Err(SrtpError::UnencryptedSrtcp));
    bob.unprotect_rtcp(&protected, &mut out).unwrap();
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let (_, mut bob) = pair(&key(CryptoSuite::AesCm128HmacSha1_32, 1), &key(CryptoSuite::AesCm128HmacSha1_32, 2));
    let mut out = Vec::new();
    assert!(bob.unprotect_rtp(&[], &mut out).is_err());
    assert!(bob.unprotect_rtp(&LIBSRTP_RTP[..14], &mut out).is_err());
    assert!(bob.unprotect_rtcp(&LIBSRTP_RTCP[..12], &mut out).is_err());
    let mut rng = StdRng::seed_from_u64(4);
    let mut buf = [0u8; 64];
    for _ in 0..5_000 {
        let len = rng.random_range(0..buf.len());
        rng.fill(&mut buf[..len]);
        buf[0] = 0x80 | (buf[0] & 0x3f);
        assert!(bob.unprotect_rtp(&buf[..len], &mut out).is_err());
        assert!(bob.unprotect_rtcp(&buf[..len], &mut out).is_err());
    }
}

#[test]
fn mki_sits_before_the_tag_and_must_match() {
    let suite = CryptoSuite::AesCm128HmacSha1_80;
    let plain_key = key(suite, 1);
    let with_mki = SdesCrypto { mki: Some(Mki { value: 0x0102, length: 4 }), ..plain_key.clone() };
    let (mut protected, mut reference, mut out) = (Vec::new(), Vec::new(), Vec::new());
    SrtpSession::new(&with_mki, &key(suite, 2)).unwrap().protect_rtp(&LIBSRTP_RTP, &mut protected).unwrap();
    SrtpSession::new(&plain_key, &key(suite, 2)).unwrap().protect_rtp(&LIBSRTP_RTP, &mut reference).unwrap();
    // Same key, same packet: identical but for the MKI in front of the 10-byte tag.
    assert_eq!(protected.len(), reference.len() + 4);
    assert_eq!(protected[..28], reference[..28]);
    assert_eq!(protected[28..32], [0, 0, 1, 2]);
    assert_eq!(protected[32..], reference[28..]);

    let mut receiver = SrtpSession::new(&key(suite, 2), &with_mki).unwrap();
    receiver.unprotect_rtp(&protected, &mut out).unwrap();
    assert_eq!(out, LIBSRTP_RTP);
    let other_mki = SdesCrypto { mki: Some(Mki { value: 7, length: 4 }), ..plain_key };
    let mut confused = SrtpSession::new(&key(suite, 2), &other_mki).unwrap();
    assert_eq!(confused.unprotect_rtp(&protected, &mut out), Err(SrtpError::MkiMismatch));

    let mut sender = SrtpSession::new(&with_mki, &key(suite, 2)).unwrap();
    sender.protect_rtcp(&LIBSRTP_RTCP, &mut protected).unwrap();
    assert_eq!(protected[28..32], [0, 0, 1, 2], "SRTCP: after E+index, before the tag");
    receiver.unprotect_rtcp(&protected, &mut out).unwrap();
    assert_eq!(out, LIBSRTP_RTCP);
}

#[test]
fn a_key_lifetime_is_enforced() {
    let suite = CryptoSuite::AesCm128HmacSha1_80;
    let short_lived = SdesCrypto { lifetime: Some(2), ..key(suite, 1) };
    let (mut alice, mut bob) = pair(&short_lived, &key(suite, 2));
    let (mut plain, mut protected, mut out) = (Vec::new(), Vec::new(), Vec::new());
    let mut rtp = RtpSender::new(5, 0, 0, 0);
    for _ in 0..2 {
        rtp.write_packet(&[1; 160], 160, &mut plain);
        alice.protect_rtp(&plain, &mut protected).unwrap();
        bob.unprotect_rtp(&protected, &mut out).unwrap();
    }
    assert_eq!(alice.protect_rtcp(&LIBSRTP_RTCP, &mut protected), Err(SrtpError::KeyLifetimeExceeded(2)));
}

const RFC4568_EXAMPLE: &str = "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:32";

#[test]
fn real_world_key_lines_parse_and_format_back() {
    let rfc = SdesCrypto::parse(RFC4568_EXAMPLE).unwrap();
    assert_eq!((rfc.tag, rfc.suite), (1, CryptoSuite::AesCm128HmacSha1_80));
    assert_eq!(&rfc.key_salt[..4], b"YS__");
    assert_eq!((rfc.lifetime, rfc.mki), (Some(1 << 20), Some(Mki { value: 1, length: 32 })));
    assert_eq!(rfc.to_attribute_value(), RFC4568_EXAMPLE);

    // Asterisk (res_srtp) and baresip offer both suites, plain inline keys.
    for line in [
        "1 AES_CM_128_HMAC_SHA1_80 inline:Ktl6fZHsD/4OjOYfBUOw7zOO0SSuR2odVeUCsBVE",
        "2 AES_CM_128_HMAC_SHA1_32 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj",
        "1 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|2^31",
        "3 AES_CM_128_HMAC_SHA1_32 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|2^31|1:1",
    ] {
        let parsed = SdesCrypto::parse(line).unwrap();
        assert_eq!(parsed.to_attribute_value(), line);
        assert_eq!(SdesCrypto::parse(&parsed.to_attribute_value()).unwrap(), parsed);
    }
    let lenient = SdesCrypto::parse(
        "1  AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|1048576 WSH=128 -VENDOR_X",
    )
    .unwrap();
    assert_eq!(lenient.lifetime, Some(1 << 20));
    assert_eq!(
        lenient.to_attribute_value(),
        "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20"
    );

    let generated = key(CryptoSuite::AesCm128HmacSha1_32, 5);
    assert_eq!(SdesCrypto::parse(&generated.to_attribute_value()).unwrap(), generated);
    assert!(!format!("{generated:?}").contains(&format!("{:?}", generated.key_salt)), "Debug hides the key");
}

#[test]
fn bad_key_lines_say_what_is_wrong() {
    let key = "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
    type Expectation = fn(&SrtpError) -> bool;
    let cases: [(String, Expectation); 15] = [
        (String::new(), |e| matches!(e, SrtpError::MalformedAttribute(_))),
        (format!("x AES_CM_128_HMAC_SHA1_80 {key}"), |e| matches!(e, SrtpError::MalformedAttribute(_))),
        (
            format!("1 AES_256_CM_HMAC_SHA1_80 {key}"),
            |e| matches!(e, SrtpError::UnsupportedSuite(s) if s == "AES_256_CM_HMAC_SHA1_80"),
        ),
        (format!("1 F8_128_HMAC_SHA1_80 {key}"), |e| matches!(e, SrtpError::UnsupportedSuite(_))),
        ("1 AES_CM_128_HMAC_SHA1_80".into(), |e| matches!(e, SrtpError::MalformedAttribute(_))),
        ("1 AES_CM_128_HMAC_SHA1_80 uri:https://kms".into(), |e| matches!(e, SrtpError::MalformedAttribute(_))),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:AAAAAAAAAAAAAAAAAAAAAA==".into(), |e| *e == SrtpError::KeyLength(16)),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:not*base64!".into(), |e| matches!(e, SrtpError::Base64(_))),
        (format!("1 AES_CM_128_HMAC_SHA1_80 {key}|2^20|1:32;{key}|2^20|2:32"), |e| {
            matches!(e, SrtpError::Unsupported(_))
        }),
        (format!("1 AES_CM_128_HMAC_SHA1_80 {key}|1:0"), |e| matches!(e, SrtpError::MalformedAttribute(_))),
        (format!("1 AES_CM_128_HMAC_SHA1_80 {key}|1:200"), |e| matches!(e, SrtpError::MalformedAttribute(_))),
        (format!("1 AES_CM_128_HMAC_SHA1_80 {key}|256:1"), |e| matches!(e, SrtpError::MalformedAttribute(_))),
        (format!("1 AES_CM_128_HMAC_SHA1_80 {key}|2^49"), |e| matches!(e, SrtpError::MalformedAttribute(_))),
        (format!("1 AES_CM_128_HMAC_SHA1_80 {key} KDR=23"), |e| matches!(e, SrtpError::Unsupported(_))),
        (format!("1 AES_CM_128_HMAC_SHA1_80 {key} UNENCRYPTED_SRTP"), |e| matches!(e, SrtpError::Unsupported(_))),
    ];
    for (line, expected) in &cases {
        let error = SdesCrypto::parse(line).unwrap_err();
        assert!(expected(&error), "{line:?} gave {error:?}");
        assert!(!error.to_string().is_empty());
    }
}
