//! The recorder's files at rest, off the media path on its thread: the
//! metadata sidecar beside each recording (`crate::recording::sidecar_of`:
//! replaced whole, sealed at the end with the sha256 of the file as
//! stored); at start, the recovery of recordings a crash left open; the
//! retention sweep's deletions (what to delete is
//! `crate::recording::retention`'s pure decision); and, for ops, the
//! decryption of an encrypted recording, which also recovers one a crash
//! cut short (`super::sealed` says why that works).
//!
//! The walk of `recording.dir` never follows a symbolic link (to a folder
//! or a file), so nothing outside it is ever listed, hence ever deleted.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::{file, sealed};
use crate::recording::retention::{expired, Listed};
use crate::recording::{metadata, sidecar_of};

/// Write the sidecar of a finished recording: its metadata and the sha256
/// of the file as it is stored, which for an encrypted one is the age
/// ciphertext (`sha256_of` says which).
pub(super) fn seal(recording: &Path, mut metadata: Map<String, Value>) -> io::Result<()> {
    metadata.insert("sha256".into(), sha256(recording)?.into());
    let of = if sealed::is_sealed(recording) { "ciphertext" } else { "plaintext" };
    metadata.insert("sha256_of".into(), of.into());
    metadata.insert("file".into(), recording.file_name().map(|n| n.to_string_lossy().into_owned()).into());
    write_sidecar(recording, &metadata)
}

/// Replace the sidecar of `wav` as a whole: written beside it, synced, then
/// renamed over the old one, so a crash leaves the old or the new, never half.
pub(super) fn write_sidecar(wav: &Path, metadata: &Map<String, Value>) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let text = serde_json::to_vec_pretty(metadata).map_err(io::Error::other)?;
    let sidecar = sidecar_of(wav);
    let fresh = sidecar.with_extension("json.new");
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o640).open(&fresh)?;
    file.write_all(&text)?;
    file.sync_all()?;
    std::fs::rename(&fresh, &sidecar)
}

/// What a sidecar says, if it can be read.
fn read_sidecar(wav: &Path) -> Option<Map<String, Value>> {
    match serde_json::from_slice(&std::fs::read(sidecar_of(wav)).ok()?).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

pub(super) fn sha256(path: &Path) -> io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = [0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Seal every recording under `dir` that a crash or kill left open (no
/// sidecar, or the provisional one written at its start), keeping what the
/// provisional sidecar said and saying it was recovered. A plain WAV is
/// repaired first; an encrypted one can't be, and needs no repair: its
/// complete chunks are what `softphonectl recording decrypt` gives back.
/// A second sealing a crash interrupted is deleted: the first is whole.
pub(super) fn recover(dir: &Path) {
    for path in list(dir).into_iter().map(|file| file.path) {
        if path.extension().is_some_and(|e| e == "resealing") {
            match std::fs::remove_file(&path) {
                Ok(()) => tracing::warn!(path = %path.display(), "unfinished second sealing deleted"),
                Err(e) => tracing::error!(path = %path.display(), error = %e, "cannot delete an unfinished sealing"),
            }
            continue;
        }
        let wav = path.extension().is_some_and(|e| e == "wav");
        if !wav && !sealed::is_sealed(&path) {
            continue;
        }
        let known = read_sidecar(&path);
        let left_open = !sidecar_of(&path).exists() || known.as_ref().is_some_and(|m| m.contains_key("provisional"));
        if !left_open {
            continue;
        }
        let mut sidecar = known.unwrap_or_default();
        sidecar.remove("provisional");
        let note = if wav {
            "left open by a crash; repaired at start"
        } else {
            "left open by a crash; decrypting recovers every complete 64 KiB chunk"
        };
        sidecar.extend(metadata(json!({ "recovered": true, "note": note })));
        let repaired = if wav { file::repair(&path).map(drop) } else { Ok(()) };
        match repaired.and_then(|_| seal(&path, sidecar)) {
            Ok(()) => tracing::warn!(path = %path.display(), "recording left by a crash recovered"),
            Err(e) => tracing::error!(path = %path.display(), error = %e, "cannot recover a crashed recording"),
        }
    }
}

/// Every regular file under `dir`, folders entered without following links.
pub(super) fn list(dir: &Path) -> Vec<Listed> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    // Bounded: a recording tree is a few levels of dates.
    while let Some(folder) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else { continue };
        for entry in entries.flatten() {
            // The entry's own type: a link is a link, whatever it points to.
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                let Ok(modified) = entry.metadata().and_then(|m| m.modified()) else { continue };
                files.push(Listed { path: entry.path(), modified });
            }
        }
    }
    files
}

/// Delete what has outlived `days` under `dir`, never a file in `open`.
/// Returns how many files went.
pub(super) fn sweep(dir: &Path, days: u32, open: &HashSet<PathBuf>, now: SystemTime) -> usize {
    let doomed = expired(&list(dir), open, now, days);
    let mut deleted = 0;
    for path in doomed {
        match std::fs::remove_file(&path) {
            Ok(()) => deleted += 1,
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "retention: cannot delete"),
        }
    }
    if deleted > 0 {
        tracing::info!(dir = %dir.display(), days, deleted, "retention: old recordings deleted");
    }
    deleted
}

/// What [`decrypt`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decrypted {
    /// Plaintext bytes written.
    pub bytes: u64,
    /// Why the file ended early (a crash cut it; every complete chunk
    /// before the cut was kept), or `None` for a whole file.
    pub cut: Option<String>,
}

/// Decrypt the age file `input` with the identities in `identity_file` (as
/// `age-keygen` writes them) into `output` (created new, mode 0600: it is
/// plaintext). A file cut short by a crash gives every complete chunk; a
/// WAV gets its true sizes.
pub fn decrypt(identity_file: &Path, input: &Path, output: &Path) -> io::Result<Decrypted> {
    let identities = age::IdentityFile::from_file(identity_file.to_string_lossy().into_owned())
        .and_then(|file| file.into_identities().map_err(io::Error::other))
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", identity_file.display())))?;
    let decryptor = age::Decryptor::new(BufReader::new(File::open(input)?))
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", input.display())))?;
    let mut reader = decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", input.display())))?;
    let mut out = OpenOptions::new().write(true).create_new(true).mode(0o600).open(output)?;
    let mut buffer = vec![0u8; 64 * 1024];
    let mut written = Decrypted { bytes: 0, cut: None };
    let mut head = [0u8; 12];
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // The header authenticated, so an error here is the stream's
            // tail: truncated, or a chunk that does not authenticate.
            Err(e) => {
                written.cut = Some(e.to_string());
                break;
            }
        };
        let at = written.bytes as usize;
        if at < head.len() {
            let take = (head.len() - at).min(n);
            head[at..at + take].copy_from_slice(&buffer[..take]);
        }
        out.write_all(&buffer[..n])?;
        written.bytes += n as u64;
    }
    out.sync_all()?;
    drop(out);
    if &head[..4] == b"RIFF" && &head[8..] == b"WAVE" {
        file::repair(output)?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_sweep_deletes_old_recordings_inside_the_folder_and_never_follows_a_link_out() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("rec");
        let outside = root.path().join("elsewhere");
        std::fs::create_dir_all(dir.join("2026/01/02")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let old = dir.join("2026/01/02/20260102-101010-c1-alice.wav");
        let kept = outside.join("20260102-101010-c2-bob.wav");
        for path in [&old, &sidecar(&old), &kept] {
            std::fs::write(path, b"x").unwrap();
        }
        std::os::unix::fs::symlink(&outside, dir.join("2026/01/03")).unwrap();
        std::os::unix::fs::symlink(&kept, dir.join("2026/01/02/20260102-101011-c3-link.wav")).unwrap();
        let later = SystemTime::now() + Duration::from_secs(100 * 24 * 3600);
        assert_eq!(sweep(&dir, 30, &HashSet::new(), later), 2);
        assert!(!old.exists() && !sidecar(&old).exists());
        assert!(kept.exists(), "a link out of the folder is not followed");
        assert!(dir.join("2026/01/02/20260102-101011-c3-link.wav").symlink_metadata().is_ok(), "nor deleted");
    }

    #[test]
    fn an_unfinished_second_sealing_is_deleted_at_start_and_the_recording_kept() {
        let dir = tempfile::tempdir().unwrap();
        let recording = dir.path().join("20260102-101010-c1-alice.wav.age");
        let leftover = sealed::resealing_path(&recording);
        std::fs::write(&recording, b"age-encryption.org/v1\n").unwrap();
        std::fs::write(&leftover, b"age-encryption.org/v1\n").unwrap();
        recover(dir.path());
        assert!(!leftover.exists());
        assert!(recording.exists() && sidecar(&recording).exists(), "the first sealing is kept and sealed");
    }

    fn sidecar(path: &Path) -> PathBuf {
        crate::recording::sidecar_of(path)
    }

    fn keys(dir: &Path) -> (PathBuf, age::x25519::Recipient) {
        let identity = age::x25519::Identity::generate();
        let path = dir.join("key.txt");
        use age::secrecy::ExposeSecret;
        std::fs::write(&path, format!("{}\n", identity.to_string().expose_secret())).unwrap();
        (path, identity.to_public())
    }

    #[test]
    fn a_sealed_output_decrypts_whole_and_a_cut_one_gives_every_complete_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let (key, recipient) = keys(dir.path());
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();

        let whole = dir.path().join("whole.bin.age");
        let mut output = sealed::Output::create(&whole, std::slice::from_ref(&recipient)).unwrap();
        output.write_all(&data).unwrap();
        output.finish().unwrap();
        let back = dir.path().join("whole.bin");
        assert_eq!(decrypt(&key, &whole, &back).unwrap(), Decrypted { bytes: 200_000, cut: None });
        assert_eq!(std::fs::read(&back).unwrap(), data);

        // A kill -9: the stream is never finished; the full chunks are in the file.
        let cut = dir.path().join("cut.bin.age");
        let mut output = sealed::Output::create(&cut, &[recipient]).unwrap();
        output.write_all(&data).unwrap();
        std::mem::forget(output);
        let back = dir.path().join("cut.bin");
        let got = decrypt(&key, &cut, &back).unwrap();
        assert_eq!(got.bytes, 3 * 64 * 1024, "three of the four chunks were complete");
        assert!(got.cut.is_some());
        assert_eq!(std::fs::read(&back).unwrap(), data[..3 * 64 * 1024]);

        // Cut again, mid-chunk (a kill during the write itself).
        let len = std::fs::metadata(&cut).unwrap().len();
        let file = OpenOptions::new().write(true).open(&cut).unwrap();
        file.set_len(len - 1000).unwrap();
        std::fs::remove_file(&back).unwrap();
        assert_eq!(decrypt(&key, &cut, &back).unwrap().bytes, 2 * 64 * 1024);

        let other = dir.path().join("other");
        std::fs::create_dir(&other).unwrap();
        let (stranger, _) = keys(&other);
        assert!(decrypt(&stranger, &whole, &dir.path().join("nope")).is_err(), "another key opens nothing");
    }
}
