//! A gallery: the durable set of fixed-dimension vectors of one modality.
//!
//! Records are split by id into write shards (`shard.rs`). A write goes to
//! its shard's write-ahead log first (fsynced) and then to that shard's
//! in-memory tail; when the tail reaches its share of `flush_records` it is
//! written out as an immutable, checksummed segment, the manifest is
//! replaced atomically and the shard's log is emptied. A large batch can
//! instead go straight to segments of its own (`insert_bulk`, one per
//! shard), after a flush of the tails so that no log holds an entry older
//! than a segment. Deletes are logged tombstones; compaction rewrites the
//! segments that hold deleted rows, so that deleted template bytes are gone
//! from every data file, the logs included.
//!
//! Concurrency: one writer per shard at a time (each shard's mutex orders its
//! log appends and flushes). The `manifest` mutex orders the commits of new
//! segments, and a compaction or optimisation takes every shard's mutex to
//! commit. Locks are taken in that order: shards in ascending order, then
//! the manifest, then the state. Searches and reads share the `state` read
//! lock and see either all or nothing of one shard's part of a write.

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use biomatch_kernels::{ChunkScorer, Kernels, Metric, ScanParams, TopK, scan_topk_by};
use parking_lot::Mutex;
use rayon::prelude::*;
use tracing::{error, info, warn};

use crate::ann::{AnnOptions, AnnQuery, Graph, SearchMode};
use crate::error::{IndexError, Result, io_err};
use crate::fsutil::sync_dir;
use crate::manifest::Manifest;
use crate::record::RecordMeta;
use crate::segment::Segment;
use crate::shard::{ShardWriter, open_logs};
use crate::state::{SegSlot, State};
use crate::state_lock::StateLock;

pub(crate) const MANIFEST: &str = "MANIFEST";
/// Shortlisted rows one task of a screened search rescores.
const RESCORE_CHUNK: usize = 32;

/// Tunables of a gallery.
#[derive(Clone, Debug)]
pub struct GalleryOptions {
    /// Unflushed records that trigger writing a segment, for the whole
    /// gallery: each write shard flushes at its share. Larger means fewer,
    /// bigger segments and a longer log replay after a crash.
    pub flush_records: usize,
    /// When and how [`Gallery::optimize`] builds graphs for approximate
    /// search (embedding galleries only; see [`crate::ann`]).
    pub ann: AnnOptions,
}

impl Default for GalleryOptions {
    fn default() -> Self {
        GalleryOptions {
            flush_records: 65_536,
            ann: AnnOptions::default(),
        }
    }
}

/// A record to enroll.
#[derive(Clone, Debug)]
pub struct NewRecord {
    /// Its metadata.
    pub meta: RecordMeta,
    /// Its vector; must have the gallery's dimension.
    pub vector: Vec<f32>,
}

/// A stored record as read back.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRecord {
    /// Its metadata.
    pub meta: RecordMeta,
    /// Its vector, when asked for.
    pub vector: Option<Vec<f32>>,
}

/// Scores rows for a search that is not a plain inner product (iris codes).
/// Higher is better.
pub trait RowScorer: Sync {
    /// Fills `out[i]` with the score of row `i` of `rows` (row-major, the
    /// gallery's row length). A row that cannot reach `bound` may get any
    /// value below it, so a scorer can stop early.
    fn score_rows(&self, rows: &[f32], out: &mut [f32], bound: f32);
}

/// Options of a 1:N search.
#[derive(Clone, Copy)]
pub struct Search<'a> {
    /// Number of hits wanted.
    pub k: usize,
    /// Hits scoring below this are dropped.
    pub min_score: f32,
    /// Only records whose metadata contains all these pairs.
    pub filter: Option<&'a BTreeMap<String, String>>,
    /// Raised when the caller gives up (deadline, disconnect).
    pub cancel: Option<&'a AtomicBool>,
    /// Exact or approximate, beam width, oversampling. Only inner-product
    /// searches ([`Gallery::search`]) use graphs; custom scorers always scan.
    pub ann: AnnQuery,
}

impl Default for Search<'_> {
    /// Top 10, no threshold, no filter, not cancellable, planner's choice.
    fn default() -> Self {
        Search {
            k: 10,
            min_score: f32::NEG_INFINITY,
            filter: None,
            cancel: None,
            ann: AnnQuery::default(),
        }
    }
}

/// One search result.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchHit {
    /// Record id.
    pub record_id: String,
    /// Its subject.
    pub subject_id: String,
    /// Score: inner product with the probe, or the row scorer's value.
    pub score: f32,
}

/// Sizes and state of a gallery.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GalleryStats {
    /// Live records.
    pub records: u64,
    /// Distinct subjects among them.
    pub subjects: u64,
    /// Deleted rows whose bytes are still on disk.
    pub pending_deletes: u64,
    /// Segment files.
    pub segments: u32,
    /// Live records not yet in a segment.
    pub unflushed: u64,
    /// Bytes of segments, graphs and log.
    pub disk_bytes: u64,
    /// Segments that carry a graph for approximate search.
    pub indexed_segments: u32,
    /// Live records in those segments.
    pub indexed_records: u64,
}

/// A durable gallery of `dim`-dimensional vectors.
pub struct Gallery {
    pub(crate) name: String,
    pub(crate) dir: PathBuf,
    pub(crate) dim: usize,
    pub(crate) opts: GalleryOptions,
    pub(crate) kernels: Kernels,
    /// One writer per write shard (`ann.shards` of them).
    pub(crate) shards: Vec<Mutex<ShardWriter>>,
    /// The manifest as last saved; held while a new one is made and saved,
    /// so that commits of different shards do not overwrite each other.
    pub(crate) manifest: Mutex<Manifest>,
    pub(crate) state: StateLock,
    /// Serialises compaction and optimisation, which rewrite segments
    /// outside the shards' writer locks (see `rewrite.rs`).
    pub(crate) maintenance: Mutex<()>,
}

impl Gallery {
    /// Creates an empty gallery in `dir` (which must not hold one yet).
    pub fn create(dir: &Path, name: &str, dim: usize, opts: GalleryOptions) -> Result<Gallery> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        Manifest::new(dim).save(&dir.join(MANIFEST))?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        Gallery::open(dir, name, opts)
    }

    /// Opens the gallery in `dir`: verifies every segment, applies the
    /// manifest's tombstones and replays the write-ahead logs. Logs of
    /// another shard layout (an earlier release's single log, or another
    /// `ann.shards`) are replayed too, flushed into segments and removed
    /// before the gallery is returned.
    pub fn open(dir: &Path, name: &str, opts: GalleryOptions) -> Result<Gallery> {
        let manifest = Manifest::load(&dir.join(MANIFEST))?;
        let dim = manifest.dim;
        remove_orphans(dir, &manifest)?;
        let shards = opts.ann.shards.max(1);
        let mut state = State::new(dim, shards);
        for e in &manifest.segments {
            let seg = Segment::open(&dir.join(Segment::file_name(e.id)), e.id, dim)?;
            if seg.len() as u64 != e.rows {
                return Err(crate::error::corrupt(
                    seg.path(),
                    format!("has {} rows, manifest says {}", seg.len(), e.rows),
                ));
            }
            let graph = open_graph(dir, &seg, dim);
            state.slots.push(SegSlot::new(seg, &e.deleted).with_graph(graph));
        }
        state.rebuild_locs();
        let logs = open_logs(dir, dim, shards, &mut state)?;
        info!(
            gallery = name,
            dim,
            shards,
            segments = state.slots.len(),
            indexed = state.slots.iter().filter(|s| s.graph.is_some()).count(),
            records = state.ids.len(),
            replayed = logs.replayed,
            "gallery opened"
        );
        let gallery = Gallery {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            dim,
            opts,
            kernels: Kernels::active(),
            shards: logs.writers.into_iter().map(Mutex::new).collect(),
            manifest: Mutex::new(manifest),
            state: StateLock::new(state),
            maintenance: Mutex::new(()),
        };
        if logs.relayout {
            info!(
                gallery = name,
                shards, "logs of another shard layout replayed; flushing them into segments"
            );
            gallery.flush()?;
        }
        for path in &logs.foreign {
            std::fs::remove_file(path).map_err(io_err(path))?;
        }
        if !logs.foreign.is_empty() {
            sync_dir(dir)?;
        }
        Ok(gallery)
    }

    /// The gallery's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its vector dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// True when `record_id` is live here.
    pub fn contains(&self, record_id: &str) -> bool {
        self.state.read().ids.contains_key(record_id)
    }

    /// Live record ids of `subject` (empty when unknown here).
    pub fn subject_records(&self, subject: &str) -> Vec<String> {
        self.state
            .read()
            .subjects
            .get(subject)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Reads a live record.
    pub fn get(&self, record_id: &str, with_vector: bool) -> Option<StoredRecord> {
        let st = self.state.read();
        let loc = *st.ids.get(record_id)?;
        Some(StoredRecord {
            meta: st.meta(loc).clone(),
            vector: with_vector.then(|| st.vector(loc).to_vec()),
        })
    }

    /// Top-k records by inner product with `probe`. Segments with a graph
    /// are searched approximately (unless `s.ann` asks for exact), the rest
    /// scanned; see [`crate::ann`].
    pub fn search(&self, probe: &[f32], s: &Search<'_>) -> Result<Vec<SearchHit>> {
        self.check_dim(probe)?;
        let st = self.state.read();
        let st: &State = &st;
        let graphs: Vec<usize> = match s.ann.mode {
            SearchMode::Exact => Vec::new(),
            SearchMode::Auto | SearchMode::Ann => {
                (0..st.slots.len()).filter(|&b| st.slots[b].graph.is_some()).collect()
            }
        };
        let score = |rows: &[f32], out: &mut [f32], _: f32| self.kernels.dot_rows(probe, rows, out);
        let scanned = self.scan_blocks(st, s, &score, &|b| !graphs.contains(&b))?;
        let (ef, rescore) = s.ann.plan(s.k);
        let top = graphs
            .par_iter()
            .map(|&b| self.graph_search(st, b, probe, s, &score, ef, rescore))
            .try_reduce(|| scanned.clone(), |a, b| Ok(a.merge(b)))?;
        Ok(hits(st, top))
    }

    /// When a search with options `q` would use at least one graph, the
    /// rows it would still scan exactly; `None` when it would scan
    /// everything. Lets a caller tell a cheap graph search from a scan of
    /// the whole gallery before running it.
    pub fn scanned_rows(&self, q: &AnnQuery) -> Option<usize> {
        let st = self.state.read();
        let uses_graph = |s: &SegSlot| q.mode != SearchMode::Exact && s.graph.is_some();
        st.slots.iter().any(uses_graph).then(|| {
            st.unflushed()
                + st.slots
                    .iter()
                    .filter(|s| !uses_graph(s))
                    .map(SegSlot::live)
                    .sum::<usize>()
        })
    }

    /// Walks slot `b`'s graph on int8 codes, then rescores the best
    /// `rescore` candidates with the exact rows from the segment's map.
    /// `score` is the exact scan's scorer, for the fallback below.
    #[allow(clippy::too_many_arguments)]
    fn graph_search(
        &self,
        st: &State,
        b: usize,
        probe: &[f32],
        s: &Search<'_>,
        score: ChunkScorer<'_>,
        ef: usize,
        rescore: usize,
    ) -> Result<TopK> {
        let slot = &st.slots[b];
        let graph = slot.graph.as_ref().expect("planned slots carry a graph");
        let accept =
            |row: u32| !slot.deleted[row as usize] && s.filter.is_none_or(|f| slot.seg.meta(row as usize).matches(f));
        let found = graph.search(probe, ef, &accept, s.cancel)?;
        if found.len() < s.k.min(slot.live()) {
            // The walk met fewer admitted rows than wanted, which happens when
            // a filter admits a small share of the segment: scan it instead,
            // so a selective filter costs time, never results.
            return self.scan_blocks(st, s, score, &|x| x == b);
        }
        let mut top = TopK::new(s.k);
        let found = &found[..rescore.min(found.len())];
        crate::ann::prefetch_rows(found.iter().map(|&(row, _)| slot.seg.vector(row as usize)));
        for &(row, _) in found {
            let score = self.kernels.dot(probe, slot.seg.vector(row as usize));
            if score >= s.min_score {
                top.push(score, ((b as u64) << 32) | u64::from(row));
            }
        }
        Ok(top)
    }

    /// Exact top-k records by a custom scorer.
    pub fn search_by(&self, scorer: &dyn RowScorer, s: &Search<'_>) -> Result<Vec<SearchHit>> {
        let score = |rows: &[f32], out: &mut [f32], bound: f32| scorer.score_rows(rows, out, bound);
        let st = self.state.read();
        let top = self.scan_blocks(&st, s, &score, &|_| true)?;
        Ok(hits(&st, top))
    }

    /// Top-k records by `exact`, scored only on the `shortlist` rows that
    /// `screen` (a cheap scorer) ranks best: a screened 1:N search. Filters
    /// and deletes apply to the screen, so the shortlist holds only admitted
    /// rows; a shortlist of at least the whole gallery is an exact search.
    pub fn search_screened_by(
        &self,
        screen: &dyn RowScorer,
        exact: &dyn RowScorer,
        shortlist: usize,
        s: &Search<'_>,
    ) -> Result<Vec<SearchHit>> {
        let st = self.state.read();
        let first = Search {
            k: shortlist.max(s.k),
            min_score: f32::NEG_INFINITY,
            ..*s
        };
        let score = |rows: &[f32], out: &mut [f32], bound: f32| screen.score_rows(rows, out, bound);
        let ids: Vec<u64> = self
            .scan_blocks(&st, &first, &score, &|_| true)?
            .into_sorted_vec()
            .into_iter()
            .map(|h| h.id)
            .collect();
        let top = ids
            .par_chunks(RESCORE_CHUNK)
            .map(|chunk| {
                if s.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                    return Err(IndexError::Cancelled);
                }
                let mut top = TopK::new(s.k);
                let mut out = [0.0f32];
                for &id in chunk {
                    let bound = s.min_score.max(top.threshold());
                    exact.score_rows(st.vector(st.loc_of_scan_id(id)), &mut out, bound);
                    if out[0] >= s.min_score {
                        top.push(out[0], id);
                    }
                }
                Ok(top)
            })
            .try_reduce(|| TopK::new(s.k), |a, b| Ok(a.merge(b)))?;
        Ok(hits(&st, top))
    }

    /// Screened top-k subjects; see [`Gallery::search_screened_by`].
    pub fn search_subjects_screened_by(
        &self,
        screen: &dyn RowScorer,
        exact: &dyn RowScorer,
        shortlist: usize,
        s: &Search<'_>,
    ) -> Result<Vec<SearchHit>> {
        Self::subjects_from(s, |s| self.search_screened_by(screen, exact, shortlist, s))
    }

    /// Exact top-k over the scan blocks `include` admits.
    fn scan_blocks(
        &self,
        st: &State,
        s: &Search<'_>,
        score: ChunkScorer<'_>,
        include: &(dyn Fn(usize) -> bool + Sync),
    ) -> Result<TopK> {
        let filter = |id: u64| {
            let loc = st.loc_of_scan_id(id);
            !st.is_deleted(loc) && s.filter.is_none_or(|f| st.meta(loc).matches(f))
        };
        let params = ScanParams {
            metric: Metric::InnerProduct,
            k: s.k,
            min_score: s.min_score,
            cancel: s.cancel,
            filter: Some(&filter),
        };
        let mut top = TopK::new(s.k);
        for (b, rows) in st.blocks() {
            if !rows.is_empty() && include(b) {
                top = top.merge(scan_topk_by(rows, self.dim, (b as u64) << 32, &params, score)?);
            }
        }
        Ok(top)
    }

    /// Exact top-k *subjects* by inner product: each subject's best record,
    /// best first. See [`Gallery::subjects_from`].
    pub fn search_subjects(&self, probe: &[f32], s: &Search<'_>) -> Result<Vec<SearchHit>> {
        Self::subjects_from(s, |s| self.search(probe, s))
    }

    /// Exact top-k subjects by a custom scorer.
    pub fn search_subjects_by(&self, scorer: &dyn RowScorer, s: &Search<'_>) -> Result<Vec<SearchHit>> {
        Self::subjects_from(s, |s| self.search_by(scorer, s))
    }

    /// Asks `search` for more records than `k` and widens until `k` distinct
    /// subjects are found or the gallery is exhausted, so the answer is exact
    /// however many records a subject holds.
    fn subjects_from(s: &Search<'_>, search: impl Fn(&Search<'_>) -> Result<Vec<SearchHit>>) -> Result<Vec<SearchHit>> {
        let mut want = s.k.saturating_mul(4).max(16);
        loop {
            let hits = search(&Search { k: want, ..*s })?;
            let exhausted = hits.len() < want;
            let mut seen = HashSet::new();
            let best: Vec<SearchHit> = hits
                .into_iter()
                .filter(|h| seen.insert(h.subject_id.clone()))
                .take(s.k)
                .collect();
            if best.len() == s.k || exhausted {
                return Ok(best);
            }
            want = want.saturating_mul(4);
        }
    }

    /// Live records in id order, starting after `after`, at most `limit`.
    /// With `subject`, only that subject's records.
    pub fn list(
        &self,
        after: Option<&str>,
        limit: usize,
        subject: Option<&str>,
        with_vectors: bool,
    ) -> Vec<StoredRecord> {
        let st = self.state.read();
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        let read = |id: &str| {
            let loc = st.ids[id];
            StoredRecord {
                meta: st.meta(loc).clone(),
                vector: with_vectors.then(|| st.vector(loc).to_vec()),
            }
        };
        match subject {
            Some(s) => st.subjects.get(s).map_or_else(Vec::new, |set| {
                set.range::<str, _>((lower, Bound::Unbounded))
                    .take(limit)
                    .map(|id| read(id))
                    .collect()
            }),
            None => st
                .ids
                .range::<str, _>((lower, Bound::Unbounded))
                .take(limit)
                .map(|(id, _)| read(id))
                .collect(),
        }
    }

    /// Live records. Cheaper than [`Gallery::stats`], which also waits for
    /// the shards' writers (for the logs' sizes), so a search can ask without queueing
    /// behind an insert's fsync.
    pub fn len(&self) -> usize {
        self.state.read().ids.len()
    }

    /// True when the gallery holds no live record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sizes and state.
    pub fn stats(&self) -> GalleryStats {
        let wal_len: u64 = self.shards.iter().map(|w| w.lock().wal.len()).sum();
        let st = self.state.read();
        GalleryStats {
            records: st.ids.len() as u64,
            subjects: st.subjects.len() as u64,
            pending_deletes: st.pending_deletes() as u64,
            segments: st.slots.len() as u32,
            unflushed: st.unflushed() as u64,
            disk_bytes: wal_len
                + st.slots
                    .iter()
                    .map(|s| s.seg.file_len() + s.graph.as_ref().map_or(0, |g| g.file_len()))
                    .sum::<u64>(),
            indexed_segments: st.slots.iter().filter(|s| s.graph.is_some()).count() as u32,
            indexed_records: st
                .slots
                .iter()
                .filter(|s| s.graph.is_some())
                .map(|s| s.live() as u64)
                .sum(),
        }
    }

    /// Deleted rows whose bytes are still on disk.
    pub fn pending_deletes(&self) -> usize {
        self.state.read().pending_deletes()
    }

    fn check_dim(&self, v: &[f32]) -> Result<()> {
        if v.len() == self.dim {
            Ok(())
        } else {
            Err(IndexError::Dimension {
                expected: self.dim,
                got: v.len(),
            })
        }
    }
}

/// Removes files a crash left behind: temporaries and segments the manifest
/// does not list (written by a flush or compaction that did not commit, or
/// superseded by one whose old files were not yet removed).
fn remove_orphans(dir: &Path, manifest: &Manifest) -> Result<()> {
    let live: HashSet<String> = manifest
        .segments
        .iter()
        .flat_map(|e| [Segment::file_name(e.id), Graph::file_name(e.id)])
        .collect();
    let mut removed = false;
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let orphan = name.ends_with(".tmp")
            || (name.starts_with("seg-")
                && (name.ends_with(".seg") || name.ends_with(".hnsw"))
                && !live.contains(&name));
        if orphan {
            warn!(file = %path.display(), "removing file left by an interrupted flush or compaction");
            std::fs::remove_file(&path).map_err(io_err(&path))?;
            removed = true;
        }
    }
    if removed {
        sync_dir(dir)?;
    }
    Ok(())
}

/// The hits of a top-k, with their records' ids.
fn hits(st: &State, top: TopK) -> Vec<SearchHit> {
    top.into_sorted_vec()
        .into_iter()
        .map(|h| {
            let m = st.meta(st.loc_of_scan_id(h.id));
            SearchHit {
                record_id: m.record_id.clone(),
                subject_id: m.subject_id.clone(),
                score: h.score,
            }
        })
        .collect()
}

/// Opens segment `seg`'s graph when it has one. A graph is derived data: if
/// it is damaged the segment is still served, by exact scan, and the next
/// optimisation writes a new one.
pub(crate) fn open_graph(dir: &Path, seg: &Segment, dim: usize) -> Option<Arc<Graph>> {
    let path = dir.join(Graph::file_name(seg.id()));
    if !path.exists() {
        return None;
    }
    match Graph::open(&path, seg.id(), seg.len(), dim) {
        Ok(g) => Some(Arc::new(g)),
        Err(e) => {
            error!(file = %path.display(), error = %e, "graph unusable; its segment is scanned exactly until the next optimisation");
            None
        }
    }
}
