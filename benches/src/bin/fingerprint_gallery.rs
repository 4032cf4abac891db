//! Fingerprint 1:N through a real gallery: FVC2002 ISO records (repeated
//! under new ids) stored as gallery rows in memory-mapped segments, then
//! searched exhaustively with the full matcher and screened at several
//! penetrations, the way the service runs Identify. Prints one JSON line
//! per thread count with templates searched per second per core.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use biomatch_benches::templates::FingerprintSets;
use biomatch_index::{Gallery, GalleryOptions, NewRecord, RecordMeta, RowScorer, Search};
use biomatch_matcher::fingerprint::{
    FINGER_ROW_WORDS, FingerTemplate, FingerprintMatcher, FingerprintTemplate, ScreenProbe, row_cylinders,
};
use clap::Parser;
use serde_json::json;

/// Fingerprint gallery search throughput.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    fvc: FingerprintSets,
    /// Gallery size (the real templates repeated under new ids).
    #[arg(long, default_value_t = 50_000)]
    gallery: usize,
    /// Data directory for the gallery (created; must not hold one).
    #[arg(long)]
    data_dir: PathBuf,
    /// Thread counts, comma separated.
    #[arg(long, default_value = "1,2")]
    threads: String,
    /// Penetrations of the screened search, comma separated.
    #[arg(long, default_value = "0.01,0.05,0.1")]
    penetrations: String,
}

struct Full<'a>(&'a FingerTemplate);

impl RowScorer for Full<'_> {
    fn score_rows(&self, rows: &[f32], out: &mut [f32], _bound: f32) {
        let m = FingerprintMatcher::default();
        for (o, row) in out.iter_mut().zip(rows.chunks_exact(FINGER_ROW_WORDS)) {
            *o = row_cylinders(row).map_or(f32::NEG_INFINITY, |c| m.score_codes(self.0.codes(), &c));
        }
    }
}

struct Screen(ScreenProbe);

impl RowScorer for Screen {
    fn score_rows(&self, rows: &[f32], out: &mut [f32], _bound: f32) {
        for (o, row) in out.iter_mut().zip(rows.chunks_exact(FINGER_ROW_WORDS)) {
            *o = row_cylinders(row).map_or(f32::NEG_INFINITY, |c| self.0.score(&c));
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse();
    let records = a
        .fvc
        .records()?
        .iter()
        .map(|(_, iso)| FingerprintTemplate::from_iso(iso))
        .collect::<Result<Vec<_>, _>>()?;
    let rows: Vec<Vec<f32>> = records.iter().map(FingerprintTemplate::to_row).collect();
    let g = Gallery::create(
        &a.data_dir,
        "fingerprint-1",
        FINGER_ROW_WORDS,
        GalleryOptions::default(),
    )?;
    let t = Instant::now();
    for start in (0..a.gallery).step_by(1024) {
        let batch = (start..(start + 1024).min(a.gallery))
            .map(|i| NewRecord {
                meta: RecordMeta {
                    record_id: format!("r{i:08}"),
                    subject_id: format!("s{i:08}"),
                    metadata: BTreeMap::new(),
                    quality: 50.0,
                    enrolled_at_ms: 0,
                },
                vector: rows[i % rows.len()].clone(),
            })
            .collect();
        if let Some(Err(e)) = g.insert(batch).into_iter().find(Result::is_err) {
            return Err(e.into());
        }
    }
    g.flush()?;
    let load_s = t.elapsed().as_secs_f64();
    let probes: Vec<FingerTemplate> = records
        .iter()
        .step_by(17)
        .take(4)
        .map(|r| r.prepared().clone())
        .collect();
    let s = Search {
        k: 10,
        ..Default::default()
    };
    // Warm-up: one exhaustive search maps every page of the segments.
    std::hint::black_box(g.search_by(&Full(&probes[0]), &s)?);
    for threads in a.threads.split(',').map(|t| t.trim().parse::<usize>()) {
        let threads = threads?;
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
        let per_core = |secs: f64| (probes.len() * a.gallery) as f64 / secs / threads as f64;
        let t = Instant::now();
        for p in &probes {
            std::hint::black_box(pool.install(|| g.search_by(&Full(p), &s))?);
        }
        let exact = per_core(t.elapsed().as_secs_f64());
        let mut screened = serde_json::Map::new();
        for pen in a.penetrations.split(',') {
            let pen: f64 = pen.trim().parse()?;
            let shortlist = (pen * a.gallery as f64).ceil() as usize;
            let t = Instant::now();
            for p in &probes {
                let screen = Screen(ScreenProbe::new(p.codes()));
                std::hint::black_box(pool.install(|| g.search_screened_by(&screen, &Full(p), shortlist, &s))?);
            }
            screened.insert(pen.to_string(), json!(per_core(t.elapsed().as_secs_f64())));
        }
        println!(
            "{}",
            json!({
                "gallery": a.gallery, "threads": threads, "load_s": load_s,
                "exact_templates_per_s_per_core": exact,
                "screened_templates_per_s_per_core": screened,
            })
        );
    }
    Ok(())
}
