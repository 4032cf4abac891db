//! Compaction and optimisation: both replace some segments by new ones
//! written from their live rows, and optimisation also builds graphs.
//!
//! The expensive part (writing segments, building graphs) runs without the
//! shards' writer locks, so enrolls, deletes and searches go on meanwhile;
//! only the commit takes them. Rows deleted during the rewrite are carried over as
//! tombstones of the new segments, and the next compaction purges them.
//! `maintenance` keeps two rewrites from running at once, so the segments a
//! rewrite reads cannot be replaced under it (a flush only adds segments).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use tracing::info;

use crate::ann::Graph;
use crate::error::{Result, io_err};
use crate::fsutil::sync_dir;
use crate::gallery::{Gallery, MANIFEST};
use crate::manifest::SegmentEntry;
use crate::record::RecordMeta;
use crate::segment::Segment;
use crate::shard::shard_of;
use crate::state::SegSlot;

/// A segment as a rewrite found it.
struct Source {
    seg: Arc<Segment>,
    deleted: Vec<bool>,
    n_deleted: usize,
    indexed: bool,
}

/// A new segment to write: `(source, row)` pairs in order.
struct Piece {
    rows: Vec<(usize, u32)>,
    index: bool,
}

/// What [`Gallery::optimize`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptimizeReport {
    /// Segments before.
    pub segments_before: usize,
    /// Segments after (one per non-empty shard).
    pub segments_after: usize,
    /// Live rows written.
    pub rows: usize,
    /// Segments that got a graph.
    pub indexed_segments: usize,
    /// Deleted rows purged on the way.
    pub purged: usize,
    /// Wall time, seconds.
    pub seconds: f64,
}

impl Gallery {
    /// Flushes, then rewrites every segment that holds deleted rows without
    /// them (rebuilding the graphs of indexed ones) and removes the old
    /// files. Afterwards no data file of this gallery holds the template of a
    /// record deleted before the call: not a segment, not a graph's codes,
    /// not the log. Returns the number of rows purged.
    pub fn compact(&self) -> Result<usize> {
        self.compact_where(true)
    }

    /// [`Gallery::compact`] limited to segments without a graph, whose
    /// rewrite is a file copy rather than a graph build; deleted rows of
    /// indexed segments stay (hidden) until the next full compaction or
    /// optimisation. Returns the number of rows purged.
    pub fn compact_unindexed(&self) -> Result<usize> {
        self.compact_where(false)
    }

    fn compact_where(&self, indexed_too: bool) -> Result<usize> {
        let _m = self.maintenance.lock();
        let (before, sources) = self.flushed_sources()?;
        let in_segments: usize = sources.iter().map(|s| s.n_deleted).sum();
        // Deleted rows of the tail were dropped by the flush.
        let mut purged = before - in_segments;
        let mut victims = Vec::new();
        let mut pieces = Vec::new();
        let chosen = |s: &Source| s.n_deleted > 0 && (indexed_too || !s.indexed);
        for (i, src) in sources.iter().enumerate().filter(|(_, s)| chosen(s)) {
            purged += src.n_deleted;
            victims.push(i);
            let rows: Vec<(usize, u32)> = live(src).map(|r| (i, r)).collect();
            if !rows.is_empty() {
                pieces.push(Piece {
                    rows,
                    index: src.indexed,
                });
            }
        }
        if victims.is_empty() {
            // The flush above already dropped deleted rows of the tail.
            return Ok(purged);
        }
        let rewritten = victims.len();
        self.rewrite(&sources, &victims, pieces)?;
        info!(gallery = %self.name, purged, rewritten, "compaction done");
        Ok(purged)
    }

    /// Rewrites the whole gallery into one segment per write shard (a
    /// record's shard follows from its id), each with a graph when the gallery holds
    /// at least `ann.min_rows` live records, purging deleted rows on the way.
    /// Meant for embedding galleries; the server runs it in the background
    /// when [`Gallery::needs_optimize`] says so.
    pub fn optimize(&self) -> Result<OptimizeReport> {
        let started = Instant::now();
        let _m = self.maintenance.lock();
        let (purged, sources) = self.flushed_sources()?;
        let shards = self.shards.len();
        let mut groups: Vec<Vec<(usize, u32)>> = vec![Vec::new(); shards];
        for (i, src) in sources.iter().enumerate() {
            for r in live(src) {
                let shard = shard_of(&src.seg.meta(r as usize).record_id, shards);
                groups[shard].push((i, r));
            }
        }
        let rows: usize = groups.iter().map(Vec::len).sum();
        let index = rows >= self.opts.ann.min_rows.max(1);
        let pieces: Vec<Piece> = groups
            .into_iter()
            .filter(|g| !g.is_empty())
            .map(|rows| Piece { rows, index })
            .collect();
        let mut report = OptimizeReport {
            segments_before: sources.len(),
            segments_after: pieces.len(),
            rows,
            indexed_segments: if index { pieces.len() } else { 0 },
            purged,
            seconds: 0.0,
        };
        let victims: Vec<usize> = (0..sources.len()).collect();
        if !victims.is_empty() {
            self.rewrite(&sources, &victims, pieces)?;
        }
        report.seconds = started.elapsed().as_secs_f64();
        info!(gallery = %self.name, ?report, "optimisation done");
        Ok(report)
    }

    /// True when enough live records sit outside any graph (in unindexed
    /// segments or the unflushed tail) that [`Gallery::optimize`] pays off:
    /// at least `ann.min_rows`, and at least a quarter of the indexed ones,
    /// so that a growing gallery is rebuilt a bounded number of times. Also
    /// true when more than a tenth of the indexed rows are deleted.
    pub fn needs_optimize(&self) -> bool {
        let st = self.state.read();
        let (mut indexed, mut unindexed, mut dead) = (0usize, st.unflushed(), 0usize);
        for s in &st.slots {
            if s.graph.is_some() {
                indexed += s.live();
                dead += s.n_deleted;
            } else {
                unindexed += s.live();
            }
        }
        let min = self.opts.ann.min_rows.max(1);
        (unindexed >= min && unindexed * 4 >= indexed) || (indexed > 0 && dead * 10 > indexed)
    }

    /// Flushes the tails (so the logs hold no template any more) and returns
    /// the pending-delete count before it and the segments after it.
    fn flushed_sources(&self) -> Result<(usize, Vec<Source>)> {
        let mut writers = self.lock_shards();
        let purged = self.state.read().pending_deletes();
        self.flush_all_locked(&mut writers)?;
        let st = self.state.read();
        let sources = st
            .slots
            .iter()
            .map(|s| Source {
                seg: s.seg.clone(),
                deleted: s.deleted.clone(),
                n_deleted: s.n_deleted,
                indexed: s.graph.is_some(),
            })
            .collect();
        Ok((purged, sources))
    }

    /// Writes `pieces` as new segments (and graphs), then atomically swaps
    /// them in for `victims` (indexes into `sources`).
    fn rewrite(&self, sources: &[Source], victims: &[usize], pieces: Vec<Piece>) -> Result<()> {
        let first_id = self.take_segment_ids(pieces.len());
        let mut written = Vec::with_capacity(pieces.len());
        for (i, piece) in pieces.iter().enumerate() {
            let id = first_id + i as u64;
            let path = self.dir.join(Segment::file_name(id));
            let metas: Vec<&RecordMeta> = piece
                .rows
                .iter()
                .map(|&(s, r)| sources[s].seg.meta(r as usize))
                .collect();
            let rows = piece.rows.iter().map(|&(s, r)| sources[s].seg.vector(r as usize));
            Segment::write(&path, self.dim, &metas, rows)?;
            let seg = Segment::open(&path, id, self.dim)?;
            let graph = if piece.index {
                let gpath = self.dir.join(Graph::file_name(id));
                let t = Instant::now();
                Graph::build_to(&gpath, id, seg.vectors(), self.dim, self.opts.ann.hnsw)?;
                info!(gallery = %self.name, segment = id, rows = seg.len(), seconds = t.elapsed().as_secs_f64(), "graph built");
                Some(Arc::new(Graph::open(&gpath, id, seg.len(), self.dim)?))
            } else {
                None
            };
            written.push((seg, graph));
        }

        let mut writers = self.lock_shards();
        // Persist tombstones logged during the rewrite and empty the logs.
        self.flush_all_locked(&mut writers)?;
        let victim_ids: HashSet<u64> = victims.iter().map(|&v| sources[v].seg.id()).collect();
        let mut m = self.manifest.lock();
        let mut manifest = m.clone();
        let new_deleted: Vec<Vec<u32>> = {
            let st = self.state.read();
            let slot_of: HashMap<u64, usize> = st.slots.iter().enumerate().map(|(i, s)| (s.seg.id(), i)).collect();
            let now_deleted = |src: usize, row: u32| {
                slot_of
                    .get(&sources[src].seg.id())
                    .is_none_or(|&i| st.slots[i].deleted[row as usize])
            };
            let new_deleted: Vec<Vec<u32>> = pieces
                .iter()
                .map(|p| {
                    p.rows
                        .iter()
                        .enumerate()
                        .filter(|(_, (s, r))| now_deleted(*s, *r))
                        .map(|(i, _)| i as u32)
                        .collect()
                })
                .collect();
            manifest.segments = st
                .slots
                .iter()
                .filter(|s| !victim_ids.contains(&s.seg.id()))
                .map(|s| SegmentEntry {
                    id: s.seg.id(),
                    rows: s.seg.len() as u64,
                    deleted: s.deleted_rows(),
                })
                .chain(written.iter().zip(&new_deleted).map(|((seg, _), d)| SegmentEntry {
                    id: seg.id(),
                    rows: seg.len() as u64,
                    deleted: d.clone(),
                }))
                .collect();
            new_deleted
        };
        // The commit point. If it fails nothing durable changed, and the new
        // files are orphans that the next open removes.
        manifest.save(&self.dir.join(MANIFEST))?;
        let mut old_paths = Vec::new();
        {
            let mut st = self.state.write();
            let mut slots = Vec::new();
            for slot in std::mem::take(&mut st.slots) {
                if victim_ids.contains(&slot.seg.id()) {
                    old_paths.push(slot.seg.path().to_path_buf());
                    if let Some(g) = &slot.graph {
                        old_paths.push(g.path().to_path_buf());
                    }
                } else {
                    slots.push(slot);
                }
            }
            for ((seg, graph), deleted) in written.into_iter().zip(&new_deleted) {
                slots.push(SegSlot::new(seg, deleted).with_graph(graph));
            }
            st.slots = slots;
            st.rebuild_locs();
        }
        *m = manifest;
        drop(m);
        drop(writers);
        for p in &old_paths {
            std::fs::remove_file(p).map_err(io_err(p))?;
        }
        sync_dir(&self.dir)
    }
}

fn live(src: &Source) -> impl Iterator<Item = u32> + '_ {
    (0..src.deleted.len() as u32).filter(|r| !src.deleted[*r as usize])
}
