//! The recorder thread's walks of `recording.dir`: the listing that the
//! crash recovery at start and the retention sweep both read, and the
//! sweep's deletions (what to delete is `crate::recording::retention`'s
//! pure decision).
//!
//! The walk never follows a symbolic link (to a folder or a file), so
//! nothing outside `recording.dir` is ever listed, hence ever deleted.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::recording::retention::{expired, Listed};

/// Every regular file under `dir`, folders entered without following links.
pub fn list(dir: &Path) -> Vec<Listed> {
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
pub fn sweep(dir: &Path, days: u32, open: &HashSet<PathBuf>, now: SystemTime) -> usize {
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

    fn sidecar(path: &Path) -> PathBuf {
        crate::recording::sidecar_of(path)
    }
}
