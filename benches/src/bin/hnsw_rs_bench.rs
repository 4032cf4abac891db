//! hnsw_rs (the Rust HNSW crate) on the same `.npy` inputs as `ann_bench`,
//! so that benches/peers/ann_vs_hnswlib_faiss.py can put it in the same run
//! as biomatch, hnswlib and faiss: the issue asked for hnsw_rs to be
//! measured among the candidates for the gallery's index.
//!
//! hnsw_rs has no Python package and no index file that the harness could
//! reopen per round, so this binary keeps its index in memory: it builds,
//! prints one JSON line (build time, memory added), then prints one JSON
//! line of timed runs for every line read from stdin, until stdin closes.
//!
//! Built only with the `hnsw-rs` feature, so the workspace's own builds and
//! CI never compile the crate:
//! `cargo build --release -p biomatch-benches --features hnsw-rs --bin hnsw_rs_bench`

use std::io::BufRead;
use std::path::PathBuf;
use std::time::Instant;

use anndists::dist::DistDot;
use biomatch_datasets::read_npy;
use clap::Parser;
use hnsw_rs::hnsw::Hnsw;
use rayon::prelude::*;
use serde_json::json;

/// Builds an hnsw_rs index over a gallery, then times searches per `ef`
/// each time a line arrives on stdin.
#[derive(Parser)]
struct Args {
    /// Gallery, N x D float32 .npy (unit vectors: DistDot is 1 - dot).
    #[arg(long)]
    gallery: PathBuf,
    /// Queries, Q x D float32 .npy.
    #[arg(long)]
    queries: PathBuf,
    /// Exact top-k ids per query (Q x k float32 .npy).
    #[arg(long)]
    truth: PathBuf,
    /// Threads for build and search.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Links per node (hnsw_rs doubles it on layer 0, as hnswlib does).
    #[arg(long, default_value_t = 16)]
    m: usize,
    /// Build beam width.
    #[arg(long, default_value_t = 100)]
    ef_construction: usize,
    /// Search beam widths to try.
    #[arg(long, value_delimiter = ',', default_value = "16,32,64,96,128,200")]
    ef: Vec<usize>,
    /// Hits per query.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Passes per beam width in a round (the best counts).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|x| x.parse::<u64>().ok()))
        .map_or(0, |pages| pages * 4096)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse();
    // hnsw_rs inserts on rayon's global pool; searches run on it too.
    rayon::ThreadPoolBuilder::new().num_threads(a.threads).build_global()?;
    let g = read_npy(&a.gallery)?;
    let q = read_npy(&a.queries)?;
    let t = read_npy(&a.truth)?;
    let k = a.k.min(t.cols);
    let truth: Vec<Vec<usize>> = (0..t.rows)
        .map(|i| t.row(i)[..k].iter().map(|x| *x as usize).collect())
        .collect();

    let rss_before = rss_bytes();
    let start = Instant::now();
    let layers = 16.min((g.rows.max(2) as f64).ln().ceil() as usize);
    let mut index = Hnsw::<f32, DistDot>::new(a.m, g.rows, layers, a.ef_construction, DistDot {});
    let items: Vec<(&[f32], usize)> = (0..g.rows).map(|i| (g.row(i), i)).collect();
    index.parallel_insert_slice(&items);
    index.set_searching_mode(true);
    let build_s = start.elapsed().as_secs_f64();
    let built = json!({
        "engine": "hnsw_rs",
        "n": g.rows,
        "dim": g.cols,
        "threads": a.threads,
        "build_s": build_s,
        "rss_delta_bytes": rss_bytes().saturating_sub(rss_before),
    });
    println!("{built}");

    for line in std::io::stdin().lock().lines() {
        line?;
        let mut runs = Vec::new();
        for &ef in &a.ef {
            let ef = ef.max(k);
            let mut best = f64::INFINITY;
            let mut found: Vec<Vec<usize>> = Vec::new();
            for _ in 0..a.repeats.max(1) {
                let t = Instant::now();
                found = (0..q.rows)
                    .into_par_iter()
                    .map(|i| index.search(q.row(i), k, ef).iter().map(|n| n.d_id).collect())
                    .collect();
                best = best.min(t.elapsed().as_secs_f64());
            }
            let hits: usize = truth
                .iter()
                .zip(&found)
                .map(|(want, got)| want.iter().filter(|x| got.contains(x)).count())
                .sum();
            runs.push(json!({
                "ef": ef,
                "qps": q.rows as f64 / best,
                "recall_at_k": hits as f64 / (truth.len() * k).max(1) as f64,
            }));
        }
        println!("{}", json!({ "runs": runs }));
    }
    Ok(())
}
