//! Per-pair kernels across instruction sets: ns per comparison and GB/s.

use biomatch_kernels::{Isa, Kernels};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn kernels(c: &mut Criterion) {
    for dim in [128usize, 192, 512] {
        let v = biomatch_benches::bench_vectors(2, dim, 7);
        let (a, b) = v.split_at(dim);
        let mut g = c.benchmark_group(format!("pair/{dim}"));
        g.throughput(Throughput::Bytes((2 * dim * 4) as u64));
        for isa in Isa::supported() {
            let k = Kernels::for_isa(isa).expect("supported");
            g.bench_function(BenchmarkId::new("dot", isa.name()), |bn| {
                bn.iter(|| k.dot(black_box(a), black_box(b)))
            });
            g.bench_function(BenchmarkId::new("l2sq", isa.name()), |bn| {
                bn.iter(|| k.l2sq(black_box(a), black_box(b)))
            });
            g.bench_function(BenchmarkId::new("cosine", isa.name()), |bn| {
                bn.iter(|| k.cosine(black_box(a), black_box(b)))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, kernels);
criterion_main!(benches);
