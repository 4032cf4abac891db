//! The write-ahead log: every change is appended and fsynced here before it
//! is acknowledged, so an acknowledged write survives `kill -9` and power loss.
//!
//! Frame layout, little-endian: `len: u32 | crc32(payload): u32 | payload`.
//! Payload: `kind: u8` then, for an insert, the record's metadata and its
//! vector (`dim` f32 values); for a delete, the record id.
//!
//! On replay a damaged *last* frame is a torn write from a crash (the process
//! died before its fsync returned, so nobody was told the write succeeded) and
//! is cut off. Damage followed by intact frames cannot come from a crash and
//! is reported as corruption instead of being silently dropped.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::codec::{Dec, Enc};
use crate::error::{Result, corrupt, io_err};
use crate::record::RecordMeta;

const KIND_INSERT: u8 = 1;
const KIND_DELETE: u8 = 2;
const FRAME_HEADER: usize = 8;

/// One logged change.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum WalEntry {
    /// A record was enrolled.
    Insert { meta: RecordMeta, vector: Vec<f32> },
    /// A record was deleted.
    Delete { record_id: String },
}

/// A borrowed change, so that appending does not copy vectors.
pub(crate) enum WalEntryRef<'a> {
    Insert { meta: &'a RecordMeta, vector: &'a [f32] },
    Delete { record_id: &'a str },
}

/// An open log file positioned at its end.
pub(crate) struct Wal {
    path: PathBuf,
    file: File,
    len: u64,
}

impl Wal {
    /// Opens (creating if needed) the log at `path` and returns its intact
    /// entries. A torn tail is truncated away.
    pub fn open(path: &Path, dim: usize) -> Result<(Wal, Vec<WalEntry>)> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_err(path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_err(path))?;
        let (entries, good_len) = parse(path, &bytes, dim)?;
        if good_len < bytes.len() {
            warn!(file = %path.display(), kept = good_len, dropped = bytes.len() - good_len,
                "truncating torn write-ahead-log tail left by a crash");
            file.set_len(good_len as u64).map_err(io_err(path))?;
            file.sync_all().map_err(io_err(path))?;
        }
        use std::io::Seek;
        file.seek(std::io::SeekFrom::Start(good_len as u64))
            .map_err(io_err(path))?;
        Ok((
            Wal {
                path: path.to_path_buf(),
                file,
                len: good_len as u64,
            },
            entries,
        ))
    }

    /// Appends `entries` and fsyncs; when this returns Ok they are durable.
    /// On failure the log is cut back to its previous length so that a
    /// half-written frame never sits in front of later ones.
    pub fn append(&mut self, entries: &[WalEntryRef<'_>]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for e in entries {
            let mut p = Enc::default();
            match e {
                WalEntryRef::Insert { meta, vector } => {
                    p.u8(KIND_INSERT);
                    p.meta(meta);
                    p.f32s(vector);
                }
                WalEntryRef::Delete { record_id } => {
                    p.u8(KIND_DELETE);
                    p.str(record_id);
                }
            }
            buf.extend_from_slice(&(p.0.len() as u32).to_le_bytes());
            buf.extend_from_slice(&crc32fast::hash(&p.0).to_le_bytes());
            buf.extend_from_slice(&p.0);
        }
        let res = self.file.write_all(&buf).and_then(|_| self.file.sync_data());
        if let Err(e) = res {
            let _ = self.file.set_len(self.len);
            use std::io::Seek;
            let _ = self.file.seek(std::io::SeekFrom::Start(self.len));
            return Err(io_err(&self.path)(e));
        }
        self.len += buf.len() as u64;
        Ok(())
    }

    /// Empties the log once its contents are safely in segments and the
    /// manifest. The freed bytes are no longer part of any file.
    pub fn reset(&mut self) -> Result<()> {
        self.file.set_len(0).map_err(io_err(&self.path))?;
        self.file.sync_all().map_err(io_err(&self.path))?;
        use std::io::Seek;
        self.file
            .seek(std::io::SeekFrom::Start(0))
            .map_err(io_err(&self.path))?;
        self.len = 0;
        Ok(())
    }

    /// Current length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }
}

/// Parses frames; returns the entries and the length of the intact prefix.
fn parse(path: &Path, bytes: &[u8], dim: usize) -> Result<(Vec<WalEntry>, usize)> {
    let mut entries = Vec::new();
    let mut off = 0usize;
    while off < bytes.len() {
        let rest = &bytes[off..];
        // A crash can leave zeroed, never-written blocks at the tail.
        if rest.iter().all(|b| *b == 0) {
            break;
        }
        if rest.len() < FRAME_HEADER {
            break;
        }
        let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        let end = FRAME_HEADER + len;
        if end > rest.len() {
            break; // the last frame was not fully written
        }
        let payload = &rest[FRAME_HEADER..end];
        if crc32fast::hash(payload) != crc {
            if end == rest.len() {
                break; // torn last frame
            }
            return Err(corrupt(
                path,
                format!("checksum mismatch in frame at byte {off}, followed by more frames"),
            ));
        }
        let entry = decode(payload, dim).map_err(|d| corrupt(path, format!("frame at byte {off}: {d}")))?;
        entries.push(entry);
        off += end;
    }
    Ok((entries, off))
}

fn decode(payload: &[u8], dim: usize) -> Result<WalEntry, String> {
    let mut d = Dec::new(payload);
    let e = match d.u8()? {
        KIND_INSERT => {
            let meta = d.meta()?;
            let vector = d.f32s(dim)?;
            WalEntry::Insert { meta, vector }
        }
        KIND_DELETE => WalEntry::Delete { record_id: d.str()? },
        k => return Err(format!("unknown entry kind {k}")),
    };
    if !d.is_empty() {
        return Err(format!("{} trailing bytes", payload.len() - d.pos()));
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: &str) -> RecordMeta {
        RecordMeta {
            record_id: id.into(),
            subject_id: "s".into(),
            metadata: Default::default(),
            quality: 0.0,
            enrolled_at_ms: 1,
        }
    }

    fn write_two(path: &Path) -> u64 {
        let (mut w, e) = Wal::open(path, 3).unwrap();
        assert!(e.is_empty());
        let (a, b) = (meta("a"), meta("b"));
        w.append(&[WalEntryRef::Insert {
            meta: &a,
            vector: &[1.0, 2.0, 3.0],
        }])
        .unwrap();
        w.append(&[
            WalEntryRef::Insert {
                meta: &b,
                vector: &[4.0, 5.0, 6.0],
            },
            WalEntryRef::Delete { record_id: "a" },
        ])
        .unwrap();
        w.len()
    }

    #[test]
    fn replays_what_was_appended() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wal.log");
        write_two(&p);
        let (_, e) = Wal::open(&p, 3).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[2], WalEntry::Delete { record_id: "a".into() });
    }

    #[test]
    fn every_torn_tail_is_truncated_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wal.log");
        let full = write_two(&p);
        let bytes = std::fs::read(&p).unwrap();
        let first_frame = {
            let len = u32::from_le_bytes(bytes[0..4].try_into().unwrap()) as u64;
            8 + len
        };
        for cut in first_frame + 1..full {
            std::fs::write(&p, &bytes[..cut as usize]).unwrap();
            let (w, e) = Wal::open(&p, 3).unwrap();
            assert!(!e.is_empty(), "cut {cut}");
            assert!(w.len() <= cut);
            assert_eq!(std::fs::metadata(&p).unwrap().len(), w.len());
        }
    }

    #[test]
    fn damage_before_intact_frames_is_corruption_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wal.log");
        write_two(&p);
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[12] ^= 0x40; // inside the first frame's payload
        std::fs::write(&p, &bytes).unwrap();
        let err = Wal::open(&p, 3).err().expect("must fail").to_string();
        assert!(err.contains("wal.log") && err.contains("checksum"), "{err}");
    }

    #[test]
    fn appends_after_a_truncated_tail_replay_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wal.log");
        write_two(&p);
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
        let (mut w, e) = Wal::open(&p, 3).unwrap();
        assert_eq!(e.len(), 2);
        let c = meta("c");
        w.append(&[WalEntryRef::Insert {
            meta: &c,
            vector: &[0.0; 3],
        }])
        .unwrap();
        let (_, e) = Wal::open(&p, 3).unwrap();
        assert_eq!(e.len(), 3);
    }
}
