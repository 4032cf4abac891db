//! Approximate nearest-neighbour search for embedding galleries.
//!
//! Each large immutable segment may carry an HNSW graph over int8 codes of
//! its rows (`seg-N.hnsw`, beside `seg-N.seg`). A search walks the graph on
//! the codes, keeps an oversampled candidate list, and rescores it with the
//! exact f32 rows read from the segment's memory map, so quantisation costs
//! recall only where a true neighbour falls out of the candidate list.
//! Small segments and the unflushed tail are always scanned exactly.

mod build;
mod graph;
mod layer;
mod space;

pub use build::HnswParams;
pub use graph::Graph;
pub use space::prefetch_rows;

/// How a search treats segments that carry a graph.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SearchMode {
    /// Graph search where a graph exists, exact scan elsewhere.
    #[default]
    Auto,
    /// Exact scan of every row, graphs ignored.
    Exact,
    /// Graph search wherever a graph exists (same as `Auto` today; kept
    /// separate so that a caller can insist and later planners may not).
    Ann,
}

/// Per-request approximate-search options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnnQuery {
    /// Exact, approximate, or let the planner pick.
    pub mode: SearchMode,
    /// Beam width of the graph search; 0 = [`AnnQuery::DEFAULT_EF`]. Raised
    /// to `k` when smaller.
    pub ef: usize,
    /// Candidates rescored exactly per hit wanted; 0 =
    /// [`AnnQuery::DEFAULT_OVERSAMPLE`]. At most the `ef` the walk returns.
    pub oversample: usize,
}

impl AnnQuery {
    /// Default beam width.
    pub const DEFAULT_EF: usize = 96;
    /// Default oversampling factor.
    pub const DEFAULT_OVERSAMPLE: usize = 4;

    /// Beam width and rescored candidates for a top-`k` search.
    pub fn plan(&self, k: usize) -> (usize, usize) {
        let over = if self.oversample == 0 {
            Self::DEFAULT_OVERSAMPLE
        } else {
            self.oversample
        };
        let ef = if self.ef == 0 { Self::DEFAULT_EF } else { self.ef }.max(k);
        (ef, k.saturating_mul(over).clamp(k, ef))
    }
}

impl Default for AnnQuery {
    fn default() -> Self {
        AnnQuery {
            mode: SearchMode::Auto,
            ef: 0,
            oversample: 0,
        }
    }
}

/// When and how a gallery builds graphs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnnOptions {
    /// Segments with fewer live rows are not indexed: below this an exact scan
    /// is as fast as a graph search and always exact.
    pub min_rows: usize,
    /// Segments an optimised gallery is split into; each gets its own graph
    /// and they are searched in parallel.
    pub shards: usize,
    /// Graph shape and build effort.
    pub hnsw: HnswParams,
}

impl Default for AnnOptions {
    fn default() -> Self {
        AnnOptions {
            min_rows: 50_000,
            shards: 1,
            hnsw: HnswParams::default(),
        }
    }
}

#[cfg(test)]
mod tests;
