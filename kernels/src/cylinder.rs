//! Popcount kernels for bit-packed Minutia Cylinder-Code descriptors.
//!
//! A cylinder is 16 x 16 spatial cells x 6 angular sections = 1,536 bits
//! (24 words), with a validity mask of the same shape (the 256 spatial bits
//! repeated per section, so it masks the bits word for word). Two cylinders
//! are compared over their common valid cells; the kernel returns the three
//! popcounts the similarity needs. The flavour follows [`IrisIsa`]: AVX-512
//! VPOPCNTDQ, else hardware POPCNT, else portable code.

use crate::iris::IrisIsa;

/// Words of one cylinder's bits (and of its mask).
pub const CYLINDER_WORDS: usize = 24;

/// One cylinder's bits and validity mask, 64-byte aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct CylinderCode {
    /// Cell bits, section-major.
    pub bits: [u64; CYLINDER_WORDS],
    /// Valid-cell mask, the 4 spatial words repeated for each of 6 sections.
    pub valid: [u64; CYLINDER_WORDS],
}

/// Popcounts of a cylinder pair over the cells valid in both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PairCounts {
    /// Set bits of `a` in common valid cells.
    pub a: u32,
    /// Set bits of `b` in common valid cells.
    pub b: u32,
    /// Bits that differ in common valid cells.
    pub differ: u32,
    /// Spatial cells (of 256) valid in both.
    pub common: u32,
}

/// The popcount kernels of one flavour.
#[derive(Clone, Copy, Debug)]
pub struct CylinderKernels {
    isa: IrisIsa,
}

impl CylinderKernels {
    /// The process-wide flavour (see [`IrisIsa::active`]).
    pub fn active() -> CylinderKernels {
        CylinderKernels { isa: IrisIsa::active() }
    }

    /// Kernels of `isa`, or None when this CPU lacks it.
    pub fn for_isa(isa: IrisIsa) -> Option<CylinderKernels> {
        (isa <= IrisIsa::detect()).then_some(CylinderKernels { isa })
    }

    /// Counts of `a` against every cylinder of `b`, into `out`.
    pub fn counts_row(&self, a: &CylinderCode, b: &[CylinderCode], out: &mut [PairCounts]) {
        assert_eq!(b.len(), out.len());
        match self.isa {
            IrisIsa::Scalar => row_portable(a, b, out),
            // SAFETY: a flavour exists only when the CPU supports it; Avx2
            // implies POPCNT on every CPU that has AVX2.
            #[cfg(target_arch = "x86_64")]
            IrisIsa::Avx2 => unsafe { row_popcnt(a, b, out) },
            #[cfg(target_arch = "x86_64")]
            IrisIsa::Avx512Vpopcnt => unsafe { row_avx512(a, b, out) },
            #[cfg(not(target_arch = "x86_64"))]
            _ => row_portable(a, b, out),
        }
    }
}

#[inline(always)]
fn pair_portable(a: &CylinderCode, b: &CylinderCode) -> PairCounts {
    let mut c = PairCounts::default();
    for w in 0..4 {
        c.common += (a.valid[w] & b.valid[w]).count_ones();
    }
    for w in 0..CYLINDER_WORDS {
        let m = a.valid[w] & b.valid[w];
        let (x, y) = (a.bits[w] & m, b.bits[w] & m);
        c.a += x.count_ones();
        c.b += y.count_ones();
        c.differ += (x ^ y).count_ones();
    }
    c
}

fn row_portable(a: &CylinderCode, b: &[CylinderCode], out: &mut [PairCounts]) {
    for (o, b) in out.iter_mut().zip(b) {
        *o = pair_portable(a, b);
    }
}

/// The portable loop compiled with the POPCNT instruction.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
fn row_popcnt(a: &CylinderCode, b: &[CylinderCode], out: &mut [PairCounts]) {
    for (o, b) in out.iter_mut().zip(b) {
        *o = pair_portable(a, b);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vpopcntdq,popcnt")]
fn row_avx512(a: &CylinderCode, b: &[CylinderCode], out: &mut [PairCounts]) {
    use std::arch::x86_64::*;
    // SAFETY: CylinderCode is 64-byte aligned and 6 x 64 bytes long: three
    // aligned loads each for bits and mask.
    let load = |p: &[u64; CYLINDER_WORDS], i: usize| unsafe { _mm512_load_si512(p.as_ptr().add(8 * i).cast()) };
    let (ab, av) = (
        [load(&a.bits, 0), load(&a.bits, 1), load(&a.bits, 2)],
        [load(&a.valid, 0), load(&a.valid, 1), load(&a.valid, 2)],
    );
    for (o, b) in out.iter_mut().zip(b) {
        let (mut pa, mut pb, mut px) = (_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512());
        for i in 0..3 {
            let m = _mm512_and_si512(av[i], load(&b.valid, i));
            let x = _mm512_and_si512(ab[i], m);
            let y = _mm512_and_si512(load(&b.bits, i), m);
            pa = _mm512_add_epi64(pa, _mm512_popcnt_epi64(x));
            pb = _mm512_add_epi64(pb, _mm512_popcnt_epi64(y));
            px = _mm512_add_epi64(px, _mm512_popcnt_epi64(_mm512_xor_si512(x, y)));
        }
        // Words 0..8 of the mask are the 256 spatial bits twice.
        let pc = _mm512_popcnt_epi64(_mm512_and_si512(av[0], load(&b.valid, 0)));
        // Each total is at most 1,536: pack the four into 16-bit fields of
        // one vector and reduce once.
        let packed = _mm512_add_epi64(
            _mm512_add_epi64(pa, _mm512_slli_epi64::<16>(pb)),
            _mm512_add_epi64(_mm512_slli_epi64::<32>(px), _mm512_slli_epi64::<48>(pc)),
        );
        let t = _mm512_reduce_add_epi64(packed) as u64;
        *o = PairCounts {
            a: (t & 0xffff) as u32,
            b: ((t >> 16) & 0xffff) as u32,
            differ: ((t >> 32) & 0xffff) as u32,
            common: (t >> 49) as u32,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn every_flavour_agrees(seed in any::<u64>(), n in 1usize..9) {
            let mut x = seed | 1;
            let mut next = || { x ^= x << 13; x ^= x >> 7; x ^= x << 17; x };
            let mut code = || {
                let spatial = [next() | next(), next() | next(), next(), next() & next()];
                CylinderCode {
                    bits: std::array::from_fn(|_| next()),
                    valid: std::array::from_fn(|w| spatial[w % 4]),
                }
            };
            let a = code();
            let b: Vec<CylinderCode> = (0..n).map(|_| code()).collect();
            let want: Vec<PairCounts> = b.iter().map(|b| pair_portable(&a, b)).collect();
            for isa in IrisIsa::supported() {
                let mut out = vec![PairCounts::default(); n];
                CylinderKernels::for_isa(isa).unwrap().counts_row(&a, &b, &mut out);
                prop_assert_eq!(&out, &want, "{:?}", isa);
            }
        }
    }
}
