//! Parallel HNSW construction (Malkov & Yashunin, 2018) over int8 codes.
//!
//! Nodes are inserted concurrently, each node's adjacency behind its own
//! lock, as hnswlib does. The first few thousand go in one at a time so that
//! the parallel phase starts from a connected graph rather than from many
//! threads racing to link into a near-empty one.

use std::sync::atomic::{AtomicU32, Ordering};

use parking_lot::Mutex;
use rayon::prelude::*;

use super::layer::{Links, beam, greedy};
use super::space::{Codes, Scored, with_scratch};

/// Graph shape and build effort.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HnswParams {
    /// Links per node on the upper layers; twice this on layer 0.
    pub m: usize,
    /// Beam width while inserting. Larger builds slower and finds better
    /// neighbours.
    pub ef_construction: usize,
    /// Seeds the level draw, so a build is reproducible.
    pub seed: u64,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: 16,
            ef_construction: 100,
            seed: 0x5eed,
        }
    }
}

/// Highest level a node may draw.
const MAX_LEVEL: usize = 15;
/// Nodes inserted one by one before the parallel phase.
const SERIAL_PREFIX: usize = 2_000;

/// A built graph, handed to the file writer.
pub(crate) struct Built {
    pub m: usize,
    pub m0: usize,
    pub entry: u32,
    pub max_level: usize,
    pub levels: Vec<u8>,
    /// Layer 0, `1 + m0` words per node: count, then links.
    pub layer0: Vec<u32>,
    /// `upper[node][level - 1]`, empty for nodes on layer 0 only.
    pub upper: Vec<Vec<Vec<u32>>>,
}

/// Set in a node's layer-0 count word while a thread holds the node.
const LOCKED: u32 = 1 << 31;

/// A graph under construction.
///
/// Layer 0, where nearly all the work happens, is one flat array with a
/// fixed stride per node, and each node's lock is a bit of its own count
/// word: reading a neighbour list costs the cache lines of that list and
/// nothing else (no separate lock, no pointer to chase). The sparse upper
/// layers sit behind ordinary per-node mutexes.
struct Building<'a> {
    codes: Codes<'a>,
    p: HnswParams,
    m0: usize,
    levels: Vec<u8>,
    layer0: Vec<AtomicU32>,
    upper: Vec<Mutex<Vec<Vec<u32>>>>,
    entry: Mutex<(u32, usize)>,
}

impl Links for Building<'_> {
    fn with_neighbors<R>(&self, node: u32, level: usize, f: impl FnOnce(&[u32]) -> R) -> R {
        if level == 0 {
            let mut buf = [0u32; 2 * MAX_M];
            let n = self.read0(node, &mut buf);
            f(&buf[..n])
        } else {
            let up = self.upper[node as usize].lock();
            f(up.get(level - 1).map_or(&[][..], |v| v.as_slice()))
        }
    }
}

/// Largest `m` accepted (layer 0 holds twice as many links).
pub const MAX_M: usize = 64;

/// Draws node `i`'s level: geometric with ratio 1/m, from a hash of the seed
/// and `i` so that the draw does not depend on thread scheduling.
fn level_of(seed: u64, i: u64, m: usize) -> u8 {
    let mut z = seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let u = ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let ml = 1.0 / (m as f64).ln();
    ((-u.ln() * ml) as usize).min(MAX_LEVEL) as u8
}

/// Builds the graph of all rows of `codes`, on the current rayon pool.
pub(crate) fn build(codes: Codes<'_>, n: usize, p: HnswParams) -> Built {
    let m = p.m.clamp(2, MAX_M);
    let p = HnswParams { m, ..p };
    let m0 = 2 * m;
    let levels: Vec<u8> = (0..n as u64).map(|i| level_of(p.seed, i, m)).collect();
    let b = Building {
        codes,
        p,
        m0,
        layer0: (0..n * (1 + m0)).map(|_| AtomicU32::new(0)).collect(),
        upper: levels
            .iter()
            .map(|&l| Mutex::new(vec![Vec::new(); l as usize]))
            .collect(),
        entry: Mutex::new((0, levels.first().copied().unwrap_or(0) as usize)),
        levels,
    };
    if n > 1 {
        let serial = n.min(SERIAL_PREFIX);
        (1..serial).for_each(|i| b.insert(i as u32));
        (serial..n).into_par_iter().for_each(|i| b.insert(i as u32));
    }
    let (entry, max_level) = *b.entry.lock();
    Built {
        m,
        m0,
        entry,
        max_level,
        levels: b.levels,
        layer0: b.layer0.into_iter().map(AtomicU32::into_inner).collect(),
        upper: b.upper.into_iter().map(Mutex::into_inner).collect(),
    }
}

impl Building<'_> {
    fn slot(&self, node: u32) -> &[AtomicU32] {
        let at = node as usize * (1 + self.m0);
        &self.layer0[at..at + 1 + self.m0]
    }

    /// Takes `node`'s layer-0 lock and returns its link count.
    fn lock0(&self, node: u32) -> usize {
        let w = &self.slot(node)[0];
        loop {
            let v = w.load(Ordering::Relaxed);
            if v & LOCKED == 0
                && w.compare_exchange_weak(v, v | LOCKED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return v as usize;
            }
            std::hint::spin_loop();
        }
    }

    /// Releases `node`'s lock, storing its new link count.
    fn unlock0(&self, node: u32, count: usize) {
        self.slot(node)[0].store(count as u32, Ordering::Release);
    }

    /// Copies `node`'s layer-0 links into `buf`; returns how many.
    fn read0(&self, node: u32, buf: &mut [u32]) -> usize {
        let n = self.lock0(node);
        let slot = self.slot(node);
        for (b, w) in buf[..n].iter_mut().zip(&slot[1..]) {
            *b = w.load(Ordering::Relaxed);
        }
        self.unlock0(node, n);
        n
    }

    fn insert(&self, q: u32) {
        let level = self.levels[q as usize] as usize;
        let (ep, top) = *self.entry.lock();
        let codes = self.codes;
        let score = |n: u32| codes.pair(q, n);
        let prefetch = |n: u32| codes.prefetch(n);
        let mut cur = Scored(score(ep), ep);
        for l in (level + 1..=top).rev() {
            cur = greedy(self, &score, cur, l);
        }
        let mut entries = vec![cur];
        for l in (0..=level.min(top)).rev() {
            let found = with_scratch(self.levels.len(), |v| {
                beam(
                    self,
                    &score,
                    &prefetch,
                    &entries,
                    self.p.ef_construction,
                    l,
                    v,
                    &|_| true,
                    None,
                )
            })
            .unwrap_or_default();
            let chosen = self.select(&found, self.p.m);
            if l == 0 {
                // Other threads may already have linked to q here (they can
                // reach it through its upper layers): keep those links too.
                let had = self.lock0(q);
                let slot = self.slot(q);
                let mut list: Vec<u32> = slot[1..1 + had].iter().map(|w| w.load(Ordering::Relaxed)).collect();
                for &c in &chosen {
                    if list.len() < self.m0 && !list.contains(&c) {
                        list.push(c);
                    }
                }
                for (w, x) in slot[1..].iter().zip(&list) {
                    w.store(*x, Ordering::Relaxed);
                }
                self.unlock0(q, list.len());
            } else {
                self.upper[q as usize].lock()[l - 1] = chosen.clone();
            }
            let cap = if l == 0 { self.m0 } else { self.p.m };
            for &nb in &chosen {
                self.link(nb, q, l, cap);
            }
            if !found.is_empty() {
                entries = found;
            }
        }
        if level > top {
            let mut e = self.entry.lock();
            if level > e.1 {
                *e = (q, level);
            }
        }
    }

    /// Adds `q` to `node`'s links on `level`, pruning back to `cap` with the
    /// same heuristic when full.
    fn link(&self, node: u32, q: u32, level: usize, cap: usize) {
        if level > 0 {
            let mut up = self.upper[node as usize].lock();
            let list = &mut up[level - 1];
            if !list.contains(&q) {
                list.push(q);
                if list.len() > cap {
                    *list = self.prune(node, list, cap);
                }
            }
            return;
        }
        let n = self.lock0(node);
        let slot = self.slot(node);
        let mut list: Vec<u32> = slot[1..1 + n].iter().map(|w| w.load(Ordering::Relaxed)).collect();
        if list.contains(&q) {
            self.unlock0(node, n);
            return;
        }
        if n < cap {
            slot[1 + n].store(q, Ordering::Relaxed);
            self.unlock0(node, n + 1);
            return;
        }
        list.push(q);
        let kept = self.prune(node, &list, cap);
        for (w, x) in slot[1..].iter().zip(&kept) {
            w.store(*x, Ordering::Relaxed);
        }
        self.unlock0(node, kept.len());
    }

    /// `node`'s best `cap` links of `list` by the selection heuristic.
    fn prune(&self, node: u32, list: &[u32], cap: usize) -> Vec<u32> {
        let mut cands: Vec<Scored> = list.iter().map(|&n| Scored(self.codes.pair(node, n), n)).collect();
        cands.sort_unstable_by(|a, b| b.cmp(a));
        self.select(&cands, cap)
    }

    /// The neighbour-selection heuristic: a candidate is kept only when it is
    /// closer to the base than to every neighbour kept so far, which spreads
    /// links across directions instead of spending them on one cluster. If
    /// that leaves fewer than `m`, the best pruned ones fill up the list.
    fn select(&self, sorted: &[Scored], m: usize) -> Vec<u32> {
        if sorted.len() <= m {
            return sorted.iter().map(|s| s.1).collect();
        }
        let mut kept: Vec<u32> = Vec::with_capacity(m);
        let mut pruned: Vec<u32> = Vec::new();
        for s in sorted {
            if kept.len() == m {
                break;
            }
            if kept.iter().all(|&k| self.codes.pair(s.1, k) < s.0) {
                kept.push(s.1);
            } else {
                pruned.push(s.1);
            }
        }
        for p in pruned {
            if kept.len() == m {
                break;
            }
            kept.push(p);
        }
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_geometric() {
        let counts = (0..100_000u64).fold([0usize; 4], |mut c, i| {
            let l = level_of(7, i, 16) as usize;
            if l < 4 {
                c[l] += 1;
            }
            c
        });
        // P(level >= 1) = 1/16.
        let above = 100_000 - counts[0];
        assert!((5_500..7_000).contains(&above), "{above} nodes above layer 0");
        assert!(counts[1] > counts[2] * 10);
    }
}
