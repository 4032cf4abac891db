//! 1:N identification metrics (ISO/IEC 19795-1 terms): CMC for closed-set
//! ranking and FNIR at FPIR for open-set decisions.
//!
//! Each probe is searched once against the gallery; [`SearchOutcome`] keeps
//! what both kinds of metric need. A search is *mated* when the probe's
//! subject is enrolled. For small sets the non-mated searches are the same
//! probes with their mate left out ("leave one out"): the best score among
//! the non-mates is exactly what such a search would return at rank 1.

use serde::Serialize;

use crate::metrics::{fnir_at_fpir, sorted};

/// What one mated search produced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SearchOutcome {
    /// 1-based rank of the mate: one more than the number of non-mates
    /// scoring strictly higher (ties go to the mate).
    pub mate_rank: usize,
    /// The mate's score.
    pub mate_score: f64,
    /// The highest non-mate score (the top candidate of the same search with
    /// the mate left out); `-inf` when the gallery holds only the mate.
    pub best_non_mate: f64,
}

impl SearchOutcome {
    /// The outcome of one search, from the mate's score and the non-mates'.
    pub fn new(mate_score: f64, non_mates: impl IntoIterator<Item = f64>) -> SearchOutcome {
        let (mut above, mut best) = (0, f64::NEG_INFINITY);
        for s in non_mates {
            above += usize::from(s > mate_score);
            best = best.max(s);
        }
        SearchOutcome {
            mate_rank: above + 1,
            mate_score,
            best_non_mate: best,
        }
    }
}

/// FNIR at one FPIR operating point (rank 1).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OperatingPoint {
    /// Target FPIR.
    pub fpir: f64,
    /// FNIR at the smallest threshold whose FPIR is at most the target.
    pub fnir: f64,
    /// That threshold.
    pub threshold: f64,
    /// The FPIR actually reached there.
    pub achieved_fpir: f64,
}

/// Identification summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IdentificationStats {
    /// Gallery size (one entry per enrolled subject, plus distractors).
    pub gallery: usize,
    /// Mated searches.
    pub mated_searches: usize,
    /// Non-mated searches.
    pub non_mated_searches: usize,
    /// Closed-set identification rate at rank 1, 5 and 10.
    pub rank1: f64,
    /// Rate at rank 5.
    pub rank5: f64,
    /// Rate at rank 10.
    pub rank10: f64,
    /// CMC: `cmc[k - 1]` is the share of mated searches with the mate at
    /// rank `k` or better, up to rank 20 or the gallery size.
    pub cmc: Vec<f64>,
    /// FNIR at FPIR 0.1, 0.01 and 0.001 (rank 1, one candidate).
    pub fnir_at_fpir: Vec<OperatingPoint>,
}

impl IdentificationStats {
    /// Summarises mated outcomes and the non-mated searches' top scores.
    pub fn new(gallery: usize, mated: &[SearchOutcome], non_mated_top: &[f64]) -> IdentificationStats {
        let cmc = cmc(mated, 20.min(gallery));
        let at = |k: usize| cmc.get(k.min(cmc.len()).saturating_sub(1)).copied().unwrap_or(0.0);
        let rank1_scores: Vec<Option<f64>> = mated
            .iter()
            .map(|m| (m.mate_rank == 1).then_some(m.mate_score))
            .collect();
        let fnir_at_fpir = if non_mated_top.is_empty() || mated.is_empty() {
            Vec::new()
        } else {
            [0.1, 0.01, 0.001]
                .into_iter()
                .map(|fpir| {
                    let (fnir, threshold, achieved_fpir) = fnir_at_fpir(&rank1_scores, non_mated_top, fpir);
                    OperatingPoint {
                        fpir,
                        fnir,
                        threshold,
                        achieved_fpir,
                    }
                })
                .collect()
        };
        IdentificationStats {
            gallery,
            mated_searches: mated.len(),
            non_mated_searches: non_mated_top.len(),
            rank1: at(1),
            rank5: at(5),
            rank10: at(10),
            cmc,
            fnir_at_fpir,
        }
    }
}

/// Cumulative match characteristic up to `max_rank`.
pub fn cmc(mated: &[SearchOutcome], max_rank: usize) -> Vec<f64> {
    let mut at_rank = vec![0usize; max_rank + 1];
    for m in mated {
        if m.mate_rank <= max_rank {
            at_rank[m.mate_rank] += 1;
        }
    }
    let n = mated.len().max(1) as f64;
    let mut acc = 0;
    (1..=max_rank)
        .map(|k| {
            acc += at_rank[k];
            acc as f64 / n
        })
        .collect()
}

/// The open-set curve: (FPIR, FNIR) at every threshold where FPIR changes,
/// rank 1. FNIR counts mated searches whose mate is not first or scores
/// below the threshold; FPIR counts non-mated searches whose top score is
/// at or above it.
pub fn fpir_fnir_curve(mated: &[SearchOutcome], non_mated_top: &[f64]) -> Vec<(f64, f64)> {
    let nm = sorted(non_mated_top);
    let hits = sorted(
        &mated
            .iter()
            .filter(|m| m.mate_rank == 1)
            .map(|m| m.mate_score)
            .collect::<Vec<_>>(),
    );
    let (n_nm, n_m) = (nm.len() as f64, mated.len().max(1) as f64);
    let mut out = Vec::with_capacity(nm.len());
    let mut prev = f64::NAN;
    for &t in &nm {
        if t == prev {
            continue;
        }
        prev = t;
        let fpir = (nm.len() - nm.partition_point(|s| *s < t)) as f64 / n_nm;
        let kept = hits.len() - hits.partition_point(|s| *s < t);
        out.push((fpir, (mated.len() - kept) as f64 / n_m));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_and_cmc() {
        let a = SearchOutcome::new(0.9, [0.1, 0.95, 0.9]);
        assert_eq!((a.mate_rank, a.best_non_mate), (2, 0.95));
        let b = SearchOutcome::new(0.8, [0.2, 0.3]);
        assert_eq!(b.mate_rank, 1);
        let c = SearchOutcome::new(0.1, [0.5, 0.6, 0.7]);
        assert_eq!(c.mate_rank, 4);
        assert_eq!(cmc(&[a, b, c], 4), vec![1.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0, 1.0]);
        assert_eq!(SearchOutcome::new(0.5, []).best_non_mate, f64::NEG_INFINITY);
    }

    #[test]
    fn open_set_summary_and_curve() {
        let mated = [
            SearchOutcome::new(0.9, [0.2]),
            SearchOutcome::new(0.6, [0.3]),
            SearchOutcome::new(0.4, [0.5]),
        ];
        let non_mated = [0.2, 0.3, 0.5, 0.1];
        let st = IdentificationStats::new(2, &mated, &non_mated);
        assert_eq!((st.rank1, st.cmc.len()), (2.0 / 3.0, 2));
        assert_eq!(st.rank5, 1.0);
        // FPIR 0.1 of 4 searches allows none: threshold just above 0.5; both
        // rank-1 mates (0.9, 0.6) stay, the rank-2 one is a miss.
        assert_eq!(st.fnir_at_fpir[0].fnir, 1.0 / 3.0);
        assert_eq!(st.fnir_at_fpir[0].achieved_fpir, 0.0);
        let curve = fpir_fnir_curve(&mated, &non_mated);
        assert_eq!(curve.first(), Some(&(1.0, 1.0 / 3.0)));
        assert_eq!(curve.last(), Some(&(0.25, 1.0 / 3.0)));
        assert!(curve.windows(2).all(|w| w[0].0 >= w[1].0 && w[0].1 <= w[1].1));
    }
}
