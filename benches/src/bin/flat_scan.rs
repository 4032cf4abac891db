//! Exact 1:N scan timing on `.npy` inputs, for side-by-side runs with peers
//! (benches/peers/flat_ip_vs_faiss.py feeds faiss and this binary the same
//! files and thread count). Prints one JSON object.

use std::path::PathBuf;
use std::time::Instant;

use biomatch_datasets::read_npy;
use biomatch_kernels::{Isa, Kernels, Metric, ScanParams, scan_topk, scan_topk_batch};
use clap::Parser;
use serde_json::json;

/// Times exact inner-product top-k scans.
#[derive(Parser)]
struct Args {
    /// Gallery, N x D float32 .npy (rows L2-normalised).
    #[arg(long)]
    gallery: PathBuf,
    /// Probes, Q x D float32 .npy.
    #[arg(long)]
    queries: PathBuf,
    /// Threads of the scan pool.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Top-k.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Probes per batch in the batched run.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Bytes for the copy-bandwidth reference (0 skips it).
    #[arg(long, default_value_t = 1 << 30)]
    copy_bytes: usize,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse();
    let g = read_npy(&a.gallery)?;
    let q = read_npy(&a.queries)?;
    if g.cols != q.cols {
        return Err(format!("gallery has {} columns, queries {}", g.cols, q.cols).into());
    }
    let pool = rayon::ThreadPoolBuilder::new().num_threads(a.threads).build()?;
    let k = Kernels::active();
    let params = ScanParams::new(Metric::InnerProduct, a.k);
    let gallery_bytes = (g.rows * g.cols * 4) as f64;
    let out = pool.install(|| {
        // Warm up: touch the gallery once.
        let _ = scan_topk(k, q.row(0), &g.data, 0, &params);
        let mut single = Vec::new();
        let mut ids = Vec::new();
        for i in 0..q.rows {
            let t = Instant::now();
            let top = scan_topk(k, q.row(i), &g.data, 0, &params).expect("not cancelled");
            single.push(t.elapsed().as_secs_f64());
            ids.push(top.into_sorted_vec().iter().map(|h| h.id).collect::<Vec<_>>());
        }
        single.sort_by(f64::total_cmp);
        let batch_rows = a.batch.min(q.rows);
        let mut batch = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            let r =
                scan_topk_batch(k, &q.data[..batch_rows * q.cols], q.cols, &g.data, 0, &params).expect("not cancelled");
            batch.push(t.elapsed().as_secs_f64());
            std::hint::black_box(r);
        }
        batch.sort_by(f64::total_cmp);
        let copy = if a.copy_bytes > 0 {
            biomatch_benches::copy_bandwidth(a.copy_bytes, 5)
        } else {
            0.0
        };
        (single, ids, batch, copy)
    });
    let (single, ids, batch, copy) = out;
    let median = single[single.len() / 2];
    let bmed = batch[batch.len() / 2];
    println!(
        "{}",
        json!({
            "engine": "biomatch",
            "isa": Isa::active().name(),
            "threads": a.threads,
            "n": g.rows, "dim": g.cols, "k": a.k,
            "single_median_s": median,
            "single_qps": 1.0 / median,
            "single_gbps": gallery_bytes / median / 1e9,
            "batch": a.batch.min(q.rows),
            "batch_median_s": bmed,
            "batch_qps": a.batch.min(q.rows) as f64 / bmed,
            "batch_gallery_gbps": gallery_bytes / bmed / 1e9,
            "copy_gbps": copy / 1e9,
            "top_ids": ids,
        })
    );
    Ok(())
}
