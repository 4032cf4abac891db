//! Graph (HNSW) search timing and recall on `.npy` inputs, for side-by-side
//! runs with hnswlib and faiss (benches/peers/ann_vs_hnswlib_faiss.py feeds
//! every engine the same files, ground truth and thread count). Prints one
//! JSON object.
//!
//! What it times is the product's search path: graph walk on int8 codes,
//! then exact f32 rescoring of `k * oversample` candidates.

use std::path::PathBuf;
use std::time::Instant;

use biomatch_benches::ann_run::{GraphRunArgs, read_truth, recall, rss_bytes};
use biomatch_datasets::read_npy;
use biomatch_index::ann::{AnnQuery, Graph, HnswParams, prefetch_rows};
use biomatch_kernels::{Isa, Kernels, Metric, ScanParams, TopK, quantize_i8, scan_topk};
use clap::Parser;
use rayon::prelude::*;
use serde_json::json;

/// Builds a graph over a gallery and measures recall@k and QPS per `ef`.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    run: GraphRunArgs,
    /// Where the graph file goes.
    #[arg(long, default_value = "target/ann_bench.hnsw")]
    graph: PathBuf,
    /// Candidates rescored per hit.
    #[arg(long, default_value_t = AnnQuery::DEFAULT_OVERSAMPLE)]
    oversample: usize,
    /// Reuse the graph file when it exists (search experiments on a large
    /// build); build time is then reported as 0.
    #[arg(long)]
    reuse: bool,
    /// Skip the exhaustive int8-versus-f32 check (search-only A/B runs);
    /// its field is then null.
    #[arg(long)]
    no_quant_check: bool,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse();
    let r = &a.run;
    let g = read_npy(&r.gallery)?;
    let q = read_npy(&r.queries)?;
    let (n, dim, k) = (g.rows, g.cols, r.k);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(r.threads).build()?;
    let kernels = Kernels::active();
    let truth: Vec<Vec<u32>> = match &r.truth {
        Some(p) => read_truth(p, k)?,
        None => pool.install(|| {
            (0..q.rows)
                .into_par_iter()
                .map(|i| exact(kernels, q.row(i), &g.data, k))
                .collect()
        }),
    };

    let rss_before = rss_bytes();
    let t = Instant::now();
    if !(a.reuse && a.graph.exists()) {
        pool.install(|| Graph::build_to(&a.graph, 0, &g.data, dim, params(&a)))?;
    }
    let build_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let graph = Graph::open(&a.graph, 0, n, dim)?;
    let open_s = t.elapsed().as_secs_f64();

    let mut runs = Vec::new();
    for &ef in &r.ef {
        let query = AnnQuery {
            ef,
            oversample: a.oversample,
            ..AnnQuery::default()
        };
        let (ef, rescore) = query.plan(k);
        let mut best = f64::INFINITY;
        let mut found: Vec<Vec<u32>> = Vec::new();
        for _ in 0..r.repeats.max(1) {
            let t = Instant::now();
            found = pool.install(|| {
                (0..q.rows)
                    .into_par_iter()
                    .map(|i| search(&graph, kernels, q.row(i), &g.data, dim, k, ef, rescore))
                    .collect()
            });
            best = best.min(t.elapsed().as_secs_f64());
        }
        runs.push(json!({
            "ef": ef,
            "rescored": rescore,
            "qps": q.rows as f64 / best,
            "recall_at_k": recall(&truth, &found, k),
        }));
    }
    let rss_after = rss_bytes();

    let identical = (!a.no_quant_check)
        .then(|| pool.install(|| int8_rescore_identical(kernels, &g.data, &q.data, dim, k, a.oversample, &truth)));
    let out = json!({
        "engine": "biomatch",
        "isa": Isa::active().name(),
        "n": n,
        "dim": dim,
        "queries": q.rows,
        "threads": r.threads,
        "m": r.m,
        "ef_construction": r.ef_construction,
        "build_s": build_s,
        "open_s": open_s,
        "graph_file_bytes": graph.file_len(),
        "rss_delta_bytes": rss_after.saturating_sub(rss_before),
        "runs": runs,
        "int8_rescore_top_k_identical_to_exact": identical,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn params(a: &Args) -> HnswParams {
    HnswParams {
        m: a.run.m,
        ef_construction: a.run.ef_construction,
        ..HnswParams::default()
    }
}

fn exact(kernels: Kernels, probe: &[f32], rows: &[f32], k: usize) -> Vec<u32> {
    let params = ScanParams::new(Metric::InnerProduct, k);
    scan_topk(kernels, probe, rows, 0, &params)
        .expect("not cancelled")
        .into_sorted_vec()
        .iter()
        .map(|h| h.id as u32)
        .collect()
}

/// Graph candidates, rescored exactly: the product's search path.
#[allow(clippy::too_many_arguments)]
fn search(
    graph: &Graph,
    kernels: Kernels,
    probe: &[f32],
    rows: &[f32],
    dim: usize,
    k: usize,
    ef: usize,
    rescore: usize,
) -> Vec<u32> {
    let cands = graph.search(probe, ef, &|_| true, None).expect("not cancelled");
    let mut top = TopK::new(k);
    let cands = &cands[..rescore.min(cands.len())];
    let row_of = |r: u32| &rows[r as usize * dim..(r as usize + 1) * dim];
    prefetch_rows(cands.iter().map(|&(r, _)| row_of(r)));
    for &(row, _) in cands {
        top.push(kernels.dot(probe, row_of(row)), u64::from(row));
    }
    top.into_sorted_vec().iter().map(|h| h.id as u32).collect()
}

/// Share of queries whose top-k from an exhaustive int8 scan, rescored in
/// f32 over `k * oversample` candidates, equals the exact f32 top-k as a set.
/// This isolates what quantisation costs from what the graph costs.
fn int8_rescore_identical(
    kernels: Kernels,
    rows: &[f32],
    queries: &[f32],
    dim: usize,
    k: usize,
    oversample: usize,
    truth: &[Vec<u32>],
) -> f64 {
    let n = rows.len() / dim;
    let mut codes = vec![0i8; rows.len()];
    let scales: Vec<f32> = codes
        .par_chunks_mut(dim)
        .zip(rows.par_chunks(dim))
        .map(|(c, v)| quantize_i8(v, c))
        .collect();
    let same = queries
        .par_chunks(dim)
        .zip(truth)
        .filter(|(probe, want)| {
            let mut qc = vec![0i8; dim];
            quantize_i8(probe, &mut qc);
            let mut cand = TopK::new(k * oversample.max(1));
            for i in 0..n {
                cand.push(
                    scales[i] * kernels.dot_i8(&qc, &codes[i * dim..(i + 1) * dim]) as f32,
                    i as u64,
                );
            }
            let mut top = TopK::new(k);
            for h in cand.into_sorted_vec() {
                let r = h.id as usize;
                top.push(kernels.dot(probe, &rows[r * dim..(r + 1) * dim]), h.id);
            }
            let mut got: Vec<u32> = top.into_sorted_vec().iter().map(|h| h.id as u32).collect();
            let mut want = want[..k.min(want.len())].to_vec();
            got.sort_unstable();
            want.sort_unstable();
            got == want
        })
        .count();
    same as f64 / truth.len().max(1) as f64
}
