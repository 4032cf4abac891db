//! Split-half check of score calibration on a set's own scores: fit a
//! [`Calibration`] on every other impostor score, then measure, on the
//! impostors it never saw, the FMR at the thresholds it gives for target
//! FMRs of 1e-2 to 1e-6. This is what a client deciding by `target_fmr`
//! gets on that population.

use biomatch_datasets::metrics::{fmr_fnmr, sorted};
use biomatch_matcher::Calibration;
use biomatch_matcher::calibration::MIN_IMPOSTORS;
use serde_json::json;

/// Targets checked.
const TARGETS: [f64; 5] = [1e-2, 1e-3, 1e-4, 1e-5, 1e-6];

/// The check as JSON, or None when there are too few impostors to split.
/// A target is measured only when the held-out half has at least ten
/// impostors' worth of it (n * target >= 10); below that it is reported
/// with `measured_fmr: null`.
pub fn calibration_check(genuine: &[f64], impostor: &[f64]) -> Option<serde_json::Value> {
    if impostor.len() < 2 * MIN_IMPOSTORS {
        return None;
    }
    let fit: Vec<f32> = impostor.iter().step_by(2).map(|&s| s as f32).collect();
    let held: Vec<f64> = impostor.iter().skip(1).step_by(2).copied().collect();
    let gen_f32: Vec<f32> = genuine.iter().map(|&s| s as f32).collect();
    let cal = Calibration::fit(&fit, &gen_f32).ok()?;
    let (g, i) = (sorted(genuine), sorted(&held));
    let rows: Vec<_> = TARGETS
        .iter()
        .filter_map(|&target| {
            let t = cal.threshold_for(target).ok()?;
            let (fmr, fnmr) = fmr_fnmr(&g, &i, f64::from(t));
            let measurable = held.len() as f64 * target >= 10.0;
            Some(json!({
                "target_fmr": target,
                "threshold": t,
                "extrapolated": target < cal.empirical_floor(),
                "measured_fmr": measurable.then_some(fmr),
                "fnmr": fnmr,
            }))
        })
        .collect();
    Some(json!({
        "protocol": "fit on even-indexed impostor scores, measure on the odd-indexed ones",
        "fit_impostors": fit.len(),
        "held_out_impostors": held.len(),
        "empirical_floor": cal.empirical_floor(),
        "targets": rows,
    }))
}
