//! A segment's HNSW graph file: int8 codes, per-row scales and adjacency,
//! laid out so that the whole file is used in place through a memory map.
//! Opening a graph is a checksum pass, not a rebuild, which is what makes a
//! restart of a million-row gallery take seconds.
//!
//! Layout (little-endian); every section starts on a 64-byte boundary:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `BMHNSW\0\x01` |
//! | 8 | 4 | format version (1) |
//! | 12 | 4 | dimension |
//! | 16 | 8 | row count `n` |
//! | 24 | 4 | `m` (upper-layer links) |
//! | 28 | 4 | `m0` (layer-0 links) |
//! | 32 | 4 | entry node |
//! | 36 | 4 | top level |
//! | 40 | 8 | words in the upper-layer section |
//! | 48 | 8 | id of the segment this graph indexes |
//! | 56 | 4 | CRC-32 of everything after the header |
//! | 60 | 4 | CRC-32 of bytes 0..60 |
//!
//! Sections: codes (`n * dim` i8), scales (`n` f32), levels (`n` u8), layer 0
//! (`n * (1 + m0)` u32: count, then links), upper offsets (`n` u32: where the
//! node's upper layers start in the next section), upper layers (for each
//! node above layer 0, per level `1 + m` u32).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use biomatch_kernels::{Cancelled, Kernels, quantize_i8};
use memmap2::Mmap;

use super::build::{Built, HnswParams, build};
use super::layer::{Links, beam, greedy};
use super::space::{Codes, Scored, quantize_rows, with_scratch};
use crate::error::{Result, corrupt, io_err};
use crate::fsutil::sync_dir;

const MAGIC: &[u8; 8] = b"BMHNSW\0\x01";
const VERSION: u32 = 1;
const HEADER: usize = 64;

/// Where each section starts.
#[derive(Clone, Copy, Debug)]
struct Layout {
    codes: usize,
    scales: usize,
    levels: usize,
    layer0: usize,
    upper_off: usize,
    upper: usize,
    end: usize,
}

impl Layout {
    fn new(n: usize, dim: usize, m0: usize, upper_words: usize) -> Layout {
        let a = |x: usize| x.next_multiple_of(64);
        let codes = HEADER;
        let scales = a(codes + n * dim);
        let levels = a(scales + n * 4);
        let layer0 = a(levels + n);
        let upper_off = a(layer0 + n * (1 + m0) * 4);
        let upper = a(upper_off + n * 4);
        let end = upper + upper_words * 4;
        Layout {
            codes,
            scales,
            levels,
            layer0,
            upper_off,
            upper,
            end,
        }
    }
}

/// A loaded, verified graph over the rows of one segment.
pub struct Graph {
    path: PathBuf,
    map: Mmap,
    dim: usize,
    n: usize,
    m: usize,
    m0: usize,
    entry: u32,
    max_level: usize,
    lay: Layout,
    kernels: Kernels,
}

impl Graph {
    /// The file name of segment `id`'s graph.
    pub fn file_name(segment_id: u64) -> String {
        format!("seg-{segment_id:08}.hnsw")
    }

    /// Quantises `vectors` (row-major, `dim` columns), builds their graph on
    /// the current rayon pool and writes it durably to `path` (temporary
    /// file, fsync, rename, directory fsync).
    pub fn build_to(path: &Path, segment_id: u64, vectors: &[f32], dim: usize, p: HnswParams) -> Result<()> {
        let n = vectors.len() / dim;
        let (codes, scales) = quantize_rows(vectors, dim);
        let space = Codes {
            dim,
            codes: &codes,
            scales: &scales,
            kernels: Kernels::active(),
        };
        let built = build(space, n, p);
        write(path, segment_id, dim, &codes, &scales, &built)
    }

    /// Opens `path`, checks that it indexes segment `segment_id` of `rows`
    /// rows of dimension `dim`, and verifies its checksums.
    pub fn open(path: &Path, segment_id: u64, rows: usize, dim: usize) -> Result<Graph> {
        let file = File::open(path).map_err(io_err(path))?;
        // SAFETY: graph files are written once and renamed into place; nothing
        // writes to them afterwards (see the module documentation).
        let map = unsafe { Mmap::map(&file) }.map_err(io_err(path))?;
        let bad = |d: String| corrupt(path, d);
        if map.len() < HEADER || &map[..8] != MAGIC {
            return Err(bad("not a graph file (bad magic or truncated header)".into()));
        }
        let u32_at = |o: usize| u32::from_le_bytes(map[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(map[o..o + 8].try_into().expect("8 bytes"));
        if crc32fast::hash(&map[..60]) != u32_at(60) {
            return Err(bad("header checksum mismatch".into()));
        }
        if u32_at(8) != VERSION {
            return Err(bad(format!("unsupported graph format version {}", u32_at(8))));
        }
        let (fdim, n, m, m0) = (
            u32_at(12) as usize,
            u64_at(16) as usize,
            u32_at(24) as usize,
            u32_at(28) as usize,
        );
        if u64_at(48) != segment_id || n != rows || fdim != dim {
            return Err(bad(format!(
                "indexes segment {} ({n} rows of {fdim}), expected segment {segment_id} ({rows} rows of {dim})",
                u64_at(48)
            )));
        }
        let lay = Layout::new(n, dim, m0, u64_at(40) as usize);
        if map.len() != lay.end {
            return Err(bad(format!("is {} bytes, its header implies {}", map.len(), lay.end)));
        }
        if crc32fast::hash(&map[HEADER..]) != u32_at(56) {
            return Err(bad("body checksum mismatch".into()));
        }
        let (entry, max_level) = (u32_at(32), u32_at(36) as usize);
        if n > 0 && entry as usize >= n {
            return Err(bad(format!("entry node {entry} out of range")));
        }
        let g = Graph {
            path: path.to_path_buf(),
            map,
            dim,
            n,
            m,
            m0,
            entry,
            max_level,
            lay,
            kernels: Kernels::active(),
        };
        g.check_links().map_err(bad)?;
        Ok(g)
    }

    /// Bounds every stored link, so that a search can index without checks
    /// failing at query time on a file that passed its checksum but was
    /// written wrong.
    fn check_links(&self) -> std::result::Result<(), String> {
        for node in 0..self.n as u32 {
            let level = self.levels()[node as usize] as usize;
            if level > self.max_level {
                return Err(format!(
                    "node {node} has level {level} above the top {}",
                    self.max_level
                ));
            }
            for l in 0..=level {
                let (at, cap) = self.list_at(node as usize, l);
                let list = (at + (1 + cap) * 4 <= self.lay.end)
                    .then(|| self.words(at, 1 + cap))
                    .and_then(|w| (w[0] as usize <= cap).then(|| &w[1..1 + w[0] as usize]));
                match list {
                    Some(l) if l.iter().all(|&x| (x as usize) < self.n) => {}
                    _ => return Err(format!("node {node} has a bad link list on level {l}")),
                }
            }
        }
        Ok(())
    }

    /// Byte offset of `node`'s link list on `level` (count word, then
    /// links) and its capacity. The node must reach `level`.
    #[inline]
    fn list_at(&self, node: usize, level: usize) -> (usize, usize) {
        if level == 0 {
            (self.lay.layer0 + node * (1 + self.m0) * 4, self.m0)
        } else {
            let word = self.upper_offsets()[node] as usize + (level - 1) * (1 + self.m);
            (self.lay.upper + word * 4, self.m)
        }
    }

    fn words(&self, at: usize, len: usize) -> &[u32] {
        let bytes = &self.map[at..at + len * 4];
        // SAFETY: `at` is 4-byte aligned (sections are 64-byte aligned, lists
        // are whole words) and the map is page aligned; any bits are a u32.
        unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<u32>(), len) }
    }

    fn levels(&self) -> &[u8] {
        &self.map[self.lay.levels..self.lay.levels + self.n]
    }

    fn upper_offsets(&self) -> &[u32] {
        self.words(self.lay.upper_off, self.n)
    }

    fn codes(&self) -> Codes<'_> {
        let codes = &self.map[self.lay.codes..self.lay.codes + self.n * self.dim];
        // SAFETY: i8 and u8 have the same layout.
        let codes = unsafe { std::slice::from_raw_parts(codes.as_ptr().cast::<i8>(), codes.len()) };
        let scales = &self.map[self.lay.scales..self.lay.scales + self.n * 4];
        // SAFETY: the section is 64-byte aligned; any bits are an f32.
        let scales = unsafe { std::slice::from_raw_parts(scales.as_ptr().cast::<f32>(), self.n) };
        Codes {
            dim: self.dim,
            codes,
            scales,
            kernels: self.kernels,
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.n
    }

    /// True when the graph has no rows.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of the file (codes and links).
    pub fn file_len(&self) -> u64 {
        self.map.len() as u64
    }

    /// Approximate best `ef` rows for `probe` among those `accept` admits,
    /// best first, with their int8-estimated inner products.
    pub fn search(
        &self,
        probe: &[f32],
        ef: usize,
        accept: &dyn Fn(u32) -> bool,
        cancel: Option<&AtomicBool>,
    ) -> Result<Vec<(u32, f32)>, Cancelled> {
        if self.n == 0 || ef == 0 {
            return Ok(Vec::new());
        }
        let mut q = vec![0i8; self.dim];
        let qs = quantize_i8(probe, &mut q);
        let codes = self.codes();
        let score = |n: u32| codes.query(&q, n);
        let prefetch = |n: u32| codes.prefetch(n);
        let mut cur = Scored(score(self.entry), self.entry);
        for l in (1..=self.max_level).rev() {
            cur = greedy(self, &score, cur, l);
        }
        let found = with_scratch(self.n, |v| {
            beam(self, &score, &prefetch, &[cur], ef, 0, v, accept, cancel)
        })?;
        Ok(found.into_iter().map(|s| (s.1, s.0 * qs)).collect())
    }
}

impl Links for Graph {
    #[inline]
    fn prefetch_links(&self, node: u32) {
        let (at, cap) = self.list_at(node as usize, 0);
        super::space::prefetch_bytes(&self.map[at..at + (1 + cap) * 4]);
    }

    #[inline]
    fn with_neighbors<R>(&self, node: u32, level: usize, f: impl FnOnce(&[u32]) -> R) -> R {
        let node = node as usize;
        if level > 0 && level > self.levels()[node] as usize {
            return f(&[]);
        }
        let (at, cap) = self.list_at(node, level);
        let w = self.words(at, 1 + cap);
        f(&w[1..1 + w[0] as usize])
    }
}

fn write(path: &Path, segment_id: u64, dim: usize, codes: &[i8], scales: &[f32], g: &Built) -> Result<()> {
    let n = scales.len();
    let mut upper_off = vec![0u32; n];
    let mut upper: Vec<u32> = Vec::new();
    for (node, lists) in g.upper.iter().enumerate() {
        upper_off[node] = upper.len() as u32;
        for list in lists {
            upper.push(list.len() as u32);
            upper.extend_from_slice(list);
            upper.resize(upper.len() + g.m - list.len(), 0);
        }
    }
    let lay = Layout::new(n, dim, g.m0, upper.len());
    let mut body: Vec<u8> = Vec::with_capacity(lay.end - HEADER);
    let pad = |b: &mut Vec<u8>, to: usize| b.resize(to - HEADER, 0);
    // SAFETY: i8 and u8 have the same layout.
    body.extend_from_slice(unsafe { std::slice::from_raw_parts(codes.as_ptr().cast::<u8>(), codes.len()) });
    pad(&mut body, lay.scales);
    scales.iter().for_each(|s| body.extend_from_slice(&s.to_le_bytes()));
    pad(&mut body, lay.levels);
    body.extend_from_slice(&g.levels);
    pad(&mut body, lay.layer0);
    g.layer0.iter().for_each(|x| body.extend_from_slice(&x.to_le_bytes()));
    pad(&mut body, lay.upper_off);
    upper_off.iter().for_each(|x| body.extend_from_slice(&x.to_le_bytes()));
    pad(&mut body, lay.upper);
    upper.iter().for_each(|x| body.extend_from_slice(&x.to_le_bytes()));
    debug_assert_eq!(body.len(), lay.end - HEADER);

    let mut h = Vec::with_capacity(HEADER);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&VERSION.to_le_bytes());
    h.extend_from_slice(&(dim as u32).to_le_bytes());
    h.extend_from_slice(&(n as u64).to_le_bytes());
    h.extend_from_slice(&(g.m as u32).to_le_bytes());
    h.extend_from_slice(&(g.m0 as u32).to_le_bytes());
    h.extend_from_slice(&g.entry.to_le_bytes());
    h.extend_from_slice(&(g.max_level as u32).to_le_bytes());
    h.extend_from_slice(&(upper.len() as u64).to_le_bytes());
    h.extend_from_slice(&segment_id.to_le_bytes());
    h.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    let hc = crc32fast::hash(&h);
    h.extend_from_slice(&hc.to_le_bytes());

    let tmp = path.with_extension("hnsw.tmp");
    {
        let f = File::create(&tmp).map_err(io_err(&tmp))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        w.write_all(&h).map_err(io_err(&tmp))?;
        w.write_all(&body).map_err(io_err(&tmp))?;
        let f = w.into_inner().map_err(|e| io_err(&tmp)(e.into_error()))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}
