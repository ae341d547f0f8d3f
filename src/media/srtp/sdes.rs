//! The SDES key line of RFC 4568: the value of an SDP `a=crypto:` attribute,
//! `tag suite inline:key||salt[|lifetime][|mki:length] [session-params]`.
//! We accept one inline key per line, with or without lifetime and MKI, and
//! refuse what our SRTP cannot honour (other suites, several keys, key
//! derivation rates, unencrypted or unauthenticated variants).

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::{CryptoSuite, SrtpError};

/// Master key (16 bytes) followed by master salt (14 bytes).
pub const KEY_SALT_LEN: usize = 30;
/// RFC 4568 §6.1: an MKI field is 1 to 128 bytes long.
const MKI_MAX_LEN: u8 = 128;
/// SRTP's own ceiling on packets per master key (RFC 3711 §9.2).
const LIFETIME_MAX_EXPONENT: u32 = 48;

/// The master key identifier a key line asks every packet to carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mki {
    pub value: u64,
    /// Bytes the MKI field occupies in each packet, 1..=128.
    pub length: u8,
}

impl Mki {
    /// The field as it appears on the wire: `value` big-endian in `length` bytes.
    pub fn to_bytes(self) -> Vec<u8> {
        let mut bytes = vec![0; usize::from(self.length)];
        let value = self.value.to_be_bytes();
        let take = value.len().min(bytes.len());
        let at = bytes.len() - take;
        bytes[at..].copy_from_slice(&value[value.len() - take..]);
        bytes
    }
}

/// One `a=crypto:` line: an SRTP master key and how to use it.
#[derive(Clone, PartialEq, Eq)]
pub struct SdesCrypto {
    /// Pairs an answer's line with the offer's (RFC 4568 §5.1).
    pub tag: u32,
    pub suite: CryptoSuite,
    pub key_salt: [u8; KEY_SALT_LEN],
    /// Most packets (SRTP and SRTCP together) this key may protect.
    pub lifetime: Option<u64>,
    pub mki: Option<Mki>,
}

// The key never reaches a log through Debug.
impl fmt::Debug for SdesCrypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SdesCrypto")
            .field("tag", &self.tag)
            .field("suite", &self.suite)
            .field("key_salt", &"<redacted>")
            .field("lifetime", &self.lifetime)
            .field("mki", &self.mki)
            .finish()
    }
}

fn malformed(why: impl Into<String>) -> SrtpError {
    SrtpError::MalformedAttribute(why.into())
}

impl SdesCrypto {
    /// A fresh key line; `random_bytes` must come from a CSPRNG (the caller's).
    pub fn generate(tag: u32, suite: CryptoSuite, random_bytes: [u8; KEY_SALT_LEN]) -> Self {
        SdesCrypto { tag, suite, key_salt: random_bytes, lifetime: None, mki: None }
    }

    /// Parse the value of an `a=crypto:` attribute (what follows the colon).
    pub fn parse(attr_value: &str) -> Result<SdesCrypto, SrtpError> {
        let mut fields = attr_value.split_ascii_whitespace();
        let tag = fields.next().ok_or_else(|| malformed("empty"))?;
        let tag = tag.parse::<u32>().map_err(|_| malformed(format!("tag {tag:?} is not a number")))?;
        let suite = fields.next().ok_or_else(|| malformed("no crypto suite"))?;
        let suite = CryptoSuite::from_sdp_name(suite).ok_or_else(|| SrtpError::UnsupportedSuite(suite.to_owned()))?;
        let key_params = fields.next().ok_or_else(|| malformed("no key parameters"))?;
        for session_param in fields {
            check_session_param(session_param)?;
        }
        if key_params.contains(';') {
            return Err(SrtpError::Unsupported("more than one master key".into()));
        }
        let key_info = key_params
            .strip_prefix("inline:")
            .ok_or_else(|| malformed(format!("key method of {key_params:?} is not inline")))?;
        let mut parts = key_info.split('|');
        let key_salt = parse_key_salt(parts.next().unwrap_or_default())?;
        let (mut lifetime, mut mki) = (None, None);
        for part in parts {
            if mki.is_some() {
                return Err(malformed(format!("unexpected {part:?} after the MKI")));
            }
            if part.contains(':') {
                mki = Some(parse_mki(part)?);
            } else if lifetime.is_none() {
                lifetime = Some(parse_lifetime(part)?);
            } else {
                return Err(malformed(format!("second lifetime {part:?}")));
            }
        }
        Ok(SdesCrypto { tag, suite, key_salt, lifetime, mki })
    }

    /// The attribute value to put after `a=crypto:`.
    pub fn to_attribute_value(&self) -> String {
        let mut value = format!("{} {} inline:{}", self.tag, self.suite.sdp_name(), BASE64.encode(self.key_salt));
        if let Some(lifetime) = self.lifetime {
            if lifetime.is_power_of_two() {
                value += &format!("|2^{}", lifetime.trailing_zeros());
            } else {
                value += &format!("|{lifetime}");
            }
        }
        if let Some(mki) = self.mki {
            value += &format!("|{}:{}", mki.value, mki.length);
        }
        value
    }

    pub fn master_key(&self) -> &[u8] {
        &self.key_salt[..16]
    }

    pub fn master_salt(&self) -> &[u8] {
        &self.key_salt[16..]
    }
}

fn parse_key_salt(encoded: &str) -> Result<[u8; KEY_SALT_LEN], SrtpError> {
    let bytes = BASE64.decode(encoded).map_err(|e| SrtpError::Base64(e.to_string()))?;
    bytes.as_slice().try_into().map_err(|_| SrtpError::KeyLength(bytes.len()))
}

fn parse_lifetime(text: &str) -> Result<u64, SrtpError> {
    let lifetime = match text.strip_prefix("2^") {
        Some(exponent) => {
            let exponent = exponent.parse::<u32>().map_err(|_| malformed(format!("lifetime {text:?}")))?;
            1u64.checked_shl(exponent).filter(|_| exponent <= LIFETIME_MAX_EXPONENT)
        }
        None => text.parse::<u64>().ok(),
    };
    lifetime
        .filter(|packets| (1..=1 << LIFETIME_MAX_EXPONENT).contains(packets))
        .ok_or_else(|| malformed(format!("lifetime {text:?} is not 1..2^48 packets")))
}

fn parse_mki(text: &str) -> Result<Mki, SrtpError> {
    let bad = || malformed(format!("MKI {text:?} is not value:length with length 1..128 bytes"));
    let (value, length) = text.split_once(':').ok_or_else(bad)?;
    let value = value.parse::<u64>().map_err(|_| bad())?;
    let length = length.parse::<u8>().map_err(|_| bad())?;
    if !(1..=MKI_MAX_LEN).contains(&length) {
        return Err(bad());
    }
    if length < 8 && value >> (u32::from(length) * 8) != 0 {
        return Err(malformed(format!("MKI value {value} does not fit in {length} bytes")));
    }
    Ok(Mki { value, length })
}

/// RFC 4568 §6.3: session parameters we can ignore pass, the ones that
/// change how SRTP works are refused.
fn check_session_param(param: &str) -> Result<(), SrtpError> {
    // WSH only hints at a replay window (ours is 64, the minimum); FEC
    // parameters matter only with FEC; a leading '-' marks a parameter as ignorable.
    const IGNORABLE: [&str; 3] = ["WSH=", "FEC_ORDER=", "FEC_KEY="];
    if param.starts_with('-') || IGNORABLE.iter().any(|p| param.starts_with(p)) {
        return Ok(());
    }
    Err(SrtpError::Unsupported(format!("session parameter {param}")))
}
