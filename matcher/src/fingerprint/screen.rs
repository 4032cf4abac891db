//! A coarse, fixed-length form of each cylinder for screening a 1:N search
//! before the full matcher runs.
//!
//! The full matcher spends most of a comparison after the popcounts: it
//! pairs minutiae one to one and relaxes their similarities against the
//! geometry, which costs tens of microseconds per candidate. A large
//! gallery is therefore ranked first by something far cheaper, and only the
//! best share of it (the *penetration*) is scored in full.
//!
//! The screen keeps what makes MCC discriminative, the local descriptors,
//! and a little of what makes it robust, geometric agreement. Each cylinder
//! is pooled to a 128-bit *screen code*: 8 x 8 spatial regions (2 x 2 cells
//! each) times 2 direction groups (sections 0-2 and 3-5); a region's bit is
//! set when at least 2 of its 12 cell bits are. Two codes' similarity is
//! their Jaccard index. Each probe cylinder finds its best partner among
//! the stored template's cylinders; the [`PAIRS`] probe cylinders with the
//! best partners are kept, and two kept pairs *agree* when they use
//! different stored cylinders, their minutiae lie at distances that differ
//! by at most [`DISTANCE_TOLERANCE`] px in the two prints, and they imply
//! rotations within [`ROTATION_TOLERANCE`] of each other. The score is the
//! sum over kept pairs of similarity x (1 + pairs it agrees with), divided
//! by the square of the number kept. Impostors' best partners are
//! scattered, a mate's line up, and that agreement is what lifts a mate's
//! score out of the crowd. No validity mask (on FVC2002 it changed nothing
//! measurable), no one-to-one assignment, no relaxation: those are what the
//! shortlist's full scoring is for. `BENCHMARKS.md` ("Fingerprint
//! screening") reports how many true mates a shortlist keeps at each
//! penetration, with and without the agreement step, and a pair-feature
//! signature that did much worse.
//!
//! A prepared template keeps each cylinder's screen code in its spare words
//! 2 and 3, next to the validity mask in the same cache line, so a screen
//! reads one line per stored cylinder. Rows stored before the screen existed
//! have zeros there; their codes are pooled from the cylinder on the fly.

use biomatch_kernels::cylinder::{CylinderCode, CylinderKernels};
use biomatch_kernels::screen::SCREEN_LANES;

use super::matcher::{MAX_CYLINDERS, minutia_of};

/// Probe cylinders (with their best partners) a screening score keeps.
pub const PAIRS: usize = 10;
/// Largest difference, in px at 500 ppi, between the distances of two
/// agreeing pairs' minutiae in the probe and in the stored print.
pub const DISTANCE_TOLERANCE: f32 = 15.0;
/// Largest difference, in radians (about 23 degrees), between the rotations
/// two agreeing pairs imply.
pub const ROTATION_TOLERANCE: f32 = 0.4;
/// Cell bits (of 12) a region needs to be set. [`screen_code`] counts to
/// two with an (at least one, at least two) pair of masks, so the value is
/// fixed by its construction.
#[cfg(test)]
const MIN_BITS: u32 = 2;

/// One cylinder's screen code: word g holds direction group g, bit
/// `8 * row + column` of the 8 x 8 regions.
pub type ScreenCode = [u64; 2];

/// Pools a cylinder's 1,536 cell bits into its screen code.
///
/// Word-parallel: it runs once per cylinder at enrollment (about 50 per
/// template), where a loop over single cells cost more than the rest of
/// the code's preparation. Each section word holds 4 rows of 16 cells; its
/// even and odd columns are compressed to 8 bits per row (one bit per
/// region column), giving 4 planes per section (even or odd column, upper
/// or lower row of each region) already at the region word's bit
/// positions. A region is set when at least 2 of its group's 12 planes are.
pub fn screen_code(c: &CylinderCode) -> ScreenCode {
    let mut code = [0u64; 2];
    for (g, word) in code.iter_mut().enumerate() {
        let (mut one, mut two) = (0u64, 0u64);
        for k in 3 * g..3 * g + 3 {
            let mut planes = [0u64; 4];
            for w in 0..4 {
                let bits = c.bits[4 * k + w];
                for (parity, cols) in [bits, bits >> 1].into_iter().enumerate() {
                    let e = even_bits_per_lane(cols);
                    // Lanes 0 and 2 are the upper rows of region rows 2w and
                    // 2w + 1, lanes 1 and 3 the lower rows.
                    let upper = (e & 0xff) | ((e >> 32) & 0xff) << 8;
                    let lower = ((e >> 16) & 0xff) | ((e >> 48) & 0xff) << 8;
                    planes[2 * parity] |= upper << (16 * w);
                    planes[2 * parity + 1] |= lower << (16 * w);
                }
            }
            for x in planes {
                two |= one & x;
                one |= x;
            }
        }
        *word = two;
    }
    code
}

/// The even bits of each 16-bit lane of `x`, compressed into the lane's low byte.
fn even_bits_per_lane(x: u64) -> u64 {
    let x = x & 0x5555_5555_5555_5555;
    let x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    let x = (x | (x >> 2)) & 0x0f0f_0f0f_0f0f_0f0f;
    (x | (x >> 4)) & 0x00ff_00ff_00ff_00ff
}

/// Stores `c`'s screen code in its spare words 2 and 3.
pub(crate) fn set_screen_code(c: &mut CylinderCode) {
    let code = screen_code(c);
    c.spare[2] = code[0];
    c.spare[3] = code[1];
}

/// The screen code kept in a cylinder, pooled afresh when the cylinder has
/// none (rows stored before screening; an all-zero code pools to zero again).
pub fn stored_screen_code(c: &CylinderCode) -> ScreenCode {
    match [c.spare[2], c.spare[3]] {
        [0, 0] => screen_code(c),
        code => code,
    }
}

/// A minutia as the screen uses it: x, y (px at 500 ppi) and direction.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Spot {
    x: f32,
    y: f32,
    theta: f32,
}

impl Spot {
    fn of(c: &CylinderCode) -> Spot {
        let p = minutia_of(c);
        Spot {
            x: p.x as f32,
            y: p.y as f32,
            theta: p.theta as f32,
        }
    }

    fn distance(&self, o: &Spot) -> f32 {
        let (dx, dy) = (self.x - o.x, self.y - o.y);
        (dx * dx + dy * dy).sqrt()
    }
}

/// `a - b` wrapped to [-pi, pi), for angles whose difference lies within
/// (-3 pi, 3 pi): directions in [0, 2 pi), and differences of two turns.
/// Branches, not `rem_euclid`, which calls `fmodf` and cost more than the
/// rest of a score.
fn turn(a: f32, b: f32) -> f32 {
    use std::f32::consts::{PI, TAU};
    let d = a - b;
    if d >= PI {
        d - TAU
    } else if d < -PI {
        d + TAU
    } else {
        d
    }
}

/// One kept pair: its similarity, the stored cylinder, both minutiae and
/// the rotation they imply.
#[derive(Clone, Copy, Default)]
struct Kept {
    similarity: f32,
    stored: u32,
    probe: Spot,
    gallery: Spot,
    rotation: f32,
}

impl Kept {
    fn agrees(&self, o: &Kept) -> bool {
        self.stored != o.stored
            && (self.probe.distance(&o.probe) - self.gallery.distance(&o.gallery)).abs() <= DISTANCE_TOLERANCE
            && turn(self.rotation, o.rotation).abs() <= ROTATION_TOLERANCE
    }
}

/// A probe's screen codes, ready to rank many gallery templates.
#[derive(Clone, Debug)]
pub struct ScreenProbe {
    codes: Vec<ScreenCode>,
    spots: Vec<Spot>,
    kernels: CylinderKernels,
}

impl ScreenProbe {
    /// Prepares the probe's cylinders (at most [`MAX_CYLINDERS`] are used).
    pub fn new(cylinders: &[CylinderCode]) -> ScreenProbe {
        let cylinders = &cylinders[..cylinders.len().min(MAX_CYLINDERS)];
        ScreenProbe {
            codes: cylinders.iter().map(stored_screen_code).collect(),
            spots: cylinders.iter().map(Spot::of).collect(),
            kernels: CylinderKernels::active(),
        }
    }

    /// The screening score of a stored template's cylinders, in [0, 1]
    /// (see the module documentation). Only a ranking; it is not comparable
    /// with the matcher's score. Cylinders past [`MAX_CYLINDERS`] are ignored.
    pub fn score(&self, cylinders: &[CylinderCode]) -> f32 {
        let n = cylinders.len().min(MAX_CYLINDERS);
        let np = self.codes.len();
        if n == 0 || np == 0 {
            return 0.0;
        }
        let mut g0 = [0u64; MAX_CYLINDERS];
        let mut g1 = [0u64; MAX_CYLINDERS];
        for (k, c) in cylinders[..n].iter().enumerate() {
            [g0[k], g1[k]] = stored_screen_code(c);
        }
        let padded = n.next_multiple_of(SCREEN_LANES);
        let (g0, g1) = (&g0[..padded], &g1[..padded]);
        let mut best = [0f32; MAX_CYLINDERS];
        self.kernels.screen_best(&self.codes, g0, g1, &mut best[..np]);
        // The probe cylinders with the best partners, then where those
        // partners are (a second, index-tracking pass over just these).
        let mut order: [u8; MAX_CYLINDERS] = std::array::from_fn(|i| i as u8);
        let order = &mut order[..np];
        let kept = np.min(PAIRS);
        order.select_nth_unstable_by(kept - 1, |&x, &y| best[usize::from(y)].total_cmp(&best[usize::from(x)]));
        let chosen: [ScreenCode; PAIRS] =
            std::array::from_fn(|k| order.get(k).map_or([0; 2], |&i| self.codes[usize::from(i)]));
        let (mut similarity, mut at) = ([0f32; PAIRS], [0u32; PAIRS]);
        self.kernels
            .screen_best_at(&chosen[..kept], g0, g1, &mut similarity[..kept], &mut at[..kept]);
        let mut pairs = [Kept::default(); PAIRS];
        for (k, slot) in pairs[..kept].iter_mut().enumerate() {
            let (probe, gallery) = (self.spots[usize::from(order[k])], Spot::of(&cylinders[at[k] as usize]));
            *slot = Kept {
                similarity: similarity[k],
                stored: at[k],
                probe,
                gallery,
                rotation: turn(probe.theta, gallery.theta),
            };
        }
        let pairs = &pairs[..kept];
        let mut support = [1u32; PAIRS];
        for a in 0..kept {
            for b in a + 1..kept {
                if pairs[a].agrees(&pairs[b]) {
                    support[a] += 1;
                    support[b] += 1;
                }
            }
        }
        let total: f32 = pairs.iter().zip(support).map(|(p, n)| p.similarity * n as f32).sum();
        total / (kept * kept) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::FingerTemplate;
    use crate::fingerprint::geometry::Point;

    fn finger(seed: u64, n: usize) -> Vec<Point> {
        let mut s = seed;
        let mut next = move || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| Point {
                x: 250.0 * next(),
                y: -350.0 * next(),
                theta: std::f64::consts::TAU * next(),
            })
            .collect()
    }

    fn moved(points: &[Point], angle: f64, tx: f64, ty: f64) -> Vec<Point> {
        let (s, c) = angle.sin_cos();
        points
            .iter()
            .map(|p| Point {
                x: c * p.x - s * p.y + tx,
                y: s * p.x + c * p.y + ty,
                theta: (p.theta + angle).rem_euclid(std::f64::consts::TAU),
            })
            .collect()
    }

    /// The pooling by its definition, one cell at a time.
    fn screen_code_by_cells(c: &CylinderCode) -> ScreenCode {
        let bit = |k: usize, i: usize, j: usize| {
            let n = k * 256 + i * 16 + j;
            ((c.bits[n / 64] >> (n % 64)) & 1) as u32
        };
        let mut code = [0u64; 2];
        for (g, word) in code.iter_mut().enumerate() {
            for r in 0..8 {
                for col in 0..8 {
                    let n: u32 = (3 * g..3 * g + 3)
                        .flat_map(|k| [(0, 0), (0, 1), (1, 0), (1, 1)].map(|(i, j)| bit(k, 2 * r + i, 2 * col + j)))
                        .sum();
                    if n >= MIN_BITS {
                        *word |= 1 << (8 * r + col);
                    }
                }
            }
        }
        code
    }

    #[test]
    fn pooling_matches_its_definition() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for density in 0..4 {
            for _ in 0..200 {
                let mut c = CylinderCode {
                    bits: [0; 24],
                    valid: [!0; 4],
                    spare: [0; 4],
                };
                for w in &mut c.bits {
                    // Sparse to dense: AND or OR of random words.
                    *w = match density {
                        0 => next() & next() & next(),
                        1 => next() & next(),
                        2 => next(),
                        _ => next() | next(),
                    };
                }
                assert_eq!(screen_code(&c), screen_code_by_cells(&c));
            }
        }
        let t = FingerTemplate::from_points(&finger(9, 40));
        for c in t.codes() {
            assert_eq!(screen_code(c), screen_code_by_cells(c));
        }
    }

    #[test]
    fn prepared_templates_carry_their_codes() {
        let t = FingerTemplate::from_points(&finger(4, 40));
        assert!(!t.is_empty());
        for c in t.codes() {
            assert_eq!([c.spare[2], c.spare[3]], screen_code(c));
        }
        // A cylinder without a stored code (an older row) is pooled on the fly.
        let mut old = t.codes()[0];
        old.spare[2] = 0;
        old.spare[3] = 0;
        assert_eq!(stored_screen_code(&old), screen_code(&t.codes()[0]));
    }

    #[test]
    fn mates_outrank_strangers() {
        let f = finger(1, 45);
        let probe = FingerTemplate::from_points(&moved(&f[..38], 2.5, 30.0, -20.0));
        let screen = ScreenProbe::new(probe.codes());
        let mate = screen.score(FingerTemplate::from_points(&f[4..]).codes());
        assert!(mate > 0.8, "{mate}");
        for seed in 2..30 {
            let other = screen.score(FingerTemplate::from_points(&finger(seed, 45)).codes());
            assert!(mate > other + 0.1, "mate {mate}, stranger {other}");
        }
    }

    #[test]
    fn agreement_is_what_separates_a_mate_from_a_lookalike() {
        // The same cylinders moved rigidly: every kept pair agrees. The same
        // codes with their minutiae scattered on a line: codes as similar,
        // geometry gone, so the score falls to the similarities alone.
        let f = finger(5, 40);
        let t = FingerTemplate::from_points(&f);
        let screen = ScreenProbe::new(t.codes());
        let mate = screen.score(FingerTemplate::from_points(&moved(&f, 1.0, 20.0, 5.0)).codes());
        let mut scattered = t.codes().to_vec();
        for (k, c) in scattered.iter_mut().enumerate() {
            let bits = |v: f32| u64::from(v.to_bits());
            c.spare[0] = bits(37.0 * k as f32);
            c.spare[1] = bits((0.9 * k as f32) % std::f32::consts::TAU);
        }
        let lookalike = screen.score(&scattered);
        assert!(mate > 0.6, "{mate}");
        assert!(lookalike < mate / 4.0, "lookalike {lookalike}, mate {mate}");
        assert_eq!(screen.score(&[]), 0.0);
        assert_eq!(ScreenProbe::new(&[]).score(t.codes()), 0.0);
    }
}
