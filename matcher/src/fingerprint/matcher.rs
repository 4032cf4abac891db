//! Fingerprint templates prepared for matching, and the MCC global score
//! (local similarity sort with relaxation, LSS-R).
//!
//! The score lies in [0, 1]: the mean local similarity of the few minutia
//! pairs that best agree with each other geometrically. It is not a
//! probability; thresholds are set from impostor scores at a target FMR (see
//! BENCHMARKS.md for the figures on FVC2002).

use std::f64::consts::{PI, TAU};

use biomatch_kernels::cylinder::{CYLINDER_WORDS, CylinderCode, CylinderKernels, PairCounts};

/// Bits of one cylinder: the largest popcount of a pair.
const CYLINDER_BITS: usize = CYLINDER_WORDS * 64;

use super::cylinder::{cells_in_circle, cylinders};
use super::geometry::{Point, sigmoid};
use super::iso::{FingerRecord, FingerView};
use crate::MatcherError;

/// Resolution the matcher's distances assume, in pixels per centimetre (500 ppi).
const REFERENCE_PPCM: f64 = 197.0;
/// Minimum share of cells two cylinders must both have valid to be compared.
const MIN_OVERLAP: f64 = 0.6;
const MIN_NP: f64 = 4.0;
const MAX_NP: f64 = 12.0;
const RELAX_ITERATIONS: usize = 5;
const RELAX_WEIGHT: f64 = 0.5;
/// Beyond these differences a compatibility factor is below 1e-6 and is
/// taken as 0, which skips the rest of its computation.
const MAX_DISTANCE_DIFF: f64 = 14.0;
const MAX_ANGLE_DIFF: f64 = PI / 12.0 + 0.47;

/// Most cylinders a template keeps. Records with more valid cylinders keep
/// those with the most valid cells (the minutiae deepest inside the print),
/// which bounds a stored template's size. A few FVC2002 templates exceed it;
/// capping them changed none of the EER / FMR figures there.
pub const MAX_CYLINDERS: usize = 64;

/// A template ready for matching: one cylinder per minutia that has a valid
/// one, each carrying its minutia (x, y, direction as f32) and its screen
/// code (see [`super::screen`]) in its spare words, so the array is the whole
/// template and can be stored as it is.
#[derive(Clone, Debug, PartialEq)]
pub struct FingerTemplate {
    codes: Vec<CylinderCode>,
}

/// The minutia kept in a cylinder's spare words.
pub(crate) fn minutia_of(code: &CylinderCode) -> Point {
    let f = |w: u64, high: bool| f64::from(f32::from_bits(if high { (w >> 32) as u32 } else { w as u32 }));
    Point {
        x: f(code.spare[0], false),
        y: f(code.spare[0], true),
        theta: f(code.spare[1], false),
    }
}

fn set_minutia(code: &mut CylinderCode, p: &Point) {
    let bits = |v: f64| u64::from((v as f32).to_bits());
    code.spare = [bits(p.x) | (bits(p.y) << 32), bits(p.theta), 0, 0];
}

impl FingerTemplate {
    /// Prepares one finger view of a record: coordinates are scaled to
    /// 500 ppi with the record's resolution and y is turned upwards.
    pub fn from_view(record: &FingerRecord, view: &FingerView) -> FingerTemplate {
        let sx = REFERENCE_PPCM / f64::from(record.x_resolution);
        let sy = REFERENCE_PPCM / f64::from(record.y_resolution);
        let points: Vec<Point> = view
            .minutiae
            .iter()
            .map(|m| Point {
                x: f64::from(m.x) * sx,
                y: -f64::from(m.y) * sy,
                theta: m.radians(),
            })
            .collect();
        FingerTemplate::from_points(&points)
    }

    /// Prepares the first finger view of an ISO/IEC 19794-2:2005 record.
    pub fn from_iso(bytes: &[u8]) -> Result<FingerTemplate, MatcherError> {
        let record = FingerRecord::from_iso(bytes)?;
        Ok(FingerTemplate::from_view(&record, &record.views[0]))
    }

    /// Prepares minutiae already in matcher coordinates (500 ppi, y up).
    pub fn from_points(points: &[Point]) -> FingerTemplate {
        let mut cyl = cylinders(points);
        if cyl.len() > MAX_CYLINDERS {
            // Stable: among equals the earlier minutia stays.
            cyl.sort_by_key(|c| std::cmp::Reverse(c.valid_cells));
            cyl.truncate(MAX_CYLINDERS);
        }
        let codes = cyl
            .into_iter()
            .map(|c| {
                let mut code = c.code;
                set_minutia(&mut code, &c.at);
                super::screen::set_screen_code(&mut code);
                code
            })
            .collect();
        FingerTemplate { codes }
    }

    /// A template from stored cylinders (see [`FingerTemplate::codes`]).
    pub fn from_codes(codes: Vec<CylinderCode>) -> FingerTemplate {
        FingerTemplate { codes }
    }

    /// The cylinders, with their minutiae; what a gallery stores.
    pub fn codes(&self) -> &[CylinderCode] {
        &self.codes
    }

    /// Valid cylinders (minutiae that take part in matching).
    pub fn len(&self) -> usize {
        self.codes.len()
    }

    /// True when no minutia has a valid cylinder: such a template matches nothing.
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }
}

/// `a - b` wrapped to [-pi, pi) for angles already in [-2 pi, 2 pi].
#[inline]
fn wrap(d: f64) -> f64 {
    if d >= PI {
        d - TAU
    } else if d < -PI {
        d + TAU
    } else {
        d
    }
}

/// Geometric compatibility of two minutia pairs (a1, b1) and (a2, b2): near 1
/// when the distance, the direction difference and the radial angle between
/// the two minutiae agree in both prints.
fn compatibility(a1: &Point, a2: &Point, b1: &Point, b2: &Point) -> f64 {
    let (ax, ay, bx, by) = (a2.x - a1.x, a2.y - a1.y, b2.x - b1.x, b2.y - b1.y);
    let d1 = ((ax * ax + ay * ay).sqrt() - (bx * bx + by * by).sqrt()).abs();
    if d1 > MAX_DISTANCE_DIFF {
        return 0.0;
    }
    let d2 = wrap(wrap(a1.theta - a2.theta) - wrap(b1.theta - b2.theta)).abs();
    if d2 > MAX_ANGLE_DIFF {
        return 0.0;
    }
    // The radial angle (direction of m1 against the segment m1 -> m2) in each
    // print: their difference is the angle between the segments after each
    // is turned by its own m1 direction.
    let d3 = wrap(wrap(a1.theta - ay.atan2(ax)) - wrap(b1.theta - by.atan2(bx))).abs();
    if d3 > MAX_ANGLE_DIFF {
        return 0.0;
    }
    sigmoid(d1, 5.0, -8.0 / 5.0) * sigmoid(d2, PI / 12.0, -30.0) * sigmoid(d3, PI / 12.0, -30.0)
}

/// The MCC matcher with the published parameters.
#[derive(Clone, Copy, Debug)]
pub struct FingerprintMatcher {
    kernels: CylinderKernels,
}

impl Default for FingerprintMatcher {
    fn default() -> Self {
        FingerprintMatcher {
            kernels: CylinderKernels::active(),
        }
    }
}

impl FingerprintMatcher {
    /// A matcher on a given popcount flavour (tests, benchmarks).
    pub fn with_kernels(kernels: CylinderKernels) -> FingerprintMatcher {
        FingerprintMatcher { kernels }
    }

    /// Similarity of two templates in [0, 1] (LSS-R).
    pub fn score(&self, a: &FingerTemplate, b: &FingerTemplate) -> f32 {
        self.score_codes(&a.codes, &b.codes)
    }

    /// Similarity of two templates given as their cylinders (for example a
    /// prepared probe against a stored row), in [0, 1] (LSS-R).
    pub fn score_codes(&self, a: &[CylinderCode], b: &[CylinderCode]) -> f32 {
        let (na, nb) = (a.len(), b.len());
        if na == 0 || nb == 0 || na > u16::MAX as usize || nb > u16::MAX as usize {
            return 0.0;
        }
        SCRATCH.with_borrow_mut(|scratch| self.score_in(a, b, scratch))
    }

    fn score_in(&self, a: &[CylinderCode], b: &[CylinderCode], w: &mut Scratch) -> f32 {
        let (na, nb) = (a.len(), b.len());
        let min_overlap = (MIN_OVERLAP * f64::from(cells_in_circle())).ceil() as u32;
        // Local similarities of every comparable pair. The loop is free of
        // branches: each pair is written, and the length advances only for
        // a comparable pair with a positive similarity (a pair with no valid
        // bits divides by zero into NaN or -inf, which is not positive).
        // Which pairs pass is data-dependent; together with the scratch
        // buffers this measured 3-4% faster (BENCHMARKS.md).
        w.counts.resize(nb, PairCounts::default());
        // Grown, never cleared: every slot read below is written first.
        if w.pairs.len() <= na * nb {
            w.pairs.resize(na * nb + 1, LocalPair::default());
        }
        let mut len = 0;
        let roots = sqrt_table();
        for (i, ai) in a.iter().enumerate() {
            self.kernels.counts_row(ai, b, &mut w.counts);
            for (j, c) in w.counts.iter().enumerate() {
                // MCC also refuses pairs whose directions differ by more than
                // 90 degrees; that assumes the prints are placed within +-90
                // degrees of each other, so it is left out: cylinders are
                // rotation-invariant by construction, and on FVC2002 the
                // check made FMR1000 worse (see BENCHMARKS.md).
                let root = |n: u32| roots[(n as usize).min(CYLINDER_BITS)];
                let s = 1.0 - root(c.differ) / (root(c.a) + root(c.b));
                w.pairs[len] = LocalPair {
                    s,
                    i: i as u16,
                    j: j as u16,
                    bucket: 0,
                };
                len += usize::from((c.common >= min_overlap) & (s > 0.0));
            }
        }
        // Bucket counts for the ordering in `one_to_one`.
        let mut histogram = [0u32; BUCKETS + 1];
        for p in &mut w.pairs[..len] {
            p.bucket = (BUCKETS - 1 - ((p.s * BUCKETS as f32) as usize).min(BUCKETS - 1)) as u16;
            histogram[usize::from(p.bucket) + 1] += 1;
        }
        one_to_one(w, len, &mut histogram, na, nb);
        let n = w.chosen.len();
        if n == 0 {
            return 0.0;
        }
        let n_p = (MIN_NP + (sigmoid(na.min(nb) as f64, 20.0, 2.0 / 5.0) * (MAX_NP - MIN_NP)).round()) as usize;
        let n_p = n_p.min(n);
        // Relaxation: each pair's similarity is pulled towards that of the
        // pairs it is geometrically compatible with.
        w.pa.clear();
        w.pa.extend(w.chosen.iter().map(|c| minutia_of(&a[c.1])));
        w.pb.clear();
        w.pb.extend(w.chosen.iter().map(|c| minutia_of(&b[c.2])));
        w.rho.clear();
        w.rho.resize(n * n, 0.0);
        for t in 0..n {
            for k in t + 1..n {
                let r = compatibility(&w.pa[t], &w.pa[k], &w.pb[t], &w.pb[k]);
                w.rho[t * n + k] = r;
                w.rho[k * n + t] = r;
            }
        }
        w.start.clear();
        w.start.extend(w.chosen.iter().map(|c| c.0));
        w.lambda.clone_from(&w.start);
        if n > 1 {
            w.next.resize(n, 0.0);
            for _ in 0..RELAX_ITERATIONS {
                for t in 0..n {
                    let support: f64 = w.rho[t * n..(t + 1) * n]
                        .iter()
                        .zip(&w.lambda)
                        .map(|(r, l)| r * l)
                        .sum();
                    w.next[t] = RELAX_WEIGHT * w.lambda[t] + (1.0 - RELAX_WEIGHT) * support / (n - 1) as f64;
                }
                std::mem::swap(&mut w.lambda, &mut w.next);
            }
        }
        // Keep the pairs the relaxation supported best (efficiency = final /
        // initial similarity) and average their final similarities.
        let (lambda, start) = (&w.lambda, &w.start);
        w.order.clear();
        w.order.extend(0..n);
        w.order.sort_unstable_by(|&x, &y| {
            (lambda[y] / start[y])
                .total_cmp(&(lambda[x] / start[x]))
                .then(x.cmp(&y))
        });
        let sum: f64 = w.order[..n_p].iter().map(|&t| lambda[t]).sum();
        (sum / n_p as f64) as f32
    }
}

/// A comparable cylinder pair, its local similarity in (0, 1], and its
/// bucket in the ordering of [`one_to_one`].
#[derive(Clone, Copy, Debug, Default)]
struct LocalPair {
    s: f32,
    i: u16,
    j: u16,
    bucket: u16,
}

/// Buffers one match needs, kept per thread: a 1:N scan runs millions of
/// matches, and each used to allocate a dozen vectors.
#[derive(Default)]
struct Scratch {
    counts: Vec<PairCounts>,
    pairs: Vec<LocalPair>,
    sorted: Vec<LocalPair>,
    used_a: Vec<bool>,
    used_b: Vec<bool>,
    chosen: Vec<(f64, usize, usize)>,
    pa: Vec<Point>,
    pb: Vec<Point>,
    rho: Vec<f64>,
    start: Vec<f64>,
    lambda: Vec<f64>,
    next: Vec<f64>,
    order: Vec<usize>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Similarity buckets of the ordering in [`one_to_one`].
const BUCKETS: usize = 1024;

/// Greedy one-to-one assignment of the first `len` of `w.pairs` into `w.chosen`: pairs in
/// decreasing similarity, each minutia used once, up to min(na, nb) pairs.
/// `histogram[b + 1]` holds the number of pairs in bucket `b`.
///
/// Asking for min(na, nb) disjoint pairs walks through most of the pairs, so
/// they are ordered in full, by a counting sort on the similarity quantised
/// to 1/1024 (pairs in one bucket keep (i, j) order). A comparison sort of
/// the ~2,500 pairs of two typical templates took a third of the match time.
/// The pairs themselves are moved into order, so the walk reads them in
/// sequence.
fn one_to_one(w: &mut Scratch, len: usize, histogram: &mut [u32; BUCKETS + 1], na: usize, nb: usize) {
    for b in 0..BUCKETS {
        histogram[b + 1] += histogram[b];
    }
    if w.sorted.len() < len {
        w.sorted.resize(len, LocalPair::default());
    }
    for p in &w.pairs[..len] {
        let slot = &mut histogram[usize::from(p.bucket)];
        w.sorted[*slot as usize] = *p;
        *slot += 1;
    }
    let want = na.min(nb);
    w.used_a.clear();
    w.used_a.resize(na, false);
    w.used_b.clear();
    w.used_b.resize(nb, false);
    w.chosen.clear();
    for p in &w.sorted[..len] {
        let (i, j) = (usize::from(p.i), usize::from(p.j));
        if !w.used_a[i] && !w.used_b[j] {
            w.used_a[i] = true;
            w.used_b[j] = true;
            w.chosen.push((f64::from(p.s), i, j));
            if w.chosen.len() == want {
                break;
            }
        }
    }
}

/// Square roots of every popcount a cylinder pair can produce.
fn sqrt_table() -> &'static [f32; CYLINDER_BITS + 1] {
    static T: std::sync::OnceLock<[f32; CYLINDER_BITS + 1]> = std::sync::OnceLock::new();
    T.get_or_init(|| std::array::from_fn(|i| (i as f32).sqrt()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> Vec<Point> {
        let mut pts = Vec::new();
        let mut x = 12345u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 10_000) as f64 / 10_000.0
        };
        for _ in 0..40 {
            pts.push(Point {
                x: 300.0 * next(),
                y: 400.0 * next(),
                theta: std::f64::consts::TAU * next(),
            });
        }
        pts
    }

    #[test]
    fn a_template_matches_itself_rotated_and_moved() {
        let a = grid();
        let (s, c) = 1.0f64.sin_cos();
        let b: Vec<Point> = a
            .iter()
            .map(|p| Point {
                x: c * p.x - s * p.y + 40.0,
                y: s * p.x + c * p.y - 25.0,
                theta: (p.theta + 1.0).rem_euclid(std::f64::consts::TAU),
            })
            .collect();
        let m = FingerprintMatcher::default();
        let (ta, tb) = (FingerTemplate::from_points(&a), FingerTemplate::from_points(&b));
        assert!(ta.len() > 20);
        let same = m.score(&ta, &tb);
        assert!(same > 0.9, "{same}");
        let other: Vec<Point> = grid()
            .iter()
            .map(|p| Point {
                x: p.y,
                y: p.x,
                theta: p.theta,
            })
            .collect();
        let diff = m.score(&ta, &FingerTemplate::from_points(&other));
        assert!(diff < 0.3, "{diff}");
    }
}
