//! Template preparation rate on the real FVC2002 ISO records: parse, build
//! every cylinder and its screen code (`FingerTemplate::from_iso`), which is
//! the CPU part of enrolling a fingerprint. One JSON line per thread count,
//! with a checksum of every code word so that two builds can be checked to
//! produce the same templates.

use std::time::Instant;

use biomatch_benches::templates::FingerprintSets;
use biomatch_matcher::fingerprint::FingerTemplate;
use clap::Parser;
use rayon::prelude::*;
use serde_json::json;

/// Fingerprint template preparation.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    fvc: FingerprintSets,
    /// Templates prepared per measurement (the records repeated).
    #[arg(long, default_value_t = 20_000)]
    n: usize,
    /// Thread counts, comma separated.
    #[arg(long, default_value = "1,2")]
    threads: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse();
    let isos: Vec<Vec<u8>> = a.fvc.records()?.into_iter().map(|(_, bytes)| bytes).collect();
    for threads in a.threads.split(',').map(|t| t.trim().parse::<usize>()) {
        let threads = threads?;
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
        let t = Instant::now();
        let (cylinders, checksum) = pool.install(|| {
            (0..a.n)
                .into_par_iter()
                .map(|i| FingerTemplate::from_iso(&isos[i % isos.len()]).map_or((0, 0), |t| (t.len(), digest(&t))))
                .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1.wrapping_add(b.1)))
        });
        let rate = a.n as f64 / t.elapsed().as_secs_f64();
        println!(
            "{}",
            json!({
                "threads": threads, "templates": a.n, "mean_cylinders": cylinders as f64 / a.n as f64,
                "prepared_per_s": rate, "checksum": format!("{checksum:016x}"), "prepared_per_s_per_core": rate / threads as f64,
            })
        );
    }
    Ok(())
}

/// FNV-1a over every word of the template's codes; the run's checksum is
/// the wrapping sum over templates, so it does not depend on their order.
fn digest(t: &FingerTemplate) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for c in t.codes() {
        for w in c.bits.iter().chain(&c.valid).chain(&c.spare) {
            h = (h ^ w).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}
