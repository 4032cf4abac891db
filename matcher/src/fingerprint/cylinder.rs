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

use super::geometry::{Point, angle_diff, convex_hull, erf, near_hull};

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

/// One minutia's descriptor.
#[derive(Clone, Debug, PartialEq)]
pub struct Cylinder {
    /// The minutia it describes.
    pub at: Point,
    /// Cell bits (section-major: bit `k * 256 + i * 16 + j` in word order)
    /// and the validity of the 256 spatial cells; the spare words are zero.
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

/// Cylinders of every minutia that has a valid one (enough valid cells and
/// neighbours); invalid cylinders are dropped, as in MCC.
pub fn cylinders(points: &[Point]) -> Vec<Cylinder> {
    let hull = convex_hull(&points.iter().map(|p| (p.x, p.y)).collect::<Vec<_>>());
    let delta = 2.0 * RADIUS / NS as f64;
    let gauss_norm = 1.0 / (SIGMA_S * TAU.sqrt());
    let reach = 3.0 * SIGMA_S;
    let min_cells = (MIN_VALID_CELLS * f64::from(cells_in_circle())).ceil() as u32;
    let mut out = Vec::with_capacity(points.len());
    for (m_i, m) in points.iter().enumerate() {
        let neighbours: Vec<&Point> = points
            .iter()
            .enumerate()
            .filter(|(t, p)| *t != m_i && (p.x - m.x).powi(2) + (p.y - m.y).powi(2) <= (RADIUS + reach).powi(2))
            .map(|(_, p)| p)
            .collect();
        if neighbours.len() < MIN_NEIGHBOURS {
            continue;
        }
        // Per neighbour, its contribution to each section does not depend on
        // the cell: compute it once.
        let sections: Vec<[f64; ND]> = neighbours
            .iter()
            .map(|t| {
                let d_theta = angle_diff(m.theta, t.theta);
                std::array::from_fn(|k| {
                    let centre = -PI + (k as f64 + 0.5) * TAU / ND as f64;
                    angular(angle_diff(centre, d_theta))
                })
            })
            .collect();
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
        for i in 0..NS {
            for j in 0..NS {
                let (u, v) = (delta * (i as f64 - 7.5), delta * (j as f64 - 7.5));
                let (px, py) = (m.x + c * u - s * v, m.y + s * u + c * v);
                let cell = i * NS + j;
                if u * u + v * v <= RADIUS * RADIUS && near_hull(&hull, (px, py), OMEGA) {
                    cyl.valid_cells += 1;
                    cyl.code.valid[cell / 64] |= 1 << (cell % 64);
                }
                let mut acc = [0.0f64; ND];
                for (t, sec) in neighbours.iter().zip(&sections) {
                    let d2 = (t.x - px).powi(2) + (t.y - py).powi(2);
                    if d2 > reach * reach {
                        continue;
                    }
                    let g = gauss_norm * (-d2 / (2.0 * SIGMA_S * SIGMA_S)).exp();
                    for k in 0..ND {
                        acc[k] += g * sec[k];
                    }
                }
                for (k, a) in acc.iter().enumerate() {
                    if *a >= MU_PSI {
                        let bit = k * NS * NS + cell;
                        cyl.code.bits[bit / 64] |= 1 << (bit % 64);
                    }
                }
            }
        }
        if cyl.valid_cells >= min_cells {
            out.push(cyl);
        }
    }
    out
}
