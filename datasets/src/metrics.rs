//! Verification and identification error rates (ISO/IEC 19795-1 terms) for
//! similarity scores: higher means more alike; a comparison is accepted when
//! `score >= t` (ties accept, as in pyeer and bob.measure). For distances,
//! negate first.

/// FMR (impostors accepted) and FNMR (genuines rejected) at threshold `t`.
/// Both inputs must be sorted ascending.
pub fn fmr_fnmr(genuine: &[f64], impostor: &[f64], t: f64) -> (f64, f64) {
    let below = |v: &[f64]| v.partition_point(|x| *x < t);
    let fmr = (impostor.len() - below(impostor)) as f64 / impostor.len() as f64;
    let fnmr = below(genuine) as f64 / genuine.len() as f64;
    (fmr, fnmr)
}

/// Equal error rate and its threshold: over every observed score as a
/// threshold, the point where FMR and FNMR are closest, reported as their
/// mean. (The pyeer-exact convention belongs to the benchmark harness.)
pub fn eer(genuine: &[f64], impostor: &[f64]) -> (f64, f64) {
    let (g, i) = (sorted(genuine), sorted(impostor));
    let mut best = (f64::INFINITY, 0.5, 0.0);
    for &t in g.iter().chain(&i) {
        let (fmr, fnmr) = fmr_fnmr(&g, &i, t);
        let gap = (fmr - fnmr).abs();
        if gap < best.0 {
            best = (gap, (fmr + fnmr) / 2.0, t);
        }
    }
    (best.1, best.2)
}

/// Decidability d' = |mu_g - mu_i| / sqrt((var_g + var_i) / 2).
pub fn d_prime(genuine: &[f64], impostor: &[f64]) -> f64 {
    let (mg, vg) = mean_var(genuine);
    let (mi, vi) = mean_var(impostor);
    (mg - mi).abs() / ((vg + vi) / 2.0).sqrt()
}

/// Mean and population variance.
pub fn mean_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (m, v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n)
}

/// A copy sorted ascending.
pub fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

/// FNIR at the threshold where FPIR first drops to `fpir` or below (rank 1).
/// `mated`: per mated search, the mate's score if it was ranked first, else
/// None. `non_mated`: per non-mated search, the best candidate's score.
/// Returns (FNIR, threshold, achieved FPIR).
pub fn fnir_at_fpir(mated: &[Option<f64>], non_mated: &[f64], fpir: f64) -> (f64, f64, f64) {
    let nm = sorted(non_mated);
    // Smallest threshold with share(non-mated >= t) <= fpir.
    let allowed = (fpir * nm.len() as f64).floor() as usize;
    let t = if allowed >= nm.len() {
        f64::NEG_INFINITY
    } else {
        next_up(nm[nm.len() - 1 - allowed])
    };
    let achieved = nm.iter().filter(|s| **s >= t).count() as f64 / nm.len() as f64;
    let missed = mated.iter().filter(|m| !m.is_some_and(|s| s >= t)).count();
    (missed as f64 / mated.len() as f64, t, achieved)
}

fn next_up(x: f64) -> f64 {
    if x.is_nan() || x == f64::INFINITY {
        return x;
    }
    let b = x.to_bits();
    let n = if x == 0.0 {
        1
    } else if x > 0.0 {
        b + 1
    } else {
        b - 1
    };
    f64::from_bits(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_on_a_small_example() {
        let g = sorted(&[0.9, 0.8, 0.7, 0.4]);
        let i = sorted(&[0.1, 0.2, 0.5, 0.3]);
        assert_eq!(fmr_fnmr(&g, &i, 0.5), (0.25, 0.25));
        assert_eq!(eer(&g, &i), (0.25, 0.5));
        assert!(d_prime(&g, &i) > 2.0);
        let mated = [Some(0.9), Some(0.45), None, Some(0.8)];
        let non = [0.1, 0.2, 0.5, 0.3];
        let (fnir, t, fpir) = fnir_at_fpir(&mated, &non, 0.0);
        assert!(t > 0.5 && fpir == 0.0);
        assert_eq!(fnir, 0.5);
        assert_eq!(fnir_at_fpir(&mated, &non, 0.25).0, 0.25);
    }
}
