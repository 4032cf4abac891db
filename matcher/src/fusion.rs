//! Score-level fusion of several modalities.
//!
//! Raw scores of different matchers are not comparable (a cosine of 0.4 and
//! an MCC similarity of 0.4 mean very different things), so each modality's
//! score is first normalised to its false match rate by that gallery's
//! [`Calibration`](crate::Calibration): the probability that an impostor
//! scores at least as high. Under the impostor hypothesis these FMRs are
//! uniform on (0, 1) and, for different modalities of one person,
//! independent, so the classical ways of combining independent p-values
//! apply, and the combined value is again a false match rate:
//! - [`FusionMethod::Stouffer`] maps each FMR to a normal deviate
//!   `z_i = Φ⁻¹(1 - p_i)`, and the combined FMR is `1 - Φ(Σ z_i / √k)`. It
//!   rewards modalities that agree, like a z-normalised score sum, and is
//!   the default: on the synthetic multi-modal set (BENCHMARKS.md) it has
//!   the lower EER of the two.
//! - [`FusionMethod::Fisher`]: `X = -2 Σ ln p_i` follows χ² with 2k degrees
//!   of freedom, whose upper tail is `e^(-X/2) Σ_{j<k} (X/2)^j / j!`. One
//!   very strong modality dominates.
//!
//! The fused score is `-log10` of the combined FMR, so a fused threshold of
//! 4 accepts at a combined false match rate of about 1e-4 whatever the
//! number of modalities. A modality the probe lacks, or the enrolled subject
//! lacks, contributes no evidence: k shrinks, and the remaining modalities
//! must carry the decision alone; nothing is imputed.

use serde::{Deserialize, Serialize};

/// How per-modality false match rates are combined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FusionMethod {
    /// Sum of normal deviates over √k.
    #[default]
    Stouffer,
    /// Fisher's χ² on -2 Σ ln p.
    Fisher,
}

impl std::str::FromStr for FusionMethod {
    type Err = String;

    fn from_str(s: &str) -> Result<FusionMethod, String> {
        match s.to_ascii_lowercase().as_str() {
            "stouffer" => Ok(FusionMethod::Stouffer),
            "fisher" => Ok(FusionMethod::Fisher),
            _ => Err(format!("{s:?} is not a fusion method (stouffer or fisher)")),
        }
    }
}

impl FusionMethod {
    /// `-log10` of the combined FMR of `fmrs`: the fused score, 0 when empty.
    pub fn fused_score(self, fmrs: &[f64]) -> f64 {
        match self {
            FusionMethod::Fisher => fused_score(fmrs),
            FusionMethod::Stouffer => stouffer_score(fmrs),
        }
    }
}

/// Smallest per-modality FMR used, so that a score far beyond every impostor
/// does not make the logarithm infinite.
pub const MIN_FMR: f64 = 1e-300;

/// Combined false match rate of independent per-modality FMRs by Fisher's
/// method; 1 when `fmrs` is empty.
pub fn fisher_fmr(fmrs: &[f64]) -> f64 {
    10f64.powf(-fused_score(fmrs))
}

/// `-log10` of the combined FMR of `fmrs` by Fisher's method, 0 when empty.
pub fn fused_score(fmrs: &[f64]) -> f64 {
    if fmrs.is_empty() {
        return 0.0;
    }
    // h = X / 2 = -Σ ln p_i; ln(combined) = -h + ln Σ_{j<k} h^j / j!.
    let h: f64 = fmrs.iter().map(|&p| -p.clamp(MIN_FMR, 1.0).ln()).sum();
    let mut term = 1.0f64;
    let mut sum = 1.0f64;
    for j in 1..fmrs.len() {
        term *= h / j as f64;
        sum += term;
    }
    let ln_p = (-h + sum.ln()).min(0.0);
    -ln_p / std::f64::consts::LN_10
}

/// Largest per-modality FMR Stouffer's method uses. A score at or below
/// every calibration impostor has FMR 1, whose normal deviate is minus
/// infinity: it would cancel any evidence from the other modalities. The
/// calibration table resolves FMRs near 1 only coarsely anyway (20 knots
/// per decade), so such a score counts as strong, finite evidence against
/// (z = -3.09) instead.
pub const STOUFFER_MAX_FMR: f64 = 1.0 - 1e-3;

/// `-log10` of the combined FMR of `fmrs` by Stouffer's method, 0 when empty.
pub fn stouffer_score(fmrs: &[f64]) -> f64 {
    if fmrs.is_empty() {
        return 0.0;
    }
    let z: f64 = fmrs
        .iter()
        .map(|&p| -normal_quantile(p.clamp(MIN_FMR, STOUFFER_MAX_FMR)))
        .sum::<f64>()
        / (fmrs.len() as f64).sqrt();
    (-ln_upper_tail(z) / std::f64::consts::LN_10).max(0.0)
}

/// Φ⁻¹(p), the standard normal quantile, for p in (0, 1]: Acklam's rational
/// approximation (relative error below 1.2e-9), with its tail form below
/// p = 0.02425 so that p down to 1e-300 is handled; +inf at p = 1.
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const LOW: f64 = 0.02425;
    let tail = |q: f64| {
        let r = (-2.0 * q.ln()).sqrt();
        (((((C[0] * r + C[1]) * r + C[2]) * r + C[3]) * r + C[4]) * r + C[5])
            / ((((D[0] * r + D[1]) * r + D[2]) * r + D[3]) * r + 1.0)
    };
    if p >= 1.0 {
        f64::INFINITY
    } else if p < LOW {
        tail(p)
    } else if p > 1.0 - LOW {
        -tail(1.0 - p)
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// ln(1 - Φ(z)), the log of the standard normal upper tail, accurate to a
/// relative 1.2e-7 of the tail itself for any z (the Chebyshev-fitted erfc
/// of Numerical Recipes, evaluated in log space so that it never underflows).
pub fn ln_upper_tail(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x);
    let poly = -x * x - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    // erfc(x) = t exp(poly); upper tail = erfc / 2 for z >= 0.
    let ln_tail = (0.5 * t).ln() + poly;
    if z >= 0.0 { ln_tail } else { (-ln_tail.exp()).ln_1p() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_modality_keeps_its_fmr() {
        for p in [0.5, 1e-3, 1e-9] {
            assert!((fisher_fmr(&[p]) - p).abs() < p * 1e-12);
        }
        assert_eq!(fused_score(&[]), 0.0);
        assert_eq!(fused_score(&[1.0, 1.0]), 0.0);
    }

    #[test]
    fn two_modalities_match_the_closed_form() {
        // k = 2: p = q (1 - ln q) with q = p1 p2.
        let (p1, p2) = (1e-2f64, 3e-3f64);
        let q = p1 * p2;
        assert!((fisher_fmr(&[p1, p2]) - q * (1.0 - q.ln())).abs() < 1e-15);
    }

    #[test]
    fn combined_fmr_is_uniform_under_impostors() {
        // Independent uniform p-values: P(combined <= a) must be about a.
        let mut u = crate::test_uniform(0x2545_F491_4F6C_DD1D);
        let n = 200_000;
        let combined: Vec<f64> = (0..n).map(|_| fisher_fmr(&[u(), u(), u()])).collect();
        for a in [0.1, 0.01, 0.001] {
            let share = combined.iter().filter(|&&p| p <= a).count() as f64 / n as f64;
            assert!((share - a).abs() < 4.0 * (a / n as f64).sqrt() + 1e-4, "{a}: {share}");
        }
    }

    #[test]
    fn stouffer_keeps_one_fmr_and_is_uniform_under_impostors() {
        for p in [0.5, 0.1, 1e-3, 1e-9, 1e-200] {
            let back = 10f64.powf(-stouffer_score(&[p]));
            assert!((back - p).abs() <= p * 1e-6, "{p}: {back}");
        }
        let mut u = crate::test_uniform(0x1234_5678_9ABC_DEF1);
        let n = 200_000;
        let combined: Vec<f64> = (0..n).map(|_| 10f64.powf(-stouffer_score(&[u(), u()]))).collect();
        for a in [0.1, 0.01, 0.001] {
            let share = combined.iter().filter(|&&p| p <= a).count() as f64 / n as f64;
            assert!((share - a).abs() < 4.0 * (a / n as f64).sqrt() + 1e-4, "{a}: {share}");
        }
        // Agreement is rewarded: two moderate FMRs beat one of them alone.
        assert!(stouffer_score(&[1e-2, 1e-2]) > 2.0);
        assert!(FusionMethod::Stouffer.fused_score(&[0.0, 0.5]).is_finite());
        // A modality below every impostor weighs against, finitely.
        let strong_and_lowest = stouffer_score(&[1e-12, 1.0]);
        assert!(strong_and_lowest > 1.0 && strong_and_lowest < stouffer_score(&[1e-12, 0.5]));
    }

    #[test]
    fn normal_quantile_and_tail_agree() {
        for z in [-3.0, -0.5, 0.0, 0.7, 2.0, 5.0, 10.0, 30.0] {
            let p = ln_upper_tail(z).exp();
            if p > 1e-300 && p < 1.0 {
                assert!(
                    (-normal_quantile(p) - z).abs() < 1e-5 * z.abs().max(1.0),
                    "{z}: {}",
                    -normal_quantile(p)
                );
            }
        }
        assert!((ln_upper_tail(0.0) - 0.5f64.ln()).abs() < 1e-7);
        assert!((ln_upper_tail(1.96).exp() - 0.024_997_9).abs() < 1e-7);
    }

    #[test]
    fn extreme_evidence_stays_finite() {
        let s = fused_score(&[0.0, 1e-200, 0.5]);
        assert!(s.is_finite() && s > 300.0);
    }
}
