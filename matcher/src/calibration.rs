//! Score calibration: from a gallery's impostor scores to false match rates
//! and back, so that clients decide at "FMR 1e-4" instead of at a raw score
//! whose meaning differs per modality, matcher and population.
//!
//! The impostor score distribution is kept as an empirical table down to the
//! FMR its sample supports, with at least [`MIN_TAIL_POINTS`] impostors above
//! the last knot. Below that (FMR 1e-6 from a million impostor scores has one
//! score to go by) the upper tail is modelled as exponential, fitted to the
//! excesses over the last knot (peaks over threshold). Score distributions of
//! cosine, Hamming and MCC matchers have tails at least as light as
//! exponential, so the model overstates the FMR of high scores: thresholds
//! come out on the safe side (the measured FMR at or below the target).
//!
//! Genuine score statistics are kept too when the fit had genuine pairs; the
//! sequential test of streamed verification uses them.

use serde::{Deserialize, Serialize};

use crate::MatcherError;

/// Impostor scores a calibration needs at least.
pub const MIN_IMPOSTORS: usize = 1000;
/// Impostor scores above the last empirical knot, from which the tail is fitted.
pub const MIN_TAIL_POINTS: usize = 100;
/// Smallest FMR a client may ask for.
pub const MIN_TARGET_FMR: f64 = 1e-12;
/// Largest FMR a client may ask for.
pub const MAX_TARGET_FMR: f64 = 0.5;
/// Knots of the empirical table per decade of FMR.
const KNOTS_PER_DECADE: f64 = 20.0;

/// Mean, standard deviation and count of a set of scores.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoreStats {
    /// Number of scores.
    pub count: u64,
    /// Their mean.
    pub mean: f64,
    /// Their standard deviation (population).
    pub std: f64,
}

impl ScoreStats {
    /// Statistics of `scores`; None when empty.
    pub fn of(scores: &[f32]) -> Option<ScoreStats> {
        if scores.is_empty() {
            return None;
        }
        let n = scores.len() as f64;
        let mean = scores.iter().map(|&s| f64::from(s)).sum::<f64>() / n;
        let var = scores.iter().map(|&s| (f64::from(s) - mean).powi(2)).sum::<f64>() / n;
        Some(ScoreStats {
            count: scores.len() as u64,
            mean,
            std: var.sqrt(),
        })
    }
}

/// The fitted mapping between scores and false match rates of one gallery.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Impostor score statistics.
    pub impostor: ScoreStats,
    /// Genuine score statistics, when the fit had genuine pairs.
    pub genuine: Option<ScoreStats>,
    /// Empirical table: (score, FMR) with scores ascending and FMR
    /// descending; FMR(score) is the share of impostors scoring at or above.
    knots: Vec<(f32, f64)>,
    /// Scale of the exponential tail beyond the last knot.
    tail_scale: f64,
    /// Share of impostors strictly above the last knot: where the tail starts.
    tail_fmr: f64,
    /// The largest impostor score seen.
    pub max_impostor: f32,
}

impl Calibration {
    /// Fits a calibration from impostor scores (and genuine scores, which
    /// only feed the statistics). Fails with fewer than [`MIN_IMPOSTORS`]
    /// finite impostor scores.
    pub fn fit(impostors: &[f32], genuines: &[f32]) -> Result<Calibration, MatcherError> {
        let mut imp: Vec<f32> = impostors.iter().copied().filter(|s| s.is_finite()).collect();
        if imp.len() < MIN_IMPOSTORS {
            return Err(MatcherError::Calibration(format!(
                "{} finite impostor scores; a calibration needs at least {MIN_IMPOSTORS}",
                imp.len()
            )));
        }
        let genuine: Vec<f32> = genuines.iter().copied().filter(|s| s.is_finite()).collect();
        imp.sort_by(|a, b| b.total_cmp(a)); // descending
        let n = imp.len();
        // at_or_above(k) = number of impostors scoring >= imp[k - 1], ties included.
        let at_or_above = |k: usize| -> usize {
            let s = imp[k - 1];
            k + imp[k..].iter().take_while(|&&x| x == s).count()
        };
        // The last knot keeps MIN_TAIL_POINTS impostors at or above it (more
        // with large samples: a ten-thousandth of them), so the tail is
        // fitted to enough points while the empirical table reaches as low
        // as the sample supports. (With a thousandth, LFW's FaceNet scores
        // measured 15% above target at FMR 1e-4 on held-out impostors: the
        // real tail is not exponential that far up.)
        let tail_k = MIN_TAIL_POINTS.max(n / 10_000).min(n);
        let mut knots: Vec<(f32, f64)> = Vec::new();
        let decades = (n as f64 / tail_k as f64).log10();
        let steps = (decades * KNOTS_PER_DECADE).ceil() as usize;
        for i in (0..=steps).rev() {
            let fmr_level = (tail_k as f64 / n as f64) * 10f64.powf(i as f64 / KNOTS_PER_DECADE);
            let k = ((fmr_level * n as f64).round() as usize).clamp(1, n);
            let score = imp[k - 1];
            let fmr = at_or_above(k) as f64 / n as f64;
            if knots.last().is_none_or(|&(s, _)| score > s) {
                knots.push((score, fmr));
            }
        }
        let &(u, _) = knots.last().expect("at least one knot");
        let excess: Vec<f64> = imp.iter().take_while(|&&s| s > u).map(|&s| f64::from(s - u)).collect();
        let tail_scale = if excess.is_empty() {
            // Ties at the top: nothing is known above u, so fall off fast.
            f64::from(f32::EPSILON)
        } else {
            (excess.iter().sum::<f64>() / excess.len() as f64).max(f64::from(f32::EPSILON))
        };
        Ok(Calibration {
            impostor: ScoreStats::of(&imp).expect("non-empty"),
            genuine: ScoreStats::of(&genuine),
            knots,
            tail_scale,
            tail_fmr: excess.len() as f64 / n as f64,
            max_impostor: imp[0],
        })
    }

    /// Checks a calibration read back from storage: a hand-edited or
    /// damaged file must be refused, not make [`Calibration::fmr`] panic or
    /// answer nonsense.
    pub fn check(&self) -> Result<(), MatcherError> {
        let bad = |m: &str| Err(MatcherError::Calibration(format!("stored calibration is invalid: {m}")));
        if self.knots.is_empty() {
            return bad("no knots");
        }
        if self
            .knots
            .iter()
            .any(|(s, f)| !(s.is_finite() && *f > 0.0 && *f <= 1.0))
        {
            return bad("a knot is not finite or its FMR is outside (0, 1]");
        }
        if self.knots.windows(2).any(|w| w[1].0 <= w[0].0 || w[1].1 > w[0].1) {
            return bad("knots are not in ascending score and descending FMR order");
        }
        if !(self.tail_scale.is_finite() && self.tail_scale > 0.0 && (0.0..=1.0).contains(&self.tail_fmr)) {
            return bad("the tail model is out of range");
        }
        Ok(())
    }

    /// The false match rate of `score`: the expected share of impostor
    /// comparisons scoring at or above it.
    pub fn fmr(&self, score: f32) -> f64 {
        let (first, last) = (self.knots[0], *self.knots.last().expect("non-empty"));
        if score <= first.0 {
            return first.1;
        }
        if score > last.0 {
            return self.tail_fmr * (-f64::from(score - last.0) / self.tail_scale).exp();
        }
        // Between knots: linear in log FMR.
        let i = self.knots.partition_point(|&(s, _)| s < score);
        let (s1, f1) = self.knots[i];
        if score == s1 {
            return f1;
        }
        let (s0, f0) = self.knots[i - 1];
        let t = f64::from(score - s0) / f64::from(s1 - s0);
        (f0.ln() + t * (f1.ln() - f0.ln())).exp()
    }

    /// The smallest threshold whose FMR is at most `target`; fails when the
    /// target is outside [`MIN_TARGET_FMR`]..=[`MAX_TARGET_FMR`].
    pub fn threshold_for(&self, target: f64) -> Result<f32, MatcherError> {
        check_target(target)?;
        let last = *self.knots.last().expect("non-empty");
        if target < last.1 {
            if self.tail_fmr <= target {
                return Ok(last.0.next_up());
            }
            let t = f64::from(last.0) + self.tail_scale * (self.tail_fmr / target).ln();
            return Ok(next_up((t as f32).max(last.0.next_up()), |s| self.fmr(s) <= target));
        }
        // The first knot whose FMR is within the target, then refine between
        // it and the knot before by bisection on the interpolation.
        let i = self.knots.partition_point(|&(_, f)| f > target);
        let (hi, _) = self.knots[i];
        if i == 0 {
            return Ok(hi);
        }
        let (mut lo, mut hi) = (self.knots[i - 1].0, hi);
        for _ in 0..60 {
            let mid = lo + (hi - lo) / 2.0;
            if mid <= lo || mid >= hi {
                break;
            }
            if self.fmr(mid) <= target { hi = mid } else { lo = mid }
        }
        Ok(hi)
    }

    /// The FMR below which thresholds come from the tail model rather than
    /// from observed impostor scores.
    pub fn empirical_floor(&self) -> f64 {
        self.knots.last().expect("non-empty").1
    }
}

/// Checks that a client's target FMR is in range.
pub fn check_target(target: f64) -> Result<(), MatcherError> {
    if !(MIN_TARGET_FMR..=MAX_TARGET_FMR).contains(&target) {
        return Err(MatcherError::Calibration(format!(
            "target_fmr {target} is outside {MIN_TARGET_FMR:e} to {MAX_TARGET_FMR}"
        )));
    }
    Ok(())
}

/// The smallest f32 at or after `t` that satisfies `ok` (rounding of the
/// closed form may land a step short).
fn next_up(mut t: f32, ok: impl Fn(f32) -> bool) -> f32 {
    for _ in 0..64 {
        if ok(t) {
            return t;
        }
        t = t.next_up();
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic normal scores (Box-Muller over a seeded xorshift).
    fn normal_scores(n: usize, mean: f64, std: f64) -> Vec<f32> {
        let mut uniform = crate::test_uniform(0x9E37_79B9_7F4A_7C15);
        (0..n)
            .map(|_| {
                let (u1, u2) = (uniform(), uniform());
                (mean + std * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
            })
            .collect()
    }

    #[test]
    fn a_damaged_stored_calibration_is_refused() {
        let c = Calibration::fit(&normal_scores(5000, 0.0, 0.1), &[]).unwrap();
        assert!(c.check().is_ok());
        let mut json: serde_json::Value = serde_json::to_value(&c).unwrap();
        json["knots"] = serde_json::json!([]);
        let empty: Calibration = serde_json::from_value(json.clone()).unwrap();
        assert!(empty.check().is_err());
        json["knots"] = serde_json::json!([[0.5, 0.1], [0.4, 0.01]]);
        assert!(
            serde_json::from_value::<Calibration>(json.clone())
                .unwrap()
                .check()
                .is_err()
        );
        json["knots"] = serde_json::json!([[0.1, 0.1]]);
        json["tail_scale"] = serde_json::json!(-1.0);
        assert!(serde_json::from_value::<Calibration>(json).unwrap().check().is_err());
    }

    #[test]
    fn too_few_impostors_is_an_error() {
        assert!(Calibration::fit(&[0.1; 999], &[]).is_err());
        assert!(Calibration::fit(&[f32::NAN; 5000], &[]).is_err());
    }

    #[test]
    fn empirical_thresholds_match_the_sample() {
        let imp = normal_scores(200_000, 0.0, 0.05);
        let c = Calibration::fit(&imp, &[0.8, 0.9]).unwrap();
        for target in [1e-1, 1e-2, 1e-3] {
            let t = c.threshold_for(target).unwrap();
            let measured = imp.iter().filter(|&&s| s >= t).count() as f64 / imp.len() as f64;
            // Between knots (20 per decade) the table interpolates in log
            // FMR, so the sample's own FMR at the threshold is the target to
            // within a small fraction of the knot spacing.
            assert!((measured - target).abs() <= target * 0.01, "{target}: {measured}");
        }
        assert_eq!(c.genuine.unwrap().count, 2);
        assert!((c.impostor.std - 0.05).abs() < 0.001);
    }

    #[test]
    fn tail_thresholds_are_conservative_for_a_gaussian() {
        // Fit on 100k impostors, check on 4M more from the same law: the
        // exponential tail must not under-state the FMR of high scores.
        let c = Calibration::fit(&normal_scores(100_000, 0.0, 0.05), &[]).unwrap();
        assert!((c.empirical_floor() - 1e-3).abs() < 1e-5, "{}", c.empirical_floor());
        let check = normal_scores(4_000_000, 0.0, 0.05);
        for target in [1e-4, 1e-5, 1e-6] {
            let t = c.threshold_for(target).unwrap();
            let measured = check.iter().filter(|&&s| s >= t).count() as f64 / check.len() as f64;
            assert!(measured <= target, "{target}: threshold {t} measured {measured}");
            assert!((c.fmr(t) - target).abs() <= target * 1e-3, "{}", c.fmr(t));
        }
    }

    #[test]
    fn fmr_is_monotone_and_inverts_threshold() {
        let c = Calibration::fit(&normal_scores(50_000, 0.3, 0.1), &[]).unwrap();
        let mut last = 1.0;
        for i in 0..2000 {
            let s = -0.2 + i as f32 * 0.001;
            let f = c.fmr(s);
            assert!(f <= last && f > 0.0, "{s}: {f} after {last}");
            last = f;
        }
        for target in [0.3, 0.01, 1e-3, 1e-6, 1e-9] {
            let t = c.threshold_for(target).unwrap();
            assert!(c.fmr(t) <= target, "{target}");
            assert!(c.fmr(t.next_down()) > target * 0.999, "{target}");
        }
        assert!(c.threshold_for(0.0).is_err());
        assert!(c.threshold_for(0.9).is_err());
        assert!(c.threshold_for(f64::NAN).is_err());
    }

    #[test]
    fn ties_and_constant_scores_do_not_break_the_fit() {
        let mut imp = vec![0.0f32; 5000];
        imp.extend(std::iter::repeat_n(0.5f32, 10));
        // Scores are assumed continuous: ten tied top scores are read as a
        // tail starting at the knot below them.
        let c = Calibration::fit(&imp, &[]).unwrap();
        assert!(c.fmr(0.5) <= 10.0 / 5010.0 && c.fmr(0.6) < c.fmr(0.5));
        let t = c.threshold_for(1e-3).unwrap();
        assert!(t > 0.0 && c.fmr(t) <= 1e-3);
        let c = Calibration::fit(&[0.25; 2000], &[]).unwrap();
        assert_eq!(c.fmr(0.25), 1.0);
        assert!(c.threshold_for(1e-4).unwrap() > 0.25);
    }
}
