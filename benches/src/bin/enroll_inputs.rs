//! Writes the inputs of the batch-enrollment throughput runs
//! (BENCHMARKS.md, "Batch enrollment"): unit face embeddings as `.npy` with
//! a labels file and as NDJSON, and a folder of real ISO/IEC 19794-2
//! templates (the FVC2002 DB1_B/DB2_B records repeated under new names).

use std::io::Write;
use std::path::{Path, PathBuf};

use biomatch_datasets::{Matrix, SyntheticEmbeddings, read_dir_files, write_npy};
use clap::Parser;

/// Batch-enrollment inputs.
#[derive(Parser)]
struct Args {
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// Face embeddings to write (0 for none).
    #[arg(long, default_value_t = 200_000)]
    embeddings: usize,
    /// Their dimension.
    #[arg(long, default_value_t = 512)]
    dim: usize,
    /// Fingerprint records to write (0 for none).
    #[arg(long, default_value_t = 50_000)]
    fingerprints: usize,
    /// Folders of real ISO templates to repeat.
    #[arg(
        long,
        default_value = "../shared/datasets/fingerprint/fvc2002_db1_b/templates,../shared/datasets/fingerprint/fvc2002_db2_b/templates"
    )]
    iso_dirs: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse();
    std::fs::create_dir_all(&a.out)?;
    if a.embeddings > 0 {
        let data = SyntheticEmbeddings::uniform(a.dim, a.embeddings, 17);
        let labels: String = (0..a.embeddings).map(|i| format!("p{}\n", i / 2)).collect();
        std::fs::write(a.out.join("faces.txt"), labels)?;
        let mut w = std::io::BufWriter::new(std::fs::File::create(a.out.join("faces.ndjson"))?);
        for (i, row) in data.chunks_exact(a.dim).enumerate() {
            let vals: Vec<String> = row.iter().map(|x| format!("{x:.7}")).collect();
            writeln!(
                w,
                r#"{{"record_id":"nd{i}","subject_id":"p{}","modality":"face","embedding":[{}]}}"#,
                i / 2,
                vals.join(",")
            )?;
        }
        w.flush()?;
        write_npy(
            &a.out.join("faces.npy"),
            &Matrix {
                rows: a.embeddings,
                cols: a.dim,
                data,
            },
        )?;
    }
    if a.fingerprints > 0 {
        let dir = a.out.join("fingerprints");
        std::fs::create_dir_all(&dir)?;
        // Templates of every folder, named by folder too: FVC databases
        // reuse the same stems (101_1 ...), which would otherwise overwrite
        // each other.
        let mut real = Vec::new();
        for (k, d) in a.iso_dirs.split(',').enumerate() {
            real.extend(
                read_dir_files(Path::new(d))?
                    .into_iter()
                    .map(|(stem, bytes)| (format!("d{k}f{stem}"), bytes)),
            );
        }
        if real.is_empty() {
            return Err("no ISO templates found".into());
        }
        for i in 0..a.fingerprints {
            let (stem, bytes) = &real[i % real.len()];
            // Copy c of finger 101 of folder k is subject c{c}d{k}f101;
            // impressions stay together.
            let copy = i / real.len();
            std::fs::write(dir.join(format!("c{copy}{stem}.iso")), bytes)?;
        }
    }
    Ok(())
}
