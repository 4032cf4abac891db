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
use std::time::Instant;

use anndists::dist::DistDot;
use biomatch_benches::ann_run::{GraphRunArgs, read_truth, recall, rss_bytes};
use biomatch_datasets::read_npy;
use clap::Parser;
use hnsw_rs::hnsw::Hnsw;
use rayon::prelude::*;
use serde_json::json;

/// Builds an hnsw_rs index over a gallery (unit vectors: `DistDot` is
/// 1 - dot), then times searches per `ef` each time a line arrives on stdin.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    run: GraphRunArgs,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse().run;
    // hnsw_rs inserts on rayon's global pool; searches run on it too.
    rayon::ThreadPoolBuilder::new().num_threads(a.threads).build_global()?;
    let g = read_npy(&a.gallery)?;
    let q = read_npy(&a.queries)?;
    let truth = read_truth(a.truth.as_deref().ok_or("--truth is required")?, a.k)?;
    let k = truth.first().map_or(a.k, Vec::len);

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
            let mut found: Vec<Vec<u32>> = Vec::new();
            for _ in 0..a.repeats.max(1) {
                let t = Instant::now();
                found = (0..q.rows)
                    .into_par_iter()
                    .map(|i| index.search(q.row(i), k, ef).iter().map(|n| n.d_id as u32).collect())
                    .collect();
                best = best.min(t.elapsed().as_secs_f64());
            }
            runs.push(json!({
                "ef": ef,
                "qps": q.rows as f64 / best,
                "recall_at_k": recall(&truth, &found, k),
            }));
        }
        println!("{}", json!({ "runs": runs }));
    }
    Ok(())
}
