//! Encryption at rest (`recording.encrypt_to`): a recording's bytes go
//! through an age stream to its X25519 recipients, so its plaintext never
//! reaches the disk; and the way back for ops (`softphonectl recording
//! decrypt`), which also recovers a file a crash cut short.
//!
//! Why a crash still leaves a usable file: age's STREAM seals the
//! plaintext in 64 KiB chunks, each authenticated on its own, and only the
//! chunk holding the end is flagged last. The writer hands a chunk to the
//! kernel as soon as it is full (one `write`, no buffer of ours after it),
//! so a kill -9 leaves every full chunk in the file and loses only the one
//! being filled: at most 64 KiB of plaintext, 2 s of 8 kHz stereo WAV, 1 s
//! at 16 kHz, about 16 s of 32 kbit/s Ogg/Opus. age's reader hands out each
//! chunk as it authenticates it and fails only where the last one is
//! missing, so recovery keeps everything it read before that error.
//!
//! A WAV can't have its header patched once it is sealed, so an encrypted
//! WAV is written with the streaming header (sizes 0xFFFFFFFF, which sox
//! and ffmpeg read as "up to the end") and [`decrypt`] sets the true sizes.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use age::stream::StreamWriter;
use age::x25519::Recipient;

use super::file;

/// The suffix of an encrypted recording (`….wav.age`, `….opus.age`).
pub const SUFFIX: &str = "age";

/// Whether `path` names an encrypted recording.
pub fn is_sealed(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == SUFFIX)
}

/// Create a recording file: new (never replacing one), mode 0640.
pub fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new().write(true).create_new(true).mode(0o640).open(path)
}

/// Start an age stream to `recipients` over `file` (its header is written now).
pub fn seal(file: File, recipients: &[Recipient]) -> io::Result<StreamWriter<File>> {
    let encryptor = age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
        .map_err(io::Error::other)?;
    encryptor.wrap_output(file)
}

/// Where a recording's bytes go: the file, or an age stream over it.
pub enum Output {
    Plain(BufWriter<File>),
    Sealed(StreamWriter<File>),
}

impl Output {
    /// Create `path`; sealed to `recipients` unless there are none.
    pub fn create(path: &Path, recipients: &[Recipient]) -> io::Result<Output> {
        let file = create_new(path)?;
        if recipients.is_empty() {
            Ok(Output::Plain(BufWriter::new(file)))
        } else {
            seal(file, recipients).map(Output::Sealed)
        }
    }

    /// Write out what is buffered (a sealed stream's last chunk flagged
    /// last) and put the file on stable storage.
    pub fn finish(self) -> io::Result<()> {
        let file = match self {
            Output::Plain(writer) => writer.into_inner().map_err(|e| e.into_error())?,
            Output::Sealed(stream) => stream.finish()?,
        };
        file.sync_all()
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Output::Plain(writer) => writer.write(buf),
            Output::Sealed(stream) => stream.write(buf),
        }
    }

    /// Plain: what is buffered reaches the file. Sealed: only whole chunks
    /// ever do, and they already have.
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Plain(writer) => writer.flush(),
            Output::Sealed(stream) => stream.flush(),
        }
    }
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

    fn keys(dir: &Path) -> (std::path::PathBuf, Recipient) {
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
        let mut output = Output::create(&whole, std::slice::from_ref(&recipient)).unwrap();
        output.write_all(&data).unwrap();
        output.finish().unwrap();
        let back = dir.path().join("whole.bin");
        assert_eq!(decrypt(&key, &whole, &back).unwrap(), Decrypted { bytes: 200_000, cut: None });
        assert_eq!(std::fs::read(&back).unwrap(), data);

        // A kill -9: the stream is never finished; the full chunks are in the file.
        let cut = dir.path().join("cut.bin.age");
        let mut output = Output::create(&cut, &[recipient]).unwrap();
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
