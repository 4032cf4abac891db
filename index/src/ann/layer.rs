//! The two searches every HNSW operation is made of: a greedy descent
//! through the sparse upper layers and a beam search (width `ef`) on one
//! layer. Shared by the builder (links behind locks) and the loaded graph
//! (links in a memory map) through [`Links`].

use std::cmp::Reverse;
use std::sync::atomic::{AtomicBool, Ordering};

use biomatch_kernels::Cancelled;

use super::space::{Scored, Scratch};

/// Read access to a graph's adjacency.
pub(crate) trait Links {
    /// Calls `f` with the neighbours of `node` on `level` (empty when the node
    /// does not reach that level).
    fn with_neighbors<R>(&self, node: u32, level: usize, f: impl FnOnce(&[u32]) -> R) -> R;

    /// Hints the CPU to load `node`'s layer-0 links, which the search is
    /// about to read.
    fn prefetch_links(&self, _node: u32) {}
}

/// Expansions between two looks at the cancel flag.
const CANCEL_EVERY: usize = 256;

/// Greedy walk on `level` from `start` towards the best-scoring node.
pub(crate) fn greedy<L: Links>(links: &L, score: &impl Fn(u32) -> f32, start: Scored, level: usize) -> Scored {
    let mut cur = start;
    loop {
        let mut next = cur;
        links.with_neighbors(cur.1, level, |nb| {
            for &n in nb {
                let s = Scored(score(n), n);
                if s > next {
                    next = s;
                }
            }
        });
        if next == cur {
            return cur;
        }
        cur = next;
    }
}

/// Beam search of width `ef` on `level`, from `entries`. Every node reached
/// is expanded, but only those `accept` admits enter the result, so filters
/// and tombstones cost recall only as far as they thin the neighbourhood.
/// Returns up to `ef` accepted nodes, best first.
#[allow(clippy::too_many_arguments)]
pub(crate) fn beam<L: Links>(
    links: &L,
    score: &impl Fn(u32) -> f32,
    prefetch: &impl Fn(u32),
    entries: &[Scored],
    ef: usize,
    level: usize,
    scratch: &mut Scratch,
    accept: &dyn Fn(u32) -> bool,
    cancel: Option<&AtomicBool>,
) -> Result<Vec<Scored>, Cancelled> {
    let Scratch {
        visited,
        frontier,
        best,
        fresh,
    } = scratch;
    frontier.clear();
    best.clear();
    for &e in entries {
        if visited.insert(e.1) {
            frontier.push(e);
            if accept(e.1) {
                best.push(Reverse(e));
            }
        }
    }
    while best.len() > ef {
        best.pop();
    }
    let mut expansions = 0usize;
    while let Some(c) = frontier.pop() {
        if best.len() >= ef && best.peek().is_some_and(|w| c.0 < w.0.0) {
            break;
        }
        expansions += 1;
        if expansions.is_multiple_of(CANCEL_EVERY) && cancel.is_some_and(|f| f.load(Ordering::Relaxed)) {
            return Err(Cancelled);
        }
        fresh.clear();
        links.with_neighbors(c.1, level, |nb| {
            fresh.extend(nb.iter().copied().filter(|&n| visited.insert(n)))
        });
        // Ask for every neighbour's codes before scoring the first, so that
        // their cache misses overlap instead of queueing.
        for &n in fresh.iter() {
            prefetch(n);
        }
        for &n in fresh.iter() {
            let s = Scored(score(n), n);
            let worst = best.peek().map_or(f32::NEG_INFINITY, |w| w.0.0);
            if best.len() < ef || s.0 > worst {
                frontier.push(s);
                if accept(n) {
                    best.push(Reverse(s));
                    if best.len() > ef {
                        best.pop();
                    }
                }
            }
        }
        if let Some(next) = frontier.peek() {
            links.prefetch_links(next.1);
        }
    }
    let mut out: Vec<Scored> = best.drain().map(|r| r.0).collect();
    out.sort_unstable_by(|a, b| b.cmp(a));
    Ok(out)
}
