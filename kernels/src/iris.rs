//! Masked Hamming-distance counts for iris codes, with rotation.
//!
//! Layout: an open-iris code is a bool array of shape (16 rows, 256 columns,
//! 2 wavelets, 2 real/imaginary). Rotation moves whole columns, and one
//! column holds exactly 16 x 2 x 2 = 64 bits, so biomatch stores each column
//! as one `u64` word: 256 code words then 256 mask words per template. A
//! rotation of the probe by `s` columns is then a word offset: the probe is
//! prepared once per query as a doubled array (`code ++ code`), and the
//! rotated probe is the 256-word window starting at `(256 - s) mod 256`. Nothing is
//! shifted or copied per comparison.
//!
//! For each shift the kernel returns four counts, split at column 128 as
//! open-iris's half matching needs: non-matching valid bits and valid bits in
//! columns 0..128, then the same in columns 128..256.

use std::ops::Range;
use std::sync::OnceLock;

/// Columns (and words) of one code array.
pub const IRIS_WORDS: usize = 256;
/// Bytes of a stored template: code words then mask words.
pub const IRIS_TEMPLATE_BYTES: usize = 2 * IRIS_WORDS * 8;
/// Columns are processed in blocks of 8 (one 512-bit vector of words);
/// partial counts (see [`IrisKernels::add_counts`]) cover whole blocks.
pub const IRIS_BLOCKS: usize = IRIS_WORDS / 8;
/// Blocks in the lower half (columns 0..128).
const HALF_BLOCKS: usize = IRIS_BLOCKS / 2;
/// Where two-step scoring splits the columns: the first step covers blocks
/// `0..IRIS_STAGE_BLOCKS`. The kernels are specialised for this split (and for
/// the whole range) so that their loops have constant trip counts.
pub const IRIS_STAGE_BLOCKS: usize = 28;

/// The popcount flavour chosen for iris kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum IrisIsa {
    /// Portable `count_ones`.
    Scalar,
    /// AVX2 nibble-table popcount (Mula's method).
    Avx2,
    /// AVX-512 with the VPOPCNTDQ vector popcount.
    Avx512Vpopcnt,
}

impl IrisIsa {
    /// The best flavour this CPU supports.
    pub fn detect() -> IrisIsa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512vpopcntdq")
            {
                return IrisIsa::Avx512Vpopcnt;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return IrisIsa::Avx2;
            }
        }
        IrisIsa::Scalar
    }

    /// Every flavour this CPU can run.
    pub fn supported() -> Vec<IrisIsa> {
        let best = IrisIsa::detect();
        [IrisIsa::Scalar, IrisIsa::Avx2, IrisIsa::Avx512Vpopcnt]
            .into_iter()
            .filter(|i| *i <= best)
            .collect()
    }

    /// The process-wide flavour: the best one, or a narrower one named by
    /// `BIOMATCH_ISA` (`scalar`, `avx2`, `avx512`).
    pub fn active() -> IrisIsa {
        static ACTIVE: OnceLock<IrisIsa> = OnceLock::new();
        *ACTIVE.get_or_init(|| {
            let wanted = match crate::Isa::requested() {
                Some(crate::Isa::Scalar) => IrisIsa::Scalar,
                Some(crate::Isa::Avx2Fma) => IrisIsa::Avx2,
                _ => IrisIsa::Avx512Vpopcnt,
            };
            wanted.min(IrisIsa::detect())
        })
    }

    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            IrisIsa::Scalar => "scalar",
            IrisIsa::Avx2 => "avx2",
            IrisIsa::Avx512Vpopcnt => "avx512-vpopcntdq",
        }
    }
}

/// One 64-byte cache line of words.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u64; 8]);

/// A probe prepared for many comparisons: code and mask, each doubled
/// (`code ++ code`) so that a rotation is a window, and stored 8 times, once
/// per word offset modulo 8, so that every window starts on a cache line:
/// unaligned windows would split each 64-byte load across two lines.
#[derive(Clone)]
pub struct PreparedIrisProbe {
    code2: Box<[u64; 2 * IRIS_WORDS]>,
    mask2: Box<[u64; 2 * IRIS_WORDS]>,
    /// `aligned[r]`: lines of (code2, mask2) starting at word `r`, interleaved
    /// as code line, mask line.
    aligned: Box<[[Line; 2 * 2 * IRIS_WORDS / 8]; 8]>,
}

impl PreparedIrisProbe {
    /// Prepares `code` and `mask` (256 words each).
    pub fn new(code: &[u64], mask: &[u64]) -> PreparedIrisProbe {
        assert!(
            code.len() == IRIS_WORDS && mask.len() == IRIS_WORDS,
            "iris probe must have 256 words each"
        );
        let mut code2 = Box::new([0u64; 2 * IRIS_WORDS]);
        let mut mask2 = Box::new([0u64; 2 * IRIS_WORDS]);
        code2[..IRIS_WORDS].copy_from_slice(code);
        code2[IRIS_WORDS..].copy_from_slice(code);
        mask2[..IRIS_WORDS].copy_from_slice(mask);
        mask2[IRIS_WORDS..].copy_from_slice(mask);
        let mut aligned = Box::new([[Line([0; 8]); 2 * 2 * IRIS_WORDS / 8]; 8]);
        for (r, lines) in aligned.iter_mut().enumerate() {
            for l in 0..2 * IRIS_WORDS / 8 {
                for w in 0..8 {
                    let i = (l * 8 + w + r) % (2 * IRIS_WORDS);
                    lines[2 * l].0[w] = code2[i];
                    lines[2 * l + 1].0[w] = mask2[i];
                }
            }
        }
        PreparedIrisProbe { code2, mask2, aligned }
    }
}

/// Counts for one shift: `[h_lo, m_lo, h_hi, m_hi]`, where `h` counts valid
/// non-matching bits, `m` valid bits, `lo` columns 0..128 and `hi` 128..256.
pub type ShiftCounts = [u32; 4];

/// Iris kernels of one flavour.
#[derive(Clone, Copy, Debug)]
pub struct IrisKernels {
    isa: IrisIsa,
}

impl IrisKernels {
    /// Kernels of the process-wide flavour.
    pub fn active() -> IrisKernels {
        IrisKernels { isa: IrisIsa::active() }
    }

    /// Kernels of `isa`, or None when this CPU lacks it.
    pub fn for_isa(isa: IrisIsa) -> Option<IrisKernels> {
        (isa <= IrisIsa::detect()).then_some(IrisKernels { isa })
    }

    /// The flavour.
    pub fn isa(&self) -> IrisIsa {
        self.isa
    }

    /// Counts for every shift in `shifts` (each within -255..=255) of the
    /// probe against one stored template (`IRIS_TEMPLATE_BYTES` bytes: code
    /// words then mask words, little-endian, any alignment).
    pub fn counts(&self, probe: &PreparedIrisProbe, gallery: &[u8], shifts: &[i32], out: &mut [ShiftCounts]) {
        out.fill([0; 4]);
        self.add_counts(probe, gallery, shifts, 0..IRIS_BLOCKS, out);
    }

    /// Adds to `out` the counts of the columns in `blocks` (8 columns per
    /// block) only. Scoring in two steps lets a 1:N search drop a candidate
    /// after the first step when the rest cannot bring it under a threshold.
    pub fn add_counts(
        &self,
        probe: &PreparedIrisProbe,
        gallery: &[u8],
        shifts: &[i32],
        blocks: Range<usize>,
        out: &mut [ShiftCounts],
    ) {
        assert_eq!(
            gallery.len(),
            IRIS_TEMPLATE_BYTES,
            "iris template must be {IRIS_TEMPLATE_BYTES} bytes"
        );
        assert_eq!(shifts.len(), out.len());
        assert!(
            shifts.iter().all(|s| s.unsigned_abs() < IRIS_WORDS as u32),
            "shift out of range"
        );
        assert!(
            blocks.start <= blocks.end && blocks.end <= IRIS_BLOCKS,
            "block range out of range"
        );
        match self.isa {
            IrisIsa::Scalar => counts_scalar(probe, gallery, shifts, blocks, out),
            // SAFETY: `IrisKernels` exists for a flavour only when the CPU supports it.
            #[cfg(target_arch = "x86_64")]
            IrisIsa::Avx2 => unsafe { x86::counts_avx2(probe, gallery, shifts, blocks, out) },
            #[cfg(target_arch = "x86_64")]
            IrisIsa::Avx512Vpopcnt => {
                const S: usize = IRIS_STAGE_BLOCKS;
                const N: usize = IRIS_BLOCKS;
                // SAFETY: as above.
                unsafe {
                    match (blocks.start, blocks.end) {
                        (0, N) => x86::counts_avx512::<0, N>(probe, gallery, shifts, blocks, out),
                        (0, S) => x86::counts_avx512::<0, S>(probe, gallery, shifts, blocks, out),
                        (S, N) => x86::counts_avx512::<S, N>(probe, gallery, shifts, blocks, out),
                        _ => x86::counts_avx512::<0, 0>(probe, gallery, shifts, blocks, out),
                    }
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => counts_scalar(probe, gallery, shifts, blocks, out),
        }
    }
}

/// Splits a block range at the half boundary: (lower-half blocks, upper-half blocks).
fn split_halves(blocks: Range<usize>) -> [Range<usize>; 2] {
    [
        blocks.start.min(HALF_BLOCKS)..blocks.end.min(HALF_BLOCKS),
        blocks.start.max(HALF_BLOCKS)..blocks.end.max(HALF_BLOCKS),
    ]
}

fn word(b: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
}

fn counts_scalar(p: &PreparedIrisProbe, g: &[u8], shifts: &[i32], blocks: Range<usize>, out: &mut [ShiftCounts]) {
    let cols = blocks.start * 8..blocks.end * 8;
    let gc: Vec<u64> = cols.clone().map(|i| word(g, i)).collect();
    let gm: Vec<u64> = cols.clone().map(|i| word(g, IRIS_WORDS + i)).collect();
    for (s, o) in shifts.iter().zip(out.iter_mut()) {
        let off = (IRIS_WORDS as i32 - s).rem_euclid(IRIS_WORDS as i32) as usize;
        for (i, col) in cols.clone().enumerate() {
            let m = p.mask2[off + col] & gm[i];
            let x = (p.code2[off + col] ^ gc[i]) & m;
            let half = if col < IRIS_WORDS / 2 { 0 } else { 2 };
            o[half] += x.count_ones();
            o[half + 1] += m.count_ones();
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{IRIS_WORDS, PreparedIrisProbe, ShiftCounts, split_halves};
    use std::arch::x86_64::*;
    use std::ops::Range;

    /// (a ^ b) & c as a VPTERNLOG truth table.
    const XOR_AND: i32 = 0x28;

    /// Adds the counts of `blocks` for every shift. `B0..B1`, when not
    /// empty, is the same range known at compile time.
    #[target_feature(enable = "avx512f,avx512vpopcntdq")]
    pub(super) unsafe fn counts_avx512<const B0: usize, const B1: usize>(
        p: &PreparedIrisProbe,
        g: &[u8],
        shifts: &[i32],
        blocks: Range<usize>,
        out: &mut [ShiftCounts],
    ) {
        // A non-empty const range replaces `blocks`, giving constant trip counts.
        let blocks = if B1 > B0 { B0..B1 } else { blocks };
        let (gc, gm) = (g.as_ptr(), g[IRIS_WORDS * 8..].as_ptr());
        let halves = split_halves(blocks);
        for (s, o) in shifts.iter().zip(out.iter_mut()) {
            let off = (IRIS_WORDS as i32 - s).rem_euclid(IRIS_WORDS as i32) as usize;
            // The window starting at word `off` is line `off / 8` of copy `off % 8`.
            let lines = p.aligned[off % 8][2 * (off / 8)..].as_ptr();
            let mut acc = [_mm512_setzero_si512(); 4];
            for (half, range) in halves.iter().enumerate() {
                for b in range.clone() {
                    let (w, l) = (b * 8, 2 * b);
                    // SAFETY: off / 8 < 32 and b < 32, so line 2 * (off / 8) + l + 1
                    // < 128 stays inside the copy; w * 8 + 64 <= 2048 inside the template.
                    let (a, b, c, d) = unsafe {
                        (
                            _mm512_load_si512(lines.add(l).cast()),
                            _mm512_loadu_si512(gc.add(w * 8).cast()),
                            _mm512_load_si512(lines.add(l + 1).cast()),
                            _mm512_loadu_si512(gm.add(w * 8).cast()),
                        )
                    };
                    let m = _mm512_and_si512(c, d);
                    let x = _mm512_ternarylogic_epi64::<XOR_AND>(a, b, m);
                    acc[2 * half] = _mm512_add_epi64(acc[2 * half], _mm512_popcnt_epi64(x));
                    acc[2 * half + 1] = _mm512_add_epi64(acc[2 * half + 1], _mm512_popcnt_epi64(m));
                }
            }
            for (o, v) in o.iter_mut().zip(acc) {
                *o += _mm512_reduce_add_epi64(v) as u32;
            }
        }
    }

    /// Per-64-bit-lane popcount of a 256-bit vector (nibble lookup + SAD).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn popcnt256(v: __m256i) -> __m256i {
        let lut = _mm256_setr_epi8(
            0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
        );
        let low = _mm256_set1_epi8(0x0f);
        let lo = _mm256_and_si256(v, low);
        let hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
        let cnt = _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
        _mm256_sad_epu8(cnt, _mm256_setzero_si256())
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn hsum256_epi64(v: __m256i) -> u64 {
        let mut l = [0u64; 4];
        // SAFETY: `l` is 32 bytes.
        unsafe { _mm256_storeu_si256(l.as_mut_ptr().cast(), v) };
        l.iter().sum()
    }

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn counts_avx2(
        p: &PreparedIrisProbe,
        g: &[u8],
        shifts: &[i32],
        blocks: Range<usize>,
        out: &mut [ShiftCounts],
    ) {
        let (pc, pm) = (p.code2.as_ptr(), p.mask2.as_ptr());
        let (gc, gm) = (g.as_ptr(), g[IRIS_WORDS * 8..].as_ptr());
        let halves = split_halves(blocks);
        for (s, o) in shifts.iter().zip(out.iter_mut()) {
            let off = (IRIS_WORDS as i32 - s).rem_euclid(IRIS_WORDS as i32) as usize;
            let mut acc = [_mm256_setzero_si256(); 4];
            for (half, range) in halves.iter().enumerate() {
                for w in (range.start * 8..range.end * 8).step_by(4) {
                    // SAFETY: as in `counts_avx512`, with 4-word loads.
                    let (a, b, c, d) = unsafe {
                        (
                            _mm256_loadu_si256(pc.add(off + w).cast()),
                            _mm256_loadu_si256(gc.add(w * 8).cast()),
                            _mm256_loadu_si256(pm.add(off + w).cast()),
                            _mm256_loadu_si256(gm.add(w * 8).cast()),
                        )
                    };
                    let m = _mm256_and_si256(c, d);
                    let x = _mm256_and_si256(_mm256_xor_si256(a, b), m);
                    acc[2 * half] = _mm256_add_epi64(acc[2 * half], popcnt256(x));
                    acc[2 * half + 1] = _mm256_add_epi64(acc[2 * half + 1], popcnt256(m));
                }
            }
            for (o, v) in o.iter_mut().zip(acc) {
                *o += hsum256_epi64(v) as u32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Straight from the definition: roll the probe, compare column by column.
    fn reference(code: &[u64], mask: &[u64], g: &[u8], s: i32) -> ShiftCounts {
        let mut c = [0u32; 4];
        for col in 0..IRIS_WORDS {
            let src = (col as i32 - s).rem_euclid(IRIS_WORDS as i32) as usize;
            let m = mask[src] & word(g, IRIS_WORDS + col);
            let x = (code[src] ^ word(g, col)) & m;
            let h = if col < 128 { 0 } else { 2 };
            c[h] += x.count_ones();
            c[h + 1] += m.count_ones();
        }
        c
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn every_flavour_matches_the_definition(seed in any::<u64>(), shifts in proptest::collection::vec(-255i32..=255, 1..8)) {
            let mut x = seed | 1;
            let mut next = || { x ^= x << 13; x ^= x >> 7; x ^= x << 17; x };
            let code: Vec<u64> = (0..256).map(|_| next()).collect();
            let mask: Vec<u64> = (0..256).map(|_| next() | next()).collect();
            let g: Vec<u8> = (0..IRIS_TEMPLATE_BYTES).map(|_| next() as u8).collect();
            let p = PreparedIrisProbe::new(&code, &mask);
            for isa in IrisIsa::supported() {
                let k = IrisKernels::for_isa(isa).unwrap();
                let mut out = vec![[0u32; 4]; shifts.len()];
                k.counts(&p, &g, &shifts, &mut out);
                for (s, o) in shifts.iter().zip(&out) {
                    prop_assert_eq!(*o, reference(&code, &mask, &g, *s), "{:?} shift {}", isa, s);
                }
                // Two partial steps, split anywhere, add up to the whole.
                let split = (seed % (IRIS_BLOCKS as u64 + 1)) as usize;
                let mut parts = vec![[0u32; 4]; shifts.len()];
                k.add_counts(&p, &g, &shifts, 0..split, &mut parts);
                k.add_counts(&p, &g, &shifts, split..IRIS_BLOCKS, &mut parts);
                prop_assert_eq!(&parts, &out, "{:?} split at block {}", isa, split);
            }
        }
    }
}
