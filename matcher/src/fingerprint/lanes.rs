//! Sixteen f32 lanes, one row of cylinder cells, with one implementation per
//! instruction set.
//!
//! The cylinder build is written once against [`Lanes`] and instantiated
//! for AVX-512F, AVX2 and plain Rust. Leaving it to the auto-vectoriser
//! proved fragile: small edits to the loops turned them scalar and the build
//! three times slower. Every operation is a single IEEE operation per lane
//! (no fused multiply-add), so all three give the same bits.

/// One row of 16 f32 cells.
pub(super) trait Lanes: Copy {
    /// Every lane `x`.
    fn splat(x: f32) -> Self;
    /// The 16 values of `a`.
    fn load(a: &[f32; 16]) -> Self;
    /// Writes the lanes to `a`.
    fn store(self, a: &mut [f32; 16]);
    /// Lane-wise sum.
    fn add(self, o: Self) -> Self;
    /// Lane-wise difference.
    fn sub(self, o: Self) -> Self;
    /// Lane-wise product.
    fn mul(self, o: Self) -> Self;
    /// Lane-wise quotient.
    fn div(self, o: Self) -> Self;
    /// Lane-wise maximum (no NaN occurs here).
    fn max(self, o: Self) -> Self;
    /// `yes` in the lanes where `self < bound`, `no` elsewhere.
    fn select_lt(self, bound: Self, yes: Self, no: Self) -> Self;
    /// `v` in the lanes where `self <= bound`, zero elsewhere.
    fn keep_le(self, bound: Self, v: Self) -> Self;
    /// The lanes with their halves swapped: lane j holds lane (j + 8) % 16.
    fn swap_halves(self) -> Self;
    /// Bit j set where lane j of `self >= bound`.
    fn mask_ge(self, bound: Self) -> u16;
    /// 2^n for the integer n that `round_sum = n + ROUND` holds in its low
    /// mantissa bits (see `exp`), built from the exponent bits.
    fn pow2_of_rounded(round_sum: Self, round: f32) -> Self;
}

/// e^x for x <= 0 in every lane: round x / ln 2 to n, a degree-7 polynomial
/// for e^r on |r| <= ln 2 / 2 (truncation below 1e-8 relative) and 2^n from
/// the exponent bits. Inputs under -87 are clamped there; their e^x (under
/// 2e-38) only ever falls below the 3 sigma cut.
#[inline(always)]
pub(super) fn exp<L: Lanes>(x: L) -> L {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that n * LN2_HI is exact for the n that occur.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = x.max(L::splat(-87.0));
    let t = x.mul(L::splat(LOG2E)).add(L::splat(ROUND));
    let n = t.sub(L::splat(ROUND));
    let r = x.sub(n.mul(L::splat(LN2_HI))).sub(n.mul(L::splat(LN2_LO)));
    let mut p = L::splat(1.0 / 5040.0);
    for c in [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = p.mul(r).add(L::splat(c));
    }
    p.mul(L::pow2_of_rounded(t, ROUND))
}

/// The error function in every lane, by Abramowitz and Stegun 7.1.26 (the
/// form `geometry::erf` uses; |error| < 1.5e-7 plus f32 rounding).
#[inline(always)]
pub(super) fn erf<L: Lanes>(x: L) -> L {
    let zero = L::splat(0.0);
    let a = x.max(zero.sub(x));
    let t = L::splat(1.0).div(L::splat(1.0).add(L::splat(0.327_591_1).mul(a)));
    // The published coefficients, rounded to f32.
    const A: [f64; 5] = [
        1.061_405_429,
        -1.453_152_027,
        1.421_413_741,
        -0.284_496_736,
        0.254_829_592,
    ];
    let mut p = L::splat(A[0] as f32);
    for c in &A[1..] {
        p = p.mul(t).add(L::splat(*c as f32));
    }
    let y = L::splat(1.0).sub(p.mul(t).mul(exp(zero.sub(a.mul(a)))));
    x.select_lt(zero, zero.sub(y), y)
}

/// Plain Rust: the reference, and the path on CPUs without AVX2.
impl Lanes for [f32; 16] {
    #[inline(always)]
    fn splat(x: f32) -> Self {
        [x; 16]
    }
    #[inline(always)]
    fn load(a: &[f32; 16]) -> Self {
        *a
    }
    #[inline(always)]
    fn store(self, a: &mut [f32; 16]) {
        *a = self;
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        std::array::from_fn(|j| self[j] + o[j])
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        std::array::from_fn(|j| self[j] - o[j])
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        std::array::from_fn(|j| self[j] * o[j])
    }
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        std::array::from_fn(|j| self[j] / o[j])
    }
    #[inline(always)]
    fn max(self, o: Self) -> Self {
        std::array::from_fn(|j| if self[j] > o[j] { self[j] } else { o[j] })
    }
    #[inline(always)]
    fn select_lt(self, bound: Self, yes: Self, no: Self) -> Self {
        std::array::from_fn(|j| if self[j] < bound[j] { yes[j] } else { no[j] })
    }
    #[inline(always)]
    fn keep_le(self, bound: Self, v: Self) -> Self {
        std::array::from_fn(|j| if self[j] <= bound[j] { v[j] } else { 0.0 })
    }
    #[inline(always)]
    fn swap_halves(self) -> Self {
        std::array::from_fn(|j| self[(j + 8) % 16])
    }
    #[inline(always)]
    fn mask_ge(self, bound: Self) -> u16 {
        (0..16).fold(0, |m, j| m | (u16::from(self[j] >= bound[j]) << j))
    }
    #[inline(always)]
    fn pow2_of_rounded(t: Self, round: f32) -> Self {
        std::array::from_fn(|j| f32::from_bits(t[j].to_bits().wrapping_sub(round.to_bits()).wrapping_add(127) << 23))
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) use x86::{Avx2, Avx512};

/// The x86 implementations. Their methods use intrinsics without checking
/// the CPU: they are only instantiated inside the `#[target_feature]` entry
/// points of the cylinder build, which run after feature detection, and they
/// are `#[inline(always)]` so that they compile with those features.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::Lanes;

    /// A row in one 512-bit register.
    #[derive(Clone, Copy)]
    pub(in super::super) struct Avx512(__m512);

    /// A row in two 256-bit registers.
    #[derive(Clone, Copy)]
    pub(in super::super) struct Avx2(__m256, __m256);

    // SAFETY (every block below): the caller runs on a CPU with AVX-512F
    // (see the module doc); loads and stores go through references to
    // 16 f32.
    impl Lanes for Avx512 {
        #[inline(always)]
        fn splat(x: f32) -> Self {
            Avx512(unsafe { _mm512_set1_ps(x) })
        }
        #[inline(always)]
        fn load(a: &[f32; 16]) -> Self {
            Avx512(unsafe { _mm512_loadu_ps(a.as_ptr()) })
        }
        #[inline(always)]
        fn store(self, a: &mut [f32; 16]) {
            unsafe { _mm512_storeu_ps(a.as_mut_ptr(), self.0) }
        }
        #[inline(always)]
        fn add(self, o: Self) -> Self {
            Avx512(unsafe { _mm512_add_ps(self.0, o.0) })
        }
        #[inline(always)]
        fn sub(self, o: Self) -> Self {
            Avx512(unsafe { _mm512_sub_ps(self.0, o.0) })
        }
        #[inline(always)]
        fn mul(self, o: Self) -> Self {
            Avx512(unsafe { _mm512_mul_ps(self.0, o.0) })
        }
        #[inline(always)]
        fn div(self, o: Self) -> Self {
            Avx512(unsafe { _mm512_div_ps(self.0, o.0) })
        }
        #[inline(always)]
        fn max(self, o: Self) -> Self {
            Avx512(unsafe { _mm512_max_ps(self.0, o.0) })
        }
        #[inline(always)]
        fn select_lt(self, bound: Self, yes: Self, no: Self) -> Self {
            Avx512(unsafe { _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(self.0, bound.0), no.0, yes.0) })
        }
        #[inline(always)]
        fn keep_le(self, bound: Self, v: Self) -> Self {
            Avx512(unsafe { _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_LE_OQ>(self.0, bound.0), v.0) })
        }
        #[inline(always)]
        fn swap_halves(self) -> Self {
            Avx512(unsafe { _mm512_shuffle_f32x4::<0b01_00_11_10>(self.0, self.0) })
        }
        #[inline(always)]
        fn mask_ge(self, bound: Self) -> u16 {
            unsafe { _mm512_cmp_ps_mask::<_CMP_GE_OQ>(self.0, bound.0) }
        }
        #[inline(always)]
        fn pow2_of_rounded(t: Self, round: f32) -> Self {
            unsafe {
                let n = _mm512_sub_epi32(_mm512_castps_si512(t.0), _mm512_set1_epi32(round.to_bits() as i32));
                Avx512(_mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(
                    n,
                    _mm512_set1_epi32(127),
                ))))
            }
        }
    }

    // SAFETY (every block below): the caller runs on a CPU with AVX2 (see
    // the module doc); loads and stores go through references to 16 f32,
    // 8 at a time.
    impl Lanes for Avx2 {
        #[inline(always)]
        fn splat(x: f32) -> Self {
            let v = unsafe { _mm256_set1_ps(x) };
            Avx2(v, v)
        }
        #[inline(always)]
        fn load(a: &[f32; 16]) -> Self {
            unsafe { Avx2(_mm256_loadu_ps(a.as_ptr()), _mm256_loadu_ps(a.as_ptr().add(8))) }
        }
        #[inline(always)]
        fn store(self, a: &mut [f32; 16]) {
            unsafe {
                _mm256_storeu_ps(a.as_mut_ptr(), self.0);
                _mm256_storeu_ps(a.as_mut_ptr().add(8), self.1);
            }
        }
        #[inline(always)]
        fn add(self, o: Self) -> Self {
            unsafe { Avx2(_mm256_add_ps(self.0, o.0), _mm256_add_ps(self.1, o.1)) }
        }
        #[inline(always)]
        fn sub(self, o: Self) -> Self {
            unsafe { Avx2(_mm256_sub_ps(self.0, o.0), _mm256_sub_ps(self.1, o.1)) }
        }
        #[inline(always)]
        fn mul(self, o: Self) -> Self {
            unsafe { Avx2(_mm256_mul_ps(self.0, o.0), _mm256_mul_ps(self.1, o.1)) }
        }
        #[inline(always)]
        fn div(self, o: Self) -> Self {
            unsafe { Avx2(_mm256_div_ps(self.0, o.0), _mm256_div_ps(self.1, o.1)) }
        }
        #[inline(always)]
        fn max(self, o: Self) -> Self {
            unsafe { Avx2(_mm256_max_ps(self.0, o.0), _mm256_max_ps(self.1, o.1)) }
        }
        #[inline(always)]
        fn select_lt(self, bound: Self, yes: Self, no: Self) -> Self {
            unsafe {
                Avx2(
                    _mm256_blendv_ps(no.0, yes.0, _mm256_cmp_ps::<_CMP_LT_OQ>(self.0, bound.0)),
                    _mm256_blendv_ps(no.1, yes.1, _mm256_cmp_ps::<_CMP_LT_OQ>(self.1, bound.1)),
                )
            }
        }
        #[inline(always)]
        fn keep_le(self, bound: Self, v: Self) -> Self {
            unsafe {
                Avx2(
                    _mm256_and_ps(_mm256_cmp_ps::<_CMP_LE_OQ>(self.0, bound.0), v.0),
                    _mm256_and_ps(_mm256_cmp_ps::<_CMP_LE_OQ>(self.1, bound.1), v.1),
                )
            }
        }
        #[inline(always)]
        fn swap_halves(self) -> Self {
            Avx2(self.1, self.0)
        }
        #[inline(always)]
        fn mask_ge(self, bound: Self) -> u16 {
            unsafe {
                let lo = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(self.0, bound.0)) as u16;
                let hi = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(self.1, bound.1)) as u16;
                lo | (hi << 8)
            }
        }
        #[inline(always)]
        fn pow2_of_rounded(t: Self, round: f32) -> Self {
            unsafe {
                let (r, one) = (_mm256_set1_epi32(round.to_bits() as i32), _mm256_set1_epi32(127));
                let pow = |t: __m256| {
                    let n = _mm256_sub_epi32(_mm256_castps_si256(t), r);
                    _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(n, one)))
                };
                Avx2(pow(t.0), pow(t.1))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inputs over the range the cylinders use, plus the clamp.
    fn inputs() -> Vec<[f32; 16]> {
        (0..4000)
            .map(|n| std::array::from_fn(|j| -((n * 16 + j) as f32) * 0.0015625))
            .chain([[-87.0; 16], [-200.0; 16], [0.0; 16]])
            .collect()
    }

    #[test]
    fn exp_is_within_two_ulps_of_libm() {
        for x in inputs() {
            let e = exp(x);
            for j in 0..16 {
                let want = f64::from(x[j].max(-87.0)).exp();
                assert!(
                    ((f64::from(e[j]) - want) / want).abs() < 2.5e-7,
                    "{} {} {}",
                    x[j],
                    e[j],
                    want
                );
            }
        }
    }

    #[test]
    fn erf_agrees_with_the_f64_form() {
        for n in -4000..=4000 {
            let x = n as f32 * 0.001;
            let got = erf([x; 16])[0];
            let want = crate::fingerprint::geometry::erf(f64::from(x));
            assert!((f64::from(got) - want).abs() < 5e-7, "{x} {got} {want}");
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn every_instruction_set_gives_the_same_bits() {
        fn via<L: Lanes>(x: &[f32; 16]) -> ([f32; 16], [f32; 16], [f32; 16], u16) {
            let v = L::load(x);
            let (mut e, mut k, mut f) = ([0.0; 16], [0.0; 16], [0.0; 16]);
            exp(v).store(&mut e);
            v.keep_le(L::splat(-3.0), v.mul(v).swap_halves()).store(&mut k);
            // erf over [-3.1, 3.1], both signs.
            erf(v
                .mul(L::splat(0.5))
                .add(L::splat(3.1))
                .select_lt(L::splat(-1.0), v, L::splat(0.0).sub(v)))
            .store(&mut f);
            (e, k, f, v.mask_ge(L::splat(-2.5)))
        }
        let have = |f: &str| match f {
            "avx2" => std::arch::is_x86_feature_detected!("avx2"),
            _ => std::arch::is_x86_feature_detected!("avx512f"),
        };
        let mut checked = 0;
        for x in inputs() {
            let want = via::<[f32; 16]>(&x);
            if have("avx2") {
                // SAFETY: AVX2 detected just above.
                assert_eq!(unsafe { avx2(&x) }, want);
                checked += 1;
            }
            if have("avx512f") {
                // SAFETY: AVX-512F detected just above.
                assert_eq!(unsafe { avx512(&x) }, want);
            }
        }
        assert!(checked > 0 || !have("avx2"));

        #[target_feature(enable = "avx2")]
        unsafe fn avx2(x: &[f32; 16]) -> ([f32; 16], [f32; 16], [f32; 16], u16) {
            via::<Avx2>(x)
        }
        #[target_feature(enable = "avx512f")]
        unsafe fn avx512(x: &[f32; 16]) -> ([f32; 16], [f32; 16], [f32; 16], u16) {
            via::<Avx512>(x)
        }
    }
}
