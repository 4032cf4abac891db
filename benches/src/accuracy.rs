//! `biomatch bench accuracy`: ISO/IEC 19795-1 error rates of a labelled set
//! scored by the real matchers, or of score files scored elsewhere.
//!
//! Protocol on a labelled set (documented in BENCHMARKS.md):
//! - Verification (1:1): every unordered pair of templates once. Pairs of
//!   one subject are genuine, the rest impostor. When impostor pairs exceed
//!   `--max-impostors`, that many are drawn at random (seeded, with
//!   replacement); genuine pairs are always all scored.
//! - Identification (1:N): each subject's first template (in input order)
//!   is its gallery entry; every other template is a mated probe searched
//!   against the whole gallery. The non-mated searches are the same probes
//!   with their mate left out, so every probe counts on both sides.

use std::path::{Path, PathBuf};
use std::time::Instant;

use biomatch_datasets::identification::{IdentificationStats, SearchOutcome, fpir_fnir_curve};
use biomatch_datasets::metrics::{Roc, VerificationStats, fmr_fnmr, sorted};
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde_json::json;

use crate::BenchError;
use crate::plot::{self, Series};
use crate::scores::{read_score_csv, read_scores, write_scores};
use crate::templates::{LabelledSet, SetArgs};

/// `bench accuracy` arguments.
#[derive(Args, Debug)]
pub struct AccuracyArgs {
    /// Genuine scores, one per line (instead of templates).
    #[arg(long, requires = "impostor", conflicts_with_all = ["scores", "input", "synthetic"])]
    pub genuine: Option<PathBuf>,
    /// Impostor scores, one per line.
    #[arg(long)]
    pub impostor: Option<PathBuf>,
    /// CSV with the columns probe,gallery,score,genuine (genuine = 1 or 0).
    #[arg(long, conflicts_with_all = ["input", "synthetic"])]
    pub scores: Option<PathBuf>,
    /// Score files hold distances (lower = more alike); they are negated.
    #[arg(long)]
    pub dissimilarity: bool,
    /// Templates to score with the real matchers.
    #[command(flatten)]
    pub set: SetArgs,
    /// Also report FMR and FNMR at this decision threshold (repeatable).
    #[arg(long = "threshold")]
    pub thresholds: Vec<f64>,
    /// Most impostor pairs to score; above it they are sampled.
    #[arg(long, default_value_t = 5_000_000)]
    pub max_impostors: usize,
    /// Write report.json, the score files and the DET and CMC plots (SVG
    /// and PNG) here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Title for the plots (default: the input).
    #[arg(long)]
    pub title: Option<String>,
}

/// Runs the bench and returns the JSON report (also written to
/// `--out/report.json`).
pub fn run(a: &AccuracyArgs) -> Result<serde_json::Value, BenchError> {
    let (genuine, impostor, mut report, title, ident) = match (&a.genuine, &a.impostor, &a.scores) {
        (Some(g), Some(i), _) => {
            let (g, i) = signed(read_scores(g)?, read_scores(i)?, a.dissimilarity);
            let src = json!({"genuine_file": a.genuine, "impostor_file": a.impostor});
            (
                g,
                i,
                json!({"source": src}),
                a.genuine.as_ref().map(|p| p.display().to_string()),
                None,
            )
        }
        (_, _, Some(csv)) => {
            let (g, i) = read_score_csv(csv)?;
            let (g, i) = signed(g, i, a.dissimilarity);
            (
                g,
                i,
                json!({"source": {"scores_file": csv}}),
                Some(csv.display().to_string()),
                None,
            )
        }
        _ => {
            if a.dissimilarity {
                return Err(BenchError::Usage("--dissimilarity applies to score files only".into()));
            }
            let set = LabelledSet::load(&a.set)?;
            let started = Instant::now();
            let (g, i, sampled) = verification_scores(&set, a.max_impostors, a.set.seed);
            let pair_secs = started.elapsed().as_secs_f64();
            let ident = identification(&set);
            let subjects = {
                let mut s = set.subjects.clone();
                s.sort();
                s.dedup();
                s.len()
            };
            let report = json!({
                "source": {"input": set.source, "modality": set.modality.name(), "templates": set.len(),
                           "subjects": subjects},
                "protocol": {"verification": "all unordered pairs once; impostors sampled above --max-impostors",
                             "impostors_sampled": sampled,
                             "identification": "first template per subject enrolled; the rest are mated probes, and non-mated with their mate left out"},
                "timing": {"pairs": g.len() + i.len(), "seconds_all_threads": pair_secs,
                           "threads": rayon::current_num_threads()},
            });
            (g, i, report, Some(set.source.clone()), Some(ident))
        }
    };
    if genuine.is_empty() || impostor.is_empty() {
        return Err(BenchError::Input(format!(
            "need at least one genuine and one impostor score (got {} and {})",
            genuine.len(),
            impostor.len()
        )));
    }
    let stats = VerificationStats::new(&genuine, &impostor);
    report["verification"] = serde_json::to_value(&stats).expect("plain numbers");
    if !a.thresholds.is_empty() {
        let (g, i) = (sorted(&genuine), sorted(&impostor));
        let at: Vec<_> = a
            .thresholds
            .iter()
            .map(|&t| {
                let (fmr, fnmr) = fmr_fnmr(&g, &i, t);
                json!({"threshold": t, "fmr": fmr, "fnmr": fnmr})
            })
            .collect();
        report["verification"]["at_thresholds"] = json!(at);
    }
    if let Some(c) = crate::calibration::calibration_check(&genuine, &impostor) {
        report["calibration"] = c;
    }
    if let Some((stats, _, _)) = &ident {
        report["identification"] = serde_json::to_value(stats).expect("plain numbers");
    }
    if let Some(out) = &a.out {
        let title = a.title.clone().or(title).unwrap_or_default();
        report["files"] = write_outputs(out, &title, &genuine, &impostor, ident.as_ref())?;
        let path = out.join("report.json");
        std::fs::write(&path, serde_json::to_string_pretty(&report).expect("JSON"))
            .map_err(|e| BenchError::Io(path.clone(), e))?;
    }
    Ok(report)
}

fn signed(mut g: Vec<f64>, mut i: Vec<f64>, negate: bool) -> (Vec<f64>, Vec<f64>) {
    if negate {
        g.iter_mut().chain(i.iter_mut()).for_each(|s| *s = -*s);
    }
    (g, i)
}

/// Genuine and impostor scores, and whether impostors were sampled.
fn verification_scores(set: &LabelledSet, max_impostors: usize, seed: u64) -> (Vec<f64>, Vec<f64>, bool) {
    let n = set.len();
    // Genuine pairs from each subject's templates, not from all n^2 pairs
    // (a sampled run over 100k templates would otherwise walk 5e9 pairs).
    let mut by_subject: std::collections::HashMap<&str, Vec<usize>> = std::collections::HashMap::new();
    for (i, s) in set.subjects.iter().enumerate() {
        by_subject.entry(s.as_str()).or_default().push(i);
    }
    let mut genuine_pairs: Vec<(usize, usize)> = by_subject
        .values()
        .flat_map(|idx| {
            idx.iter()
                .enumerate()
                .flat_map(move |(k, &i)| idx[k + 1..].iter().map(move |&j| (i, j)))
        })
        .collect();
    // Input order, so the score files read the same on every run.
    genuine_pairs.sort_unstable();
    let all = n * (n - 1) / 2;
    let impostor_count = all - genuine_pairs.len();
    let genuine: Vec<f64> = genuine_pairs.par_iter().map(|&(i, j)| set.score(i, j)).collect();
    if impostor_count <= max_impostors {
        let impostor: Vec<f64> = (0..n)
            .into_par_iter()
            .flat_map_iter(|i| {
                (i + 1..n)
                    .filter(move |&j| set.subjects[i] != set.subjects[j])
                    .map(move |j| set.score(i, j))
            })
            .collect();
        return (genuine, impostor, false);
    }
    let mut rng = StdRng::seed_from_u64(seed ^ 0x1d5_c0de);
    let mut pairs = Vec::with_capacity(max_impostors);
    while pairs.len() < max_impostors {
        let (i, j) = (rng.random_range(0..n), rng.random_range(0..n));
        if set.subjects[i] != set.subjects[j] {
            pairs.push((i.min(j), i.max(j)));
        }
    }
    let impostor = pairs.par_iter().map(|&(i, j)| set.score(i, j)).collect();
    (genuine, impostor, true)
}

/// 1:N outcomes: the summary, the mated outcomes and the non-mated tops.
type Identification = (IdentificationStats, Vec<SearchOutcome>, Vec<f64>);

fn identification(set: &LabelledSet) -> Identification {
    let mut gallery: Vec<usize> = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for (i, s) in set.subjects.iter().enumerate() {
        seen.entry(s.as_str()).or_insert_with(|| {
            gallery.push(i);
            i
        });
    }
    let probes: Vec<usize> = (0..set.len())
        .filter(|i| seen[set.subjects[*i].as_str()] != *i)
        .collect();
    let mated: Vec<SearchOutcome> = probes
        .par_iter()
        .map(|&p| {
            let mate = seen[set.subjects[p].as_str()];
            let non_mates = gallery.iter().filter(|g| **g != mate).map(|&g| set.score(p, g));
            SearchOutcome::new(set.score(p, mate), non_mates.collect::<Vec<_>>())
        })
        .collect();
    let non_mated: Vec<f64> = mated
        .iter()
        .map(|m| m.best_non_mate)
        .filter(|s| s.is_finite())
        .collect();
    (
        IdentificationStats::new(gallery.len(), &mated, &non_mated),
        mated,
        non_mated,
    )
}

fn write_outputs(
    out: &Path,
    title: &str,
    genuine: &[f64],
    impostor: &[f64],
    ident: Option<&Identification>,
) -> Result<serde_json::Value, BenchError> {
    std::fs::create_dir_all(out).map_err(|e| BenchError::Io(out.into(), e))?;
    write_scores(&out.join("genuine.txt"), genuine)?;
    write_scores(&out.join("impostor.txt"), impostor)?;
    let mut files = vec![out.join("genuine.txt"), out.join("impostor.txt")];
    let roc = Roc::new(genuine, impostor);
    let mut det = vec![Series {
        label: "1:1 FNMR vs FMR".into(),
        points: roc.det_points(2000),
    }];
    if let Some((_, mated, non_mated)) = ident.filter(|(st, _, nm)| st.mated_searches > 0 && !nm.is_empty()) {
        det.push(Series {
            label: "1:N FNIR vs FPIR (rank 1)".into(),
            points: fpir_fnir_curve(mated, non_mated),
        });
    }
    let plots = plot::det(&out.join("det"), title, &det).and_then(|mut written| {
        if let Some((st, _, _)) = ident.filter(|(st, _, _)| !st.cmc.is_empty()) {
            written.extend(plot::cmc(&out.join("cmc"), title, &st.cmc)?);
        }
        Ok(written)
    });
    let mut v = json!({});
    match plots {
        Ok(written) => files.extend(written),
        Err(e) => {
            tracing::warn!(error = %e, "plots not written");
            v["plot_error"] = json!(e.to_string());
        }
    }
    v["written"] = json!(files);
    Ok(v)
}
