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

use super::geometry::{GrownHull, Point, angle_diff, convex_hull};
#[cfg(test)]
use super::geometry::{erf, near_hull};
use super::lanes::{self, Lanes};

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
/// `alpha` away from the neighbour's direction difference: the definition
/// [`sections`] computes in lanes.
#[cfg(test)]
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

/// The neighbour's share of each angular section: the mass of a Gaussian
/// (sigma_D) centred on `d_theta` that falls within the section, that is
/// [`angular`] of the section centre's wrapped difference. Every neighbour
/// of every minutia needs six of these, so the twelve erf evaluations run
/// in one set of lanes (upper ends in lanes 0 to 5, lower ends in 8 to 13);
/// a table lookup per section, with its cache misses, cost a quarter of
/// building a template.
#[inline(always)]
fn sections<L: Lanes>(d_theta: f64) -> L {
    let half = PI / ND as f64;
    let centres: [f32; 16] = std::array::from_fn(|l| (-PI + (2 * (l % 8) + 1) as f64 * half) as f32);
    let ends: [f32; 16] = std::array::from_fn(|l| if l < 8 { half as f32 } else { -half as f32 });
    let (pi, tau, zero) = (L::splat(PI as f32), L::splat(TAU as f32), L::splat(0.0));
    // The difference lies within (-2 pi, 2 pi): one turn up or down at most.
    let x = L::load(&centres).sub(L::splat(d_theta as f32));
    let x = x.add(x.select_lt(zero.sub(pi), tau, zero));
    let alpha = x.sub(x.select_lt(pi, zero, tau));
    let scale = L::splat((1.0 / (SIGMA_D * std::f64::consts::SQRT_2)) as f32);
    let e = lanes::erf(alpha.add(L::load(&ends)).mul(scale));
    // Upper minus lower end, lanes 0 to 5, without leaving the registers:
    // reading single lanes back from a just-stored vector stalls.
    L::splat(0.5).mul(e.sub(e.swap_halves()))
}

/// One neighbour's part of a cylinder, prepared once for all its cells: the
/// spatial Gaussian is separable, so a cell's weight is a row factor times
/// a column factor, cut off beyond 3 sigma of the cell.
struct Reach {
    /// First and last row within 3 sigma of the neighbour.
    rows: (usize, usize),
    /// Gaussian factor of each row, with the normalisation folded in.
    gu: [f32; NS],
    /// Squared offset of each row from the neighbour.
    du2: [f32; NS],
    /// Gaussian factor of each column.
    gv: [f32; NS],
    /// Squared offset of each column from the neighbour.
    dv2: [f32; NS],
    /// Its share of each angular section (lanes 0 to 5; the rest unused).
    sec: [f32; 16],
}

impl Reach {
    /// Room for a neighbour, to be [`Reach::fill`]ed.
    const EMPTY: Reach = Reach {
        rows: (1, 0),
        gu: [0.0; NS],
        du2: [0.0; NS],
        gv: [0.0; NS],
        dv2: [0.0; NS],
        sec: [0.0; 16],
    };

    /// Prepares the neighbour at `(tu, tv)` in the cylinder's frame with
    /// direction difference `d_theta`, in place: returning a new value
    /// would copy it through the stack in pieces narrower than the vector
    /// stores that wrote it, and such reads stall.
    #[inline(always)]
    fn fill<L: Lanes>(&mut self, tu: f64, tv: f64, d_theta: f64) {
        let reach = 3.0 * SIGMA_S;
        let centres = L::load(&std::array::from_fn(|i| (DELTA * (i as f64 - 7.5)) as f32));
        let (du, dv) = (L::splat(tu as f32).sub(centres), L::splat(tv as f32).sub(centres));
        let (du2, dv2) = (du.mul(du), dv.mul(dv));
        let scale = L::splat((-1.0 / TWO_VAR) as f32);
        let gu = L::splat((1.0 / (SIGMA_S * TAU.sqrt())) as f32).mul(lanes::exp(du2.mul(scale)));
        let gv = lanes::exp(dv2.mul(scale));
        let lo = ((tu - reach) / DELTA + 7.5).ceil().max(0.0);
        let hi = ((tu + reach) / DELTA + 7.5).floor().min((NS - 1) as f64);
        self.rows = if hi < lo { (1, 0) } else { (lo as usize, hi as usize) };
        gu.store(&mut self.gu);
        du2.store(&mut self.du2);
        gv.store(&mut self.gv);
        dv2.store(&mut self.dv2);
        sections::<L>(d_theta).store(&mut self.sec);
    }
}

/// The bits of row `i` in each section: the sums over the neighbours that
/// reach the row (`near`, indices into `reaches`, in neighbour order), and
/// bit j set where cell j's sum reaches the threshold. The six section rows
/// stay in registers while the neighbours stream by. Listing each row's
/// neighbours first keeps the loop free of data-dependent branches: testing
/// every neighbour against every row mispredicted often enough to cost more
/// than the arithmetic, and summing neighbour by neighbour into memory spent
/// a load and a store per section and row.
#[inline(always)]
fn row_bits<L: Lanes>(reaches: &[Reach], near: &[u32], i: usize) -> [u16; ND] {
    let reach2 = (9.0 * SIGMA_S * SIGMA_S) as f32;
    let mut acc = [L::splat(0.0); ND];
    for &t in near {
        let r = &reaches[t as usize];
        // Only cells within 3 sigma of the neighbour count.
        let row = L::load(&r.dv2).keep_le(L::splat(reach2 - r.du2[i]), L::splat(r.gu[i]).mul(L::load(&r.gv)));
        for (a, &w) in acc.iter_mut().zip(&r.sec) {
            *a = a.add(L::splat(w).mul(row));
        }
    }
    // A loop, not `acc.map`: a closure would compile apart from the
    // caller's instruction set and call the comparison out of line.
    let mut bits = [0u16; ND];
    for (b, a) in bits.iter_mut().zip(acc) {
        *b = a.mask_ge(L::splat(MU_PSI as f32));
    }
    bits
}

/// Cylinders of every minutia that has a valid one (enough valid cells and
/// neighbours); invalid cylinders are dropped, as in MCC.
///
/// Enrollment builds one of these per template, so the work is arranged for
/// speed: the spatial Gaussian is separable, so each neighbour is prepared
/// once as a row factor and a column factor; a neighbour only reaches the
/// rows within 3 sigma of it (about 5 of 16), so each row sums only the
/// neighbours listed for it, 16 cells at a time in vector lanes
/// ([`Lanes`]); and the hull test is prepared once per template.
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

/// The build on AVX-512F lanes: a row of 16 f32 cells is one register, and
/// the scalar code around it compiles with AVX-512 too.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn cylinders_avx512(points: &[Point]) -> Vec<Cylinder> {
    cylinders_with::<lanes::Avx512>(points)
}

/// The build on AVX2 lanes: a row of cells is two 256-bit registers. Its
/// lane operations are the same IEEE operations as the portable ones (no
/// fused multiply-add), so the result is bit-for-bit the portable one.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn cylinders_avx2(points: &[Point]) -> Vec<Cylinder> {
    cylinders_with::<lanes::Avx2>(points)
}

/// The build on plain Rust lanes: CPUs without AVX2, and the reference the
/// vector builds must equal bit for bit.
fn cylinders_portable(points: &[Point]) -> Vec<Cylinder> {
    cylinders_with::<[f32; NS]>(points)
}

/// The build, generic over the lanes of one row of cells.
#[inline(always)]
fn cylinders_with<L: Lanes>(points: &[Point]) -> Vec<Cylinder> {
    let hull = GrownHull::new(
        &convex_hull(&points.iter().map(|p| (p.x, p.y)).collect::<Vec<_>>()),
        OMEGA,
    );
    let min_cells = (MIN_VALID_CELLS * f64::from(cells_in_circle())).ceil() as u32;
    let centre = |i: usize| DELTA * (i as f64 - 7.5);
    let mut out = Vec::with_capacity(points.len());
    let mut neighbours_of = Vec::with_capacity(points.len());
    let mut reaches = Vec::with_capacity(points.len());
    // The neighbours that reach each row, as indices into `reaches`.
    let mut rows: [Vec<u32>; NS] = std::array::from_fn(|_| Vec::with_capacity(points.len()));
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
        // Every neighbour is prepared first, then the rows are summed. Plain
        // loops rather than iterator adapters: an adapter's closure compiles
        // as a function of its own, without the caller's AVX-512 or AVX2.
        if reaches.len() < neighbours_of.len() {
            reaches.resize_with(neighbours_of.len(), || Reach::EMPTY);
        }
        rows.iter_mut().for_each(Vec::clear);
        for (n, (t, r)) in neighbours_of.iter().zip(&mut reaches).enumerate() {
            // The neighbour in the cylinder's frame (rotated by -theta).
            let (dx, dy) = (t.x - m.x, t.y - m.y);
            r.fill::<L>(c * dx + s * dy, -s * dx + c * dy, angle_diff(m.theta, t.theta));
            for near in &mut rows[r.rows.0..=r.rows.1.min(NS - 1)] {
                near.push(n as u32);
            }
        }
        // A row of 16 cells is 16 bits of one word (bit k*256 + i*16 + j);
        // rows without a valid cell are skipped, as their bits never count.
        for i in (0..NS).filter(|&i| (cyl.code.valid[i * NS / 64] >> (i * NS % 64)) & 0xffff != 0) {
            for (k, bits) in row_bits::<L>(&reaches, &rows[i], i).into_iter().enumerate() {
                let bit = (k * NS + i) * NS;
                cyl.code.bits[bit / 64] |= u64::from(bits) << (bit % 64);
            }
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
    fn sections_equal_the_angular_share_of_each_centre() {
        let half = PI / ND as f64;
        // A fine grid over [-pi, pi), the ends, and the section centres.
        let grid = (0..200_000).map(|n| -PI + TAU * (n as f64 / 200_000.0));
        let special = (0..ND).map(|k| -PI + (2 * k + 1) as f64 * half);
        for d in grid.chain(special).chain([-PI, 0.0, -0.0, PI - 1e-15]) {
            let got = sections::<[f32; 16]>(d);
            for (k, &g) in got.iter().take(ND).enumerate() {
                let want = angular(angle_diff(-PI + (2 * k + 1) as f64 * half, d));
                assert!((f64::from(g) - want).abs() < 5e-7, "{d} {k} {g} {want}");
            }
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
