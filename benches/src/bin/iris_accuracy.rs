//! Accuracy of the iris matcher on the synthetic generator: Daugman-style
//! impostor statistics, verification EER and d', and 1:N FNIR at FPIR 0.01.
//! Prints a JSON report.

use biomatch_datasets::SyntheticIris;
use biomatch_datasets::metrics::{d_prime, eer, fnir_at_fpir, mean_var};
use biomatch_matcher::{IrisMatchConfig, IrisMatcher, IrisTemplate};
use clap::Parser;
use rayon::prelude::*;
use serde_json::json;

/// Synthetic iris accuracy.
#[derive(Parser)]
struct Args {
    /// Subjects (eyes).
    #[arg(long, default_value_t = 400)]
    subjects: usize,
    /// Samples per subject.
    #[arg(long, default_value_t = 3)]
    samples: usize,
    /// Subjects enrolled in the 1:N gallery (the rest are non-mated).
    #[arg(long, default_value_t = 300)]
    enrolled: usize,
    /// Share of poor captures (the genuine tail).
    #[arg(long, default_value_t = 0.05)]
    poor_capture_share: f64,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse();
    let (set, labels) = SyntheticIris {
        subjects: a.subjects,
        samples_per_subject: a.samples,
        poor_capture_share: a.poor_capture_share,
        seed: a.seed,
    }
    .generate();
    let t: Vec<IrisTemplate> = set
        .iter()
        .map(|p| IrisTemplate::from_packed(&p.code, &p.mask, "v2.1"))
        .collect::<Result<_, _>>()?;
    let default = IrisMatcher::new(IrisMatchConfig::default())?;
    // Daugman's statistic: plain fractional HD, no rotation, no normalisation.
    let raw = IrisMatcher::new(IrisMatchConfig {
        rotation_shift: 0,
        normalise: false,
        separate_half_matching: false,
        ..Default::default()
    })?;
    let pairs: Vec<(usize, usize)> = (0..t.len())
        .flat_map(|i| (i + 1..t.len()).map(move |j| (i, j)))
        .collect();
    let scored: Vec<(bool, f64, f64)> = pairs
        .par_iter()
        .map(|&(i, j)| {
            (
                labels[i] == labels[j],
                default.compare(&t[i], &t[j]).distance,
                raw.compare(&t[i], &t[j]).distance,
            )
        })
        .collect();
    let pick = |genuine: bool, raw_hd: bool| -> Vec<f64> {
        scored
            .iter()
            .filter(|s| s.0 == genuine)
            .map(|s| if raw_hd { s.2 } else { s.1 })
            .collect()
    };
    let (imp_raw, gen_raw) = (pick(false, true), pick(true, true));
    let (imp, gen_) = (pick(false, false), pick(true, false));
    let (mi, vi) = mean_var(&imp_raw);
    let dof = mi * (1.0 - mi) / vi;
    // Bits actually compared (valid in both) per impostor pair, on average.
    let compared_bits = {
        let pairs: Vec<(usize, usize)> = (0..200).map(|k| (k * 3 % t.len(), (k * 7 + 1) % t.len())).collect();
        pairs
            .iter()
            .map(|&(i, j)| {
                t[i].mask_words()
                    .iter()
                    .zip(t[j].mask_words())
                    .map(|(a, b)| (a & b).count_ones() as f64)
                    .sum::<f64>()
            })
            .sum::<f64>()
            / pairs.len() as f64
    };
    let sim = |v: &[f64]| v.iter().map(|d| -d).collect::<Vec<_>>();
    let (e, et) = eer(&sim(&gen_), &sim(&imp));
    let (mg, vg) = mean_var(&gen_);
    let (mi2, vi2) = mean_var(&imp);
    // 1:N: sample 0 of the first `enrolled` subjects is the gallery.
    let gallery: Vec<usize> = (0..t.len())
        .filter(|i| labels[*i] < a.enrolled && i % a.samples == 0)
        .collect();
    let probes: Vec<usize> = (0..t.len())
        .filter(|i| !(labels[*i] < a.enrolled && i % a.samples == 0))
        .collect();
    let searched: Vec<(bool, Option<f64>, f64)> = probes
        .par_iter()
        .map(|&p| {
            let prepared = default.prepare(&t[p]);
            let best = gallery
                .iter()
                .map(|&g| (g, 1.0 - default.compare_row(&prepared, &t[g].to_row()).distance))
                .max_by(|x, y| x.1.total_cmp(&y.1))
                .expect("gallery not empty");
            let mated = labels[p] < a.enrolled;
            (mated, (mated && labels[best.0] == labels[p]).then_some(best.1), best.1)
        })
        .collect();
    let mated: Vec<Option<f64>> = searched.iter().filter(|s| s.0).map(|s| s.1).collect();
    let non_mated: Vec<f64> = searched.iter().filter(|s| !s.0).map(|s| s.2).collect();
    let (fnir, thr, fpir) = fnir_at_fpir(&mated, &non_mated, 0.01);
    let report = json!({
        "templates": t.len(), "subjects": a.subjects, "genuine_pairs": gen_.len(), "impostor_pairs": imp.len(),
        "daugman_raw_hd": {
            "impostor_mean": mi, "impostor_std": vi.sqrt(), "degrees_of_freedom": dof,
            "mean_bits_compared": compared_bits, "bits_per_degree_of_freedom": compared_bits / dof,
            "daugman_bits_per_degree_of_freedom": 2048.0 / 249.0,
            "genuine_mean": mean_var(&gen_raw).0,
        },
        "open_iris_default_matcher": {
            "genuine_mean": mg, "genuine_std": vg.sqrt(), "genuine_min": gen_.iter().cloned().fold(f64::MAX, f64::min),
            "genuine_max": gen_.iter().cloned().fold(f64::MIN, f64::max),
            "impostor_mean": mi2, "impostor_std": vi2.sqrt(), "impostor_min": imp.iter().cloned().fold(f64::MAX, f64::min),
            "eer": e, "eer_distance": -et, "d_prime": d_prime(&gen_, &imp),
        },
        "identification": {
            "gallery": gallery.len(), "mated_searches": mated.len(), "non_mated_searches": non_mated.len(),
            "fnir_at_fpir_0.01": fnir, "threshold_score": thr, "achieved_fpir": fpir,
        },
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
