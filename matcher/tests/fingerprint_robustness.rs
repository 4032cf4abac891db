//! The fingerprint matcher under the nuisances of real captures, on the
//! seeded synthetic generator: placement anywhere (rotation through +-180
//! degrees, translation), non-linear distortion, 30% missing and 20%
//! spurious minutiae, each alone and all together. Each condition scores 40
//! genuine pairs and 780 impostor pairs and must separate them.

use biomatch_datasets::metrics::VerificationStats;
use biomatch_datasets::{ImpressionNoise, SyntheticFingerprints, SyntheticMinutia};
use biomatch_matcher::fingerprint::geometry::Point;
use biomatch_matcher::fingerprint::{FingerTemplate, FingerprintMatcher};

const FINGERS: u64 = 40;

fn template(m: &[SyntheticMinutia]) -> FingerTemplate {
    let pts: Vec<Point> = m
        .iter()
        .map(|m| Point {
            x: m.x,
            y: m.y,
            theta: m.theta,
        })
        .collect();
    FingerTemplate::from_points(&pts)
}

/// Genuine: impressions 0 and 1 of each finger. Impostor: impression 0 of
/// one finger against impression 1 of another (every unordered pair).
fn run(noise: ImpressionNoise) -> VerificationStats {
    let g = SyntheticFingerprints { seed: 11 };
    let clean = ImpressionNoise {
        max_rotation_deg: 0.0,
        max_translation: 0.0,
        distortion: 0.0,
        missing: 0.0,
        spurious: 0.0,
        ..noise
    };
    let first: Vec<FingerTemplate> = (0..FINGERS).map(|f| template(&g.impression(f, 0, &clean))).collect();
    let second: Vec<FingerTemplate> = (0..FINGERS).map(|f| template(&g.impression(f, 1, &noise))).collect();
    let m = FingerprintMatcher::default();
    let (mut genuine, mut imp) = (Vec::new(), Vec::new());
    for (i, a) in first.iter().enumerate() {
        for (j, b) in second.iter().enumerate() {
            let s = f64::from(m.score(a, b));
            if i == j {
                genuine.push(s);
            } else if i < j {
                imp.push(s);
            }
        }
    }
    VerificationStats::new(&genuine, &imp)
}

fn base() -> ImpressionNoise {
    ImpressionNoise {
        max_rotation_deg: 0.0,
        max_translation: 0.0,
        distortion: 0.0,
        missing: 0.0,
        spurious: 0.0,
        position_jitter: 1.5,
        angle_jitter_deg: 5.0,
    }
}

#[test]
fn rotation_through_180_degrees_and_translation() {
    let s = run(ImpressionNoise {
        max_rotation_deg: 180.0,
        max_translation: 80.0,
        ..base()
    });
    assert_eq!(s.eer, 0.0, "{s:?}");
    assert_eq!(s.zero_fmr, 0.0, "{s:?}");
}

#[test]
fn non_linear_distortion() {
    let s = run(ImpressionNoise {
        distortion: 8.0,
        ..base()
    });
    assert_eq!(s.eer, 0.0, "{s:?}");
}

#[test]
fn missing_and_spurious_minutiae() {
    let s = run(ImpressionNoise {
        missing: 0.3,
        spurious: 0.2,
        ..base()
    });
    assert!(s.eer <= 0.0125, "{s:?}");
}

#[test]
fn all_nuisances_together() {
    let s = run(ImpressionNoise {
        max_rotation_deg: 180.0,
        max_translation: 80.0,
        distortion: 8.0,
        missing: 0.3,
        spurious: 0.2,
        ..base()
    });
    eprintln!("all nuisances: {s:?}");
    assert!(s.eer <= 0.05, "{s:?}");
    assert!(s.d_prime > 2.0, "{s:?}");
}
