//! 1:N iris throughput: rotation-aware masked comparisons per second over a
//! gallery of random templates, through the same scan path the service uses
//! (kernels::scan_topk_by with the open-iris-exact matcher), and the share of
//! the CPU's measured vector-popcount peak, with and without the early exit.
//! Prints one JSON line per mode and thread count.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use biomatch_kernels::iris::{IRIS_WORDS, IrisIsa};
use biomatch_kernels::{Metric, ScanParams, scan_topk_by};
use biomatch_matcher::iris::IRIS_ROW_WORDS;
use biomatch_matcher::{IrisMatch, IrisMatchConfig, IrisMatcher, IrisTemplate};
use clap::Parser;
use serde_json::json;

/// Iris scan benchmark.
#[derive(Parser)]
struct Args {
    /// Gallery templates.
    #[arg(long, default_value_t = 1_000_000)]
    n: usize,
    /// Thread counts to run, comma separated.
    #[arg(long, default_value = "1,2")]
    threads: String,
    /// Shifts each way (15 = 31 rotations).
    #[arg(long, default_value_t = 15)]
    rotation_shift: u32,
    /// Repetitions per thread count (best is reported).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Scans to run: `full` scores every column of every candidate; `topk`
    /// and `threshold` use two-step scoring with early exit, bounded by the
    /// running top 10 alone or also by a minimum score of 0.65 (distance 0.35,
    /// the service's default iris threshold).
    #[arg(long, default_value = "full,topk,threshold")]
    modes: String,
}

fn random_rows(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut rows = Vec::with_capacity(n * IRIS_ROW_WORDS);
    for _ in 0..n {
        for w in 0..2 * IRIS_WORDS {
            // Code words random; mask words about 75% valid.
            let v = if w < IRIS_WORDS { next() } else { next() | next() };
            rows.push(f32::from_bits(v as u32));
            rows.push(f32::from_bits((v >> 32) as u32));
        }
    }
    rows
}

/// Vector popcounts per second on one core (independent chains, so the
/// loop is bound by popcount throughput, not latency).
#[cfg(target_arch = "x86_64")]
fn popcount_peak() -> Option<f64> {
    if IrisIsa::detect() != IrisIsa::Avx512Vpopcnt {
        return None;
    }
    #[target_feature(enable = "avx512f,avx512vpopcntdq")]
    fn run(iters: u64) -> i64 {
        use std::arch::x86_64::*;
        let mut v = [
            _mm512_set1_epi64(0x5555),
            _mm512_set1_epi64(7),
            _mm512_set1_epi64(9),
            _mm512_set1_epi64(11),
            _mm512_set1_epi64(13),
            _mm512_set1_epi64(15),
            _mm512_set1_epi64(17),
            _mm512_set1_epi64(19),
        ];
        for _ in 0..iters {
            for x in v.iter_mut() {
                *x = _mm512_popcnt_epi64(*x);
            }
            v = std::hint::black_box(v);
        }
        v.iter().map(|x| _mm512_reduce_add_epi64(*x)).sum()
    }
    let iters = 50_000_000u64;
    // SAFETY: the CPU supports the features (checked above).
    let t = Instant::now();
    std::hint::black_box(unsafe { run(iters) });
    Some((iters * 8) as f64 / t.elapsed().as_secs_f64())
}

#[cfg(not(target_arch = "x86_64"))]
fn popcount_peak() -> Option<f64> {
    None
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse();
    let matcher = IrisMatcher::new(IrisMatchConfig {
        rotation_shift: a.rotation_shift,
        ..Default::default()
    })?;
    let rows = random_rows(a.n, 7);
    let probe_row = random_rows(1, 99);
    let probe = matcher.prepare(&IrisTemplate::from_row(&probe_row, "v2.1"));
    let shifts = 2 * a.rotation_shift as usize + 1;
    // Per shift: 2 halves x 16 zmm x (code&mask, mask) popcounts.
    let popcnt_per_cmp = (shifts * 2 * IRIS_WORDS / 8) as f64;
    let peak = popcount_peak();
    for mode in a.modes.split(',').map(str::trim) {
        let (early, min_score) = match mode {
            "full" => (false, f32::NEG_INFINITY),
            "topk" => (true, f32::NEG_INFINITY),
            "threshold" => (true, 0.65),
            other => return Err(format!("unknown mode {other}").into()),
        };
        for threads in a.threads.split(',').map(|t| t.trim().parse::<usize>()) {
            let threads = threads?;
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
            let mut params = ScanParams::new(Metric::InnerProduct, 10);
            params.min_score = min_score;
            let dropped = AtomicUsize::new(0);
            let score = |chunk: &[f32], out: &mut [f32], bound: f32| {
                let cutoff = if early {
                    IrisMatch::cutoff_for_score(bound)
                } else {
                    f64::INFINITY
                };
                for (o, row) in out.iter_mut().zip(chunk.chunks_exact(IRIS_ROW_WORDS)) {
                    *o = match matcher.compare_row_within(&probe, row, cutoff) {
                        Some(r) => r.similarity(),
                        None => {
                            dropped.fetch_add(1, Ordering::Relaxed);
                            f32::NEG_INFINITY
                        }
                    };
                }
            };
            let mut best = f64::MAX;
            for _ in 0..a.reps {
                dropped.store(0, Ordering::Relaxed);
                let t = Instant::now();
                let top = pool.install(|| scan_topk_by(&rows, IRIS_ROW_WORDS, 0, &params, &score))?;
                best = best.min(t.elapsed().as_secs_f64());
                std::hint::black_box(top);
            }
            let per_s = a.n as f64 / best;
            let per_core = per_s / threads as f64;
            println!(
                "{}",
                json!({
                    "mode": mode, "isa": IrisIsa::active().name(), "threads": threads, "n": a.n, "rotations": shifts,
                    "seconds": best, "comparisons_per_s": per_s, "comparisons_per_s_per_core": per_core,
                    "dropped_after_first_step": dropped.load(Ordering::Relaxed) as f64 / a.n as f64,
                    "popcount_peak_per_core": peak, "peak_comparisons_per_s_per_core": peak.map(|p| p / popcnt_per_cmp),
                    "share_of_popcount_peak": peak.map(|p| per_core / (p / popcnt_per_cmp)),
                })
            );
        }
    }
    Ok(())
}
