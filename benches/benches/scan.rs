//! One-probe and batched 1:N scans over 512-d galleries of 10k, 100k and 1M
//! templates. Throughput is gallery bytes read per second: a batch reads the
//! gallery once for all its probes.
//!
//! `BIOMATCH_BENCH_MAX_N` caps the gallery size (default 1,000,000).

use biomatch_kernels::{Kernels, Metric, ScanParams, scan_topk, scan_topk_batch};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

const DIM: usize = 512;

fn scans(c: &mut Criterion) {
    let max_n: usize = std::env::var("BIOMATCH_BENCH_MAX_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let k = Kernels::active();
    let probes = biomatch_benches::bench_vectors(32, DIM, 99);
    let params = ScanParams::new(Metric::InnerProduct, 10);
    for n in [10_000usize, 100_000, 1_000_000].into_iter().filter(|n| *n <= max_n) {
        let gallery = biomatch_benches::bench_vectors(n, DIM, 1);
        let mut g = c.benchmark_group(format!("scan/{DIM}d"));
        g.sample_size(if n >= 1_000_000 { 10 } else { 30 });
        g.throughput(Throughput::Bytes((n * DIM * 4) as u64));
        g.bench_function(BenchmarkId::new("single", n), |b| {
            b.iter(|| scan_topk(k, black_box(&probes[..DIM]), black_box(&gallery), 0, &params).unwrap())
        });
        g.bench_function(BenchmarkId::new("batch32", n), |b| {
            b.iter(|| scan_topk_batch(k, black_box(&probes), DIM, black_box(&gallery), 0, &params).unwrap())
        });
        g.finish();
    }
}

criterion_group!(benches, scans);
criterion_main!(benches);
