//! Fingerprint accuracy on the real sets in ../shared/datasets/fingerprint:
//! every ordered pair (probe != gallery) of the NBIS mindtct ISO templates is
//! scored by biomatch's MCC matcher, and the ISO/IEC 19795-1 summary (pyeer's
//! conventions) is printed next to bozorth3's on exactly the same pairs,
//! read from the set's `scores_bozorth3.csv`. One JSON line per set.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use biomatch_datasets::metrics::VerificationStats;
use biomatch_datasets::read_dir_files;
use biomatch_matcher::fingerprint::{FingerTemplate, FingerprintMatcher};
use clap::Parser;
use rayon::prelude::*;
use serde_json::json;

/// Fingerprint accuracy against bozorth3.
#[derive(Parser)]
struct Args {
    /// Sets to run (folders under --root).
    #[arg(long, default_value = "fvc2002_db1_b,fvc2002_db2_b,nbis_samples")]
    sets: String,
    /// Folder holding the sets.
    #[arg(long, default_value = "../shared/datasets/fingerprint")]
    root: PathBuf,
}

fn run_set(dir: &Path) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let mut templates: HashMap<String, FingerTemplate> = HashMap::new();
    for (stem, bytes) in read_dir_files(&dir.join("templates"))? {
        templates.insert(stem, FingerTemplate::from_iso(&bytes)?);
    }
    let csv = std::fs::read_to_string(dir.join("scores_bozorth3.csv"))?;
    let rows: Vec<(String, String, f64, bool)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].to_string(),
                f[1].to_string(),
                f[2].parse().unwrap_or(f64::NAN),
                f[3] == "1",
            )
        })
        .collect();
    let m = FingerprintMatcher::default();
    let start = std::time::Instant::now();
    let ours: Vec<f64> = rows
        .par_iter()
        .map(|(p, g, _, _)| f64::from(m.score(&templates[p], &templates[g])))
        .collect();
    let secs = start.elapsed().as_secs_f64();
    let split = |scores: &dyn Fn(usize) -> f64| {
        let (mut g, mut i) = (Vec::new(), Vec::new());
        for (k, r) in rows.iter().enumerate() {
            if r.3 { g.push(scores(k)) } else { i.push(scores(k)) }
        }
        VerificationStats::new(&g, &i)
    };
    let biomatch = split(&|k| ours[k]);
    let bozorth3 = split(&|k| rows[k].2);
    Ok(json!({
        "set": dir.file_name().and_then(|s| s.to_str()),
        "pairs": rows.len(),
        "biomatch_mcc": biomatch,
        "bozorth3": bozorth3,
        "eer_ratio_biomatch_over_bozorth3": biomatch.eer / bozorth3.eer,
        "biomatch_seconds_all_threads": secs,
    }))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse();
    for set in a.sets.split(',').map(str::trim) {
        println!("{}", run_set(&a.root.join(set))?);
    }
    Ok(())
}
