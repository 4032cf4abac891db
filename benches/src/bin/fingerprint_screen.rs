//! How well the fingerprint screen ranks true mates, on the real sets in
//! ../shared/datasets/fingerprint.
//!
//! For every genuine ordered pair (probe, mate) the *penetration* it needs is
//! the share of the probe's impostors whose screening score is at least the
//! mate's: a shortlist of that share of the gallery still holds the mate.
//! The hit rate at penetration x is the share of genuine pairs needing at
//! most x (the indexing measure of FVC-onGoing). Ties count against the
//! mate. The same is printed for the full matcher (the most a screen in
//! front of it could keep), and for the pairs that matter to a decision:
//! the genuine pairs the full matcher accepts at its FMR 1e-3 threshold on
//! the set, of which a screened search can only lose the ones the screen
//! drops. One JSON line per set, then one for all sets pooled.

use std::path::Path;

use biomatch_benches::templates::FingerprintSets;
use biomatch_datasets::read_dir_files;
use biomatch_matcher::fingerprint::{FingerTemplate, FingerprintMatcher, ScreenProbe};
use clap::Parser;
use rayon::prelude::*;
use serde_json::json;

/// Screening quality on the FVC sets.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    fvc: FingerprintSets,
}

/// Penetration shares reported.
const PENETRATIONS: [f64; 6] = [0.01, 0.02, 0.05, 0.10, 0.20, 0.30];

struct Entry {
    finger: String,
    template: FingerTemplate,
}

fn load(dir: &Path) -> Result<Vec<Entry>, Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    for (stem, bytes) in read_dir_files(&dir.join("templates"))? {
        let finger = format!("{}/{}", dir.display(), stem.split('_').next().unwrap_or(&stem));
        out.push(Entry {
            finger,
            template: FingerTemplate::from_iso(&bytes)?,
        });
    }
    Ok(out)
}

/// One genuine pair: the penetration it needs by the screen and by the
/// matcher, and its matcher score.
#[derive(Clone, Copy)]
struct Mate {
    screen: f64,
    matcher: f64,
    score: f32,
}

/// Every genuine pair, and every impostor matcher score.
fn pairs(entries: &[Entry]) -> (Vec<Mate>, Vec<f32>) {
    let m = FingerprintMatcher::default();
    let per_probe: Vec<(Vec<Mate>, Vec<f32>)> = entries
        .par_iter()
        .enumerate()
        .map(|(p, probe)| {
            let screen = ScreenProbe::new(probe.template.codes());
            let (mut mates, mut impostors) = (Vec::new(), Vec::new());
            for (g, e) in entries.iter().enumerate() {
                if g != p {
                    let pair = (screen.score(e.template.codes()), m.score(&probe.template, &e.template));
                    if e.finger == probe.finger {
                        mates.push(pair)
                    } else {
                        impostors.push(pair)
                    }
                }
            }
            let share = |above: &dyn Fn(&(f32, f32)) -> bool| {
                impostors.iter().filter(|x| above(x)).count() as f64 / impostors.len() as f64
            };
            let mates = mates
                .iter()
                .map(|&(s, f)| Mate {
                    screen: share(&|x| x.0 >= s),
                    matcher: share(&|x| x.1 >= f),
                    score: f,
                })
                .collect();
            (mates, impostors.iter().map(|x| x.1).collect())
        })
        .collect();
    let mut mates = Vec::new();
    let mut impostors = Vec::new();
    for (g, i) in per_probe {
        mates.extend(g);
        impostors.extend(i);
    }
    (mates, impostors)
}

fn report(name: &str, entries: &[Entry]) -> serde_json::Value {
    let (mates, mut impostors) = pairs(entries);
    impostors.sort_by(|a, b| b.total_cmp(a));
    let threshold = impostors[(impostors.len() / 1000).min(impostors.len() - 1)];
    let accepted: Vec<Mate> = mates.iter().copied().filter(|g| g.score > threshold).collect();
    let rates = |need: fn(&Mate) -> f64, of: &[Mate]| {
        PENETRATIONS
            .iter()
            .map(|&x| {
                let hit = of.iter().filter(|g| need(g) <= x).count() as f64 / of.len() as f64;
                (format!("{x}"), json!((hit * 1e4).round() / 1e4))
            })
            .collect::<serde_json::Map<_, _>>()
    };
    let mean = |need: fn(&Mate) -> f64| mates.iter().map(need).sum::<f64>() / mates.len() as f64;
    json!({
        "set": name,
        "templates": entries.len(),
        "genuine_pairs": mates.len(),
        "screen_hit_rate": rates(|g| g.screen, &mates),
        "matcher_hit_rate": rates(|g| g.matcher, &mates),
        "screen_mean_penetration": mean(|g| g.screen),
        "matcher_mean_penetration": mean(|g| g.matcher),
        "fmr1e-3_threshold": threshold,
        "accepted_genuine": accepted.len(),
        "screen_keeps_accepted": rates(|g| g.screen, &accepted),
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut pooled = Vec::new();
    let sets = args.fvc.dirs();
    for (set, dir) in &sets {
        let entries = load(dir)?;
        println!("{}", report(set, &entries));
        pooled.extend(entries);
    }
    if sets.len() > 1 {
        println!("{}", report("pooled", &pooled));
    }
    Ok(())
}
