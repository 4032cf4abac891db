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

/// One rotation-aware (31 shifts) masked iris comparison with a prepared
/// probe, open-iris default matcher, per popcount flavour.
fn iris(c: &mut Criterion) {
    use biomatch_kernels::iris::{IrisIsa, IrisKernels};
    use biomatch_matcher::{IrisMatchConfig, IrisMatcher, IrisTemplate};
    let (set, _) = biomatch_datasets::SyntheticIris {
        subjects: 2,
        samples_per_subject: 1,
        poor_capture_share: 0.0,
        seed: 3,
    }
    .generate();
    let t: Vec<IrisTemplate> = set
        .iter()
        .map(|p| IrisTemplate::from_packed(&p.code, &p.mask, "v2.1").unwrap())
        .collect();
    let row = t[1].to_row();
    let mut g = c.benchmark_group("iris/compare_31_shifts");
    g.throughput(Throughput::Elements(1));
    for isa in IrisIsa::supported() {
        let m = IrisMatcher::with_kernels(IrisMatchConfig::default(), IrisKernels::for_isa(isa).unwrap()).unwrap();
        let p = m.prepare(&t[0]);
        g.bench_function(isa.name(), |b| b.iter(|| m.compare_row(&p, black_box(&row))));
    }
    g.finish();
}

criterion_group!(benches, kernels, iris);
criterion_main!(benches);
