//! Loads an `.npy` of embeddings into a FACE or VOICE gallery of a data
//! directory through the index's own write path (log, segments), then
//! optimises it into indexed shards, so that `biomatch serve` can be timed
//! restarting on it (benches/scripts/ann_restart.sh). Prints one JSON object.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use biomatch_datasets::read_npy;
use biomatch_index::ann::{AnnOptions, HnswParams};
use biomatch_index::{Catalog, GalleryOptions, NewRecord, RecordMeta};
use clap::Parser;
use serde_json::json;

/// Fills and optimises one gallery.
#[derive(Parser)]
struct Args {
    /// Rows to enroll, N x D float32 .npy.
    #[arg(long)]
    input: PathBuf,
    /// The server's data directory.
    #[arg(long)]
    data_dir: PathBuf,
    /// `face` or `voice`.
    #[arg(long, default_value = "face")]
    modality: String,
    /// Shards of the optimised gallery.
    #[arg(long, default_value_t = 1)]
    shards: usize,
    /// Graph links per node.
    #[arg(long, default_value_t = 16)]
    m: usize,
    /// Build beam width.
    #[arg(long, default_value_t = 100)]
    ef_construction: usize,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse();
    let x = read_npy(&a.input)?;
    let opts = GalleryOptions {
        flush_records: 65_536,
        ann: AnnOptions {
            min_rows: 50_000,
            shards: a.shards,
            hnsw: HnswParams {
                m: a.m,
                ef_construction: a.ef_construction,
                ..HnswParams::default()
            },
        },
    };
    let catalog = Catalog::open(&a.data_dir, opts)?;
    let name = format!("{}-{}", a.modality, x.cols);
    let g = catalog.get_or_create(&name, x.cols)?;
    let t = Instant::now();
    for start in (0..x.rows).step_by(4096) {
        let batch = (start..(start + 4096).min(x.rows))
            .map(|i| NewRecord {
                meta: RecordMeta {
                    record_id: format!("r{i:08}"),
                    subject_id: format!("s{:07}", i / 4),
                    metadata: BTreeMap::new(),
                    quality: 50.0,
                    enrolled_at_ms: 0,
                },
                vector: x.row(i).to_vec(),
            })
            .collect();
        if let Some(Err(e)) = g.insert(batch).into_iter().find(Result::is_err) {
            return Err(e.into());
        }
    }
    g.flush()?;
    let insert_s = t.elapsed().as_secs_f64();
    let report = g.optimize()?;
    let st = g.stats();
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "gallery": name,
            "records": st.records,
            "insert_s": insert_s,
            "optimize_s": report.seconds,
            "indexed_segments": st.indexed_segments,
            "disk_bytes": st.disk_bytes,
        }))?
    );
    Ok(())
}
