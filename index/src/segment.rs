//! Immutable segment files: a block of row-major f32 vectors read through a
//! memory map, followed by the records' metadata.
//!
//! Layout (little-endian), 64-byte header so the vector block is aligned:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `BMSEG\0\0\x01` |
//! | 8 | 4 | format version (1) |
//! | 12 | 4 | dimension |
//! | 16 | 8 | record count |
//! | 24 | 8 | metadata offset |
//! | 32 | 8 | metadata length |
//! | 40 | 4 | CRC-32 of the vector block |
//! | 44 | 4 | CRC-32 of the metadata block |
//! | 48 | 12 | reserved, zero |
//! | 60 | 4 | CRC-32 of bytes 0..60 |
//!
//! Every checksum is verified when the segment is opened, so a flipped bit is
//! reported with the file's name and the segment is never served.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::codec::{Dec, Enc, f32_bytes};
use crate::error::{Result, corrupt, io_err};
use crate::fsutil::sync_dir;
use crate::record::RecordMeta;

#[cfg(target_endian = "big")]
compile_error!("segment files are read in place as little-endian f32");

const MAGIC: &[u8; 8] = b"BMSEG\0\0\x01";
const VERSION: u32 = 1;
const HEADER: usize = 64;

/// An open, verified segment.
pub struct Segment {
    id: u64,
    path: PathBuf,
    map: Mmap,
    dim: usize,
    metas: Vec<RecordMeta>,
}

impl Segment {
    /// The file name of segment `id`.
    pub fn file_name(id: u64) -> String {
        format!("seg-{id:08}.seg")
    }

    /// Writes a segment durably (temporary file, fsync, rename, directory
    /// fsync). `vectors` yields one `dim`-long row per entry of `metas`.
    pub fn write<'a>(
        path: &Path,
        dim: usize,
        metas: &[&RecordMeta],
        vectors: impl Iterator<Item = &'a [f32]>,
    ) -> Result<()> {
        let tmp = path.with_extension("tmp");
        let count = metas.len();
        let mut meta = Enc::default();
        for m in metas {
            meta.meta(m);
        }
        let vec_bytes = (count * dim * 4) as u64;
        let mut vcrc = crc32fast::Hasher::new();
        {
            let f = File::create(&tmp).map_err(io_err(&tmp))?;
            let mut w = BufWriter::with_capacity(1 << 20, f);
            w.write_all(&[0u8; HEADER]).map_err(io_err(&tmp))?;
            let mut rows = 0usize;
            for v in vectors {
                assert_eq!(v.len(), dim, "segment row of wrong length");
                let b = f32_bytes(v);
                vcrc.update(b);
                w.write_all(b).map_err(io_err(&tmp))?;
                rows += 1;
            }
            assert_eq!(rows, count, "segment rows and metadata differ");
            w.write_all(&meta.0).map_err(io_err(&tmp))?;
            let mut h = Vec::with_capacity(HEADER);
            h.extend_from_slice(MAGIC);
            h.extend_from_slice(&VERSION.to_le_bytes());
            h.extend_from_slice(&(dim as u32).to_le_bytes());
            h.extend_from_slice(&(count as u64).to_le_bytes());
            h.extend_from_slice(&(HEADER as u64 + vec_bytes).to_le_bytes());
            h.extend_from_slice(&(meta.0.len() as u64).to_le_bytes());
            h.extend_from_slice(&vcrc.finalize().to_le_bytes());
            h.extend_from_slice(&crc32fast::hash(&meta.0).to_le_bytes());
            h.extend_from_slice(&[0u8; 12]);
            let hc = crc32fast::hash(&h);
            h.extend_from_slice(&hc.to_le_bytes());
            let mut f = w.into_inner().map_err(|e| io_err(&tmp)(e.into_error()))?;
            use std::io::Seek;
            f.seek(std::io::SeekFrom::Start(0)).map_err(io_err(&tmp))?;
            f.write_all(&h).map_err(io_err(&tmp))?;
            f.sync_all().map_err(io_err(&tmp))?;
        }
        std::fs::rename(&tmp, path).map_err(io_err(path))?;
        sync_dir(path.parent().unwrap_or(Path::new(".")))
    }

    /// Opens and verifies a segment written by [`Segment::write`].
    pub fn open(path: &Path, id: u64, dim: usize) -> Result<Segment> {
        let file = File::open(path).map_err(io_err(path))?;
        // SAFETY: segment files are never modified after their rename into
        // place; they are only replaced by new files and removed.
        let map = unsafe { Mmap::map(&file) }.map_err(io_err(path))?;
        let b: &[u8] = &map;
        if b.len() < HEADER {
            return Err(corrupt(
                path,
                format!("file is {} bytes, shorter than the {HEADER}-byte header", b.len()),
            ));
        }
        if &b[0..8] != MAGIC {
            return Err(corrupt(path, "bad magic: not a biomatch segment"));
        }
        let h = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
        let q = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        if crc32fast::hash(&b[0..60]) != h(60) {
            return Err(corrupt(path, "header checksum mismatch"));
        }
        if h(8) != VERSION {
            return Err(corrupt(path, format!("unsupported segment version {}", h(8))));
        }
        if h(12) as usize != dim {
            return Err(corrupt(
                path,
                format!("segment dimension {} but gallery dimension {dim}", h(12)),
            ));
        }
        let count = q(16) as usize;
        let (meta_off, meta_len) = (q(24) as usize, q(32) as usize);
        let vec_end = count.checked_mul(dim * 4).and_then(|n| n.checked_add(HEADER));
        if vec_end != Some(meta_off) || meta_off.checked_add(meta_len) != Some(b.len()) {
            return Err(corrupt(path, "section sizes do not add up to the file length"));
        }
        if crc32fast::hash(&b[HEADER..meta_off]) != h(40) {
            return Err(corrupt(path, "vector block checksum mismatch"));
        }
        let meta_bytes = &b[meta_off..];
        if crc32fast::hash(meta_bytes) != h(44) {
            return Err(corrupt(path, "metadata block checksum mismatch"));
        }
        let mut d = Dec::new(meta_bytes);
        let mut metas = Vec::with_capacity(count);
        for i in 0..count {
            metas.push(
                d.meta()
                    .map_err(|e| corrupt(path, format!("record {i} metadata: {e}")))?,
            );
        }
        if !(map.as_ptr() as usize + HEADER).is_multiple_of(std::mem::align_of::<f32>()) {
            return Err(corrupt(path, "vector block is not 4-byte aligned in memory"));
        }
        Ok(Segment {
            id,
            path: path.to_path_buf(),
            map,
            dim,
            metas,
        })
    }

    /// The segment's id (its number in the file name).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of rows, deleted ones included.
    pub fn len(&self) -> usize {
        self.metas.len()
    }

    /// True when the segment has no rows.
    pub fn is_empty(&self) -> bool {
        self.metas.is_empty()
    }

    /// All rows, row-major.
    pub fn vectors(&self) -> &[f32] {
        let n = self.metas.len() * self.dim;
        // SAFETY: `open` checked that [HEADER, HEADER + 4n) lies in the map and
        // is 4-byte aligned; the map lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(HEADER).cast::<f32>(), n) }
    }

    /// Row `i`.
    pub fn vector(&self, i: usize) -> &[f32] {
        &self.vectors()[i * self.dim..(i + 1) * self.dim]
    }

    /// Metadata of row `i`.
    pub fn meta(&self, i: usize) -> &RecordMeta {
        &self.metas[i]
    }

    /// Metadata of every row.
    pub fn metas(&self) -> &[RecordMeta] {
        &self.metas
    }

    /// Size of the file in bytes.
    pub fn file_len(&self) -> u64 {
        self.map.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(i: usize) -> RecordMeta {
        RecordMeta {
            record_id: format!("r{i}"),
            subject_id: format!("s{}", i / 2),
            metadata: Default::default(),
            quality: 1.0,
            enrolled_at_ms: 7,
        }
    }

    #[test]
    fn round_trip_and_every_flipped_byte_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(Segment::file_name(1));
        let metas: Vec<RecordMeta> = (0..5).map(meta).collect();
        let rows: Vec<Vec<f32>> = (0..5).map(|i| vec![i as f32, -(i as f32), 0.5]).collect();
        Segment::write(
            &p,
            3,
            &metas.iter().collect::<Vec<_>>(),
            rows.iter().map(|r| r.as_slice()),
        )
        .unwrap();
        let s = Segment::open(&p, 1, 3).unwrap();
        assert_eq!(s.len(), 5);
        assert_eq!(s.vector(4), &[4.0, -4.0, 0.5]);
        assert_eq!(s.meta(3), &metas[3]);
        drop(s);
        let clean = std::fs::read(&p).unwrap();
        for i in 0..clean.len() {
            let mut b = clean.clone();
            b[i] ^= 0x01;
            std::fs::write(&p, &b).unwrap();
            let err = Segment::open(&p, 1, 3)
                .err()
                .unwrap_or_else(|| panic!("flip at {i} undetected"));
            assert!(err.to_string().contains("seg-00000001.seg"), "{err}");
        }
    }
}
