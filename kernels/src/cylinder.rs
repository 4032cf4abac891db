//! Popcount kernels for bit-packed Minutia Cylinder-Code descriptors.
//!
//! A cylinder is 16 x 16 spatial cells x 6 angular sections = 1,536 bits
//! (24 words), with a 256-bit validity mask over the spatial cells, which
//! applies to every section: the AVX-512 kernel broadcasts it to both halves
//! of a register, since one 512-bit load holds two sections. Two cylinders
//! are compared over their common valid cells; the kernel returns the three
//! popcounts the similarity needs.
//!
//! A [`CylinderCode`] is exactly 256 bytes, 64-byte aligned, with 4 spare
//! words the kernels never read, so that a caller can keep what it knows
//! about the cylinder (its minutia) in the same cache lines and store an
//! array of them as they are. The flavour follows [`IrisIsa`]: AVX-512
//! VPOPCNTDQ, else hardware POPCNT, else portable code.

use crate::iris::IrisIsa;

/// Words of one cylinder's bits (and of its mask).
pub const CYLINDER_WORDS: usize = 24;

/// Words of the spatial validity mask (16 x 16 cells).
pub const MASK_WORDS: usize = 4;
/// Bytes of one [`CylinderCode`].
pub const CYLINDER_BYTES: usize = 256;

/// One cylinder's bits and validity mask, 64-byte aligned, 256 bytes, no padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct CylinderCode {
    /// Cell bits, section-major: section k holds words 4k..4k+4.
    pub bits: [u64; CYLINDER_WORDS],
    /// Valid spatial cells; a cell's bits in every section count only when it is valid.
    pub valid: [u64; MASK_WORDS],
    /// Free for the caller; never read by the kernels.
    pub spare: [u64; 4],
}
const _: () = assert!(std::mem::size_of::<CylinderCode>() == CYLINDER_BYTES);

impl CylinderCode {
    /// The cylinders stored in `bytes`, without copying when `bytes` is
    /// 64-byte aligned; None when its length is not a multiple of 256.
    pub fn slice_from_bytes(bytes: &[u8]) -> Option<std::borrow::Cow<'_, [CylinderCode]>> {
        if !bytes.len().is_multiple_of(CYLINDER_BYTES) {
            return None;
        }
        let n = bytes.len() / CYLINDER_BYTES;
        if (bytes.as_ptr() as usize).is_multiple_of(std::mem::align_of::<CylinderCode>()) {
            // SAFETY: the pointer is aligned, the length is n whole codes, and
            // every bit pattern is a valid CylinderCode (plain u64 arrays, no
            // padding); the result borrows `bytes`.
            let codes = unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<CylinderCode>(), n) };
            return Some(std::borrow::Cow::Borrowed(codes));
        }
        let word = |c: &[u8], w: usize| u64::from_le_bytes(c[8 * w..8 * w + 8].try_into().expect("8 bytes"));
        Some(std::borrow::Cow::Owned(
            bytes
                .chunks_exact(CYLINDER_BYTES)
                .map(|c| CylinderCode {
                    bits: std::array::from_fn(|w| word(c, w)),
                    valid: std::array::from_fn(|w| word(c, CYLINDER_WORDS + w)),
                    spare: std::array::from_fn(|w| word(c, CYLINDER_WORDS + MASK_WORDS + w)),
                })
                .collect(),
        ))
    }

    /// The code as stored: its 32 words, little-endian.
    pub fn to_bytes(&self) -> [u8; CYLINDER_BYTES] {
        let mut out = [0u8; CYLINDER_BYTES];
        let words = self.bits.iter().chain(&self.valid).chain(&self.spare);
        for (o, w) in out.chunks_exact_mut(8).zip(words) {
            o.copy_from_slice(&w.to_le_bytes());
        }
        out
    }
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

    /// The popcount flavour.
    pub fn isa(&self) -> IrisIsa {
        self.isa
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
    for w in 0..MASK_WORDS {
        c.common += (a.valid[w] & b.valid[w]).count_ones();
    }
    for w in 0..CYLINDER_WORDS {
        let m = a.valid[w % MASK_WORDS] & b.valid[w % MASK_WORDS];
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
    // SAFETY: CylinderCode is 64-byte aligned; bits are words 0..24 (three
    // aligned 512-bit loads) and the mask words 24..28 (one aligned 256-bit
    // load, broadcast to both halves).
    let load = |p: &CylinderCode, i: usize| unsafe { _mm512_load_si512(p.bits.as_ptr().add(8 * i).cast()) };
    let mask = |p: &CylinderCode| unsafe { _mm512_broadcast_i64x4(_mm256_load_si256(p.valid.as_ptr().cast())) };
    let (ab, av) = ([load(a, 0), load(a, 1), load(a, 2)], mask(a));
    for (o, b) in out.iter_mut().zip(b) {
        let (mut pa, mut pb, mut px) = (_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512());
        let m = _mm512_and_si512(av, mask(b));
        for (i, ab) in ab.iter().enumerate() {
            let x = _mm512_and_si512(*ab, m);
            let y = _mm512_and_si512(load(b, i), m);
            pa = _mm512_add_epi64(pa, _mm512_popcnt_epi64(x));
            pb = _mm512_add_epi64(pb, _mm512_popcnt_epi64(y));
            px = _mm512_add_epi64(px, _mm512_popcnt_epi64(_mm512_xor_si512(x, y)));
        }
        // The broadcast mask holds the 256 spatial bits twice.
        let pc = _mm512_popcnt_epi64(m);
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
                    valid: spatial,
                    spare: std::array::from_fn(|_| next()),
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
            let bytes: Vec<u8> = b.iter().flat_map(|c| c.to_bytes()).collect();
            let back = CylinderCode::slice_from_bytes(&bytes).unwrap();
            prop_assert_eq!(&back[..], &b[..]);
            let mut shifted = vec![0u8; bytes.len() + 1];
            shifted[1..].copy_from_slice(&bytes);
            let back = CylinderCode::slice_from_bytes(&shifted[1..]).unwrap();
            prop_assert_eq!(&back[..], &b[..]);
        }
    }
}
