//! Scalar int8 quantisation of embeddings.
//!
//! Each vector gets its own scale (its largest magnitude maps to 127), so a
//! vector's codes use the full range whatever its norm. The inner product of
//! two vectors is then approximated by `scale_a * scale_b * dot_i8(a, b)`;
//! for one probe against many rows `scale_probe` is a common factor and ranks
//! can be compared on `scale_row * dot_i8` alone. Codes stay in `[-127, 127]`
//! so that the AVX2 kernel's byte products cannot saturate.

/// Quantises `v` into `out` (same length) and returns the scale that maps
/// codes back: `v[i] ≈ scale * out[i]`. A zero vector gets scale 0.
pub fn quantize_i8(v: &[f32], out: &mut [i8]) -> f32 {
    assert_eq!(v.len(), out.len(), "quantize_i8: length mismatch");
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if max == 0.0 || !max.is_finite() {
        out.fill(0);
        return 0.0;
    }
    let inv = 127.0 / max;
    for (o, x) in out.iter_mut().zip(v) {
        *o = (x * inv).round().clamp(-127.0, 127.0) as i8;
    }
    max / 127.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Isa, Kernels};

    #[test]
    fn codes_round_trip_within_half_a_step() {
        let v: Vec<f32> = (0..100).map(|i| ((i * 37 % 19) as f32 - 9.0) / 7.0).collect();
        let mut c = vec![0i8; v.len()];
        let s = quantize_i8(&v, &mut c);
        for (x, q) in v.iter().zip(&c) {
            assert!((x - s * f32::from(*q)).abs() <= s * 0.5 + 1e-6);
        }
        assert_eq!(c.iter().map(|q| q.unsigned_abs()).max(), Some(127));
    }

    #[test]
    fn zero_vector_has_zero_scale() {
        let mut c = vec![5i8; 4];
        assert_eq!(quantize_i8(&[0.0; 4], &mut c), 0.0);
        assert_eq!(c, vec![0; 4]);
    }

    #[test]
    fn every_flavour_computes_the_exact_int8_dot() {
        for len in [0usize, 1, 31, 32, 33, 128, 255, 512] {
            let a: Vec<i8> = (0..len)
                .map(|i| ((i * 7919) % 255) as i32 - 127)
                .map(|x| x as i8)
                .collect();
            let b: Vec<i8> = (0..len)
                .map(|i| ((i * 104_729 + 3) % 255) as i32 - 127)
                .map(|x| x as i8)
                .collect();
            let want: i32 = a.iter().zip(&b).map(|(x, y)| i32::from(*x) * i32::from(*y)).sum();
            for isa in Isa::supported() {
                let k = Kernels::for_isa(isa).unwrap();
                assert_eq!(k.dot_i8(&a, &b), want, "{isa:?} len {len}");
            }
        }
        // The extremes: every product at its largest magnitude.
        let a = vec![127i8; 64];
        let b = vec![-127i8; 64];
        for isa in Isa::supported() {
            assert_eq!(Kernels::for_isa(isa).unwrap().dot_i8(&a, &b), -127 * 127 * 64);
        }
    }
}
