//! The fingerprint screen's kernel: for one 128-bit screen code, its best
//! Jaccard similarity against every code of a stored template.
//!
//! A screen code (see `biomatch_matcher::fingerprint::screen`) is two words;
//! a template's codes are passed as two word arrays (structure of arrays),
//! zero-padded to a multiple of [`SCREEN_LANES`], so that the AVX-512 kernel
//! compares eight codes per step with no tail. A zero code scores 0 against
//! anything, so padding never wins. The similarity is `|p & g| / |p | g|`
//! as an f32 division, 0 when both codes are empty; every flavour computes
//! exactly that, so results are identical bit for bit.

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

#[inline(always)]
fn best_portable(p: [u64; 2], g0: &[u64], g1: &[u64]) -> f32 {
    g0.iter()
        .zip(g1)
        .map(|(&a, &b)| similarity(p, a, b))
        .fold(0.0, f32::max)
}

/// The portable loop compiled with the POPCNT instruction.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
fn best_popcnt(probe: &[[u64; 2]], g0: &[u64], g1: &[u64], out: &mut [f32]) {
    for (o, p) in out.iter_mut().zip(probe) {
        *o = best_portable(*p, g0, g1);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vpopcntdq,popcnt")]
fn best_avx512(probe: &[[u64; 2]], g0: &[u64], g1: &[u64], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let one = _mm512_set1_epi64(1);
    for (o, p) in out.iter_mut().zip(probe) {
        let (p0, p1) = (_mm512_set1_epi64(p[0] as i64), _mm512_set1_epi64(p[1] as i64));
        let mut best = _mm256_setzero_ps();
        for (a, b) in g0.chunks_exact(SCREEN_LANES).zip(g1.chunks_exact(SCREEN_LANES)) {
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
            let (i, u) = (
                _mm256_cvtepi32_ps(_mm512_cvtepi64_epi32(i)),
                _mm256_cvtepi32_ps(_mm512_cvtepi64_epi32(u)),
            );
            best = _mm256_max_ps(best, _mm256_div_ps(i, u));
        }
        let mut lanes = [0f32; 8];
        // SAFETY: an 8-float array is 32 bytes; unaligned store.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), best) };
        *o = lanes.into_iter().fold(0.0, f32::max);
    }
}

impl CylinderKernels {
    /// For each code of `probe`, its best similarity against the codes whose
    /// words are `g0[k]`, `g1[k]`, into `out`. Panics unless `g0` and `g1`
    /// have one length, a multiple of [`SCREEN_LANES`], and `out` has one
    /// slot per probe code.
    pub fn screen_best(&self, probe: &[[u64; 2]], g0: &[u64], g1: &[u64], out: &mut [f32]) {
        assert!(
            g0.len() == g1.len() && g0.len().is_multiple_of(SCREEN_LANES) && out.len() == probe.len(),
            "screen_best: shape mismatch"
        );
        match self.isa() {
            IrisIsa::Scalar => {
                for (o, p) in out.iter_mut().zip(probe) {
                    *o = best_portable(*p, g0, g1);
                }
            }
            // SAFETY: a flavour exists only when the CPU supports it; Avx2
            // implies POPCNT on every CPU that has AVX2.
            #[cfg(target_arch = "x86_64")]
            IrisIsa::Avx2 => unsafe { best_popcnt(probe, g0, g1, out) },
            #[cfg(target_arch = "x86_64")]
            IrisIsa::Avx512Vpopcnt => unsafe { best_avx512(probe, g0, g1, out) },
            #[cfg(not(target_arch = "x86_64"))]
            _ => {
                for (o, p) in out.iter_mut().zip(probe) {
                    *o = best_portable(*p, g0, g1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
            let want: Vec<f32> = probe.iter().map(|p| best_portable(*p, &g0, &g1)).collect();
            for isa in IrisIsa::supported() {
                let mut out = vec![f32::NAN; np];
                CylinderKernels::for_isa(isa).unwrap().screen_best(&probe, &g0, &g1, &mut out);
                prop_assert_eq!(&out, &want, "{:?}", isa);
            }
        }
    }
}
