//! Minutia Cylinder-Code descriptors (Cappelli, Ferrara and Maltoni, TPAMI
//! 2010), bit-packed.
//!
//! Around each minutia a cylinder of radius R = 70 px (500 ppi) is cut into
//! 16 x 16 spatial cells, rotated with the minutia's direction, and 6 angular
//! sections. A cell's bit is set when the neighbouring minutiae near it, with
//! a direction difference near the section's, contribute at least 0.01
//! (Gaussian in distance, sigma 28/3 px; Gaussian in angle, sigma 2 pi / 9).
//! A cell is valid when it lies inside the cylinder's circle and inside the
//! minutiae's convex hull grown by 50 px, so that the edge of the print does
//! not read as "no minutiae here". Rotation and translation invariance comes
//! from the construction; similarity is a popcount over the common valid
//! cells.

use std::f64::consts::{PI, TAU};

use biomatch_kernels::cylinder::{CYLINDER_WORDS, CylinderCode, MASK_WORDS};

#[cfg(test)]
use super::geometry::near_hull;
use super::geometry::{GrownHull, Point, angle_diff, convex_hull, erf};

/// Spatial cells per side.
pub const NS: usize = 16;
/// Angular sections.
pub const ND: usize = 6;
const _: () = assert!(NS * NS * ND / 64 == CYLINDER_WORDS && NS * NS / 64 == MASK_WORDS);

const RADIUS: f64 = 70.0;
const SIGMA_S: f64 = 28.0 / 3.0;
const SIGMA_D: f64 = 2.0 * PI / 9.0;
const MU_PSI: f64 = 0.01;
const OMEGA: f64 = 50.0;
const MIN_VALID_CELLS: f64 = 0.75;
const MIN_NEIGHBOURS: usize = 2;
/// Width of a spatial cell.
const DELTA: f64 = 2.0 * RADIUS / NS as f64;
/// 2 sigma² of the spatial Gaussian.
const TWO_VAR: f64 = 2.0 * SIGMA_S * SIGMA_S;

/// One minutia's descriptor.
#[derive(Clone, Debug, PartialEq)]
pub struct Cylinder {
    /// The minutia it describes.
    pub at: Point,
    /// Cell bits (section-major: bit `k * 256 + i * 16 + j` in word order;
    /// clear in invalid cells) and the validity of the 256 spatial cells;
    /// the spare words are zero.
    pub code: CylinderCode,
    /// Number of valid spatial cells.
    pub valid_cells: u32,
}

/// Cells whose centre lies within the cylinder's circle: the reference for
/// the validity and overlap fractions.
pub fn cells_in_circle() -> u32 {
    static N: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        let d = 2.0 * RADIUS / NS as f64;
        let mut n = 0;
        for i in 0..NS {
            for j in 0..NS {
                let (u, v) = (d * (i as f64 - 7.5), d * (j as f64 - 7.5));
                n += (u * u + v * v <= RADIUS * RADIUS) as u32;
            }
        }
        n
    })
}

/// The share of a Gaussian (sigma_D) over one angular section centred
/// `alpha` away from the neighbour's direction difference.
fn angular(alpha: f64) -> f64 {
    let half = PI / ND as f64;
    let s = SIGMA_D * std::f64::consts::SQRT_2;
    0.5 * (erf((alpha + half) / s) - erf((alpha - half) / s))
}

/// The minutiae other than `points[m_i]` close enough to reach one of its
/// cells: within the radius plus 3 sigma of the cell Gaussian.
fn neighbours<'a>(points: &'a [Point], m_i: usize, out: &mut Vec<&'a Point>) {
    let m = points[m_i];
    let reach = RADIUS + 3.0 * SIGMA_S;
    out.clear();
    out.extend(
        points
            .iter()
            .enumerate()
            .filter(|(t, p)| *t != m_i && (p.x - m.x).powi(2) + (p.y - m.y).powi(2) <= reach.powi(2))
            .map(|(_, p)| p),
    );
}

/// Steps of the tabulated angular contribution over [-pi, pi].
const ANGULAR_STEPS: usize = 16_384;

/// [`angular`] tabulated over [-pi, pi] (linear interpolation between
/// steps of 2 pi / 16384 is within 1e-7 of the exact value, below the f32
/// resolution of the sums it feeds): every neighbour of every minutia needs
/// six of these, and the exact form costs two erf evaluations each.
fn angular_table() -> &'static [f32] {
    static TABLE: std::sync::OnceLock<Vec<f32>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=ANGULAR_STEPS)
            .map(|i| angular(-PI + TAU * i as f64 / ANGULAR_STEPS as f64) as f32)
            .collect()
    })
}

/// The neighbour's share of each angular section: the mass of a Gaussian
/// (sigma_D) centred on `d_theta` that falls within the section.
fn sections(d_theta: f64) -> [f32; ND] {
    let table = angular_table();
    let half = PI / ND as f64;
    debug_assert!((-PI..PI).contains(&d_theta));
    std::array::from_fn(|k| {
        // angle_diff(centre, d_theta) for a difference within one turn,
        // with selects instead of branches: the signs are random, so
        // branches mispredict. Only the sign of a zero can differ from
        // angle_diff, and it vanishes in `alpha + PI` below.
        let x = (-PI + (2 * k + 1) as f64 * half) - d_theta;
        let d = x + if x < 0.0 { TAU } else { 0.0 };
        let alpha = d - if d >= PI { TAU } else { 0.0 };
        let x = (alpha + PI) * (ANGULAR_STEPS as f64 / TAU);
        // x lies in [0, ANGULAR_STEPS]; the cast saturates, the min keeps
        // the last step's right end in the table.
        let i = (x as u32 as usize).min(ANGULAR_STEPS - 1);
        let f = (x - i as f64) as f32;
        table[i] + f * (table[i + 1] - table[i])
    })
}

/// exp(-(w - c_j)² / 2σ²) for the cell centres c_j, j in lo..=hi, into
/// `out[j]`. The centres are evenly spaced, so consecutive values differ by
/// a ratio that itself changes by a constant factor: two exponentials per
/// run instead of one per cell (the products agree with direct evaluation
/// to a few ulps).
/// `step` is [`gaussian_step`], computed once by the caller.
fn gaussian_run(w: f64, lo: usize, hi: usize, step: f64, out: &mut [f64; NS]) {
    if lo > hi {
        return;
    }
    let d = w - DELTA * (lo as f64 - 7.5);
    let mut g = (-d * d / TWO_VAR).exp();
    let mut ratio = ((2.0 * d * DELTA - DELTA * DELTA) / TWO_VAR).exp();
    for o in &mut out[lo..=hi] {
        *o = g;
        g *= ratio;
        ratio *= step;
    }
}

/// The constant factor by which [`gaussian_run`]'s ratio changes per cell.
fn gaussian_step() -> f64 {
    (-2.0 * DELTA * DELTA / TWO_VAR).exp()
}

/// Cylinders of every minutia that has a valid one (enough valid cells and
/// neighbours); invalid cylinders are dropped, as in MCC.
///
/// Enrollment builds one of these per template, so the loops are arranged for
/// speed: a neighbour only reaches the cells within 3 sigma of it (about 32
/// of 256), so each neighbour visits its own box of cells instead of every
/// cell testing every neighbour, and the hull test is prepared once.
pub fn cylinders(points: &[Point]) -> Vec<Cylinder> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F was just detected on this CPU.
            return unsafe { cylinders_avx512(points) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 was just detected on this CPU.
            return unsafe { cylinders_avx2(points) };
        }
    }
    cylinders_portable(points)
}

/// [`cylinders_portable`] compiled with AVX-512F, where a row of 16 f32
/// cells is one register.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn cylinders_avx512(points: &[Point]) -> Vec<Cylinder> {
    cylinders_portable(points)
}

/// [`cylinders_portable`] compiled with AVX2 enabled, so that the cell loops
/// use 256-bit vectors. Rust never fuses multiplies and adds on its own, so
/// the result is bit-for-bit the portable one.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn cylinders_avx2(points: &[Point]) -> Vec<Cylinder> {
    cylinders_portable(points)
}

#[inline(always)]
fn cylinders_portable(points: &[Point]) -> Vec<Cylinder> {
    let hull = GrownHull::new(
        &convex_hull(&points.iter().map(|p| (p.x, p.y)).collect::<Vec<_>>()),
        OMEGA,
    );
    let delta = 2.0 * RADIUS / NS as f64;
    let gauss_norm = 1.0 / (SIGMA_S * TAU.sqrt());
    let reach = 3.0 * SIGMA_S;
    let min_cells = (MIN_VALID_CELLS * f64::from(cells_in_circle())).ceil() as u32;
    let centre = |i: usize| delta * (i as f64 - 7.5);
    // The first and last cell index whose centre lies within `reach` of `w`;
    // (1, 0), an empty run, when none does.
    let span = |w: f64| {
        let lo = ((w - reach) / delta + 7.5).ceil().max(0.0);
        let hi = ((w + reach) / delta + 7.5).floor().min((NS - 1) as f64);
        if hi < lo { (1, 0) } else { (lo as usize, hi as usize) }
    };
    let step = gaussian_step();
    let mut out = Vec::with_capacity(points.len());
    let mut neighbours_of = Vec::with_capacity(points.len());
    // Section-major rows of 16 cells (acc[k * NS + i][j]) in f32, so that
    // a neighbour's update of one row is a few SIMD operations.
    let mut acc = vec![[0.0f32; NS]; ND * NS];
    for (m_i, m) in points.iter().enumerate() {
        neighbours(points, m_i, &mut neighbours_of);
        if neighbours_of.len() < MIN_NEIGHBOURS {
            continue;
        }
        let (s, c) = m.theta.sin_cos();
        let mut cyl = Cylinder {
            at: *m,
            code: CylinderCode {
                bits: [0; CYLINDER_WORDS],
                valid: [0; MASK_WORDS],
                spare: [0; 4],
            },
            valid_cells: 0,
        };
        // A minutia deep inside the hull has every cell of its circle within
        // the grown hull (the cells are at most RADIUS away); the slack
        // covers rounding. Otherwise, since the grown hull and the circle are
        // both convex, each row of cells meets them in one run of columns:
        // find its two ends and fill between.
        let all_near = hull.depth((m.x, m.y)) + OMEGA >= RADIUS + 1e-6;
        for i in 0..NS {
            let u = centre(i);
            let valid = |j: usize| {
                let v = centre(j);
                u * u + v * v <= RADIUS * RADIUS
                    && (all_near || hull.contains((m.x + c * u - s * v, m.y + s * u + c * v)))
            };
            let Some(lo) = (0..NS).find(|&j| valid(j)) else {
                continue;
            };
            let hi = (lo..NS).rev().find(|&j| valid(j)).unwrap_or(lo);
            // Cells lo..=hi of row i: bits i * 16 + lo ..= i * 16 + hi.
            let run = ((1u64 << (hi - lo + 1)) - 1) << lo;
            cyl.valid_cells += (hi - lo + 1) as u32;
            cyl.code.valid[i * NS / 64] |= run << (i * NS % 64);
        }
        if cyl.valid_cells < min_cells {
            continue;
        }
        acc.iter_mut().for_each(|row| *row = [0.0; NS]);
        for t in &neighbours_of {
            // A neighbour's contribution to each section does not depend on
            // the cell: compute it once.
            let sec = sections(angle_diff(m.theta, t.theta));
            // The neighbour in the cylinder's frame (rotated by -theta).
            let (dx, dy) = (t.x - m.x, t.y - m.y);
            let (tu, tv) = (c * dx + s * dy, -s * dx + c * dy);
            let ((i0, i1), (j0, j1)) = (span(tu), span(tv));
            // The Gaussian is separable: exp(-(du² + dv²) / 2σ²) is a product
            // of one factor per row and one per column.
            let mut gv = [0.0f64; NS];
            gaussian_run(tv, j0, j1, step, &mut gv);
            let mut gus = [0.0f64; NS];
            gaussian_run(tu, i0, i1, step, &mut gus);
            let dv2: [f64; NS] = std::array::from_fn(|j| (tv - centre(j)).powi(2));
            for (i, &gu) in gus.iter().enumerate().take(i1 + 1).skip(i0) {
                // Only cells within 3 sigma count: a run of columns per row.
                let room = reach * reach - (tu - centre(i)).powi(2);
                let row: [f32; NS] = std::array::from_fn(|j| {
                    if dv2[j] <= room {
                        (gauss_norm * gu * gv[j]) as f32
                    } else {
                        0.0
                    }
                });
                for (k, &w) in sec.iter().enumerate() {
                    for (a, r) in acc[k * NS + i].iter_mut().zip(&row) {
                        *a += w * r;
                    }
                }
            }
        }
        // A row of 16 cells is 16 bits of one word (bit k*256 + i*16 + j).
        // Bits of invalid cells never count (similarity is taken over the
        // common valid cells), so they are cleared.
        for (r, row) in acc.iter().enumerate() {
            let mask = row
                .iter()
                .enumerate()
                .fold(0u64, |m, (j, &a)| m | (u64::from(a >= MU_PSI as f32) << j));
            let bit = r * NS;
            cyl.code.bits[bit / 64] |= mask << (bit % 64);
        }
        for (w, b) in cyl.code.bits.iter_mut().enumerate() {
            *b &= cyl.code.valid[w % MASK_WORDS];
        }
        out.push(cyl);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The MCC formula as written in the paper: every cell against every
    /// neighbour, in image coordinates.
    fn cylinders_direct(points: &[Point]) -> Vec<Cylinder> {
        let hull = convex_hull(&points.iter().map(|p| (p.x, p.y)).collect::<Vec<_>>());
        let delta = 2.0 * RADIUS / NS as f64;
        let gauss_norm = 1.0 / (SIGMA_S * TAU.sqrt());
        let reach = 3.0 * SIGMA_S;
        let min_cells = (MIN_VALID_CELLS * f64::from(cells_in_circle())).ceil() as u32;
        let mut out = Vec::new();
        for (m_i, m) in points.iter().enumerate() {
            let mut near = Vec::new();
            neighbours(points, m_i, &mut near);
            if near.len() < MIN_NEIGHBOURS {
                continue;
            }
            let (s, c) = m.theta.sin_cos();
            let mut code = CylinderCode {
                bits: [0; CYLINDER_WORDS],
                valid: [0; MASK_WORDS],
                spare: [0; 4],
            };
            let mut valid_cells = 0;
            for i in 0..NS {
                for j in 0..NS {
                    let (u, v) = (delta * (i as f64 - 7.5), delta * (j as f64 - 7.5));
                    let (px, py) = (m.x + c * u - s * v, m.y + s * u + c * v);
                    let cell = i * NS + j;
                    if u * u + v * v <= RADIUS * RADIUS && near_hull(&hull, (px, py), OMEGA) {
                        valid_cells += 1;
                        code.valid[cell / 64] |= 1 << (cell % 64);
                    }
                    for k in 0..ND {
                        let centre = -PI + (k as f64 + 0.5) * TAU / ND as f64;
                        let acc: f64 = near
                            .iter()
                            .map(|t| {
                                let d2 = (t.x - px).powi(2) + (t.y - py).powi(2);
                                if d2 > reach * reach {
                                    return 0.0;
                                }
                                gauss_norm
                                    * (-d2 / (2.0 * SIGMA_S * SIGMA_S)).exp()
                                    * angular(angle_diff(centre, angle_diff(m.theta, t.theta)))
                            })
                            .sum();
                        if acc >= MU_PSI {
                            let bit = k * NS * NS + cell;
                            code.bits[bit / 64] |= 1 << (bit % 64);
                        }
                    }
                }
            }
            if valid_cells >= min_cells {
                out.push(Cylinder {
                    at: *m,
                    code,
                    valid_cells,
                });
            }
        }
        out
    }

    /// Pseudo-random minutiae spread like a real print's.
    fn minutiae(seed: u64, n: usize) -> Vec<Point> {
        let mut next = crate::test_uniform(seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407));
        (0..n)
            .map(|_| Point {
                x: 40.0 + 300.0 * next(),
                y: 40.0 + 400.0 * next(),
                theta: TAU * next(),
            })
            .collect()
    }

    #[test]
    fn the_dispatched_build_is_bit_identical_to_the_portable_one() {
        for seed in 0..10 {
            let pts = minutiae(seed, 45);
            let portable = cylinders_portable(&pts);
            assert_eq!(cylinders(&pts), portable, "seed {seed}");
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: detected.
                    assert_eq!(unsafe { cylinders_avx2(&pts) }, portable, "avx2, seed {seed}");
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: detected.
                    assert_eq!(unsafe { cylinders_avx512(&pts) }, portable, "avx512, seed {seed}");
                }
            }
        }
    }

    #[test]
    fn branch_free_sections_equal_the_angle_diff_form() {
        let table = angular_table();
        let half = PI / ND as f64;
        let reference = |d_theta: f64| -> [f32; ND] {
            std::array::from_fn(|k| {
                let alpha = angle_diff(-PI + (2 * k + 1) as f64 * half, d_theta);
                let x = (alpha + PI) * (ANGULAR_STEPS as f64 / TAU);
                let i = (x as usize).min(ANGULAR_STEPS - 1);
                let f = (x - i as f64) as f32;
                table[i] + f * (table[i + 1] - table[i])
            })
        };
        // A fine grid over [-pi, pi), the ends, and the section centres.
        let grid = (0..400_000).map(|n| -PI + TAU * (n as f64 / 400_000.0));
        let special = (0..ND).map(|k| -PI + (2 * k + 1) as f64 * half);
        for d in grid.chain(special).chain([-PI, 0.0, -0.0, PI - 1e-15]) {
            assert_eq!(sections(d), reference(d), "{d}");
        }
    }

    #[test]
    fn fast_cylinders_agree_with_the_direct_formula() {
        let (mut bits, mut differing) = (0u64, 0u64);
        for seed in 0..40 {
            let pts = minutiae(seed, 20 + (seed as usize % 40));
            let (fast, direct) = (cylinders(&pts), cylinders_direct(&pts));
            assert_eq!(fast.len(), direct.len(), "seed {seed}");
            for (f, d) in fast.iter().zip(&direct) {
                assert_eq!((f.at, f.valid_cells, f.code.valid), (d.at, d.valid_cells, d.code.valid));
                // Bits of invalid cells are left clear; they never count.
                for (w, (a, b)) in f.code.bits.iter().zip(&d.code.bits).enumerate() {
                    let valid = d.code.valid[w % MASK_WORDS];
                    assert_eq!(a & !valid, 0);
                    bits += 64;
                    differing += u64::from(((a ^ b) & valid).count_ones());
                }
            }
        }
        // Rotating into the cylinder's frame and summing in another order
        // moves the sums by rounding only; a bit may flip where a sum sits
        // within 1e-12 of the 0.01 threshold, which is vanishingly rare.
        assert!(bits > 1_000_000, "{bits}");
        assert!(differing * 1_000_000 <= bits, "{differing} of {bits} bits differ");
    }
}
