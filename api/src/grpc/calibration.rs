//! Conversions for calibration and MULTI (fused) requests and answers.

use biomatch_matcher::calibration::Calibration as Fit;
use biomatch_proto::v1 as pb;

use super::convert;
use crate::error::ServiceError;
use crate::service::{
    CalibrateInput, FusedCandidate, FusedVerifyOutput, GalleryCalibration, MatchService, ModalityPart, Template,
};

/// FMRs every calibration answer reports a threshold for.
const REPORTED_FMRS: [f64; 5] = [1e-2, 1e-3, 1e-4, 1e-5, 1e-6];

/// The parts of a MULTI probe, when `t` is one; None for a single-modality
/// template (which the caller converts as usual).
pub fn multi_parts(
    svc: &MatchService,
    t: &Option<pb::Template>,
    field: &str,
) -> Result<Option<Vec<Template>>, ServiceError> {
    let Some(t) = t else { return Ok(None) };
    let multi = match (&t.kind, t.modality == pb::Modality::Multi as i32) {
        (Some(pb::template::Kind::Multi(m)), true) => m,
        (Some(pb::template::Kind::Multi(_)), false) => {
            return Err(ServiceError::InvalidArgument(format!(
                "{field}: a multi template needs modality MULTI"
            )));
        }
        (_, true) => {
            return Err(ServiceError::InvalidArgument(format!(
                "{field}: MULTI templates must carry multi (a MultiTemplate)"
            )));
        }
        (_, false) => return Ok(None),
    };
    multi
        .parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let name = format!("{field}.multi.parts[{i}]");
            if p.modality == pb::Modality::Multi as i32 {
                return Err(ServiceError::InvalidArgument(format!(
                    "{name} is MULTI; parts must be single modalities"
                )));
            }
            convert::template(svc, Some(p.clone()), &name).map(|(t, _)| t)
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// A calibration request as the service input.
pub fn calibrate_input(r: pb::CalibrateRequest) -> Result<CalibrateInput, ServiceError> {
    let scores = if r.impostor_scores.is_empty() {
        if !r.genuine_scores.is_empty() {
            return Err(ServiceError::InvalidArgument(
                "genuine_scores need impostor_scores to go with them".into(),
            ));
        }
        None
    } else {
        Some((r.impostor_scores, r.genuine_scores))
    };
    Ok(CalibrateInput {
        modality: convert::modality(r.modality, "modality")?,
        dim: (r.dimension > 0).then_some(r.dimension as usize),
        max_records: r.max_records as usize,
        scores,
    })
}

fn summary(s: biomatch_matcher::calibration::ScoreStats) -> pb::ScoreSummary {
    pb::ScoreSummary {
        count: s.count,
        mean: s.mean,
        std: s.std,
    }
}

/// A stored calibration as the proto message.
pub fn calibration_to_pb(c: &GalleryCalibration) -> pb::Calibration {
    let fit: &Fit = &c.calibration;
    pb::Calibration {
        gallery: c.gallery.clone(),
        impostor: Some(summary(fit.impostor)),
        genuine: fit.genuine.map(summary),
        max_impostor: fit.max_impostor,
        empirical_floor: fit.empirical_floor(),
        thresholds: REPORTED_FMRS
            .iter()
            .filter_map(|&fmr| {
                fit.threshold_for(fmr).ok().map(|threshold| pb::FmrThreshold {
                    fmr,
                    threshold,
                    extrapolated: fmr < fit.empirical_floor(),
                })
            })
            .collect(),
        records_sampled: c.records_sampled,
        fitted_at_ms: c.fitted_at_ms,
    }
}

fn part_to_pb(p: ModalityPart) -> pb::ModalityScore {
    pb::ModalityScore {
        modality: convert::modality_to_pb(p.gallery.modality) as i32,
        gallery: p.gallery.name(),
        present: p.present,
        score: p.score,
        fmr: p.fmr,
        record_id: p.record_id,
    }
}

/// The record of the present modality with the lowest FMR (the strongest
/// evidence); empty when none is present.
fn strongest_record(parts: &[ModalityPart]) -> String {
    parts
        .iter()
        .filter(|p| p.present)
        .min_by(|a, b| a.fmr.total_cmp(&b.fmr))
        .map(|p| p.record_id.clone())
        .unwrap_or_default()
}

/// A fused verification as the Verify answer.
pub fn fused_verify_to_pb(v: FusedVerifyOutput) -> pb::VerifyResponse {
    pb::VerifyResponse {
        score: v.score,
        r#match: v.matched,
        threshold: v.threshold,
        record_id: strongest_record(&v.parts),
        compared: v.parts.iter().filter(|p| p.present).count() as u32,
        distance: 0.0,
        rotation: 0,
        fmr: Some(v.fmr),
        modalities: v.parts.into_iter().map(part_to_pb).collect(),
    }
}

/// A fused candidate as the Identify answer's candidate; its record is the
/// strongest modality's.
pub fn fused_candidate_to_pb(c: FusedCandidate, rank: u32) -> pb::Candidate {
    pb::Candidate {
        record_id: strongest_record(&c.parts),
        subject_id: c.subject_id,
        score: c.score,
        rank,
        distance: 0.0,
        rotation: 0,
        fmr: Some(c.fmr),
        modalities: c.parts.into_iter().map(part_to_pb).collect(),
    }
}
