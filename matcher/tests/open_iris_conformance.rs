//! biomatch's iris matchers against open-iris 1.11.2 on 10,000 pairs.
//!
//! The pairs are regenerated from their seed (datasets::conformance_pairs);
//! the expected distances and shifts were computed by open-iris itself with
//! benches/peers/iris_open_iris_oracle.py and committed beside it.

use biomatch_datasets::conformance_pairs;
use biomatch_kernels::iris::{IrisIsa, IrisKernels};
use biomatch_matcher::{IrisMatchConfig, IrisMatcher, IrisTemplate};

const ORACLE: &str = include_str!("../../benches/peers/iris_oracle_open_iris_1.11.2.csv");

fn config(name: &str) -> IrisMatchConfig {
    let d = IrisMatchConfig::default();
    match name {
        "default" => d,
        "no_half" => IrisMatchConfig {
            separate_half_matching: false,
            ..d
        },
        "plain" => IrisMatchConfig { normalise: false, ..d },
        "simple" => IrisMatchConfig {
            normalise: false,
            separate_half_matching: false,
            ..d
        },
        other => panic!("unknown config {other}"),
    }
}

#[test]
fn ten_thousand_pairs_match_open_iris_exactly_on_every_kernel() {
    let pairs: Vec<(IrisTemplate, IrisTemplate)> = conformance_pairs(10_000, 2026)
        .into_iter()
        .map(|(p, g)| {
            (
                IrisTemplate::from_packed(&p.code, &p.mask, "v2.1").unwrap(),
                IrisTemplate::from_packed(&g.code, &g.mask, "v2.1").unwrap(),
            )
        })
        .collect();
    let rows: Vec<(usize, &str, f64, i32)> = ORACLE
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].parse().unwrap(),
                f[1],
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows.len(), 40_000);
    let (mut genuine_low, mut edge) = (0, 0);
    for isa in IrisIsa::supported() {
        let kern = IrisKernels::for_isa(isa).unwrap();
        let matchers: Vec<(&str, IrisMatcher)> = ["default", "no_half", "plain", "simple"]
            .into_iter()
            .map(|n| (n, IrisMatcher::with_kernels(config(n), kern).unwrap()))
            .collect();
        // The scalar kernel is slow in debug builds: it checks every 7th pair.
        let step = if isa == IrisIsa::Scalar { 7 } else { 1 };
        for &(i, name, want, shift) in rows.iter().filter(|r| r.0 % step == 0) {
            let m = &matchers.iter().find(|(n, _)| *n == name).unwrap().1;
            let got = m.compare(&pairs[i].0, &pairs[i].1);
            assert_eq!(got.shift, shift, "{isa:?} pair {i} {name}: shift");
            assert!(
                (got.distance - want).abs() <= 1e-9,
                "{isa:?} pair {i} {name}: {} vs {want}",
                got.distance
            );
            assert_eq!(
                got.distance.to_bits(),
                want.to_bits(),
                "{isa:?} pair {i} {name}: not bit-identical"
            );
            genuine_low += (isa == IrisIsa::detect() && name == "default" && i % 2 == 0 && want < 0.35) as usize;
            edge += (isa == IrisIsa::detect() && name == "default" && i % 50 == 7) as usize;
        }
    }
    // The set must hold what it claims: mostly separable genuine pairs and
    // the empty-half edge cases.
    assert!(genuine_low > 4000, "{genuine_low} genuine pairs below 0.35");
    assert_eq!(edge, 200);
}

/// Two-step scoring with a cutoff never drops a pair whose distance is at or
/// under the cutoff, and returns exactly `compare_row`'s result otherwise;
/// on impostors at practical cutoffs it drops many pairs after the first step.
#[test]
fn early_exit_never_drops_a_pair_under_the_cutoff() {
    let pairs = conformance_pairs(2_000, 2026);
    let mut dropped = [0usize; 4];
    for isa in IrisIsa::supported().into_iter().filter(|i| *i != IrisIsa::Scalar) {
        let kern = IrisKernels::for_isa(isa).unwrap();
        for (k, name) in ["default", "no_half", "plain", "simple"].into_iter().enumerate() {
            let m = IrisMatcher::with_kernels(config(name), kern).unwrap();
            for (p, g) in &pairs {
                let p = IrisTemplate::from_packed(&p.code, &p.mask, "v2.1").unwrap();
                let row = IrisTemplate::from_packed(&g.code, &g.mask, "v2.1").unwrap().to_row();
                let prepared = m.prepare(&p);
                let full = m.compare_row(&prepared, &row);
                let d = full.distance;
                for cutoff in [0.0, 0.2, 0.3, 0.35, 0.4, d - 1e-6, d, d + 1e-6, f64::INFINITY] {
                    match m.compare_row_within(&prepared, &row, cutoff) {
                        Some(r) => assert_eq!(r, full, "{isa:?} {name}: the two paths disagree"),
                        None => {
                            assert!(d > cutoff, "{isa:?} {name}: dropped at {cutoff} with distance {d}");
                            if cutoff == 0.35 {
                                dropped[k] += 1;
                            }
                        }
                    }
                }
            }
        }
    }
    eprintln!("pairs dropped at cutoff 0.35 (default, no_half, plain, simple): {dropped:?}");
    // Half the set is impostors (distance near 0.5): the default matcher must
    // drop a good share of them at the usual 0.35 cutoff.
    assert!(dropped[0] > 500, "{dropped:?}");
}
