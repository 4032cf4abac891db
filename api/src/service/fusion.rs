//! MULTI verification and identification: each modality scored in its own
//! gallery, normalised to a false match rate by that gallery's calibration,
//! and fused by the configured method (Stouffer's by default; see
//! [`biomatch_matcher::fusion`]).
//!
//! A modality the subject has no template for contributes no evidence: the
//! fused score is computed from the modalities present, and its meaning
//! (-log10 of the combined FMR) is the same whatever their number. A
//! subject with none of the probe's modalities is NOT_FOUND.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use biomatch_index::Gallery;
use biomatch_matcher::calibration::check_target;
use biomatch_matcher::fusion::FusionMethod;
use biomatch_matcher::{Modality, is_match};

use super::{GalleryCalibration, GalleryKey, IdentifyInput, MAX_TOP_K, MatchService, Result, Scoring, Template};
use crate::error::ServiceError;

/// Most parts a MULTI probe may have.
pub const MAX_PARTS: usize = 8;

/// One modality's part of a fused decision.
#[derive(Clone, Debug, PartialEq)]
pub struct ModalityPart {
    /// The gallery it was scored in.
    pub gallery: GalleryKey,
    /// False when the subject has no template there.
    pub present: bool,
    /// Best raw score of the subject's templates (0 when absent).
    pub score: f32,
    /// Its false match rate (1 when absent).
    pub fmr: f64,
    /// The record that gave it (empty when absent).
    pub record_id: String,
}

/// The outcome of a MULTI verification.
#[derive(Clone, Debug, PartialEq)]
pub struct FusedVerifyOutput {
    /// Fused score: -log10 of the combined false match rate.
    pub score: f32,
    /// The combined false match rate.
    pub fmr: f64,
    /// score >= threshold.
    pub matched: bool,
    /// The fused threshold used.
    pub threshold: f32,
    /// Per modality, in probe order.
    pub parts: Vec<ModalityPart>,
}

/// One candidate of a MULTI identification.
#[derive(Clone, Debug, PartialEq)]
pub struct FusedCandidate {
    /// The subject.
    pub subject_id: String,
    /// Fused score.
    pub score: f32,
    /// Combined false match rate.
    pub fmr: f64,
    /// Per modality, in probe order.
    pub parts: Vec<ModalityPart>,
}

/// The outcome of a MULTI identification.
#[derive(Clone, Debug, PartialEq)]
pub struct FusedIdentifyOutput {
    /// Candidates, best fused score first.
    pub candidates: Vec<FusedCandidate>,
}

impl MatchService {
    /// Checks a MULTI probe's parts: 1 to 8, one per gallery, each gallery
    /// calibrated.
    fn fusion_keys(&self, parts: &[Template]) -> Result<Vec<(GalleryKey, Arc<GalleryCalibration>)>> {
        if parts.is_empty() || parts.len() > MAX_PARTS {
            return Err(ServiceError::InvalidArgument(format!(
                "a MULTI probe needs 1 to {MAX_PARTS} parts; got {}",
                parts.len()
            )));
        }
        let keys: Vec<GalleryKey> = parts.iter().map(Template::key).collect();
        // Each calibration is read once per request, so that every subject
        // is judged by the same one even if a Calibrate call lands meanwhile.
        let mut out = Vec::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            if keys[..i].contains(k) {
                return Err(ServiceError::InvalidArgument(format!(
                    "MULTI probe has two parts for gallery {}; give one per modality",
                    k.name()
                )));
            }
            out.push((*k, self.calibration(*k)?));
        }
        Ok(out)
    }

    /// The fused decision threshold: given, by target FMR, or the configured
    /// MULTI default.
    fn fused_threshold(&self, threshold: Option<f32>, target_fmr: Option<f64>) -> Result<f32> {
        match (threshold, target_fmr) {
            (Some(_), Some(_)) => Err(ServiceError::InvalidArgument(
                "give threshold or target_fmr, not both".into(),
            )),
            (None, Some(fmr)) => {
                check_target(fmr)?;
                Ok(-fmr.log10() as f32)
            }
            (t, None) => self.threshold(Modality::Multi, t),
        }
    }

    /// The best score of `subject`'s records in `g` whose metadata holds
    /// every pair of `filter`, by a probe prepared once per call (a
    /// fingerprint probe's cylinders are not rebuilt per subject); None when
    /// it has none.
    async fn subject_best(
        &self,
        scoring: Arc<Scoring>,
        g: Arc<Gallery>,
        subject: &str,
        filter: &BTreeMap<String, String>,
    ) -> Result<Option<(String, f32)>> {
        let ids = g.subject_records(subject);
        let scores = self.score_records(scoring, g, ids, filter.clone()).await?;
        Ok(super::best_scored(scores).map(|(id, score, _)| (id, score)))
    }

    /// Verifies a subject on several modalities at once.
    pub async fn verify_multi(
        &self,
        parts: Vec<Template>,
        subject: String,
        threshold: Option<f32>,
        target_fmr: Option<f64>,
    ) -> Result<FusedVerifyOutput> {
        super::validate::id("subject_id", &subject)?;
        let keys = self.fusion_keys(&parts)?;
        let threshold = self.fused_threshold(threshold, target_fmr)?;
        let mut out = Vec::with_capacity(parts.len());
        for (probe, (key, cal)) in parts.into_iter().zip(&keys) {
            let best = match self.catalog.get(&key.name()).transpose()? {
                Some(g) => {
                    let scoring = Arc::new(self.scoring(probe).await?);
                    self.subject_best(scoring, g, &subject, &BTreeMap::new()).await?
                }
                None => None,
            };
            out.push(part(*key, cal, best));
        }
        if !out.iter().any(|p| p.present) {
            return Err(ServiceError::NotFound(format!(
                "subject {subject:?} has no template in any gallery of the probe ({})",
                keys.iter().map(|(k, _)| k.name()).collect::<Vec<_>>().join(", ")
            )));
        }
        Ok(fused_verify(self.cfg.fusion_method, out, threshold))
    }

    /// Searches several modalities' galleries and ranks subjects by fused
    /// score. Each modality's search shortlists `max(4 top_k, 50)` subjects;
    /// a shortlisted subject's other modalities are then scored directly, so
    /// a subject strong in one modality is judged on all of them.
    pub async fn identify_multi(
        &self,
        parts: Vec<Template>,
        top_k: usize,
        threshold: Option<f32>,
        target_fmr: Option<f64>,
        filter: BTreeMap<String, String>,
    ) -> Result<FusedIdentifyOutput> {
        let top_k = match top_k {
            0 => 10,
            k if k > MAX_TOP_K => {
                return Err(ServiceError::InvalidArgument(format!(
                    "top_k {k} exceeds the maximum of {MAX_TOP_K}"
                )));
            }
            k => k,
        };
        let keys = self.fusion_keys(&parts)?;
        let min_fused = match (threshold, target_fmr) {
            (None, None) => f32::NEG_INFINITY,
            (t, f) => self.fused_threshold(t, f)?,
        };
        let shortlist = (4 * top_k).clamp(50, MAX_TOP_K);
        // subject -> per part: best (record, score) when known from a search.
        let mut known: HashMap<String, Vec<Option<(String, f32)>>> = HashMap::new();
        for (i, probe) in parts.iter().enumerate() {
            let found = self
                .identify(IdentifyInput {
                    probe: probe.clone(),
                    top_k: shortlist,
                    threshold: None,
                    target_fmr: None,
                    filter: filter.clone(),
                    search: Default::default(),
                    penetration: None,
                })
                .await?;
            for c in found.candidates {
                known.entry(c.subject_id).or_insert_with(|| vec![None; parts.len()])[i] = Some((c.record_id, c.score));
            }
        }
        // Each part prepared once, for the subjects its search missed.
        let mut scorings: Vec<Option<Arc<Scoring>>> = vec![None; parts.len()];
        let mut candidates = Vec::with_capacity(known.len());
        for (subject, scores) in known {
            let mut fused_parts = Vec::with_capacity(parts.len());
            for (i, ((key, cal), score)) in keys.iter().zip(scores).enumerate() {
                let best = match score {
                    Some(s) => Some(s),
                    None => match self.catalog.get(&key.name()).transpose()? {
                        Some(g) => {
                            let scoring = match &scorings[i] {
                                Some(s) => s.clone(),
                                None => {
                                    let s = Arc::new(self.scoring(parts[i].clone()).await?);
                                    scorings[i] = Some(s.clone());
                                    s
                                }
                            };
                            self.subject_best(scoring, g, &subject, &filter).await?
                        }
                        None => None,
                    },
                };
                fused_parts.push(part(*key, cal, best));
            }
            let v = fused_verify(self.cfg.fusion_method, fused_parts, min_fused);
            if v.score >= min_fused {
                candidates.push(FusedCandidate {
                    subject_id: subject,
                    score: v.score,
                    fmr: v.fmr,
                    parts: v.parts,
                });
            }
        }
        candidates.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.subject_id.cmp(&b.subject_id))
        });
        candidates.truncate(top_k);
        Ok(FusedIdentifyOutput { candidates })
    }
}

/// One modality's part for a subject, by its best score or as absent.
fn part(key: GalleryKey, cal: &GalleryCalibration, best: Option<(String, f32)>) -> ModalityPart {
    match best {
        Some((record_id, score)) => ModalityPart {
            gallery: key,
            present: true,
            score,
            fmr: cal.calibration.fmr(score),
            record_id,
        },
        None => ModalityPart {
            gallery: key,
            present: false,
            score: 0.0,
            fmr: 1.0,
            record_id: String::new(),
        },
    }
}

/// Fuses the present parts.
fn fused_verify(method: FusionMethod, parts: Vec<ModalityPart>, threshold: f32) -> FusedVerifyOutput {
    let fmrs: Vec<f64> = parts.iter().filter(|p| p.present).map(|p| p.fmr).collect();
    let fused = method.fused_score(&fmrs);
    let score = fused as f32;
    FusedVerifyOutput {
        score,
        fmr: 10f64.powf(-fused),
        matched: is_match(score, threshold),
        threshold,
        parts,
    }
}
