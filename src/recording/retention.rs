//! `recording.retention_days`, as a pure decision: given what a sweep
//! found under `recording.dir` (regular files with their modification
//! times), the recordings still open and the wall-clock time, which files
//! to delete. The recorder's thread does the listing and the deleting.
//!
//! A recording's age is its file's modification time: the last write is
//! the end of the recording (a finished file is never written again), it
//! exists for every recording, a crash leftover without sidecar included,
//! and one lstat reads it, with no JSON to parse and trust. A sidecar goes
//! with its recording, never on its own.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{sidecar_of, RecordingFormat, ENCRYPTED_EXTENSION};

/// A regular file a sweep found (symbolic links are never listed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub path: PathBuf,
    pub modified: SystemTime,
}

/// The files to delete, each recording followed by its sidecar when the
/// listing has one: recordings (by their name, [`is_recording`]) not open,
/// last written more than `days` days before `now`.
pub fn expired(listing: &[Listed], open: &HashSet<PathBuf>, now: SystemTime, days: u32) -> Vec<PathBuf> {
    let keep_for = Duration::from_secs(u64::from(days) * 24 * 3600);
    let listed: HashSet<&Path> = listing.iter().map(|file| file.path.as_path()).collect();
    let mut doomed = Vec::new();
    for file in listing {
        // A modification time in the future is not old.
        let old = now.duration_since(file.modified).is_ok_and(|age| age > keep_for);
        if old && is_recording(&file.path) && !open.contains(&file.path) {
            doomed.push(file.path.clone());
            let sidecar = sidecar_of(&file.path);
            if listed.contains(sidecar.as_path()) {
                doomed.push(sidecar);
            }
        }
    }
    doomed
}

/// Whether `path` is named as the desk names recordings:
/// `YYYYMMDD-HHMMSS-…` with a recording format's extension, `.age` after
/// it when encrypted. Anything else in the folder is not ours to delete.
pub fn is_recording(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return false };
    let name = name.strip_suffix(ENCRYPTED_EXTENSION).and_then(|n| n.strip_suffix('.')).unwrap_or(name);
    let stamp = name.as_bytes();
    let dated = stamp.len() > 16
        && stamp[..8].iter().chain(&stamp[9..15]).all(u8::is_ascii_digit)
        && stamp[8] == b'-'
        && stamp[15] == b'-';
    let format = [RecordingFormat::Wav, RecordingFormat::OggOpus]
        .iter()
        .any(|f| name.strip_suffix(f.extension()).is_some_and(|stem| stem.ends_with('.')));
    dated && format
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn at(days_ago: u64, now: SystemTime) -> SystemTime {
        now - DAY * days_ago as u32
    }

    #[test]
    fn only_old_closed_recordings_and_their_sidecars_go() {
        let now = SystemTime::UNIX_EPOCH + DAY * 20_000;
        let file = |path: &str, days_ago: u64| Listed { path: PathBuf::from(path), modified: at(days_ago, now) };
        let listing = vec![
            file("/rec/2026/01/02/20260102-101010-c1-alice.wav", 40),
            file("/rec/2026/01/02/20260102-101010-c1-alice.json", 40),
            file("/rec/2026/01/03/20260103-101010-c2-bob.opus.age", 40),
            file("/rec/2026/01/03/20260103-101010-c3-carol.wav.age", 40),
            file("/rec/2026/01/03/20260103-101010-c3-carol.wav.json", 40),
            // Still being written, though its file is old.
            file("/rec/2026/01/04/20260104-101010-c4-dave.wav", 40),
            // Young.
            file("/rec/2026/02/10/20260210-101010-c5-erin.wav", 29),
            // Not recordings: an operator's notes, a stray sidecar, a look-alike.
            file("/rec/notes.txt", 400),
            file("/rec/2025/12/01/20251201-101010-c6-frank.json", 400),
            file("/rec/2025/12/01/minutes.wav", 400),
            file("/rec/2025/12/01/20251201-101010-c7.wav.bak", 400),
            // A clock set back: a modification time ahead of now.
            file("/rec/2026/03/01/20260301-101010-c8-gina.wav", 0),
        ];
        let mut listing = listing;
        listing.last_mut().unwrap().modified = now + DAY;
        let open: HashSet<PathBuf> = [PathBuf::from("/rec/2026/01/04/20260104-101010-c4-dave.wav")].into();
        let doomed: Vec<String> = expired(&listing, &open, now, 30).iter().map(|p| p.display().to_string()).collect();
        assert_eq!(
            doomed,
            [
                "/rec/2026/01/02/20260102-101010-c1-alice.wav",
                "/rec/2026/01/02/20260102-101010-c1-alice.json",
                "/rec/2026/01/03/20260103-101010-c2-bob.opus.age",
                "/rec/2026/01/03/20260103-101010-c3-carol.wav.age",
                "/rec/2026/01/03/20260103-101010-c3-carol.wav.json",
            ]
        );
        assert!(expired(&listing, &open, now, 41).is_empty(), "nothing is 41 days old");
    }

    #[test]
    fn recordings_are_known_by_the_names_the_desk_gives_them() {
        for name in ["20261204-050000-c1-alice.wav", "20261204-050000-c1.opus", "20261204-050000-c1-x.opus.age"] {
            assert!(is_recording(Path::new(name)), "{name}");
        }
        for name in [
            "20261204-050000-c1.json",
            "2026120-050000-c1.wav",
            "20261204-050000-.wavx",
            "x.wav",
            "20261204-050000-c1.age",
        ] {
            assert!(!is_recording(Path::new(name)), "{name}");
        }
    }
}
