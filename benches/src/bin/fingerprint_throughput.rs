//! Fingerprint matching throughput on the real FVC2002 templates: 1:1 from
//! ISO bytes (parse, build cylinders for both sides, match) and 1:N with a
//! prepared probe against a prepared gallery, on 1 and 2 threads; then the
//! screened 1:N search (`biomatch_matcher::fingerprint::screen`): the screen
//! alone, and screen plus full matching of the best share of the gallery at
//! several penetrations, as gallery templates searched per second. Prints
//! one JSON line per measurement.

use std::time::Instant;

use biomatch_benches::templates::FingerprintSets;
use biomatch_kernels::iris::IrisIsa;
use biomatch_matcher::fingerprint::{FingerTemplate, FingerprintMatcher, ScreenProbe};
use clap::Parser;
use rayon::prelude::*;
use serde_json::json;

/// Fingerprint throughput.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    fvc: FingerprintSets,
    /// Gallery size for 1:N (the real templates repeated).
    #[arg(long, default_value_t = 20_000)]
    gallery: usize,
    /// Thread counts, comma separated.
    #[arg(long, default_value = "1,2")]
    threads: String,
    /// Penetrations of the screened 1:N search, comma separated.
    #[arg(long, default_value = "0.01,0.02,0.05,0.1")]
    penetrations: String,
}

/// Searches `gallery` for `probe`: screens every template, then scores the
/// best `penetration` share with the full matcher; returns the best score.
fn screened(m: &FingerprintMatcher, probe: &FingerTemplate, gallery: &[&FingerTemplate], penetration: f64) -> f32 {
    let screen = ScreenProbe::new(probe.codes());
    let mut ranked: Vec<(f32, usize)> = gallery
        .par_iter()
        .enumerate()
        .map(|(i, g)| (screen.score(g.codes()), i))
        .collect();
    let keep = ((penetration * gallery.len() as f64).ceil() as usize).clamp(1, gallery.len());
    ranked.select_nth_unstable_by(keep - 1, |a, b| b.0.total_cmp(&a.0));
    ranked[..keep]
        .par_iter()
        .map(|&(_, i)| m.score(probe, gallery[i]))
        .reduce(|| 0.0, f32::max)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse();
    let isos: Vec<Vec<u8>> = a.fvc.records()?.into_iter().map(|(_, bytes)| bytes).collect();
    let prepared: Vec<FingerTemplate> = isos
        .iter()
        .map(|b| FingerTemplate::from_iso(b))
        .collect::<Result<_, _>>()?;
    let gallery: Vec<&FingerTemplate> = (0..a.gallery).map(|i| &prepared[i % prepared.len()]).collect();
    let m = FingerprintMatcher::default();
    let mean_minutiae = prepared.iter().map(|t| t.len()).sum::<usize>() as f64 / prepared.len() as f64;
    for threads in a.threads.split(',').map(|t| t.trim().parse::<usize>()) {
        let threads = threads?;
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
        // 1:1 from bytes: every pair of the first 40 records, both prepared per pair.
        let pairs: Vec<(usize, usize)> = (0..40).flat_map(|i| (0..40).map(move |j| (i, j))).collect();
        let t = Instant::now();
        let s: f32 = pool.install(|| {
            pairs
                .par_iter()
                .map(|&(i, j)| {
                    let p = FingerTemplate::from_iso(&isos[i]).expect("valid");
                    let g = FingerTemplate::from_iso(&isos[j]).expect("valid");
                    m.score(&p, &g)
                })
                .sum()
        });
        std::hint::black_box(s);
        let one_to_one = pairs.len() as f64 / t.elapsed().as_secs_f64();
        // 1:N: a prepared probe against the prepared gallery, 4 probes.
        let t = Instant::now();
        for probe in prepared.iter().take(4) {
            let best = pool.install(|| gallery.par_iter().map(|g| m.score(probe, g)).reduce(|| 0.0, f32::max));
            std::hint::black_box(best);
        }
        let one_to_n = (4 * gallery.len()) as f64 / t.elapsed().as_secs_f64();
        // The screen alone, then screened searches; 8 probes each.
        let t = Instant::now();
        for probe in prepared.iter().take(8) {
            let screen = ScreenProbe::new(probe.codes());
            let best = pool.install(|| {
                gallery
                    .par_iter()
                    .map(|g| screen.score(g.codes()))
                    .reduce(|| 0.0, f32::max)
            });
            std::hint::black_box(best);
        }
        let screen_rate = (8 * gallery.len()) as f64 / t.elapsed().as_secs_f64();
        let mut by_penetration = serde_json::Map::new();
        for p in a.penetrations.split(',') {
            let p: f64 = p.trim().parse()?;
            let t = Instant::now();
            for probe in prepared.iter().take(8) {
                std::hint::black_box(pool.install(|| screened(&m, probe, &gallery, p)));
            }
            let rate = (8 * gallery.len()) as f64 / t.elapsed().as_secs_f64();
            by_penetration.insert(p.to_string(), json!(rate / threads as f64));
        }
        println!(
            "{}",
            json!({
                "isa": IrisIsa::active().name(), "threads": threads, "mean_valid_minutiae": mean_minutiae,
                "one_to_one_from_iso_per_s": one_to_one, "one_to_one_per_s_per_core": one_to_one / threads as f64,
                "one_to_n_matches_per_s": one_to_n, "one_to_n_per_s_per_core": one_to_n / threads as f64,
                "screen_per_s_per_core": screen_rate / threads as f64,
                "screened_one_to_n_templates_per_s_per_core": by_penetration,
            })
        );
    }
    Ok(())
}
