//! Portable kernels. Eight independent accumulators give the compiler room to
//! vectorise with the baseline SSE2 and keep the reduction order fixed.

pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ac, ar) = a.split_at(a.len() / 8 * 8);
    let (bc, br) = b.split_at(ac.len());
    for (x, y) in ac.chunks_exact(8).zip(bc.chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ar.iter().zip(br) {
        s += x * y;
    }
    s
}

pub(crate) fn l2sq(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ac, ar) = a.split_at(a.len() / 8 * 8);
    let (bc, br) = b.split_at(ac.len());
    for (x, y) in ac.chunks_exact(8).zip(bc.chunks_exact(8)) {
        for l in 0..8 {
            let d = x[l] - y[l];
            acc[l] += d * d;
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ar.iter().zip(br) {
        let d = x - y;
        s += d * d;
    }
    s
}

pub(crate) fn dot_rows(probe: &[f32], rows: &[f32], out: &mut [f32]) {
    for (o, row) in out.iter_mut().zip(rows.chunks_exact(probe.len())) {
        *o = dot(probe, row);
    }
}

pub(crate) fn dot_rows_x4(probes: [&[f32]; 4], rows: &[f32], out: [&mut [f32]; 4]) {
    let dim = probes[0].len();
    let [o0, o1, o2, o3] = out;
    for (i, row) in rows.chunks_exact(dim).enumerate() {
        o0[i] = dot(probes[0], row);
        o1[i] = dot(probes[1], row);
        o2[i] = dot(probes[2], row);
        o3[i] = dot(probes[3], row);
    }
}

/// Inner product of int8 codes, accumulated exactly in i32.
pub(crate) fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    let mut acc = [0i32; 16];
    let (ac, ar) = a.split_at(a.len() / 16 * 16);
    let (bc, br) = b.split_at(ac.len());
    for (x, y) in ac.chunks_exact(16).zip(bc.chunks_exact(16)) {
        for l in 0..16 {
            acc[l] += i32::from(x[l]) * i32::from(y[l]);
        }
    }
    let mut s: i32 = acc.iter().sum();
    for (x, y) in ar.iter().zip(br) {
        s += i32::from(*x) * i32::from(*y);
    }
    s
}
