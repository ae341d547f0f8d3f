//! The daemon's resident code: unmapping, once the daemon has settled, the
//! pages of its own executable and shared libraries that a rare event
//! (start-up, a call's setup or teardown) faulted in.
//!
//! Why: an idle daemon runs a few hundred kB of code, yet start-up alone
//! leaves some 9 MB of the executable and libc mapped, because every page
//! fault on a file maps the 64 kB around it as well (the kernel's
//! fault-around, which `MADV_RANDOM` does not turn off on the kernels
//! measured). Those pages stay counted in our RSS and are kept from reclaim
//! for the process's whole life. `MADV_DONTNEED` on a private file mapping
//! only drops our page-table entries: the pages stay in the page cache,
//! and what runs again is mapped back by a minor fault (about 60 µs of
//! faults for the media path of a call after a release; see
//! examples/load/README.md, "Memory").
//!
//! Soundness: `MADV_DONTNEED` on a private mapping discards the pages that
//! were written (copy-on-write, "Anonymous" in smaps): the relocated
//! RELRO data, text patched by text relocations, a debugger's breakpoint,
//! a uprobe. So only mappings that cannot be written (no `w`), are private
//! file mappings of an executable object (a file with an `x` mapping in
//! this process), and hold no anonymous page at all are released.

use std::io::BufRead;
use std::ops::Range;
use std::time::Duration;

/// How long after start-up or the last SIP event the code is released: a
/// call's signalling comes in bursts, and releasing inside one would only
/// fault the same pages back.
pub const SETTLE: Duration = Duration::from_millis(500);

/// Unmap the releasable code pages (see the module doc); returns how many
/// bytes were released. Failures are logged and otherwise harmless: the
/// pages just stay mapped.
pub fn release_code() -> usize {
    // Read a line at a time: the whole text (some 100 kB) would stay in
    // the worker's malloc arena afterwards, undoing part of the gain.
    let smaps = match std::fs::File::open("/proc/self/smaps") {
        Ok(file) => std::io::BufReader::new(file),
        Err(e) => {
            tracing::debug!(error = %e, "cannot read /proc/self/smaps: code pages stay mapped");
            return 0;
        }
    };
    let mut released = 0;
    for range in releasable(smaps) {
        let len = range.end - range.start;
        // SAFETY: `range` is a whole mapping the kernel listed, read-only,
        // private, file-backed and without any written (anonymous) page, so
        // MADV_DONTNEED discards nothing that a later fault would not map
        // back unchanged from the file; no Rust reference can observe the
        // difference. A range unmapped since it was listed fails with
        // ENOMEM and is skipped.
        let result = unsafe { libc::madvise(range.start as *mut libc::c_void, len, libc::MADV_DONTNEED) };
        if result == 0 {
            released += len;
        } else {
            tracing::debug!(error = %std::io::Error::last_os_error(), start = range.start, len, "madvise failed");
        }
    }
    released
}

/// One mapping of `/proc/self/smaps`, with what decides whether it may go.
struct Mapping {
    range: Range<usize>,
    writable: bool,
    private: bool,
    executable: bool,
    /// Absolute path of the mapped file; none for anonymous and special
    /// (`[heap]`, `[vdso]`, ...) mappings.
    path: Option<String>,
    anonymous_kb: Option<u64>,
}

/// The ranges [`release_code`] may drop, from the text of `/proc/self/smaps`.
fn releasable(smaps: impl BufRead) -> Vec<Range<usize>> {
    let mappings = parse(smaps);
    let objects: Vec<&String> = mappings.iter().filter(|m| m.executable).filter_map(|m| m.path.as_ref()).collect();
    mappings
        .iter()
        .filter(|m| !m.writable && m.private && m.anonymous_kb == Some(0))
        .filter(|m| m.path.as_ref().is_some_and(|path| objects.contains(&path)))
        .map(|m| m.range.clone())
        .collect()
}

/// The mappings in `smaps`: a header line (`start-end perms offset dev
/// inode [path]`) followed by `Key: value` lines. Lines that fit neither
/// are skipped, and a header that does not parse starts no mapping. A
/// read error ends the list where it happened.
fn parse(mut smaps: impl BufRead) -> Vec<Mapping> {
    let mut mappings = Vec::new();
    let mut current: Option<Mapping> = None;
    let mut line = String::new();
    loop {
        line.clear();
        if !matches!(smaps.read_line(&mut line), Ok(1..)) {
            break;
        }
        let line = line.trim_end();
        if let Some(kb) = line.strip_prefix("Anonymous:") {
            if let Some(mapping) = current.as_mut() {
                mapping.anonymous_kb = kb.trim().trim_end_matches("kB").trim().parse().ok();
            }
            continue;
        }
        let mut fields = line.split_ascii_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else { continue };
        let Some(range) = parse_range(range) else { continue };
        let perms = perms.as_bytes();
        if perms.len() != 4 {
            continue;
        }
        // Offset, device, inode; then the path (which may hold spaces).
        let path = fields.nth(3).map(|_| line.splitn(6, ' ').nth(5).unwrap_or("").trim());
        mappings.extend(current.take());
        current = Some(Mapping {
            range,
            writable: perms[1] == b'w',
            executable: perms[2] == b'x',
            private: perms[3] == b'p',
            path: path.filter(|p| p.starts_with('/')).map(str::to_owned),
            anonymous_kb: None,
        });
    }
    mappings.extend(current);
    mappings
}

/// `7f01a2c00000-7f01a2c21000`, hexadecimal, start below end.
fn parse_range(text: &str) -> Option<Range<usize>> {
    let (start, end) = text.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    (start < end).then_some(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Abridged from a running daemon: the executable's rodata, text and
    /// RELRO, libc's text with a debugger's breakpoint in it, the heap,
    /// the vDSO, a read-only data file and a shared SQLite index.
    const SMAPS: &str = "\
55d0c0000000-55d0c02a8000 r--p 00000000 08:01 1234    /opt/soft phoned/bin/softphoned
Rss:                1096 kB
Anonymous:             0 kB
55d0c02a8000-55d0c0e41000 r-xp 002a7000 08:01 1234    /opt/soft phoned/bin/softphoned
Rss:                7064 kB
Anonymous:             0 kB
55d0c0e41000-55d0c0e83000 r--p 00e3f000 08:01 1234    /opt/soft phoned/bin/softphoned
Rss:                 264 kB
Anonymous:           264 kB
55d0c0e83000-55d0c0e8c000 rw-p 00e80000 08:01 1234    /opt/soft phoned/bin/softphoned
Anonymous:            36 kB
55d0c1000000-55d0c1100000 rw-p 00000000 00:00 0       [heap]
Anonymous:           300 kB
7f0000000000-7f0000100000 r-xp 00028000 08:01 99      /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:             4 kB
7f0000200000-7f0000280000 r--p 00000000 08:01 99      /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:             0 kB
7f0000300000-7f0000310000 r--p 00000000 08:01 77      /usr/share/zoneinfo/data
Anonymous:             0 kB
7f0000400000-7f0000408000 rw-s 00000000 08:01 55      /var/lib/softphoned/history.sqlite3-shm
Anonymous:             0 kB
7ffc00000000-7ffc00002000 r-xp 00000000 00:00 0       [vdso]
Anonymous:             0 kB
";

    #[test]
    fn only_clean_read_only_mappings_of_executable_objects_are_released() {
        assert_eq!(
            releasable(SMAPS.as_bytes()),
            vec![
                // rodata and text; not the relocated RELRO nor the data.
                0x55d0c0000000..0x55d0c02a8000,
                0x55d0c02a8000..0x55d0c0e41000,
                // libc's rodata; its text holds a written page.
                0x7f0000200000..0x7f0000280000,
            ]
        );
    }

    #[test]
    fn a_mapping_whose_anonymous_size_is_unknown_stays() {
        let smaps = "55d0c02a8000-55d0c0e41000 r-xp 002a7000 08:01 1234 /usr/bin/softphoned\nRss: 4 kB\n";
        assert!(releasable(smaps.as_bytes()).is_empty());
    }

    #[test]
    fn the_running_process_has_code_to_release_and_survives_it() {
        let smaps = std::fs::read("/proc/self/smaps").expect("Linux has /proc/self/smaps");
        assert!(!releasable(smaps.as_slice()).is_empty(), "the test binary's own text is releasable");
        assert!(release_code() > 0);
        // What runs next is mapped back from the file, unchanged.
        assert_eq!(releasable(SMAPS.as_bytes()).len(), 3);
    }
}
