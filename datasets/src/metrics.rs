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

/// FMR and FNMR at every observed score, as pyeer's `calculate_roc`
/// computes them: thresholds are the distinct scores ascending; at
/// threshold t, FNMR counts genuine scores below t and FMR impostor scores at
/// or above t.
#[derive(Clone, Debug, PartialEq)]
pub struct Roc {
    /// Distinct scores, ascending.
    pub thresholds: Vec<f64>,
    /// False match rate at each threshold (non-increasing).
    pub fmr: Vec<f64>,
    /// False non-match rate at each threshold (non-decreasing).
    pub fnmr: Vec<f64>,
}

impl Roc {
    /// The ROC of two score sets (similarity scores).
    pub fn new(genuine: &[f64], impostor: &[f64]) -> Roc {
        let (g, i) = (sorted(genuine), sorted(impostor));
        let mut thresholds: Vec<f64> = g.iter().chain(&i).copied().collect();
        thresholds.sort_by(f64::total_cmp);
        thresholds.dedup();
        let (mut fmr, mut fnmr) = (
            Vec::with_capacity(thresholds.len()),
            Vec::with_capacity(thresholds.len()),
        );
        for &t in &thresholds {
            let (m, n) = fmr_fnmr(&g, &i, t);
            fmr.push(m);
            fnmr.push(n);
        }
        Roc { thresholds, fmr, fnmr }
    }

    /// FNMR at the first threshold whose FMR is nearest `op` (pyeer's
    /// `get_fmr_op`; the FMR there may lie on either side of `op`).
    pub fn fnmr_at_fmr(&self, op: f64) -> (f64, f64) {
        let idx = argmin_first(self.fmr.iter().map(|f| (f - op).abs()));
        (self.fnmr[idx], self.thresholds[idx])
    }

    /// FMR at the last threshold whose FNMR is nearest `op` (pyeer's
    /// `get_fnmr_op`).
    pub fn fmr_at_fnmr(&self, op: f64) -> (f64, f64) {
        let d: Vec<f64> = self.fnmr.iter().map(|f| (f - op).abs()).collect();
        let min = d.iter().copied().fold(f64::INFINITY, f64::min);
        let idx = d.iter().rposition(|x| *x == min).unwrap_or(0);
        (self.fmr[idx], self.thresholds[idx])
    }

    /// (FMR, FNMR) pairs for a DET plot: at most `max` points taken evenly
    /// over the thresholds, the first and last always kept.
    pub fn det_points(&self, max: usize) -> Vec<(f64, f64)> {
        let n = self.thresholds.len();
        if n == 0 || max == 0 {
            return Vec::new();
        }
        let step = n.div_ceil(max.max(2) - 1).max(1);
        let mut idx: Vec<usize> = (0..n).step_by(step).collect();
        if idx.last() != Some(&(n - 1)) {
            idx.push(n - 1);
        }
        idx.into_iter().map(|k| (self.fmr[k], self.fnmr[k])).collect()
    }

    /// Equal error rate by the FVC2000 convention, as pyeer's
    /// `get_eer_values`: `(eer, eer_low, eer_high, threshold)`. Where the
    /// curves never cross, `(1, 1, 1, first threshold)`.
    pub fn eer(&self) -> (f64, f64, f64, f64) {
        let diff = |k: usize| self.fmr[k] - self.fnmr[k];
        let Some(t2) = (0..self.fmr.len()).find(|k| diff(*k) <= 0.0) else {
            return (1.0, 1.0, 1.0, self.thresholds.first().copied().unwrap_or(0.0));
        };
        let t1 = if diff(t2) != 0.0 && t2 != 0 { t2 - 1 } else { t2 };
        let k = if self.fmr[t1] + self.fnmr[t1] <= self.fmr[t2] + self.fnmr[t2] {
            t1
        } else {
            t2
        };
        let (lo, hi) = (self.fmr[k].min(self.fnmr[k]), self.fmr[k].max(self.fnmr[k]));
        ((self.fnmr[k] + self.fmr[k]) / 2.0, lo, hi, self.thresholds[k])
    }
}

fn argmin_first(v: impl Iterator<Item = f64>) -> usize {
    let mut best = (0, f64::INFINITY);
    for (i, x) in v.enumerate() {
        if x < best.1 {
            best = (i, x);
        }
    }
    best.0
}

/// The ISO/IEC 19795-1 verification summary, computed as pyeer 0.5.6 does.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct VerificationStats {
    /// Genuine comparisons.
    pub genuine: usize,
    /// Impostor comparisons.
    pub impostor: usize,
    /// Equal error rate (midpoint of [eer_low, eer_high]).
    pub eer: f64,
    /// Lower end of the EER interval.
    pub eer_low: f64,
    /// Upper end.
    pub eer_high: f64,
    /// Threshold at the EER.
    pub eer_threshold: f64,
    /// FNMR where FMR is nearest 1%.
    pub fmr100: f64,
    /// FNMR where FMR is nearest 0.1%.
    pub fmr1000: f64,
    /// FNMR where FMR is nearest 0.01%.
    pub fmr10000: f64,
    /// FNMR where FMR is nearest 0 (no false match).
    pub zero_fmr: f64,
    /// FMR where FNMR is nearest 0.
    pub zero_fnmr: f64,
    /// Decidability d'.
    pub d_prime: f64,
}

impl VerificationStats {
    /// Summary of similarity scores; negate distances first.
    pub fn new(genuine: &[f64], impostor: &[f64]) -> VerificationStats {
        let roc = Roc::new(genuine, impostor);
        let (eer, eer_low, eer_high, eer_threshold) = roc.eer();
        VerificationStats {
            genuine: genuine.len(),
            impostor: impostor.len(),
            eer,
            eer_low,
            eer_high,
            eer_threshold,
            fmr100: roc.fnmr_at_fmr(0.01).0,
            fmr1000: roc.fnmr_at_fmr(0.001).0,
            fmr10000: roc.fnmr_at_fmr(0.0001).0,
            zero_fmr: roc.fnmr_at_fmr(0.0).0,
            zero_fnmr: roc.fmr_at_fnmr(0.0).0,
            d_prime: d_prime(genuine, impostor),
        }
    }
}

/// Equal error rate and its threshold (pyeer's convention).
pub fn eer(genuine: &[f64], impostor: &[f64]) -> (f64, f64) {
    let (e, _, _, t) = Roc::new(genuine, impostor).eer();
    (e, t)
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
        let st = VerificationStats::new(&g, &i);
        assert_eq!((st.eer_low, st.eer_high), (0.25, 0.25));
        // FMR first reaches 0 at threshold 0.7, where FNMR is 0.25 (0.4 rejected).
        assert_eq!(st.zero_fmr, 0.25);
        // FNMR is 0 up to threshold 0.4, where FMR is 0.25 (0.5 accepted).
        assert_eq!(st.zero_fnmr, 0.25);
        let never = VerificationStats::new(&[0.1], &[0.9]);
        assert!(never.eer >= 0.5);
        assert!(d_prime(&g, &i) > 2.0);
        let roc = Roc::new(&g, &i);
        assert_eq!(roc.det_points(100).len(), roc.thresholds.len());
        let few = roc.det_points(3);
        assert!(few.len() <= 4 && few[0] == (1.0, 0.0) && *few.last().unwrap() == (0.0, 0.75));
        let mated = [Some(0.9), Some(0.45), None, Some(0.8)];
        let non = [0.1, 0.2, 0.5, 0.3];
        let (fnir, t, fpir) = fnir_at_fpir(&mated, &non, 0.0);
        assert!(t > 0.5 && fpir == 0.0);
        assert_eq!(fnir, 0.5);
        assert_eq!(fnir_at_fpir(&mated, &non, 0.25).0, 0.25);
    }
}
