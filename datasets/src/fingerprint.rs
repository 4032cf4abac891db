//! Synthetic fingerprint minutiae with the nuisances real captures have.
//!
//! A finger is a set of minutiae spread over an elliptical print (a minimum
//! spacing, like ridges impose) whose directions follow a smooth orientation
//! field with one core and one delta (the Sherlock-Monro zero-pole model),
//! each minutia pointing one way or the other along its ridge. An impression
//! of the finger moves and rotates it, bends it with a smooth displacement
//! field (skin is elastic), jitters positions and directions, loses some
//! minutiae and gains spurious ones. Coordinates are pixels at 500 ppi with y
//! pointing up; directions are radians counter-clockwise from the x axis.
//! Everything is deterministic by seed.

use std::f64::consts::{PI, TAU};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

/// One minutia.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SyntheticMinutia {
    /// x in pixels.
    pub x: f64,
    /// y in pixels, upwards.
    pub y: f64,
    /// Direction in radians, [0, 2 pi).
    pub theta: f64,
}

/// How impressions differ from the finger.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ImpressionNoise {
    /// Rotation drawn uniformly from +-this many degrees.
    pub max_rotation_deg: f64,
    /// Translation drawn uniformly from +-this many pixels on each axis.
    pub max_translation: f64,
    /// Amplitude in pixels of the smooth non-linear displacement.
    pub distortion: f64,
    /// Share of the finger's minutiae missing from an impression.
    pub missing: f64,
    /// Spurious minutiae added, as a share of the finger's count.
    pub spurious: f64,
    /// Standard deviation of position jitter, pixels.
    pub position_jitter: f64,
    /// Standard deviation of direction jitter, degrees.
    pub angle_jitter_deg: f64,
}

impl Default for ImpressionNoise {
    /// A plain live-scan capture: any placement, mild distortion and noise.
    fn default() -> Self {
        ImpressionNoise {
            max_rotation_deg: 180.0,
            max_translation: 60.0,
            distortion: 4.0,
            missing: 0.15,
            spurious: 0.1,
            position_jitter: 1.5,
            angle_jitter_deg: 5.0,
        }
    }
}

/// A seeded generator of fingers and their impressions.
#[derive(Clone, Copy, Debug)]
pub struct SyntheticFingerprints {
    /// Seed of everything.
    pub seed: u64,
}

impl SyntheticFingerprints {
    /// The minutiae of finger `finger` (same seed and finger: same minutiae).
    pub fn finger(&self, finger: u64) -> Vec<SyntheticMinutia> {
        let mut rng = StdRng::seed_from_u64(self.seed ^ finger.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let (w, h): (f64, f64) = (rng.random_range(220.0..280.0), rng.random_range(300.0..360.0));
        let core = (rng.random_range(-30.0..30.0), rng.random_range(0.0..60.0));
        let delta = (
            core.0 + rng.random_range(-90.0..90.0),
            core.1 - rng.random_range(100.0..160.0),
        );
        let base = rng.random_range(-0.3..0.3);
        let want = rng.random_range(35..60);
        let mut pts: Vec<SyntheticMinutia> = Vec::with_capacity(want);
        let mut tries = 0;
        while pts.len() < want && tries < 20_000 {
            tries += 1;
            let (x, y) = (rng.random_range(-w / 2.0..w / 2.0), rng.random_range(-h / 2.0..h / 2.0));
            if (x / (w / 2.0)).powi(2) + (y / (h / 2.0)).powi(2) > 1.0 {
                continue;
            }
            if pts.iter().any(|p| (p.x - x).hypot(p.y - y) < 14.0) {
                continue;
            }
            let orientation =
                base + 0.5 * ((y - core.1).atan2(x - core.0) - (y - delta.1).atan2(x - delta.0)) + PI / 2.0;
            let theta = (orientation + if rng.random_bool(0.5) { PI } else { 0.0 }).rem_euclid(TAU);
            pts.push(SyntheticMinutia { x, y, theta });
        }
        pts
    }

    /// Impression `n` of `finger` under `noise`.
    pub fn impression(&self, finger: u64, n: u64, noise: &ImpressionNoise) -> Vec<SyntheticMinutia> {
        let master = self.finger(finger);
        let mut rng = StdRng::seed_from_u64(
            self.seed ^ finger.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (n + 1).wrapping_mul(0xc2b2_ae3d_27d4_eb4f),
        );
        let jitter = Normal::new(0.0, noise.position_jitter.max(1e-9)).expect("finite sigma");
        let ajitter = Normal::new(0.0, noise.angle_jitter_deg.max(1e-9).to_radians()).expect("finite sigma");
        let rot = rng.random_range(-1.0..=1.0) * noise.max_rotation_deg.to_radians();
        let (tx, ty) = (
            rng.random_range(-1.0..=1.0) * noise.max_translation,
            rng.random_range(-1.0..=1.0) * noise.max_translation,
        );
        // A smooth displacement: two low-frequency waves per axis.
        let (p1, p2, p3, p4) = (
            rng.random_range(0.0..TAU),
            rng.random_range(0.0..TAU),
            rng.random_range(0.0..TAU),
            rng.random_range(0.0..TAU),
        );
        let bend = |x: f64, y: f64| {
            (
                noise.distortion * (x / 90.0 + p1).sin() * (y / 110.0 + p2).cos(),
                noise.distortion * (y / 85.0 + p3).sin() * (x / 120.0 + p4).cos(),
            )
        };
        let mut out = Vec::with_capacity(master.len());
        for m in &master {
            if rng.random_bool(noise.missing.clamp(0.0, 1.0)) {
                continue;
            }
            let (dx, dy) = bend(m.x, m.y);
            out.push(SyntheticMinutia {
                x: m.x + dx + jitter.sample(&mut rng),
                y: m.y + dy + jitter.sample(&mut rng),
                theta: m.theta + ajitter.sample(&mut rng),
            });
        }
        let spurious = (noise.spurious * master.len() as f64).round() as usize;
        let (xmin, xmax) = master
            .iter()
            .fold((f64::MAX, f64::MIN), |a, m| (a.0.min(m.x), a.1.max(m.x)));
        let (ymin, ymax) = master
            .iter()
            .fold((f64::MAX, f64::MIN), |a, m| (a.0.min(m.y), a.1.max(m.y)));
        for _ in 0..spurious {
            out.push(SyntheticMinutia {
                x: rng.random_range(xmin..=xmax),
                y: rng.random_range(ymin..=ymax),
                theta: rng.random_range(0.0..TAU),
            });
        }
        let (s, c) = rot.sin_cos();
        for m in &mut out {
            let (x, y) = (m.x, m.y);
            m.x = c * x - s * y + tx;
            m.y = s * x + c * y + ty;
            m.theta = (m.theta + rot).rem_euclid(TAU);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_shaped_as_promised() {
        let g = SyntheticFingerprints { seed: 5 };
        assert_eq!(g.finger(3), g.finger(3));
        assert_ne!(g.finger(3), g.finger(4));
        let f = g.finger(3);
        assert!((35..60).contains(&f.len()), "{}", f.len());
        let noise = ImpressionNoise {
            missing: 0.3,
            spurious: 0.2,
            ..Default::default()
        };
        let i = g.impression(3, 1, &noise);
        assert_eq!(i, g.impression(3, 1, &noise));
        // About 70% kept plus 20% spurious.
        let expect = 0.9 * f.len() as f64;
        assert!(
            (i.len() as f64 - expect).abs() < 0.25 * f.len() as f64,
            "{} vs {expect}",
            i.len()
        );
    }
}
