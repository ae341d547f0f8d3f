//! Encryption at rest (`recording.encrypt_to`): a recording's bytes go
//! through an age stream to its X25519 recipients, so its plaintext never
//! reaches the disk. The way back for ops, which also recovers a file a
//! crash cut short, is `super::at_rest::decrypt`.
//!
//! Why a crash still leaves a usable file: age's STREAM seals the
//! plaintext in 64 KiB chunks, each authenticated on its own, and only the
//! chunk holding the end is flagged last. The writer hands a chunk to the
//! kernel as soon as it is full (one `write`, no buffer of ours after it),
//! so a kill -9 leaves every full chunk in the file and loses only the one
//! being filled: at most 64 KiB of plaintext, 2 s of 8 kHz stereo WAV, 1 s
//! at 16 kHz, 16-25 s of Ogg/Opus (2.6-4 kB/s: padding its pages out to a
//! chunk every few seconds would cost most of what Opus saves, so it is
//! not done). age's reader hands out each
//! chunk as it authenticates it and fails only where the last one is
//! missing, so recovery keeps everything it read before that error.
//!
//! A WAV can't have its header patched once it is sealed, so an encrypted
//! WAV is written with the streaming header (sizes 0xFFFFFFFF, which sox
//! and ffmpeg read as "up to the end"). So that the finished file is a
//! plain WAV once decrypted, by `age -d` or any reader, it is also sealed,
//! while written, to an identity of the recorder's own that lives only in
//! its memory: at the end the recorder reads it back with that identity
//! and seals it again, to the configured recipients only, with the true
//! sizes ([`reseal`]), replacing the first by a rename. A crash before
//! that leaves the first (the streaming header, which decrypting sets
//! right); the identity dies with the process.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use age::stream::StreamWriter;
use age::x25519::{Identity, Recipient};

use crate::recording::ENCRYPTED_EXTENSION;

/// Whether `path` names an encrypted recording.
pub fn is_sealed(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == ENCRYPTED_EXTENSION)
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

/// What a finished file is written to before it replaces the first: a
/// crash can leave one behind, which the next start deletes.
pub fn resealing_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".resealing");
    path.with_file_name(name)
}

/// Seal the finished age file at `path` again, to `recipients` only: read
/// back with `own` (one of its recipients), its first `header.len()` bytes
/// replaced by `header`. The new file is synced before it replaces the old
/// one by a rename; on any error the old one stays as it was.
pub fn reseal(path: &Path, own: &Identity, recipients: &[Recipient], header: &[u8]) -> io::Result<()> {
    let decryptor = age::Decryptor::new(BufReader::new(File::open(path)?)).map_err(io::Error::other)?;
    let mut plain = decryptor.decrypt(std::iter::once(own as &dyn age::Identity)).map_err(io::Error::other)?;
    let mut old_header = vec![0u8; header.len()];
    plain.read_exact(&mut old_header)?;
    let fresh = resealing_path(path);
    let written = (|| {
        let mut stream = seal(create_new(&fresh)?, recipients)?;
        stream.write_all(header)?;
        io::copy(&mut plain, &mut stream)?;
        stream.finish()?.sync_all()?;
        std::fs::rename(&fresh, path)?;
        // The rename itself on stable storage.
        path.parent().map_or(Ok(()), |dir| File::open(dir)?.sync_all())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&fresh);
    }
    written
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
