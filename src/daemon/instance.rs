//! This device's RFC 5626 instance id, `urn:uuid:...` (RFC 4122 version 4):
//! made once and kept in a file beside the call history, so that after a
//! restart the registrar sees the same device and replaces its binding.

use std::path::Path;

/// The id kept at `sip-instance-id` beside `store_path`, made now if there
/// is none. A file that cannot be written still gives an id for this run.
pub(super) fn instance_id(store_path: &Path) -> String {
    let file = store_path.with_file_name("sip-instance-id");
    if let Ok(kept) = std::fs::read_to_string(&file) {
        let kept = kept.trim();
        if is_instance_id(kept) {
            return kept.to_string();
        }
        tracing::warn!(file = %file.display(), "not an instance id: making a new one");
    }
    let made = new_instance_id(rand::random());
    if let Err(e) = std::fs::write(&file, format!("{made}\n")) {
        tracing::warn!(file = %file.display(), error = %e, "instance id not kept: a restart registers as a new device");
    }
    made
}

/// `urn:uuid:` and a version 4 UUID from 16 random bytes.
fn new_instance_id(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("urn:uuid:{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

fn is_instance_id(text: &str) -> bool {
    let Some(uuid) = text.strip_prefix("urn:uuid:") else { return false };
    let groups: Vec<&str> = uuid.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("history.sqlite3");
        let first = instance_id(&store);
        assert!(is_instance_id(&first), "{first}");
        assert_eq!(&first[9 + 14..9 + 15], "4", "version 4: {first}");
        assert_eq!(instance_id(&store), first, "kept across restarts");
        std::fs::write(dir.path().join("sip-instance-id"), "garbage").unwrap();
        let replaced = instance_id(&store);
        assert!(is_instance_id(&replaced) && replaced != first);
    }
}
