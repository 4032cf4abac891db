//! The fingerprint screen's kernel: for one 128-bit screen code, its best
//! Jaccard similarity against every code of a stored template, and which
//! code gave it.
//!
//! A screen code (see `biomatch_matcher::fingerprint::screen`) is two words;
//! a template's codes are passed as two word arrays (structure of arrays),
//! zero-padded to a multiple of [`SCREEN_LANES`], so that the AVX-512 kernel
//! compares eight codes per step with no tail. A zero code scores 0 against
//! anything, so padding never wins. The similarity is `|p & g| / |p | g|`
//! as an f32 division, 0 when both codes are empty; every flavour computes
//! exactly that and reports the first code reaching the best value, so
//! results are identical bit for bit.

use crate::cylinder::CylinderKernels;
use crate::iris::IrisIsa;

/// Codes compared per step; gallery arrays are padded to a multiple of it.
pub const SCREEN_LANES: usize = 8;

#[inline(always)]
fn similarity(p: [u64; 2], g0: u64, g1: u64) -> f32 {
    let i = (p[0] & g0).count_ones() + (p[1] & g1).count_ones();
    let u = (p[0] | g0).count_ones() + (p[1] | g1).count_ones();
    i as f32 / u.max(1) as f32
}

/// (best similarity, index of the first code reaching it); (0, 0) for no codes.
#[inline(always)]
fn best_portable(p: [u64; 2], g0: &[u64], g1: &[u64]) -> (f32, u32) {
    let mut best = (0.0, 0);
    for (j, (&a, &b)) in g0.iter().zip(g1).enumerate() {
        let s = similarity(p, a, b);
        if s > best.0 {
            best = (s, j as u32);
        }
    }
    best
}

/// `at` is empty when the caller wants values only. Inlined so that the
/// POPCNT copy below compiles this loop with the instruction.
#[inline(always)]
fn rows_portable(probe: &[[u64; 2]], g0: &[u64], g1: &[u64], out: &mut [f32], at: &mut [u32]) {
    for (k, (o, p)) in out.iter_mut().zip(probe).enumerate() {
        let (v, j) = best_portable(*p, g0, g1);
        *o = v;
        if let Some(a) = at.get_mut(k) {
            *a = j;
        }
    }
}

/// The portable loop compiled with the POPCNT instruction.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
fn rows_popcnt(probe: &[[u64; 2]], g0: &[u64], g1: &[u64], out: &mut [f32], at: &mut [u32]) {
    rows_portable(probe, g0, g1, out, at)
}

/// With `AT`, also tracks where each best similarity was found, which costs
/// two blends per step and a lane-by-lane reduction per probe code.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vpopcntdq,popcnt")]
fn rows_avx512<const AT: bool>(probe: &[[u64; 2]], g0: &[u64], g1: &[u64], out: &mut [f32], at: &mut [u32]) {
    use std::arch::x86_64::*;
    let one = _mm512_set1_epi64(1);
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (k, (o, p)) in out.iter_mut().zip(probe).enumerate() {
        let (p0, p1) = (_mm512_set1_epi64(p[0] as i64), _mm512_set1_epi64(p[1] as i64));
        // Per lane: the best similarity and the first index reaching it.
        let mut best = _mm256_setzero_ps();
        let mut best_at = _mm256_setzero_si256();
        for (step, (a, b)) in g0
            .chunks_exact(SCREEN_LANES)
            .zip(g1.chunks_exact(SCREEN_LANES))
            .enumerate()
        {
            // SAFETY: each chunk holds exactly 8 words (64 bytes); unaligned loads.
            let (a, b) = unsafe {
                (
                    _mm512_loadu_si512(a.as_ptr().cast()),
                    _mm512_loadu_si512(b.as_ptr().cast()),
                )
            };
            let i = _mm512_add_epi64(
                _mm512_popcnt_epi64(_mm512_and_si512(p0, a)),
                _mm512_popcnt_epi64(_mm512_and_si512(p1, b)),
            );
            let u = _mm512_add_epi64(
                _mm512_popcnt_epi64(_mm512_or_si512(p0, a)),
                _mm512_popcnt_epi64(_mm512_or_si512(p1, b)),
            );
            let u = _mm512_max_epu64(u, one);
            // Counts are at most 128: narrow to 32-bit lanes, then convert
            // exactly to f32 and divide as the scalar code does.
            let s = _mm256_div_ps(
                _mm256_cvtepi32_ps(_mm512_cvtepi64_epi32(i)),
                _mm256_cvtepi32_ps(_mm512_cvtepi64_epi32(u)),
            );
            if AT {
                let better = _mm256_cmp_ps::<_CMP_GT_OQ>(s, best);
                best = _mm256_blendv_ps(best, s, better);
                let index = _mm256_add_epi32(lanes, _mm256_set1_epi32((step * SCREEN_LANES) as i32));
                best_at = _mm256_blendv_epi8(best_at, index, _mm256_castps_si256(better));
            } else {
                best = _mm256_max_ps(best, s);
            }
        }
        if !AT {
            // max is exact, so the order of the reduction does not matter.
            let m = _mm_max_ps(_mm256_castps256_ps128(best), _mm256_extractf128_ps::<1>(best));
            let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
            *o = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
            continue;
        }
        let (mut v, mut j) = ([0f32; 8], [0u32; 8]);
        // SAFETY: 8-element arrays are 32 bytes; unaligned stores.
        unsafe {
            _mm256_storeu_ps(v.as_mut_ptr(), best);
            _mm256_storeu_si256(j.as_mut_ptr().cast(), best_at);
        }
        // The largest value; among equal values the smallest index, which is
        // the first one the scalar loop meets.
        let (mut bv, mut bj) = (0.0f32, 0u32);
        for l in 0..8 {
            if v[l] > bv || (v[l] == bv && bv > 0.0 && j[l] < bj) {
                (bv, bj) = (v[l], j[l]);
            }
        }
        (*o, at[k]) = (bv, bj);
    }
}

impl CylinderKernels {
    /// For each code of `probe`, its best similarity against the codes whose
    /// words are `g0[k]`, `g1[k]`, into `out`. Panics unless `g0` and `g1`
    /// have one length, a multiple of [`SCREEN_LANES`], and `out` has one
    /// slot per probe code.
    pub fn screen_best(&self, probe: &[[u64; 2]], g0: &[u64], g1: &[u64], out: &mut [f32]) {
        self.screen_rows::<false>(probe, g0, g1, out, &mut []);
    }

    /// [`CylinderKernels::screen_best`], and the index `k` of the first code
    /// reaching each best value into `at` (0 when every similarity is 0),
    /// which must have one slot per probe code too.
    pub fn screen_best_at(&self, probe: &[[u64; 2]], g0: &[u64], g1: &[u64], out: &mut [f32], at: &mut [u32]) {
        assert_eq!(at.len(), probe.len(), "screen_best_at: shape mismatch");
        self.screen_rows::<true>(probe, g0, g1, out, at);
    }

    fn screen_rows<const AT: bool>(&self, probe: &[[u64; 2]], g0: &[u64], g1: &[u64], out: &mut [f32], at: &mut [u32]) {
        assert!(
            g0.len() == g1.len() && g0.len().is_multiple_of(SCREEN_LANES) && out.len() == probe.len(),
            "screen_best: shape mismatch"
        );
        match self.isa() {
            IrisIsa::Scalar => rows_portable(probe, g0, g1, out, at),
            // SAFETY: a flavour exists only when the CPU supports it; Avx2
            // implies POPCNT on every CPU that has AVX2.
            #[cfg(target_arch = "x86_64")]
            IrisIsa::Avx2 => unsafe { rows_popcnt(probe, g0, g1, out, at) },
            #[cfg(target_arch = "x86_64")]
            IrisIsa::Avx512Vpopcnt => unsafe { rows_avx512::<AT>(probe, g0, g1, out, at) },
            #[cfg(not(target_arch = "x86_64"))]
            _ => rows_portable(probe, g0, g1, out, at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_first_best_code_is_reported() {
        // Codes 3 and 11 tie for best; code 3 comes first, in another lane
        // and another step than code 11.
        let mut g0 = vec![0u64; 16];
        (g0[3], g0[11], g0[5]) = (0b11, 0b11, 0b1);
        let g1 = vec![0u64; 16];
        for isa in IrisIsa::supported() {
            let (mut out, mut at) = ([0f32; 2], [9u32; 2]);
            CylinderKernels::for_isa(isa)
                .unwrap()
                .screen_best_at(&[[0b11, 0], [0, 1]], &g0, &g1, &mut out, &mut at);
            assert_eq!((out, at), ([1.0, 0.0], [3, 0]), "{isa:?}");
        }
    }

    #[test]
    fn similarity_is_the_jaccard_index() {
        assert_eq!(similarity([0b1111, 0], 0b0011, 0), 0.5);
        assert_eq!(similarity([0, 1], 0, 3), 0.5);
        assert_eq!(similarity([0, 0], 0, 0), 0.0);
        assert_eq!(similarity([5, 0], 0, 0), 0.0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn every_flavour_agrees(seed in any::<u64>(), np in 0usize..12, blocks in 0usize..9) {
            let mut x = seed | 1;
            let mut next = || { x ^= x << 13; x ^= x >> 7; x ^= x << 17; x };
            let probe: Vec<[u64; 2]> = (0..np).map(|_| [next() & next(), next() & next()]).collect();
            let n = blocks * SCREEN_LANES;
            let g0: Vec<u64> = (0..n).map(|_| next() & next()).collect();
            let g1: Vec<u64> = (0..n).map(|_| next() & next()).collect();
            let want: Vec<(f32, u32)> = probe.iter().map(|p| best_portable(*p, &g0, &g1)).collect();
            for isa in IrisIsa::supported() {
                let k = CylinderKernels::for_isa(isa).unwrap();
                let (mut out, mut at) = (vec![f32::NAN; np], vec![u32::MAX; np]);
                k.screen_best_at(&probe, &g0, &g1, &mut out, &mut at);
                let got: Vec<(f32, u32)> = out.into_iter().zip(at).collect();
                prop_assert_eq!(&got, &want, "{:?}", isa);
                let mut values = vec![f32::NAN; np];
                k.screen_best(&probe, &g0, &g1, &mut values);
                prop_assert!(values.iter().zip(&want).all(|(v, w)| *v == w.0), "{:?}", isa);
            }
        }
    }
}
