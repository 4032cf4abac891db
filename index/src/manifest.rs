//! The gallery manifest: which segment files are live and which of their rows
//! are deleted. It is replaced atomically, so the set of segments a gallery
//! consists of changes in one step.
//!
//! Layout (little-endian): magic `BMMAN\0\0\x01`, dimension u32, next segment
//! id u64, segment count u32, then per segment: id u64, rows u64, deleted-row
//! count u32 and the deleted row numbers (u32 each); finally CRC-32 of all
//! preceding bytes.

use std::path::Path;

use crate::codec::{Dec, Enc};
use crate::error::{Result, corrupt, io_err};
use crate::fsutil::write_atomic;

const MAGIC: &[u8; 8] = b"BMMAN\0\0\x01";

/// A segment as the manifest lists it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SegmentEntry {
    pub id: u64,
    pub rows: u64,
    pub deleted: Vec<u32>,
}

/// The durable description of a gallery.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Manifest {
    pub dim: usize,
    pub next_segment_id: u64,
    pub segments: Vec<SegmentEntry>,
}

impl Manifest {
    pub fn new(dim: usize) -> Manifest {
        Manifest {
            dim,
            next_segment_id: 1,
            segments: Vec::new(),
        }
    }

    pub fn load(path: &Path) -> Result<Manifest> {
        let b = std::fs::read(path).map_err(io_err(path))?;
        if b.len() < 12 || &b[..8] != MAGIC {
            return Err(corrupt(path, "not a biomatch manifest (bad magic or too short)"));
        }
        let (body, crc) = b.split_at(b.len() - 4);
        if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
            return Err(corrupt(path, "manifest checksum mismatch"));
        }
        let parse = || -> Result<Manifest, String> {
            let mut d = Dec::new(&body[8..]);
            let dim = d.u32()? as usize;
            let next_segment_id = d.u64()?;
            let n = d.u32()? as usize;
            let mut segments = Vec::with_capacity(n.min(1 << 16));
            for _ in 0..n {
                let id = d.u64()?;
                let rows = d.u64()?;
                let nd = d.u32()? as usize;
                let mut deleted = Vec::with_capacity(nd.min(1 << 20));
                for _ in 0..nd {
                    deleted.push(d.u32()?);
                }
                segments.push(SegmentEntry { id, rows, deleted });
            }
            if !d.is_empty() {
                return Err("trailing bytes".into());
            }
            Ok(Manifest {
                dim,
                next_segment_id,
                segments,
            })
        };
        parse().map_err(|e| corrupt(path, e))
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let mut e = Enc::default();
        e.0.extend_from_slice(MAGIC);
        e.u32(self.dim as u32);
        e.u64(self.next_segment_id);
        e.u32(self.segments.len() as u32);
        for s in &self.segments {
            e.u64(s.id);
            e.u64(s.rows);
            e.u32(s.deleted.len() as u32);
            for r in &s.deleted {
                e.u32(*r);
            }
        }
        let crc = crc32fast::hash(&e.0);
        e.u32(crc);
        write_atomic(path, &e.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("MANIFEST");
        let m = Manifest {
            dim: 512,
            next_segment_id: 4,
            segments: vec![
                SegmentEntry {
                    id: 2,
                    rows: 10,
                    deleted: vec![1, 7],
                },
                SegmentEntry {
                    id: 3,
                    rows: 1,
                    deleted: vec![],
                },
            ],
        };
        m.save(&p).unwrap();
        assert_eq!(Manifest::load(&p).unwrap(), m);
        let mut b = std::fs::read(&p).unwrap();
        let last = b.len() - 6;
        b[last] ^= 0xff;
        std::fs::write(&p, &b).unwrap();
        assert!(Manifest::load(&p).unwrap_err().to_string().contains("MANIFEST"));
    }
}
