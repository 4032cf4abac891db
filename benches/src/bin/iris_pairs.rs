//! Writes the iris conformance pairs as open-iris JSON, one pair per line:
//! `{"probe": {...}, "gallery": {...}}`. benches/peers/iris_open_iris_oracle.py
//! scores them with open-iris; matcher/tests/open_iris_conformance.rs
//! regenerates the same pairs from the seed and compares.

use std::io::Write;

use biomatch_datasets::conformance_pairs;
use biomatch_matcher::IrisTemplate;
use clap::Parser;

/// Conformance pair writer.
#[derive(Parser)]
struct Args {
    /// Number of pairs.
    #[arg(long, default_value_t = 10_000)]
    n: usize,
    /// Generator seed.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (p, g) in conformance_pairs(a.n, a.seed) {
        let p = IrisTemplate::from_packed(&p.code, &p.mask, "v2.1")?;
        let g = IrisTemplate::from_packed(&g.code, &g.mask, "v2.1")?;
        writeln!(
            out,
            "{{\"probe\": {}, \"gallery\": {}}}",
            p.to_open_iris_json(),
            g.to_open_iris_json()
        )?;
    }
    Ok(())
}
