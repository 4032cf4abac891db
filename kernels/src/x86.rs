//! AVX2+FMA and AVX-512F kernels.
//!
//! Every function here is `unsafe` only because it requires its target
//! feature; callers go through [`crate::Kernels`], which exists for a flavour
//! only when the CPU supports it. Loads are unaligned: segment files are
//! 64-byte aligned, but in-memory rows need not be, and on current cores an
//! unaligned load of aligned data costs nothing extra.

use std::arch::x86_64::*;

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
