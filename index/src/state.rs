//! The in-memory view of a gallery: its segments, the unflushed tail of each
//! write shard (memtables), tombstones, and the id and subject lookups.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::ann::Graph;
use crate::record::RecordMeta;
use crate::segment::Segment;

/// Where a live record's row is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Loc {
    /// Row `1` of segment slot `0`.
    Seg(u32, u32),
    /// Row `1` of write shard `0`'s memtable.
    Mem(u32, u32),
}

/// A segment with its tombstones and, when indexed, its graph.
pub(crate) struct SegSlot {
    pub seg: Arc<Segment>,
    pub deleted: Vec<bool>,
    pub n_deleted: usize,
    pub graph: Option<Arc<Graph>>,
}

impl SegSlot {
    pub fn new(seg: Segment, deleted_rows: &[u32]) -> SegSlot {
        let mut deleted = vec![false; seg.len()];
        let mut n_deleted = 0;
        for r in deleted_rows {
            if let Some(d) = deleted.get_mut(*r as usize)
                && !*d
            {
                *d = true;
                n_deleted += 1;
            }
        }
        SegSlot {
            seg: Arc::new(seg),
            deleted,
            n_deleted,
            graph: None,
        }
    }

    pub fn with_graph(mut self, graph: Option<Arc<Graph>>) -> SegSlot {
        self.graph = graph;
        self
    }

    pub fn deleted_rows(&self) -> Vec<u32> {
        self.deleted
            .iter()
            .enumerate()
            .filter(|(_, d)| **d)
            .map(|(i, _)| i as u32)
            .collect()
    }

    pub fn live_rows(&self) -> Vec<usize> {
        (0..self.deleted.len()).filter(|r| !self.deleted[*r]).collect()
    }

    /// Number of live rows.
    pub fn live(&self) -> usize {
        self.seg.len() - self.n_deleted
    }
}

/// Records a write shard took since its last flush; their source of truth
/// on disk is that shard's write-ahead log.
#[derive(Default)]
pub(crate) struct MemTable {
    pub vectors: Vec<f32>,
    pub metas: Vec<RecordMeta>,
    pub deleted: Vec<bool>,
    pub n_deleted: usize,
}

impl MemTable {
    pub fn len(&self) -> usize {
        self.metas.len()
    }
    pub fn push(&mut self, meta: RecordMeta, vector: &[f32]) -> u32 {
        self.vectors.extend_from_slice(vector);
        self.metas.push(meta);
        self.deleted.push(false);
        (self.metas.len() - 1) as u32
    }
    pub fn live_rows(&self) -> Vec<usize> {
        (0..self.metas.len()).filter(|r| !self.deleted[*r]).collect()
    }
    /// Number of live rows.
    pub fn live(&self) -> usize {
        self.len() - self.n_deleted
    }
}

/// Everything a search or a read needs, guarded by one lock.
pub(crate) struct State {
    pub dim: usize,
    pub slots: Vec<SegSlot>,
    /// One memtable per write shard.
    pub mem: Vec<MemTable>,
    /// Live records only, ordered for listing.
    pub ids: BTreeMap<String, Loc>,
    /// Live record ids of each subject.
    pub subjects: HashMap<String, BTreeSet<String>>,
}

impl State {
    pub fn new(dim: usize, shards: usize) -> State {
        State {
            dim,
            slots: Vec::new(),
            mem: (0..shards.max(1)).map(|_| MemTable::default()).collect(),
            ids: BTreeMap::new(),
            subjects: HashMap::new(),
        }
    }

    pub fn meta(&self, loc: Loc) -> &RecordMeta {
        match loc {
            Loc::Seg(s, r) => self.slots[s as usize].seg.meta(r as usize),
            Loc::Mem(m, r) => &self.mem[m as usize].metas[r as usize],
        }
    }

    pub fn vector(&self, loc: Loc) -> &[f32] {
        match loc {
            Loc::Seg(s, r) => self.slots[s as usize].seg.vector(r as usize),
            Loc::Mem(m, r) => &self.mem[m as usize].vectors[r as usize * self.dim..(r as usize + 1) * self.dim],
        }
    }

    /// Scan blocks: every segment, then each shard's memtable. Block `b`'s
    /// row `r` has scan id `b << 32 | r`.
    pub fn blocks(&self) -> impl Iterator<Item = (usize, &[f32])> {
        self.slots
            .iter()
            .map(|s| s.seg.vectors())
            .chain(self.mem.iter().map(|m| m.vectors.as_slice()))
            .enumerate()
    }

    pub fn loc_of_scan_id(&self, id: u64) -> Loc {
        let (b, r) = ((id >> 32) as usize, id as u32);
        if b < self.slots.len() {
            Loc::Seg(b as u32, r)
        } else {
            Loc::Mem((b - self.slots.len()) as u32, r)
        }
    }

    pub fn is_deleted(&self, loc: Loc) -> bool {
        match loc {
            Loc::Seg(s, r) => self.slots[s as usize].deleted[r as usize],
            Loc::Mem(m, r) => self.mem[m as usize].deleted[r as usize],
        }
    }

    pub fn add_live(&mut self, loc: Loc) {
        let m = self.meta(loc);
        let (rid, sid) = (m.record_id.clone(), m.subject_id.clone());
        self.subjects.entry(sid).or_default().insert(rid.clone());
        self.ids.insert(rid, loc);
    }

    /// Tombstones a live record; returns false when it was not live.
    pub fn remove_live(&mut self, record_id: &str) -> bool {
        let Some(loc) = self.ids.remove(record_id) else {
            return false;
        };
        let sid = self.meta(loc).subject_id.clone();
        if let Some(set) = self.subjects.get_mut(&sid) {
            set.remove(record_id);
            if set.is_empty() {
                self.subjects.remove(&sid);
            }
        }
        match loc {
            Loc::Seg(s, r) => {
                let slot = &mut self.slots[s as usize];
                slot.deleted[r as usize] = true;
                slot.n_deleted += 1;
            }
            Loc::Mem(m, r) => {
                let mem = &mut self.mem[m as usize];
                mem.deleted[r as usize] = true;
                mem.n_deleted += 1;
            }
        }
        true
    }

    /// Recomputes every location after slots were replaced.
    pub fn rebuild_locs(&mut self) {
        self.ids.clear();
        self.subjects.clear();
        let mut locs = Vec::new();
        for (s, slot) in self.slots.iter().enumerate() {
            locs.extend(slot.live_rows().into_iter().map(|r| Loc::Seg(s as u32, r as u32)));
        }
        for (m, mem) in self.mem.iter().enumerate() {
            locs.extend(mem.live_rows().into_iter().map(|r| Loc::Mem(m as u32, r as u32)));
        }
        for loc in locs {
            self.add_live(loc);
        }
    }

    pub fn pending_deletes(&self) -> usize {
        self.slots.iter().map(|s| s.n_deleted).sum::<usize>() + self.mem.iter().map(|m| m.n_deleted).sum::<usize>()
    }

    /// Live records in the memtables, not yet in any segment.
    pub fn unflushed(&self) -> usize {
        self.mem.iter().map(MemTable::live).sum()
    }
}
