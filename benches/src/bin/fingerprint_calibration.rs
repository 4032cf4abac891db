//! Fingerprint score calibration on the real FVC2002 templates: every
//! unordered pair of different fingers across both sets (cross-sensor pairs
//! included) is an impostor, every pair of impressions of one finger a
//! genuine. Prints, per target FMR, the threshold that reaches it (the
//! smallest score with at most that share of impostors at or above it) and
//! the FNMR there, as JSON lines. The service's default
//! `fingerprint_threshold` comes from this run.

use biomatch_benches::templates::FingerprintSets;
use biomatch_datasets::read_dir_files;
use biomatch_matcher::fingerprint::{FingerTemplate, FingerprintMatcher};
use clap::Parser;
use rayon::prelude::*;
use serde_json::json;

/// Fingerprint calibration.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    fvc: FingerprintSets,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse();
    let mut items: Vec<(String, FingerTemplate)> = Vec::new();
    for (set, dir) in a.fvc.dirs() {
        for (stem, bytes) in read_dir_files(&dir.join("templates"))? {
            let finger = format!("{set}/{}", stem.split('_').next().unwrap_or(&stem));
            items.push((finger, FingerTemplate::from_iso(&bytes)?));
        }
    }
    let m = FingerprintMatcher::default();
    let pairs: Vec<(usize, usize)> = (0..items.len())
        .flat_map(|i| (i + 1..items.len()).map(move |j| (i, j)))
        .collect();
    let scored: Vec<(bool, f64)> = pairs
        .par_iter()
        .map(|&(i, j)| (items[i].0 == items[j].0, f64::from(m.score(&items[i].1, &items[j].1))))
        .collect();
    let mut impostor: Vec<f64> = scored.iter().filter(|s| !s.0).map(|s| s.1).collect();
    let genuine: Vec<f64> = scored.iter().filter(|s| s.0).map(|s| s.1).collect();
    impostor.sort_by(|x, y| y.total_cmp(x));
    let max_impostor = impostor[0];
    println!(
        "{}",
        json!({"templates": items.len(), "genuine": genuine.len(), "impostor": impostor.len(),
               "max_impostor_score": max_impostor})
    );
    for target in [1e-2, 1e-3, 1e-4] {
        // At most floor(target * n) impostors may reach the threshold: it is
        // just above the next impostor score.
        let allowed = (target * impostor.len() as f64).floor() as usize;
        if allowed == 0 {
            println!(
                "{}",
                json!({"target_fmr": target, "supported": false,
                "why": "fewer impostor pairs than 1 / target"})
            );
            continue;
        }
        let t = impostor[allowed].next_up();
        let fmr = impostor.iter().filter(|&&s| s >= t).count() as f64 / impostor.len() as f64;
        let fnmr = genuine.iter().filter(|&&s| s < t).count() as f64 / genuine.len() as f64;
        println!(
            "{}",
            json!({"target_fmr": target, "threshold": t, "fmr": fmr, "fnmr": fnmr})
        );
    }
    for t in [0.03, 0.05, 0.08] {
        let fmr = impostor.iter().filter(|&&s| s >= t).count() as f64 / impostor.len() as f64;
        let fnmr = genuine.iter().filter(|&&s| s < t).count() as f64 / genuine.len() as f64;
        println!("{}", json!({"threshold": t, "fmr": fmr, "fnmr": fnmr}));
    }
    Ok(())
}
