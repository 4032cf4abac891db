//! Plane geometry the cylinder code needs: angle arithmetic, the convex hull
//! of the minutiae and the distance of a point from it.

use std::f64::consts::{PI, TAU};

/// A minutia in matcher coordinates: pixels at 500 ppi, y pointing up, so
/// that a direction measured counter-clockwise from the x axis (as ISO
/// records it) turns the same way as the positions when a print rotates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// x in pixels.
    pub x: f64,
    /// y in pixels, upwards.
    pub y: f64,
    /// Direction in radians, [0, 2 pi).
    pub theta: f64,
}

/// The difference of two angles, wrapped to [-pi, pi).
pub fn angle_diff(a: f64, b: f64) -> f64 {
    let x = a - b;
    // Differences of angles in [0, 2 pi) or [-pi, pi) lie within one turn,
    // where `rem_euclid` is `x` or `x + TAU` (its `x % TAU` is exact here):
    // the branch gives the same bits without the libm `fmod` call, which cost
    // 3% of building a template.
    let d = if x.abs() < TAU {
        if x < 0.0 { x + TAU } else { x }
    } else {
        x.rem_euclid(TAU)
    };
    if d >= PI { d - TAU } else { d }
}

/// The convex hull of `pts`, counter-clockwise, without repeated points
/// (Andrew's monotone chain).
pub fn convex_hull(pts: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut p: Vec<(f64, f64)> = pts.to_vec();
    p.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    p.dedup();
    if p.len() < 3 {
        return p;
    }
    let cross = |o: (f64, f64), a: (f64, f64), b: (f64, f64)| (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0);
    let mut hull: Vec<(f64, f64)> = Vec::with_capacity(2 * p.len());
    for pass in 0..2 {
        let start = hull.len();
        let iter: Box<dyn Iterator<Item = &(f64, f64)>> = if pass == 0 {
            Box::new(p.iter())
        } else {
            Box::new(p.iter().rev())
        };
        for &q in iter {
            while hull.len() >= start + 2 && cross(hull[hull.len() - 2], hull[hull.len() - 1], q) <= 0.0 {
                hull.pop();
            }
            hull.push(q);
        }
        hull.pop();
    }
    hull
}

/// True when `q` lies inside the counter-clockwise `hull` or within `margin`
/// of its boundary (the hull grown by `margin`).
pub fn near_hull(hull: &[(f64, f64)], q: (f64, f64), margin: f64) -> bool {
    GrownHull::new(hull, margin).contains(q)
}

/// A hull edge: (start, direction, squared length).
type Edge = ((f64, f64), (f64, f64), f64);

/// A convex hull grown by a margin, prepared for many point queries: a
/// cylinder asks about 256 cells per minutia, so the edges, their lengths
/// and a bounding box are computed once per template.
#[derive(Clone, Debug)]
pub struct GrownHull {
    /// Edges, counter-clockwise.
    edges: Vec<Edge>,
    /// The single hull point when the hull is one point.
    point: Option<(f64, f64)>,
    /// Bounding box of the hull grown by the margin: (min x, min y, max x, max y).
    bbox: (f64, f64, f64, f64),
    /// Whether the hull has an inside (three points or more).
    has_inside: bool,
    /// The squared margin.
    m2: f64,
    /// Per edge, the bound on its squared cross product beyond which a
    /// point lies farther than the margin from the edge's line.
    far: Vec<f64>,
}

impl GrownHull {
    /// Prepares `hull` (counter-clockwise, as [`convex_hull`] returns it).
    pub fn new(hull: &[(f64, f64)], margin: f64) -> GrownHull {
        let n = hull.len();
        let edges = if n >= 2 {
            (0..n)
                .map(|i| {
                    let (a, b) = (hull[i], hull[(i + 1) % n]);
                    let d = (b.0 - a.0, b.1 - a.1);
                    (a, d, d.0 * d.0 + d.1 * d.1)
                })
                .collect()
        } else {
            Vec::new()
        };
        // The slack keeps the box from refusing a point that rounding would
        // put exactly on the grown boundary.
        let grow = margin + 1e-9;
        let bbox = hull.iter().fold(
            (f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY),
            |b, p| {
                (
                    b.0.min(p.0 - grow),
                    b.1.min(p.1 - grow),
                    b.2.max(p.0 + grow),
                    b.3.max(p.1 + grow),
                )
            },
        );
        let far = edges
            .iter()
            .map(|e: &Edge| margin * margin * e.2 * (1.0 + 1e-9))
            .collect();
        GrownHull {
            edges,
            far,
            point: (n == 1).then(|| hull[0]),
            bbox,
            has_inside: n >= 3,
            m2: margin * margin,
        }
    }

    /// How deep `q` lies inside the hull: its distance from the nearest edge
    /// line, negative outside; minus infinity for a hull without an inside.
    /// Every point within `depth + margin` of `q` is in the grown hull.
    pub fn depth(&self, q: (f64, f64)) -> f64 {
        if !self.has_inside {
            return f64::NEG_INFINITY;
        }
        self.edges
            .iter()
            .filter(|e| e.2 > 0.0)
            .map(|&(a, d, len2)| (d.0 * (q.1 - a.1) - d.1 * (q.0 - a.0)) / len2.sqrt())
            .fold(f64::INFINITY, f64::min)
    }

    /// True when `q` is inside the hull or within the margin of it.
    pub fn contains(&self, q: (f64, f64)) -> bool {
        let (x0, y0, x1, y1) = self.bbox;
        if !(q.0 >= x0 && q.0 <= x1 && q.1 >= y0 && q.1 <= y1) {
            return false;
        }
        if let Some(p) = self.point {
            return dist2(p, q) <= self.m2;
        }
        if !self.has_inside {
            // Two points: one edge each way, no inner side to test.
            return self
                .edges
                .iter()
                .any(|&(a, d, len2)| segment_dist2(a, d, len2, q) <= self.m2);
        }
        // One pass over the edges: inside when on the inner side of all;
        // out for sure when farther than the margin beyond any edge's line
        // (the distance to a convex hull is at least that), which settles
        // most cells far outside early. Outside a convex polygon the nearest
        // boundary point lies on an edge whose line `q` is beyond, so only
        // those edges need the segment distance, with its division.
        let (mut inside, mut near) = (true, false);
        for (&(a, d, len2), &far) in self.edges.iter().zip(&self.far) {
            let cross = d.0 * (q.1 - a.1) - d.1 * (q.0 - a.0);
            if cross < 0.0 {
                if cross * cross > far {
                    return false;
                }
                inside = false;
                near = near || segment_dist2(a, d, len2, q) <= self.m2;
            }
        }
        inside || near
    }
}

fn dist2(a: (f64, f64), b: (f64, f64)) -> f64 {
    (a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)
}

fn segment_dist2(a: (f64, f64), (dx, dy): (f64, f64), len2: f64, q: (f64, f64)) -> f64 {
    let t = if len2 == 0.0 {
        0.0
    } else {
        (((q.0 - a.0) * dx + (q.1 - a.1) * dy) / len2).clamp(0.0, 1.0)
    };
    dist2((a.0 + t * dx, a.1 + t * dy), q)
}

/// The error function (Abramowitz and Stegun 7.1.26, |error| < 1.5e-7),
/// enough for the angular contributions, which are thresholded.
pub fn erf(x: f64) -> f64 {
    let s = x.signum();
    let x = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t + 0.254_829_592)
            * t
            * (-x * x).exp();
    s * y
}

/// The logistic function used throughout MCC: 1 / (1 + e^(-tau (v - mu))).
pub fn sigmoid(v: f64, mu: f64, tau: f64) -> f64 {
    1.0 / (1.0 + (-tau * (v - mu)).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn angles_wrap_into_half_open_range() {
        assert!((angle_diff(0.1, TAU - 0.1) - 0.2).abs() < 1e-12);
        assert!((angle_diff(TAU - 0.1, 0.1) + 0.2).abs() < 1e-12);
        assert_eq!(angle_diff(PI, 0.0), -PI);
    }

    #[test]
    fn hull_and_margin() {
        let h = convex_hull(&[(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0), (5.0, 5.0)]);
        assert_eq!(h.len(), 4);
        assert!(near_hull(&h, (5.0, 5.0), 0.0));
        assert!(!near_hull(&h, (15.0, 5.0), 4.9));
        assert!(near_hull(&h, (15.0, 5.0), 5.0));
    }

    #[test]
    fn the_branch_form_of_angle_diff_equals_rem_euclid() {
        let reference = |a: f64, b: f64| {
            let d = (a - b).rem_euclid(TAU);
            if d >= PI { d - TAU } else { d }
        };
        let mut next = crate::test_uniform(7);
        for _ in 0..200_000 {
            let (a, b) = (TAU * next(), TAU * next());
            assert_eq!(angle_diff(a, b).to_bits(), reference(a, b).to_bits(), "{a} {b}");
            // Outside one turn the general path is taken.
            let (a, b) = (40.0 * next() - 20.0, 40.0 * next() - 20.0);
            assert_eq!(angle_diff(a, b).to_bits(), reference(a, b).to_bits(), "{a} {b}");
        }
    }

    #[test]
    fn the_grown_hull_equals_the_distance_to_every_edge() {
        // The definition: inside the polygon, or within the margin of some
        // edge, checking every edge.
        let definition = |hull: &[(f64, f64)], q: (f64, f64), margin: f64| {
            let n = hull.len();
            let edge = |i: usize| {
                let (a, b) = (hull[i], hull[(i + 1) % n]);
                let d = (b.0 - a.0, b.1 - a.1);
                (a, d, d.0 * d.0 + d.1 * d.1)
            };
            let inside = n >= 3
                && (0..n).all(|i| {
                    let (a, d, _) = edge(i);
                    d.0 * (q.1 - a.1) - d.1 * (q.0 - a.0) >= 0.0
                });
            inside
                || (0..n).any(|i| {
                    let (a, d, len2) = edge(i);
                    segment_dist2(a, d, len2, q) <= margin * margin
                })
        };
        let mut next = crate::test_uniform(11);
        let mut near = 0;
        for round in 0..200 {
            let count = if round % 10 == 0 { 2 } else { 3 + round % 30 };
            let pts: Vec<(f64, f64)> = (0..count).map(|_| (300.0 * next(), 400.0 * next())).collect();
            let hull = convex_hull(&pts);
            let grown = GrownHull::new(&hull, 50.0);
            for _ in 0..500 {
                let q = (500.0 * next() - 100.0, 600.0 * next() - 100.0);
                let want = definition(&hull, q, 50.0);
                assert_eq!(grown.contains(q), want, "{hull:?} {q:?}");
                near += usize::from(want);
            }
        }
        assert!(near > 20_000 && near < 90_000, "{near}");
    }

    #[test]
    fn erf_is_accurate_enough() {
        for (x, want) in [
            (0.0, 0.0),
            (0.5, 0.520_499_877_8),
            (1.0, 0.842_700_792_9),
            (-2.0, -0.995_322_265),
        ] {
            assert!((erf(x) - want).abs() < 2e-7, "{x}");
        }
    }
}
