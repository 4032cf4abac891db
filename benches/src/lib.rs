//! The benchmark harness behind `biomatch bench`, and the helpers the
//! criterion benches and the figure binaries share.
//!
//! - [`accuracy`]: ISO/IEC 19795-1 error rates of a labelled set scored by
//!   the real matchers (or of score files), with DET and CMC plots.
//! - [`load`]: a gRPC load generator against a running server, latency
//!   percentiles from an HDR histogram.

#![warn(missing_docs)]

pub mod accuracy;
pub mod ann_run;
pub mod calibration;
mod error;
pub mod load;
pub mod plot;
pub mod scores;
pub mod templates;

pub use error::BenchError;

/// The machine a figure was measured on: CPU model, logical CPUs and the
/// SIMD flags that decide which kernels run (Linux `/proc/cpuinfo`).
pub fn machine() -> serde_json::Value {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let flags = field("flags").unwrap_or_default();
    let simd: Vec<&str> = flags
        .split_whitespace()
        .filter(|f| f.starts_with("avx") || f.starts_with("amx") || matches!(*f, "fma" | "popcnt" | "bmi2" | "sse4_2"))
        .collect();
    serde_json::json!({
        "cpu": field("model name"),
        "logical_cpus": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "simd_flags": simd,
        "kernel_isa": biomatch_kernels::Isa::active().name(),
    })
}

/// Fast deterministic unit vectors for benchmark galleries (xorshift, not
/// Gaussian: for throughput only the bytes matter, not the distribution).
pub fn bench_vectors(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let start = out.len();
        let mut norm = 0.0f32;
        for _ in 0..dim {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            norm += v * v;
            out.push(v);
        }
        let inv = 1.0 / norm.sqrt().max(f32::MIN_POSITIVE);
        out[start..].iter_mut().for_each(|v| *v *= inv);
    }
    out
}

/// Memory copy bandwidth with the current rayon pool, STREAM-style: bytes
/// read plus bytes written per second, best of `reps`.
pub fn copy_bandwidth(bytes: usize, reps: usize) -> f64 {
    use rayon::prelude::*;
    let n = bytes / 4;
    let src = vec![1.0f32; n];
    let mut dst = vec![0.0f32; n];
    let chunk = (n / rayon::current_num_threads().max(1) / 8).max(1 << 16);
    let mut best = f64::MAX;
    for _ in 0..reps {
        let t = std::time::Instant::now();
        dst.par_chunks_mut(chunk)
            .zip(src.par_chunks(chunk))
            .for_each(|(d, s)| d.copy_from_slice(s));
        best = best.min(t.elapsed().as_secs_f64());
    }
    std::hint::black_box(&dst);
    2.0 * (n * 4) as f64 / best
}

#[cfg(test)]
mod tests {
    #[test]
    fn vectors_are_unit_and_deterministic() {
        let a = super::bench_vectors(10, 33, 1);
        assert_eq!(a, super::bench_vectors(10, 33, 1));
        for r in a.chunks(33) {
            let n: f32 = r.iter().map(|x| x * x).sum();
            assert!((n - 1.0).abs() < 1e-4);
        }
        assert!(super::copy_bandwidth(1 << 20, 2) > 0.0);
    }
}
