//! The bridge's paired workspaces: for each, its origin and the SHA-256 of
//! its token, never the token itself (it is shown once, at pairing). Kept
//! in a small JSON file replaced atomically, so that a crash mid-write
//! leaves the old list, not half a new one.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// One paired workspace, as listed (no secret in it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Pairing {
    pub id: String,
    pub origin: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    #[serde(flatten)]
    pairing: Pairing,
    /// Hex SHA-256 of the token.
    token_sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PairingError {
    #[error("bridge pairings {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{0:?} is not in bridge.allowed_origins: a page from it could not connect")]
    UnknownOrigin(String),
}

pub struct Pairings {
    path: PathBuf,
    stored: Vec<Stored>,
}

/// A token: 32 random bytes (the caller draws them), base64url.
pub fn token_text(random: &[u8; 32]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
}

/// The hex SHA-256 of a token, as stored.
fn digest(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

impl Pairings {
    /// The list kept at `path`; none yet when the file does not exist.
    pub fn load(path: &Path) -> Result<Pairings, PairingError> {
        let file_error = |message: String| PairingError::File { path: path.into(), message };
        let stored = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| file_error(e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(file_error(e.to_string())),
        };
        Ok(Pairings { path: path.into(), stored })
    }

    pub fn list(&self) -> Vec<Pairing> {
        self.stored.iter().map(|s| s.pairing.clone()).collect()
    }

    /// Pair `origin` with the token made of `random`; `id` names the
    /// pairing. Saved before the token is returned.
    pub fn pair(
        &mut self,
        origin: &str,
        id: String,
        random: &[u8; 32],
        created_at: String,
    ) -> Result<(Pairing, String), PairingError> {
        let token = token_text(random);
        let pairing = Pairing { id, origin: origin.into(), created_at };
        let token_sha256 = digest(&token);
        self.stored.push(Stored { pairing: pairing.clone(), token_sha256 });
        if let Err(e) = self.save() {
            self.stored.pop();
            return Err(e);
        }
        Ok((pairing, token))
    }

    /// Forget pairing `id`; whether there was one.
    pub fn revoke(&mut self, id: &str) -> Result<bool, PairingError> {
        let before = self.stored.len();
        let kept: Vec<Stored> = self.stored.iter().filter(|s| s.pairing.id != id).cloned().collect();
        if kept.len() == before {
            return Ok(false);
        }
        let old = std::mem::replace(&mut self.stored, kept);
        if let Err(e) = self.save() {
            self.stored = old;
            return Err(e);
        }
        Ok(true)
    }

    /// The pairing `token` belongs to, if it was issued to `origin`. Every
    /// stored hash is compared, in constant time, whatever matches.
    pub fn verify(&self, origin: &str, token: &str) -> Option<&Pairing> {
        let presented = digest(token);
        let mut found = None;
        for stored in &self.stored {
            if bool::from(stored.token_sha256.as_bytes().ct_eq(presented.as_bytes())) && stored.pairing.origin == origin
            {
                found = Some(&stored.pairing);
            }
        }
        found
    }

    /// Write to a temporary file beside the list, flush it to disk, then
    /// rename it over the list.
    fn save(&self) -> Result<(), PairingError> {
        let file_error = |e: std::io::Error| PairingError::File { path: self.path.clone(), message: e.to_string() };
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(file_error)?;
        }
        let partial = self.path.with_extension("json.partial");
        let text = serde_json::to_vec_pretty(&self.stored).expect("plain data");
        {
            use std::io::Write;
            let mut file = std::fs::File::create(&partial).map_err(file_error)?;
            file.write_all(&text).map_err(file_error)?;
            file.sync_all().map_err(file_error)?;
        }
        std::fs::rename(&partial, &self.path).map_err(file_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_works_for_its_origin_only_until_revoked_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pairings.json");
        let mut pairings = Pairings::load(&path).unwrap();
        let origin = "http://127.0.0.1:8080";
        let (pairing, token) = pairings.pair(origin, "p1".into(), &[7; 32], "2026-12-03T12:00:00Z".into()).unwrap();
        assert_eq!(token.len(), 43);
        assert_eq!(pairings.verify(origin, &token), Some(&pairing));
        assert_eq!(pairings.verify("http://evil.example", &token), None, "another origin");
        assert_eq!(pairings.verify(origin, &token_text(&[8; 32])), None, "another token");
        let saved = std::fs::read_to_string(&path).unwrap();
        assert!(!saved.contains(&token), "only the hash is kept");
        let reloaded = Pairings::load(&path).unwrap();
        assert_eq!(reloaded.verify(origin, &token), Some(&pairing));
        let mut reloaded = reloaded;
        assert!(reloaded.revoke("p1").unwrap());
        assert!(!reloaded.revoke("p1").unwrap());
        assert_eq!(Pairings::load(&path).unwrap().verify(origin, &token), None);
    }

    #[test]
    fn a_damaged_file_is_named_not_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pairings.json");
        std::fs::write(&path, b"{ not json").unwrap();
        let refused = Pairings::load(&path).err().unwrap().to_string();
        assert!(refused.contains("pairings.json"), "{refused}");
        assert_eq!(std::fs::read(&path).unwrap(), b"{ not json");
    }
}
