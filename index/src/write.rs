//! The write path of a gallery: enrolls, bulk enrolls, deletes, and the
//! flushes that turn a write shard's tail into a segment. `gallery.rs` has
//! the durability model and the lock order, `shard.rs` the shards.

use std::collections::HashSet;
use std::path::Path;

use parking_lot::MutexGuard;
use tracing::error;

use crate::error::{IndexError, Result};
use crate::gallery::{Gallery, MANIFEST, NewRecord};
use crate::manifest::SegmentEntry;
use crate::record::RecordMeta;
use crate::segment::Segment;
use crate::shard::{ShardWriter, by_shard, log_name};
use crate::state::{Loc, SegSlot};
use crate::wal::WalEntryRef;

impl Gallery {
    /// Enrolls a batch with one log append and one fsync per write shard it
    /// touches; the shards' appends run in parallel, since they fsync
    /// different files. Each record gets its own outcome: a wrong dimension
    /// or an id that is already live (or repeated within the batch) is
    /// refused without affecting the others. When this returns, every `Ok`
    /// record is durable.
    pub fn insert(&self, items: Vec<NewRecord>) -> Vec<Result<()>> {
        let n = items.len();
        let groups = by_shard(items.into_iter().enumerate(), self.shards.len(), |(_, it)| {
            it.meta.record_id.as_str()
        });
        let busy: Vec<(usize, Vec<(usize, NewRecord)>)> =
            groups.into_iter().enumerate().filter(|(_, g)| !g.is_empty()).collect();
        let outcomes: Vec<Vec<(usize, Result<()>)>> = if busy.len() <= 1 {
            busy.into_iter().map(|(s, g)| self.insert_shard(s, g)).collect()
        } else {
            std::thread::scope(|scope| {
                let running: Vec<_> = busy
                    .into_iter()
                    .map(|(s, g)| scope.spawn(move || self.insert_shard(s, g)))
                    .collect();
                running
                    .into_iter()
                    .map(|t| t.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
                    .collect()
            })
        };
        let mut results: Vec<Result<()>> = (0..n).map(|_| Ok(())).collect();
        for (i, r) in outcomes.into_iter().flatten() {
            results[i] = r;
        }
        results
    }

    /// [`Gallery::insert`] of the records of shard `s`, each with its
    /// position in the caller's batch; returns their outcomes.
    fn insert_shard(&self, s: usize, group: Vec<(usize, NewRecord)>) -> Vec<(usize, Result<()>)> {
        // A record id always hashes to the same shard, so this lock alone
        // keeps two enrolls of one id from both passing `admit`.
        let mut w = self.shards[s].lock();
        let mut outcomes = self.admit(group.iter().map(|(_, it)| it));
        let refs: Vec<WalEntryRef<'_>> = group
            .iter()
            .zip(&outcomes)
            .filter(|(_, r)| r.is_ok())
            .map(|((_, it), _)| WalEntryRef::Insert {
                meta: &it.meta,
                vector: &it.vector,
            })
            .collect();
        if refs.is_empty() {
            return group.into_iter().map(|(i, _)| i).zip(outcomes).collect();
        }
        if let Err(e) = w.wal.append(&refs) {
            error!(gallery = %self.name, shard = s, error = %e, "write-ahead log append failed");
            refuse_admitted(&mut outcomes, &self.dir.join(log_name(s)), &e);
            return group.into_iter().map(|(i, _)| i).zip(outcomes).collect();
        }
        drop(refs);
        let mut positions = Vec::with_capacity(group.len());
        let full = {
            let mut st = self.state.write();
            for ((i, it), r) in group.into_iter().zip(&outcomes) {
                positions.push(i);
                if r.is_ok() {
                    let row = st.mem[s].push(it.meta, &it.vector);
                    st.add_live(Loc::Mem(s as u32, row));
                }
            }
            st.mem[s].len() >= self.shard_flush_records()
        };
        if full && let Err(e) = self.flush_shard_locked(s, &mut w) {
            // The records are durable in the log; the flush is retried later.
            error!(gallery = %self.name, shard = s, error = %e, "flush failed");
        }
        positions.into_iter().zip(outcomes).collect()
    }

    /// Enrolls a large batch by writing it straight to new segments (one per
    /// write shard it touches) instead of the logs: the template bytes reach
    /// the disk once, not twice (log, then segment at the next flush), and no
    /// later insert stalls on a flush of them. Same outcomes and the same
    /// durability as [`insert`]: the segments are fsynced and in the
    /// manifest before this returns.
    ///
    /// The tails are flushed first, so that the logs keep holding only
    /// entries newer than every segment: replaying a logged delete can then
    /// never hit a record that was enrolled again in a later segment.
    /// Meant for batches of thousands (enrollment jobs).
    ///
    /// [`insert`]: Gallery::insert
    pub fn insert_bulk(&self, items: Vec<NewRecord>) -> Vec<Result<()>> {
        let mut writers = self.lock_shards();
        let mut results = self.admit(&items);
        let admitted = items.iter().zip(&results).filter(|(_, r)| r.is_ok()).map(|(it, _)| it);
        let groups = by_shard(admitted, self.shards.len(), |it| it.meta.record_id.as_str());
        if groups.iter().all(Vec::is_empty) {
            return results;
        }
        let written = (|| {
            if writers.iter().any(|w| w.wal.len() > 0) {
                self.flush_all_locked(&mut writers)?;
            }
            let mut segments = Vec::new();
            for group in groups.iter().filter(|g| !g.is_empty()) {
                let metas: Vec<&RecordMeta> = group.iter().map(|it| &it.meta).collect();
                let id = self.take_segment_ids(1);
                segments.push(self.write_segment(id, &metas, group.iter().map(|it| it.vector.as_slice()))?);
            }
            self.commit_segments(segments, None)
        })();
        if let Err(e) = written {
            error!(gallery = %self.name, error = %e, "bulk segment write failed");
            refuse_admitted(&mut results, &self.dir, &e);
        }
        results
    }

    /// Outcomes for `items` before any write, in their order: a wrong
    /// dimension, or an id already live or repeated among them, is refused;
    /// `Ok` means admitted. Called with the writer lock of every shard those
    /// records belong to.
    fn admit<'a>(&self, items: impl IntoIterator<Item = &'a NewRecord>) -> Vec<Result<()>> {
        let st = self.state.read();
        let mut seen = HashSet::new();
        items
            .into_iter()
            .map(|it| {
                if it.vector.len() != self.dim {
                    Err(IndexError::Dimension {
                        expected: self.dim,
                        got: it.vector.len(),
                    })
                } else if st.ids.contains_key(&it.meta.record_id) || !seen.insert(it.meta.record_id.as_str()) {
                    Err(IndexError::AlreadyExists(it.meta.record_id.clone()))
                } else {
                    Ok(())
                }
            })
            .collect()
    }

    /// Tombstones the given records (durably) and returns the ids that were
    /// live. Unknown ids are ignored. The ids are logged shard by shard: if a
    /// log append fails, the error is returned and the shards logged before
    /// it keep their deletes.
    pub fn delete(&self, record_ids: &[String]) -> Result<Vec<String>> {
        let groups = by_shard(record_ids, self.shards.len(), |id| id.as_str());
        let mut deleted = Vec::new();
        for (s, ids) in groups.into_iter().enumerate().filter(|(_, g)| !g.is_empty()) {
            let mut w = self.shards[s].lock();
            let live: Vec<&String> = {
                let st = self.state.read();
                ids.into_iter().filter(|id| st.ids.contains_key(id.as_str())).collect()
            };
            if live.is_empty() {
                continue;
            }
            let refs: Vec<WalEntryRef<'_>> = live.iter().map(|id| WalEntryRef::Delete { record_id: id }).collect();
            w.wal.append(&refs)?;
            let mut st = self.state.write();
            deleted.extend(live.into_iter().filter(|id| st.remove_live(id)).cloned());
        }
        Ok(deleted)
    }

    /// Tombstones every record of `subject`; returns their ids.
    pub fn delete_subject(&self, subject: &str) -> Result<Vec<String>> {
        let ids = self.subject_records(subject);
        self.delete(&ids)
    }

    /// Writes every shard's in-memory tail to segments and empties the logs.
    pub fn flush(&self) -> Result<()> {
        let mut writers = self.lock_shards();
        self.flush_all_locked(&mut writers)
    }

    /// Every shard's writer, locked in ascending order (the lock order).
    pub(crate) fn lock_shards(&self) -> Vec<MutexGuard<'_, ShardWriter>> {
        self.shards.iter().map(|w| w.lock()).collect()
    }

    /// Flushes every shard; `writers` are all of them, locked.
    pub(crate) fn flush_all_locked(&self, writers: &mut [MutexGuard<'_, ShardWriter>]) -> Result<()> {
        for (s, w) in writers.iter_mut().enumerate() {
            self.flush_shard_locked(s, w)?;
        }
        Ok(())
    }

    /// Records a shard's tail holds before it is flushed: its share of
    /// `flush_records`.
    fn shard_flush_records(&self) -> usize {
        self.opts.flush_records.div_ceil(self.shards.len()).max(1)
    }

    /// Writes shard `s`'s tail to a segment and empties its log; `w` is the
    /// shard's writer, locked.
    fn flush_shard_locked(&self, s: usize, w: &mut ShardWriter) -> Result<()> {
        if w.wal.len() == 0 && self.state.read().mem[s].len() == 0 {
            return Ok(());
        }
        // The id is taken before the state is read: a commit holds the
        // manifest while it waits for the state.
        let id = self.take_segment_ids(1);
        let new_seg = {
            let st = self.state.read();
            let mem = &st.mem[s];
            let live = mem.live_rows();
            if live.is_empty() {
                None
            } else {
                let metas: Vec<&RecordMeta> = live.iter().map(|r| &mem.metas[*r]).collect();
                let rows = live.iter().map(|r| st.vector(Loc::Mem(s as u32, *r as u32)));
                Some(self.write_segment(id, &metas, rows)?)
            }
        };
        self.commit_segments(new_seg.into_iter().collect(), Some(s))?;
        w.wal.reset()
    }

    /// Writes `metas` and `rows` as segment `id` (fsynced);
    /// [`Gallery::commit_segments`] makes it part of the gallery.
    fn write_segment<'a>(
        &self,
        id: u64,
        metas: &[&RecordMeta],
        rows: impl Iterator<Item = &'a [f32]>,
    ) -> Result<Segment> {
        let path = self.dir.join(Segment::file_name(id));
        Segment::write(&path, self.dim, metas, rows)?;
        Segment::open(&path, id, self.dim)
    }

    /// Reserves `n` consecutive segment ids. The next saved manifest records
    /// the new high-water mark; ids of files that never get committed are
    /// simply skipped, and the files removed as orphans at the next open.
    /// Never called with the state locked (see the lock order above).
    pub(crate) fn take_segment_ids(&self, n: usize) -> u64 {
        let mut m = self.manifest.lock();
        let id = m.next_segment_id;
        m.next_segment_id += n as u64;
        id
    }

    /// Saves a manifest with `new_segs` added and the current tombstones,
    /// then makes the segments searchable. `drained`: the segments hold
    /// that shard's tail, which is emptied in the same step (its log is
    /// emptied by the caller, after this returns).
    fn commit_segments(&self, new_segs: Vec<Segment>, drained: Option<usize>) -> Result<()> {
        let mut m = self.manifest.lock();
        let mut manifest = m.clone();
        {
            // Tombstones logged since the last commit must reach the manifest
            // before a log that holds them is emptied. Under this lock the
            // manifest's segments and the state's slots are the same list.
            let st = self.state.read();
            for (e, slot) in manifest.segments.iter_mut().zip(&st.slots) {
                e.deleted = slot.deleted_rows();
            }
        }
        manifest.segments.extend(new_segs.iter().map(|seg| SegmentEntry {
            id: seg.id(),
            rows: seg.len() as u64,
            deleted: Vec::new(),
        }));
        manifest.save(&self.dir.join(MANIFEST))?;
        {
            let mut st = self.state.write();
            for seg in new_segs {
                let s = st.slots.len() as u32;
                let ids: Vec<String> = seg.metas().iter().map(|m| m.record_id.clone()).collect();
                st.slots.push(SegSlot::new(seg, &[]));
                for (r, id) in ids.into_iter().enumerate() {
                    st.ids.insert(id, Loc::Seg(s, r as u32));
                }
            }
            if let Some(s) = drained {
                st.mem[s] = Default::default();
            }
        }
        *m = manifest;
        Ok(())
    }
}

/// Turns the outcome of every admitted record (each `Ok`) into an I/O
/// error about `path`: the write that would have stored them failed.
fn refuse_admitted(outcomes: &mut [Result<()>], path: &Path, e: &IndexError) {
    let msg = e.to_string();
    for r in outcomes.iter_mut().filter(|r| r.is_ok()) {
        *r = Err(IndexError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(msg.clone()),
        });
    }
}
