//! What a graph search scores with: int8 codes of the rows and a query.

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use biomatch_kernels::{Kernels, quantize_i8};

use crate::codec::f32_bytes;

/// Int8 codes of `n` rows of `dim` values, with one scale per row.
#[derive(Clone, Copy)]
pub(crate) struct Codes<'a> {
    pub dim: usize,
    pub codes: &'a [i8],
    pub scales: &'a [f32],
    pub kernels: Kernels,
}

impl<'a> Codes<'a> {
    #[inline]
    pub fn row(&self, i: u32) -> &'a [i8] {
        let i = i as usize;
        &self.codes[i * self.dim..(i + 1) * self.dim]
    }

    /// Approximate inner product of rows `a` and `b`.
    #[inline]
    pub fn pair(&self, a: u32, b: u32) -> f32 {
        self.scales[a as usize] * self.scales[b as usize] * self.kernels.dot_i8(self.row(a), self.row(b)) as f32
    }

    /// Approximate inner product of the query with row `i`, up to the
    /// query's own (common) scale.
    #[inline]
    pub fn query(&self, q: &[i8], i: u32) -> f32 {
        self.scales[i as usize] * self.kernels.dot_i8(q, self.row(i)) as f32
    }

    /// Hints the CPU to start loading row `i`'s codes and scale. The
    /// scales are a separate array of one float per row, so without this a
    /// scored row costs a second, unhidden miss.
    #[inline]
    pub fn prefetch(&self, i: u32) {
        let row = self.row(i);
        // SAFETY: i8 and u8 have the same layout.
        prefetch_bytes(unsafe { std::slice::from_raw_parts(row.as_ptr().cast::<u8>(), row.len()) });
        prefetch_bytes(f32_bytes(std::slice::from_ref(&self.scales[i as usize])));
    }
}

/// Hints the CPU to start loading every f32 row of `rows`, before a loop
/// scores them one after the other: rescoring reads a few dozen rows from
/// anywhere in a segment, and issued together their misses overlap.
pub fn prefetch_rows<'a>(rows: impl IntoIterator<Item = &'a [f32]>) {
    for row in rows {
        prefetch_bytes(f32_bytes(row));
    }
}

/// Hints the CPU to start loading every cache line of `bytes`.
#[inline]
pub(crate) fn prefetch_bytes(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let mut off = 0;
        while off < bytes.len() {
            // SAFETY: a prefetch never faults and the address is in bounds.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(bytes.as_ptr().add(off).cast()) };
            off += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// Quantises every row of `vectors` (row-major, `dim` columns).
pub(crate) fn quantize_rows(vectors: &[f32], dim: usize) -> (Vec<i8>, Vec<f32>) {
    use rayon::prelude::*;
    let n = vectors.len() / dim;
    let mut codes = vec![0i8; n * dim];
    let mut scales = vec![0f32; n];
    codes
        .par_chunks_mut(dim)
        .zip(scales.par_iter_mut())
        .zip(vectors.par_chunks(dim))
        .for_each(|((c, s), v)| *s = quantize_i8(v, c));
    (codes, scales)
}

/// A score with a total order (NaN, which the kernels never produce, sorts
/// lowest), paired with a node id.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Scored(pub f32, pub u32);

impl Eq for Scored {}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then_with(|| other.1.cmp(&self.1))
    }
}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Per-thread working memory of a search, reused so that a query allocates
/// nothing but its answer.
pub(crate) struct Scratch {
    pub visited: Visited,
    pub frontier: BinaryHeap<Scored>,
    pub best: BinaryHeap<Reverse<Scored>>,
    pub fresh: Vec<u32>,
}

/// Nodes seen by the current search: one bit per node, plus the list of
/// nodes marked, so that starting a new search clears only what the last
/// one touched.
///
/// Why bits: a search checks every neighbour it meets, in no order. With a
/// 4-byte stamp per node a million-row graph has a 4 MiB visited array, and
/// that check was the second most expensive load of the walk (profiled at
/// 1M x 128); as bits it is 125 KiB and stays in the core's L2.
pub(crate) struct Visited {
    bits: Vec<u64>,
    marked: Vec<u32>,
}

impl Visited {
    fn reset(&mut self, n: usize) {
        for &i in &self.marked {
            self.bits[i as usize / 64] = 0;
        }
        self.marked.clear();
        let words = n.div_ceil(64);
        if self.bits.len() < words {
            self.bits.resize(words, 0);
        }
    }

    /// Marks `i`; true when it was not marked yet.
    #[inline]
    pub fn insert(&mut self, i: u32) -> bool {
        let (w, bit) = (&mut self.bits[i as usize / 64], 1u64 << (i % 64));
        if *w & bit != 0 {
            false
        } else {
            *w |= bit;
            self.marked.push(i);
            true
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const {
        RefCell::new(Scratch {
            visited: Visited { bits: Vec::new(), marked: Vec::new() },
            frontier: BinaryHeap::new(),
            best: BinaryHeap::new(),
            fresh: Vec::new(),
        })
    };
}

/// Runs `f` with this thread's scratch, its visited set reset for `n` nodes.
pub(crate) fn with_scratch<R>(n: usize, f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        s.visited.reset(n);
        f(&mut s)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visited_marks_once_and_forgets_between_searches() {
        let seen = |n: usize, ids: &[u32]| -> Vec<bool> {
            with_scratch(n, |s| ids.iter().map(|&i| s.visited.insert(i)).collect())
        };
        assert_eq!(
            seen(200, &[0, 63, 64, 199, 63, 0]),
            [true, true, true, true, false, false]
        );
        // The next search starts clean, including on words shared with
        // marked nodes, and may cover more nodes than the last.
        assert_eq!(seen(200, &[1, 62, 65, 199]), [true, true, true, true]);
        assert_eq!(seen(1_000, &[999, 1, 999]), [true, true, false]);
        assert_eq!(seen(10, &[1, 9]), [true, true]);
    }
}
