//! What the graph-search binaries of the ANN peer comparison share
//! (`ann_bench` for biomatch, `hnsw_rs_bench` for the hnsw_rs crate): the
//! inputs and graph settings every engine is given, recall against the
//! exact answer, and the memory an index adds.

use std::path::{Path, PathBuf};

use biomatch_datasets::read_npy;

use crate::BenchError;

/// Inputs and settings common to every engine of
/// benches/peers/ann_vs_hnswlib_faiss.py.
#[derive(clap::Args, Debug)]
pub struct GraphRunArgs {
    /// Gallery, N x D float32 .npy.
    #[arg(long)]
    pub gallery: PathBuf,
    /// Queries, Q x D float32 .npy.
    #[arg(long)]
    pub queries: PathBuf,
    /// Exact top-k ids per query (Q x k float32 .npy).
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// Threads for build and search.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Links per node (twice this on layer 0).
    #[arg(long, default_value_t = 16)]
    pub m: usize,
    /// Build beam width.
    #[arg(long, default_value_t = 100)]
    pub ef_construction: usize,
    /// Search beam widths to try.
    #[arg(long, value_delimiter = ',', default_value = "16,32,64,96,128,200")]
    pub ef: Vec<usize>,
    /// Hits per query.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Passes per beam width (the best counts).
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
}

/// The first `k` ids of each row of a ground-truth `.npy` (ids stored as
/// float32, as the peer script writes them).
pub fn read_truth(path: &Path, k: usize) -> Result<Vec<Vec<u32>>, BenchError> {
    let t = read_npy(path)?;
    let k = k.min(t.cols);
    Ok((0..t.rows)
        .map(|i| t.row(i)[..k].iter().map(|x| *x as u32).collect())
        .collect())
}

/// Share of the true top-`k` ids found, over all queries.
pub fn recall(truth: &[Vec<u32>], found: &[Vec<u32>], k: usize) -> f64 {
    let hits: usize = truth
        .iter()
        .zip(found)
        .map(|(t, f)| t.iter().take(k).filter(|x| f.contains(x)).count())
        .sum();
    hits as f64 / (truth.len() * k).max(1) as f64
}

/// This process's resident memory in bytes (Linux; 0 elsewhere).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|x| x.parse::<u64>().ok()))
        .map_or(0, |pages| pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recall_counts_true_ids_found_among_the_first_k() {
        let truth = vec![vec![1, 2, 3], vec![4, 5, 6]];
        let found = vec![vec![3, 9, 1], vec![7, 8, 9]];
        assert!((recall(&truth, &found, 3) - 2.0 / 6.0).abs() < 1e-12);
        assert!((recall(&truth, &found, 1) - 0.5).abs() < 1e-12);
    }
}
