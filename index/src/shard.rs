//! Write shards. A gallery's records are split by record id into
//! `ann.shards` shards, and each shard is a write path of its own: its own
//! write-ahead log (`wal-<shard>.log`), its own in-memory tail, its own
//! flushes into plain segments, and, once the gallery is optimised, its own
//! indexed segment with a graph. Enrolls and deletes of different shards
//! take different locks and fsync different files, so they do not queue
//! behind each other.
//!
//! A record's shard is a hash of its id, so every change to one record goes
//! through the same log, in order; the logs of different shards never
//! speak of the same record, so replaying them in any order rebuilds the
//! same state.
//!
//! **Layout changes.** Galleries written before shards had a single
//! `wal.log`, and a gallery may be reopened with another shard count. Such
//! logs are still replayed, each record going to its shard under the new
//! count; the gallery then flushes every shard into segments before it
//! takes a write, and removes the logs of the old layout.

use std::path::{Path, PathBuf};

use crate::error::{Result, io_err};
use crate::state::{Loc, State};
use crate::wal::{Wal, WalEntry};

/// The log of galleries written before write shards existed.
pub(crate) const SINGLE_LOG: &str = "wal.log";

/// File name of shard `shard`'s write-ahead log.
pub(crate) fn log_name(shard: usize) -> String {
    format!("wal-{shard}.log")
}

/// A record's shard: FNV-1a of its id, so the assignment is stable across
/// restarts and releases.
pub(crate) fn shard_of(record_id: &str, shards: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in record_id.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (h % shards.max(1) as u64) as usize
}

/// `items` grouped by the shard of their record id (`id` reads it): entry
/// `s` holds, in their order, the items of shard `s`.
pub(crate) fn by_shard<T>(items: impl IntoIterator<Item = T>, shards: usize, id: impl Fn(&T) -> &str) -> Vec<Vec<T>> {
    let mut groups: Vec<Vec<T>> = (0..shards.max(1)).map(|_| Vec::new()).collect();
    for item in items {
        groups[shard_of(id(&item), shards)].push(item);
    }
    groups
}

/// What one shard's writes go through; its mutex orders the shard's log
/// appends and flushes.
pub(crate) struct ShardWriter {
    pub wal: Wal,
}

/// The logs found when a gallery opens, replayed into its state.
pub(crate) struct OpenedLogs {
    /// One writer per shard, each on its (possibly new, empty) log.
    pub writers: Vec<ShardWriter>,
    /// Logs of another layout: the single log of earlier releases, or the
    /// logs of shards beyond the current count. They are removed once their
    /// records are in segments.
    pub foreign: Vec<PathBuf>,
    /// Some replayed change sits in a log other than its shard's under the
    /// current count: every shard must be flushed before the next write, or
    /// a later flush of one shard could empty a log another shard still
    /// needs.
    pub relayout: bool,
    /// Entries replayed.
    pub replayed: usize,
}

/// Opens the logs of `shards` shards in `dir` and replays them, and any
/// log of another layout, into `state`.
pub(crate) fn open_logs(dir: &Path, dim: usize, shards: usize, state: &mut State) -> Result<OpenedLogs> {
    let mut out = OpenedLogs {
        writers: Vec::with_capacity(shards),
        foreign: Vec::new(),
        relayout: false,
        replayed: 0,
    };
    for s in 0..shards {
        let (wal, entries) = Wal::open(&dir.join(log_name(s)), dim)?;
        out.replayed += entries.len();
        out.relayout |= replay(state, entries, shards, Some(s));
        out.writers.push(ShardWriter { wal });
    }
    for path in foreign_logs(dir, shards)? {
        let (_, entries) = Wal::open(&path, dim)?;
        out.replayed += entries.len();
        out.relayout |= replay(state, entries, shards, None);
        out.foreign.push(path);
    }
    Ok(out)
}

/// Applies one log's entries, routing records to their shard's memtable.
/// `from` is the shard whose log this is (`None` for a foreign log). Returns
/// true when an entry belongs to another shard than the log it came from.
fn replay(state: &mut State, entries: Vec<WalEntry>, shards: usize, from: Option<usize>) -> bool {
    let mut misplaced = false;
    for entry in entries {
        let id = match &entry {
            WalEntry::Insert { meta, .. } => meta.record_id.as_str(),
            WalEntry::Delete { record_id } => record_id.as_str(),
        };
        let shard = shard_of(id, shards);
        misplaced |= from != Some(shard);
        match entry {
            // Already live: the log outlived the flush that stored it.
            WalEntry::Insert { meta, .. } if state.ids.contains_key(&meta.record_id) => {}
            WalEntry::Insert { meta, vector } => {
                let row = state.mem[shard].push(meta, &vector);
                state.add_live(Loc::Mem(shard as u32, row));
            }
            WalEntry::Delete { record_id } => {
                state.remove_live(&record_id);
            }
        }
    }
    misplaced
}

/// Logs in `dir` that are not one of the `shards` current ones, in name
/// order.
fn foreign_logs(dir: &Path, shards: usize) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let shard = name
            .strip_prefix("wal-")
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<usize>().ok());
        if name == SINGLE_LOG || shard.is_some_and(|s| s >= shards) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_spread() {
        // Fixed values (FNV-1a 64 computed independently): a record's shard
        // must never change between releases, or its log would be misread
        // as another layout's.
        let first: Vec<usize> = (0..8).map(|i| shard_of(&format!("r{i:05}"), 4)).collect();
        assert_eq!(first, [3, 0, 1, 2, 3, 0, 1, 2]);
        assert_eq!(shard_of("face-17", 3), 2);
        assert_eq!(shard_of("anything", 1), 0);
        let groups = by_shard((0..4000).map(|i| format!("rec-{i}")), 4, String::as_str);
        for g in &groups {
            assert!((800..1200).contains(&g.len()), "{}", g.len());
        }
        assert_eq!(groups.iter().map(Vec::len).sum::<usize>(), 4000);
    }

    #[test]
    fn foreign_logs_are_the_single_log_and_shards_beyond_the_count() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "wal.log",
            "wal-0.log",
            "wal-1.log",
            "wal-2.log",
            "wal-x.log",
            "MANIFEST",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let names = |v: Vec<PathBuf>| -> Vec<String> {
            v.iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(names(foreign_logs(dir.path(), 2).unwrap()), ["wal-2.log", "wal.log"]);
        assert_eq!(names(foreign_logs(dir.path(), 3).unwrap()), ["wal.log"]);
        assert_eq!(
            names(foreign_logs(dir.path(), 1).unwrap()),
            ["wal-1.log", "wal-2.log", "wal.log"]
        );
    }
}
