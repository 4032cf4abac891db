//! Runtime choice of the instruction set, made once per process.

use std::sync::OnceLock;

use crate::scalar;
#[cfg(target_arch = "x86_64")]
use crate::x86;

/// An instruction-set flavour of the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Portable Rust, vectorised only as far as the compiler manages.
    Scalar,
    /// 256-bit AVX2 with fused multiply-add.
    Avx2Fma,
    /// 512-bit AVX-512 Foundation.
    Avx512,
}

impl Isa {
    /// The widest flavour this CPU supports.
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return Isa::Avx2Fma;
            }
        }
        Isa::Scalar
    }

    /// Every flavour this CPU can run, narrowest first.
    pub fn supported() -> Vec<Isa> {
        let best = Isa::detect();
        [Isa::Scalar, Isa::Avx2Fma, Isa::Avx512]
            .into_iter()
            .filter(|i| *i <= best)
            .collect()
    }

    /// The flavour this process uses: the widest supported one, or a narrower
    /// one named by `BIOMATCH_ISA` (`scalar`, `avx2`, `avx512`), which lets
    /// benchmarks and tests pin a flavour. A request for an unsupported
    /// flavour falls back to the widest supported one.
    pub fn active() -> Isa {
        static ACTIVE: OnceLock<Isa> = OnceLock::new();
        *ACTIVE.get_or_init(|| {
            let best = Isa::detect();
            match Isa::requested() {
                Some(wanted) if wanted <= best => wanted,
                _ => best,
            }
        })
    }

    /// The flavour named by `BIOMATCH_ISA`, if any (valid or not supported).
    pub(crate) fn requested() -> Option<Isa> {
        std::env::var("BIOMATCH_ISA").ok().as_deref().and_then(Isa::parse)
    }

    /// Parses `scalar`, `avx2` or `avx512`.
    pub fn parse(name: &str) -> Option<Isa> {
        match name.to_ascii_lowercase().as_str() {
            "scalar" => Some(Isa::Scalar),
            "avx2" | "avx2fma" => Some(Isa::Avx2Fma),
            "avx512" => Some(Isa::Avx512),
            _ => None,
        }
    }

    /// Short lower-case name, as [`Isa::parse`] accepts it.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2Fma => "avx2",
            Isa::Avx512 => "avx512",
        }
    }
}

/// The kernels of one instruction-set flavour.
///
/// A `Kernels` value can only be made for a flavour the CPU supports, which is
/// what makes the `unsafe` calls into `target_feature` functions sound.
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    isa: Isa,
    /// AVX-512 VNNI (with BW) for int8 dot products; only with `Avx512`.
    vnni: bool,
}

/// True when the CPU has the AVX-512 byte and VNNI extensions.
fn detect_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bw") && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

impl Kernels {
    /// Kernels of the process-wide flavour ([`Isa::active`]).
    pub fn active() -> Kernels {
        Kernels::new(Isa::active())
    }

    /// Kernels of `isa`, or `None` when this CPU lacks it.
    pub fn for_isa(isa: Isa) -> Option<Kernels> {
        (isa <= Isa::detect()).then(|| Kernels::new(isa))
    }

    fn new(isa: Isa) -> Kernels {
        Kernels {
            isa,
            vnni: isa == Isa::Avx512 && detect_vnni(),
        }
    }

    /// The flavour these kernels use.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Inner product of two equal-length vectors.
    #[inline]
    pub fn dot(&self, a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "dot: length mismatch");
        match self.isa {
            Isa::Scalar => scalar::dot(a, b),
            // SAFETY: `Kernels` exists for this flavour only when the CPU supports it.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => unsafe { x86::dot_avx2(a, b) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { x86::dot_avx512(a, b) },
            #[cfg(not(target_arch = "x86_64"))]
            _ => scalar::dot(a, b),
        }
    }

    /// Inner product of two equal-length int8 code vectors whose values lie
    /// in `[-127, 127]` (what [`crate::quantize_i8`] produces), exact in i32.
    #[inline]
    pub fn dot_i8(&self, a: &[i8], b: &[i8]) -> i32 {
        assert_eq!(a.len(), b.len(), "dot_i8: length mismatch");
        match self.isa {
            Isa::Scalar => scalar::dot_i8(a, b),
            // SAFETY: `vnni` is set only when the CPU has AVX-512 BW and VNNI.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 if self.vnni => unsafe { x86::dot_i8_vnni(a, b) },
            // SAFETY: see `dot`; every AVX-512 CPU also has AVX2.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma | Isa::Avx512 => unsafe { x86::dot_i8_avx2(a, b) },
            #[cfg(not(target_arch = "x86_64"))]
            _ => scalar::dot_i8(a, b),
        }
    }

    /// Squared Euclidean distance of two equal-length vectors.
    #[inline]
    pub fn l2sq(&self, a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "l2sq: length mismatch");
        match self.isa {
            Isa::Scalar => scalar::l2sq(a, b),
            // SAFETY: see `dot`.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => unsafe { x86::l2sq_avx2(a, b) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { x86::l2sq_avx512(a, b) },
            #[cfg(not(target_arch = "x86_64"))]
            _ => scalar::l2sq(a, b),
        }
    }

    /// Cosine similarity; 0 when either vector is zero.
    pub fn cosine(&self, a: &[f32], b: &[f32]) -> f32 {
        let ab = self.dot(a, b);
        let aa = self.dot(a, a);
        let bb = self.dot(b, b);
        if aa == 0.0 || bb == 0.0 {
            return 0.0;
        }
        ab / (aa.sqrt() * bb.sqrt())
    }

    /// `out[i] = dot(probe, row i)` for the `out.len()` rows of `rows`.
    pub fn dot_rows(&self, probe: &[f32], rows: &[f32], out: &mut [f32]) {
        let dim = probe.len();
        assert_eq!(rows.len(), dim * out.len(), "dot_rows: shape mismatch");
        match self.isa {
            Isa::Scalar => scalar::dot_rows(probe, rows, out),
            // SAFETY: see `dot`.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => unsafe { x86::dot_rows_avx2(probe, rows, out) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { x86::dot_rows_avx512(probe, rows, out) },
            #[cfg(not(target_arch = "x86_64"))]
            _ => scalar::dot_rows(probe, rows, out),
        }
    }

    /// `out[i] = -l2sq(probe, row i)`: negated so that higher is better, like
    /// every score a scan ranks.
    pub fn neg_l2_rows(&self, probe: &[f32], rows: &[f32], out: &mut [f32]) {
        let dim = probe.len();
        assert_eq!(rows.len(), dim * out.len(), "neg_l2_rows: shape mismatch");
        for (o, row) in out.iter_mut().zip(rows.chunks_exact(dim)) {
            *o = -self.l2sq(probe, row);
        }
    }

    /// Scores four probes against every row at once, reading each gallery row
    /// from memory once for all four: `out[p][i] = dot(probes[p], row i)`.
    pub fn dot_rows_x4(&self, probes: [&[f32]; 4], rows: &[f32], out: [&mut [f32]; 4]) {
        let dim = probes[0].len();
        let n = out[0].len();
        assert!(
            probes.iter().all(|p| p.len() == dim),
            "dot_rows_x4: probe lengths differ"
        );
        assert!(out.iter().all(|o| o.len() == n), "dot_rows_x4: output lengths differ");
        assert_eq!(rows.len(), dim * n, "dot_rows_x4: shape mismatch");
        match self.isa {
            Isa::Scalar => scalar::dot_rows_x4(probes, rows, out),
            // SAFETY: see `dot`.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => unsafe { x86::dot_rows_x4_avx2(probes, rows, out) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { x86::dot_rows_x4_avx512(probes, rows, out) },
            #[cfg(not(target_arch = "x86_64"))]
            _ => scalar::dot_rows_x4(probes, rows, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dot64(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
    }

    fn l2sq64(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum()
    }

    /// f32 accumulation error bound: a few ulps of the sum of magnitudes.
    fn tol(a: &[f32], b: &[f32]) -> f64 {
        let mag: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 * *y as f64).abs()).sum();
        1e-5 * mag + 1e-6
    }

    fn pair(max_dim: usize) -> impl Strategy<Value = (Vec<f32>, Vec<f32>)> {
        (1..max_dim).prop_flat_map(|d| {
            (
                proptest::collection::vec(-10.0f32..10.0, d),
                proptest::collection::vec(-10.0f32..10.0, d),
            )
        })
    }

    proptest! {
        #[test]
        fn dot_and_l2_match_f64_reference_on_every_isa((a, b) in pair(600)) {
            for isa in Isa::supported() {
                let k = Kernels::for_isa(isa).unwrap();
                let d = k.dot(&a, &b) as f64;
                prop_assert!((d - dot64(&a, &b)).abs() <= tol(&a, &b), "{isa:?} dot {d} vs {}", dot64(&a, &b));
                let l = k.l2sq(&a, &b) as f64;
                let lt = 1e-5 * (l2sq64(&a, &b) + tol(&a, &b)) + 1e-5;
                prop_assert!((l - l2sq64(&a, &b)).abs() <= lt, "{isa:?} l2 {l} vs {}", l2sq64(&a, &b));
                let c = k.cosine(&a, &b) as f64;
                let na = dot64(&a, &a).sqrt();
                let nb = dot64(&b, &b).sqrt();
                if na > 1e-3 && nb > 1e-3 {
                    let want = dot64(&a, &b) / (na * nb);
                    prop_assert!((c - want).abs() <= 1e-4, "{isa:?} cosine {c} vs {want}");
                }
            }
        }

        #[test]
        fn row_kernels_equal_pairwise_dot(dim in 1usize..200, n in 0usize..20, seed in any::<u64>()) {
            let mut x = seed | 1;
            let mut next = || { x ^= x << 13; x ^= x >> 7; x ^= x << 17; (x % 2000) as f32 / 100.0 - 10.0 };
            let rows: Vec<f32> = (0..n * dim).map(|_| next()).collect();
            let probes: Vec<Vec<f32>> = (0..4).map(|_| (0..dim).map(|_| next()).collect()).collect();
            for isa in Isa::supported() {
                let k = Kernels::for_isa(isa).unwrap();
                let mut single = vec![0.0; n];
                k.dot_rows(&probes[0], &rows, &mut single);
                let mut o = vec![vec![0.0f32; n]; 4];
                let [o0, o1, o2, o3] = &mut o[..] else { unreachable!() };
                k.dot_rows_x4([&probes[0], &probes[1], &probes[2], &probes[3]], &rows, [o0, o1, o2, o3]);
                for i in 0..n {
                    let row = &rows[i * dim..(i + 1) * dim];
                    prop_assert!((single[i] as f64 - dot64(&probes[0], row)).abs() <= tol(&probes[0], row));
                    for (p, out) in o.iter().enumerate() {
                        prop_assert!((out[i] as f64 - dot64(&probes[p], row)).abs() <= tol(&probes[p], row));
                    }
                }
            }
        }
    }

    #[test]
    fn isa_names_round_trip() {
        for isa in [Isa::Scalar, Isa::Avx2Fma, Isa::Avx512] {
            assert_eq!(Isa::parse(isa.name()), Some(isa));
        }
        assert_eq!(Isa::parse("sse9"), None);
        assert!(Isa::supported().contains(&Isa::Scalar));
        assert!(Kernels::for_isa(Isa::active()).is_some());
    }
}
