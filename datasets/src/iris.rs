//! Synthetic iris codes with Daugman's statistics, in open-iris's packed
//! (16, 256, 2, 2) layout.
//!
//! Real iris codes are correlated along the angle: Daugman measured about 249
//! degrees of freedom in 2,048-bit codes (impostor HD mean 0.499, sigma
//! 0.0317), i.e. one independent bit per ~8 code bits. The generator keeps
//! that ratio at 16,384 bits: in each of the 64 (row, wavelet, real/imag)
//! channels a fresh random bit covers a run of 20 columns (random phase per
//! channel). Because two codes' runs do not line up, a comparison of the
//! ~9,200 bits that two masks leave valid has about 1,100 degrees of
//! freedom: ~8 bits each, Daugman's ratio (2,048 / 249 = 8.2).
//!
//! A genuine sample is the subject's code rolled by up to +-6 columns (head
//! tilt) with a share `flip` of it flipped in runs (acquisition noise), giving
//! genuine distances of about 0.1 to 0.3, plus a tail of poor captures. Masks hide 10 to 40% of the bits as
//! one contiguous arc of columns (eyelid or reflection).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const ROWS: usize = 16;
const COLS: usize = 256;
const CHANNELS: usize = ROWS * 4;
/// Columns one independent base bit spans. Two codes' runs do not line up,
/// so a comparison sees about twice as many independent regions as runs;
/// 20 gives about 8 compared bits per degree of freedom, as Daugman measured.
const RUN: usize = 20;
/// Packed bytes per array.
pub const PACKED: usize = ROWS * COLS * 4 / 8;

/// One template: packed code and mask (numpy.packbits of (16, 256, 2, 2)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackedIris {
    /// Code bits.
    pub code: Vec<u8>,
    /// Mask bits, 1 = valid.
    pub mask: Vec<u8>,
}

/// Bits as a (row, col, channel-in-row) bool grid, packed on output.
struct Grid(Vec<bool>);

impl Grid {
    fn idx(r: usize, c: usize, k: usize) -> usize {
        (r * COLS + c) * 4 + k
    }
    fn pack(&self) -> Vec<u8> {
        let mut out = vec![0u8; PACKED];
        for (i, b) in self.0.iter().enumerate() {
            if *b {
                out[i / 8] |= 1 << (7 - i % 8);
            }
        }
        out
    }
}

fn base_code(rng: &mut StdRng) -> Grid {
    let mut g = vec![false; ROWS * COLS * 4];
    for ch in 0..CHANNELS {
        let (r, k) = (ch / 4, ch % 4);
        let phase = rng.random_range(0..RUN);
        let mut bit = rng.random::<bool>();
        for c in 0..COLS {
            if (c + phase) % RUN == 0 {
                bit = rng.random::<bool>();
            }
            g[Grid::idx(r, c, k)] = bit;
        }
    }
    Grid(g)
}

fn arc_mask(rng: &mut StdRng) -> Grid {
    let frac = rng.random_range(0.10..0.40);
    let len = (frac * COLS as f64).round() as usize;
    let start = rng.random_range(0..COLS);
    let mut g = vec![true; ROWS * COLS * 4];
    for i in 0..len {
        let c = (start + i) % COLS;
        for r in 0..ROWS {
            for k in 0..4 {
                g[Grid::idx(r, c, k)] = false;
            }
        }
    }
    Grid(g)
}

fn sample(rng: &mut StdRng, base: &Grid, max_roll: i32, flip: f64) -> PackedIris {
    let roll = rng.random_range(-max_roll..=max_roll);
    let mut g = vec![false; ROWS * COLS * 4];
    for ch in 0..CHANNELS {
        let (r, k) = (ch / 4, ch % 4);
        // Acquisition noise comes in blobs too: runs of 4 to 12 columns are
        // flipped together, each with probability `flip`.
        let mut c = 0;
        while c < COLS {
            let run = rng.random_range(4..=12).min(COLS - c);
            let flipped = rng.random::<f64>() < flip;
            for col in c..c + run {
                let src = (col as i32 - roll).rem_euclid(COLS as i32) as usize;
                g[Grid::idx(r, col, k)] = base.0[Grid::idx(r, src, k)] ^ flipped;
            }
            c += run;
        }
    }
    PackedIris {
        code: Grid(g).pack(),
        mask: arc_mask(rng).pack(),
    }
}

/// Generator settings.
#[derive(Clone, Debug)]
pub struct SyntheticIris {
    /// Number of subjects (eyes).
    pub subjects: usize,
    /// Samples per subject.
    pub samples_per_subject: usize,
    /// Share of poor captures (flip 0.22 to 0.40 instead of 0.08 to 0.22),
    /// the genuine tail that makes error rates non-zero; 0.05 is a fair
    /// default.
    pub poor_capture_share: f64,
    /// Random seed.
    pub seed: u64,
}

impl SyntheticIris {
    /// Templates grouped by subject, with each template's subject index.
    pub fn generate(&self) -> (Vec<PackedIris>, Vec<usize>) {
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut out = Vec::new();
        let mut labels = Vec::new();
        for s in 0..self.subjects {
            let base = base_code(&mut rng);
            for _ in 0..self.samples_per_subject {
                // Poor captures (blur, off-axis gaze) make the genuine tail.
                let flip = if rng.random::<f64>() < self.poor_capture_share {
                    rng.random_range(0.22..0.40)
                } else {
                    rng.random_range(0.08..0.22)
                };
                out.push(sample(&mut rng, &base, 6, flip));
                labels.push(s);
            }
        }
        (out, labels)
    }
}

/// Pairs for checking a matcher against open-iris: even indices genuine
/// (rotated, noisy copies), odd impostor; masks hide 10 to 40% of the bits,
/// as arcs, as scattered bits, or (every 50th pair) one whole half of the
/// columns, so that open-iris's empty-half edge cases are exercised.
pub fn conformance_pairs(n: usize, seed: u64) -> Vec<(PackedIris, PackedIris)> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let base = frozen_base_code(&mut rng);
            let a = frozen_sample(&mut rng, &base, 0, 0.0);
            let mut b = if i % 2 == 0 {
                let flip = rng.random_range(0.05..0.30);
                frozen_sample(&mut rng, &base, 15, flip)
            } else {
                let other = frozen_base_code(&mut rng);
                frozen_sample(&mut rng, &other, 0, 0.0)
            };
            if i % 3 == 1 {
                // Scattered invalid bits instead of an arc.
                let p = rng.random_range(0.10..0.40);
                let g = Grid((0..ROWS * COLS * 4).map(|_| rng.random::<f64>() >= p).collect());
                b.mask = g.pack();
            }
            let mut a = a;
            if i % 50 == 7 {
                // Columns 128..256 of the probe invalid: one half empty at shift 0.
                let mut g = vec![true; ROWS * COLS * 4];
                for r in 0..ROWS {
                    for c in COLS / 2..COLS {
                        for k in 0..4 {
                            g[Grid::idx(r, c, k)] = false;
                        }
                    }
                }
                a.mask = Grid(g).pack();
            }
            (a, b)
        })
        .collect()
}

// The generator as it was when the open-iris oracle was computed (8-column
// runs, independent bit noise). Do not edit: see `conformance_pairs`.
fn frozen_base_code(rng: &mut StdRng) -> Grid {
    let mut g = vec![false; ROWS * COLS * 4];
    for ch in 0..CHANNELS {
        let (r, k) = (ch / 4, ch % 4);
        let phase = rng.random_range(0..8);
        let mut bit = rng.random::<bool>();
        for c in 0..COLS {
            if (c + phase) % 8 == 0 {
                bit = rng.random::<bool>();
            }
            g[Grid::idx(r, c, k)] = bit;
        }
    }
    Grid(g)
}

fn frozen_sample(rng: &mut StdRng, base: &Grid, max_roll: i32, flip: f64) -> PackedIris {
    let roll = rng.random_range(-max_roll..=max_roll);
    let mut g = vec![false; ROWS * COLS * 4];
    for r in 0..ROWS {
        for c in 0..COLS {
            let src = (c as i32 - roll).rem_euclid(COLS as i32) as usize;
            for k in 0..4 {
                g[Grid::idx(r, c, k)] = base.0[Grid::idx(r, src, k)] ^ (rng.random::<f64>() < flip);
            }
        }
    }
    PackedIris {
        code: Grid(g).pack(),
        mask: arc_mask(rng).pack(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ones(b: &[u8]) -> u32 {
        b.iter().map(|x| x.count_ones()).sum()
    }

    #[test]
    fn deterministic_with_masks_in_range() {
        let g = SyntheticIris {
            subjects: 5,
            samples_per_subject: 3,
            poor_capture_share: 0.0,
            seed: 4,
        };
        let (a, labels) = g.generate();
        assert_eq!(a, g.generate().0);
        assert_eq!(labels, vec![0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]);
        for t in &a {
            let valid = ones(&t.mask) as f64 / (PACKED * 8) as f64;
            assert!((0.59..=0.91).contains(&valid), "valid share {valid}");
        }
        assert_eq!(conformance_pairs(10, 1), conformance_pairs(10, 1));
    }

    /// Fractional Hamming distance over the bits valid in both, no rotation.
    fn hd(a: &PackedIris, b: &PackedIris) -> f64 {
        let (mut h, mut m) = (0u32, 0u32);
        for i in 0..PACKED {
            let valid = a.mask[i] & b.mask[i];
            h += ((a.code[i] ^ b.code[i]) & valid).count_ones();
            m += valid.count_ones();
        }
        h as f64 / m as f64
    }

    #[test]
    fn impostor_statistics_follow_daugman() {
        let (t, labels) = SyntheticIris {
            subjects: 60,
            samples_per_subject: 1,
            poor_capture_share: 0.0,
            seed: 3,
        }
        .generate();
        assert!(labels.windows(2).all(|w| w[0] < w[1]));
        let d: Vec<f64> = (0..t.len())
            .flat_map(|i| (i + 1..t.len()).map(move |j| (i, j)))
            .map(|(i, j)| hd(&t[i], &t[j]))
            .collect();
        let mean = d.iter().sum::<f64>() / d.len() as f64;
        let var = d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / d.len() as f64;
        let dof = mean * (1.0 - mean) / var;
        assert!((mean - 0.5).abs() < 0.005, "impostor mean {mean}");
        // ~9,300 compared bits at Daugman's ~8 bits per degree of freedom.
        assert!((700.0..2000.0).contains(&dof), "degrees of freedom {dof}");
    }
}
