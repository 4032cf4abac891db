//! AVX2+FMA and AVX-512F kernels.
//!
//! Every function here is `unsafe` only because it requires its target
//! feature; callers go through [`crate::Kernels`], which exists for a flavour
//! only when the CPU supports it. Loads are unaligned: segment files are
//! 64-byte aligned, but in-memory rows need not be, and on current cores an
//! unaligned load of aligned data costs nothing extra.

use std::arch::x86_64::*;

// ---------------------------------------------------------------- int8 (AVX2)

/// Inner product of int8 codes in `[-127, 127]`.
///
/// `maddubs` multiplies unsigned by signed bytes, so `a` is split into its
/// magnitude and sign, the sign moved onto `b`; with -128 excluded the pair
/// sums (at most 2 * 127 * 127) cannot saturate i16. Then `madd` by ones widens
/// to i32 lanes.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn dot_i8_avx2(a: &[i8], b: &[i8]) -> i32 {
    let n = a.len();
    let ones = _mm256_set1_epi16(1);
    let mut acc = _mm256_setzero_si256();
    let mut i = 0;
    while i + 32 <= n {
        // SAFETY: i + 32 <= n = a.len() = b.len().
        let (x, y) = unsafe {
            (
                _mm256_loadu_si256(a.as_ptr().add(i).cast()),
                _mm256_loadu_si256(b.as_ptr().add(i).cast()),
            )
        };
        let prod = _mm256_maddubs_epi16(_mm256_abs_epi8(x), _mm256_sign_epi8(y, x));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(prod, ones));
        i += 32;
    }
    let lo = _mm256_castsi256_si128(acc);
    let hi = _mm256_extracti128_si256(acc, 1);
    let s = _mm_add_epi32(lo, hi);
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b00_00_00_01));
    let mut total = _mm_cvtsi128_si32(s);
    while i < n {
        total += i32::from(a[i]) * i32::from(b[i]);
        i += 1;
    }
    total
}

/// [`dot_i8_avx2`] with AVX-512 VNNI: `dpbusd` multiplies unsigned by
/// signed bytes and adds groups of four straight into i32 lanes, 64 bytes
/// per instruction, so no i16 stage can saturate. The tail is a masked load.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(crate) unsafe fn dot_i8_vnni(a: &[i8], b: &[i8]) -> i32 {
    let n = a.len();
    let zero = _mm512_setzero_si512();
    let mut acc = _mm512_setzero_si512();
    let mut i = 0;
    let step = |acc: __m512i, x: __m512i, y: __m512i| {
        let neg = _mm512_movepi8_mask(x);
        let y = _mm512_mask_sub_epi8(y, neg, zero, y);
        _mm512_dpbusd_epi32(acc, _mm512_abs_epi8(x), y)
    };
    while i + 64 <= n {
        // SAFETY: i + 64 <= n = a.len() = b.len().
        let (x, y) = unsafe {
            (
                _mm512_loadu_si512(a.as_ptr().add(i).cast()),
                _mm512_loadu_si512(b.as_ptr().add(i).cast()),
            )
        };
        acc = step(acc, x, y);
        i += 64;
    }
    if i < n {
        let mask: __mmask64 = (1u64 << (n - i)) - 1;
        // SAFETY: the mask limits the loads to the n - i bytes left.
        let (x, y) = unsafe {
            (
                _mm512_maskz_loadu_epi8(mask, a.as_ptr().add(i)),
                _mm512_maskz_loadu_epi8(mask, b.as_ptr().add(i)),
            )
        };
        acc = step(acc, x, y);
    }
    _mm512_reduce_add_epi32(acc)
}

// ---------------------------------------------------------------- AVX2 + FMA

#[inline]
#[target_feature(enable = "avx2,fma")]
fn hsum256(v: __m256) -> f32 {
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps(v, 1);
    let s = _mm_add_ps(lo, hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0b01));
    _mm_cvtss_f32(s)
}

#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY: every load reads [i, i + 8) with i + 8 <= n.
    unsafe {
        while i + 32 <= n {
            for (j, a_acc) in acc.iter_mut().enumerate() {
                let o = i + 8 * j;
                *a_acc = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(o)), _mm256_loadu_ps(pb.add(o)), *a_acc);
            }
            i += 32;
        }
        while i + 8 <= n {
            acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc[0]);
            i += 8;
        }
    }
    let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut s = hsum256(v);
    while i < n {
        s += a[i] * b[i];
        i += 1;
    }
    s
}

#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn l2sq_avx2(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc0 = _mm256_setzero_ps();
    let mut acc1 = _mm256_setzero_ps();
    let mut i = 0;
    // SAFETY: every load reads [i, i + 8) with i + 8 <= n.
    unsafe {
        while i + 16 <= n {
            let d0 = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
            let d1 = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i + 8)), _mm256_loadu_ps(pb.add(i + 8)));
            acc0 = _mm256_fmadd_ps(d0, d0, acc0);
            acc1 = _mm256_fmadd_ps(d1, d1, acc1);
            i += 16;
        }
        while i + 8 <= n {
            let d = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
            acc0 = _mm256_fmadd_ps(d, d, acc0);
            i += 8;
        }
    }
    let mut s = hsum256(_mm256_add_ps(acc0, acc1));
    while i < n {
        let d = a[i] - b[i];
        s += d * d;
        i += 1;
    }
    s
}

#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn dot_rows_avx2(probe: &[f32], rows: &[f32], out: &mut [f32]) {
    for (o, row) in out.iter_mut().zip(rows.chunks_exact(probe.len())) {
        // SAFETY: same target feature as this function.
        *o = unsafe { dot_avx2(probe, row) };
    }
}

#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn dot_rows_x4_avx2(probes: [&[f32]; 4], rows: &[f32], out: [&mut [f32]; 4]) {
    let dim = probes[0].len();
    let body = dim / 8 * 8;
    let p = probes.map(|p| p.as_ptr());
    let [o0, o1, o2, o3] = out;
    for (r, row) in rows.chunks_exact(dim).enumerate() {
        let pr = row.as_ptr();
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY: loads read [i, i + 8) with i + 8 <= body <= dim.
        unsafe {
            while i < body {
                let g = _mm256_loadu_ps(pr.add(i));
                for (q, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(g, _mm256_loadu_ps(p[q].add(i)), *a);
                }
                i += 8;
            }
        }
        let mut s = [hsum256(acc[0]), hsum256(acc[1]), hsum256(acc[2]), hsum256(acc[3])];
        for j in body..dim {
            for (q, sq) in s.iter_mut().enumerate() {
                *sq += probes[q][j] * row[j];
            }
        }
        o0[r] = s[0];
        o1[r] = s[1];
        o2[r] = s[2];
        o3[r] = s[3];
    }
}

// ----------------------------------------------------------------- AVX-512F

/// Mask of the first `n` (< 16) lanes.
#[inline]
fn tail_mask(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY: full loads read [i, i + 16) with i + 16 <= n; the masked tail
    // load touches only the n - i valid lanes.
    unsafe {
        while i + 64 <= n {
            for (j, a_acc) in acc.iter_mut().enumerate() {
                let o = i + 16 * j;
                *a_acc = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(o)), _mm512_loadu_ps(pb.add(o)), *a_acc);
            }
            i += 64;
        }
        while i + 16 <= n {
            acc[0] = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc[0]);
            i += 16;
        }
        if i < n {
            let m = tail_mask(n - i);
            acc[1] = _mm512_fmadd_ps(
                _mm512_maskz_loadu_ps(m, pa.add(i)),
                _mm512_maskz_loadu_ps(m, pb.add(i)),
                acc[1],
            );
        }
    }
    _mm512_reduce_add_ps(_mm512_add_ps(
        _mm512_add_ps(acc[0], acc[1]),
        _mm512_add_ps(acc[2], acc[3]),
    ))
}

#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn l2sq_avx512(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc0 = _mm512_setzero_ps();
    let mut acc1 = _mm512_setzero_ps();
    let mut i = 0;
    // SAFETY: as in `dot_avx512`.
    unsafe {
        while i + 32 <= n {
            let d0 = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
            let d1 = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i + 16)), _mm512_loadu_ps(pb.add(i + 16)));
            acc0 = _mm512_fmadd_ps(d0, d0, acc0);
            acc1 = _mm512_fmadd_ps(d1, d1, acc1);
            i += 32;
        }
        while i + 16 <= n {
            let d = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
            acc0 = _mm512_fmadd_ps(d, d, acc0);
            i += 16;
        }
        if i < n {
            let m = tail_mask(n - i);
            let d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, pa.add(i)), _mm512_maskz_loadu_ps(m, pb.add(i)));
            acc1 = _mm512_fmadd_ps(d, d, acc1);
        }
    }
    _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1))
}

#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn dot_rows_avx512(probe: &[f32], rows: &[f32], out: &mut [f32]) {
    for (o, row) in out.iter_mut().zip(rows.chunks_exact(probe.len())) {
        // SAFETY: same target feature as this function.
        *o = unsafe { dot_avx512(probe, row) };
    }
}

#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn dot_rows_x4_avx512(probes: [&[f32]; 4], rows: &[f32], out: [&mut [f32]; 4]) {
    let dim = probes[0].len();
    let p = probes.map(|p| p.as_ptr());
    let [o0, o1, o2, o3] = out;
    for (r, row) in rows.chunks_exact(dim).enumerate() {
        let pr = row.as_ptr();
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY: full loads read [i, i + 16) with i + 16 <= dim; the masked
        // tail touches only valid lanes.
        unsafe {
            while i + 16 <= dim {
                let g = _mm512_loadu_ps(pr.add(i));
                for (q, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_fmadd_ps(g, _mm512_loadu_ps(p[q].add(i)), *a);
                }
                i += 16;
            }
            if i < dim {
                let m = tail_mask(dim - i);
                let g = _mm512_maskz_loadu_ps(m, pr.add(i));
                for (q, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_fmadd_ps(g, _mm512_maskz_loadu_ps(m, p[q].add(i)), *a);
                }
            }
        }
        o0[r] = _mm512_reduce_add_ps(acc[0]);
        o1[r] = _mm512_reduce_add_ps(acc[1]);
        o2[r] = _mm512_reduce_add_ps(acc[2]);
        o3[r] = _mm512_reduce_add_ps(acc[3]);
    }
}
