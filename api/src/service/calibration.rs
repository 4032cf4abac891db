//! Per-gallery score calibration: fitting, storing, and turning a target
//! false match rate into a threshold.
//!
//! A calibration belongs to one gallery ("face-512"), because scores of the
//! same modality at different dimensions, or from different populations,
//! have different impostor distributions. It is fitted either from the
//! gallery's own cross-subject pairs (a sample of records, every pair of
//! them scored by the same matcher that serves Verify) or from impostor
//! scores the client measured elsewhere, and is kept as JSON under
//! `data_dir/calibration/`, written atomically.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use biomatch_matcher::calibration::{self, Calibration};
use biomatch_matcher::fingerprint::{FingerTemplate, row_cylinders};
use biomatch_matcher::{Embedding, IrisTemplate, Modality};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::{GalleryKey, MatchService, Result, Scoring};
use crate::error::ServiceError;

/// Most records a gallery calibration may sample.
pub const MAX_SAMPLE: usize = 20_000;

/// What to fit a calibration from.
#[derive(Clone, Debug)]
pub struct CalibrateInput {
    /// The gallery's modality.
    pub modality: Modality,
    /// Its dimension; None picks the modality's only gallery.
    pub dim: Option<usize>,
    /// Records to sample; 0 means the modality's default.
    pub max_records: usize,
    /// Impostor and genuine scores given by the client, instead of the gallery.
    pub scores: Option<(Vec<f32>, Vec<f32>)>,
}

/// A stored calibration and where it came from.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GalleryCalibration {
    /// The gallery.
    pub gallery: String,
    /// The fit.
    pub calibration: Calibration,
    /// Records sampled; 0 when fitted from given scores.
    pub records_sampled: u64,
    /// When, in milliseconds since the Unix epoch.
    pub fitted_at_ms: u64,
}

/// Calibrations by gallery name, loaded at start and saved on every fit.
pub struct CalibrationStore {
    dir: PathBuf,
    by_gallery: RwLock<HashMap<String, Arc<GalleryCalibration>>>,
}

impl CalibrationStore {
    /// Loads every calibration in `dir` (created when missing). A file that
    /// cannot be read is logged and ignored: that gallery answers as
    /// uncalibrated until it is fitted again.
    pub fn open(dir: &Path) -> std::io::Result<CalibrationStore> {
        std::fs::create_dir_all(dir)?;
        let mut by_gallery = HashMap::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<GalleryCalibration>(&b).map_err(|e| e.to_string()))
                .and_then(|c| c.calibration.check().map(|()| c).map_err(|e| e.to_string()))
            {
                Ok(c) => {
                    by_gallery.insert(c.gallery.clone(), Arc::new(c));
                }
                Err(e) => warn!(file = %path.display(), error = %e, "calibration ignored"),
            }
        }
        Ok(CalibrationStore {
            dir: dir.to_path_buf(),
            by_gallery: RwLock::new(by_gallery),
        })
    }

    /// The calibration of `gallery`, if fitted.
    pub fn get(&self, gallery: &str) -> Option<Arc<GalleryCalibration>> {
        self.by_gallery.read().get(gallery).cloned()
    }

    /// Saves durably (temporary file, fsync, rename, directory fsync), then
    /// serves it.
    fn put(&self, c: GalleryCalibration) -> std::io::Result<Arc<GalleryCalibration>> {
        use std::io::Write;
        let path = self.dir.join(format!("{}.json", c.gallery));
        let tmp = self.dir.join(format!(".{}.json.tmp", c.gallery));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(&c).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        let c = Arc::new(c);
        self.by_gallery.write().insert(c.gallery.clone(), c.clone());
        Ok(c)
    }
}

/// Default records sampled per modality: enough pairs for FMR 1e-4 from
/// observed scores where scoring is cheap, fewer where it is not.
fn default_sample(modality: Modality) -> usize {
    match modality {
        Modality::Iris => 1500,
        Modality::Fingerprint => 600,
        _ => 3000,
    }
}

impl MatchService {
    /// The gallery key a calibration call names: by dimension, or the
    /// modality's only gallery.
    pub(super) fn calibration_key(&self, modality: Modality, dim: Option<usize>) -> Result<GalleryKey> {
        if modality == Modality::Multi {
            return Err(ServiceError::InvalidArgument(
                "MULTI has no gallery of its own; calibrate each modality's gallery".into(),
            ));
        }
        self.ensure_served(modality)?;
        if let Some(d) = dim.or(GalleryKey::fixed_dim(modality)) {
            return Ok(GalleryKey { modality, dim: d });
        }
        let keys: Vec<GalleryKey> = self.galleries_of(modality).into_iter().map(|(k, _)| k).collect();
        match keys.as_slice() {
            [k] => Ok(*k),
            [] => Err(ServiceError::NotFound(format!("there is no {modality} gallery"))),
            many => Err(ServiceError::InvalidArgument(format!(
                "{modality} has galleries of dimensions {}: give dimension",
                many.iter().map(|k| k.dim.to_string()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// Fits and stores a gallery's calibration.
    pub async fn calibrate(&self, input: CalibrateInput) -> Result<Arc<GalleryCalibration>> {
        let key = self.calibration_key(input.modality, input.dim)?;
        let given = input.scores.is_some();
        let (impostors, genuines, sampled) = match input.scores {
            Some((imp, gen_scores)) => (imp, gen_scores, 0),
            None => self.gallery_pair_scores(key, input.max_records).await?,
        };
        // Too few scores is the client's input when it gave them, and the
        // gallery's state (too few subjects yet) when it did not.
        let fit = self
            .pool
            .run(move |_| Calibration::fit(&impostors, &genuines))
            .await?
            .map_err(|e| {
                if given {
                    ServiceError::InvalidArgument(e.to_string())
                } else {
                    ServiceError::FailedPrecondition(format!("{e} (sample more records or enroll more subjects)"))
                }
            })?;
        let c = GalleryCalibration {
            gallery: key.name(),
            calibration: fit,
            records_sampled: sampled as u64,
            fitted_at_ms: biomatch_enrollment::now_ms(),
        };
        let store = self.calibrations.clone();
        let saved = tokio::task::spawn_blocking(move || store.put(c))
            .await
            .map_err(|e| ServiceError::Internal(format!("calibration writer failed: {e}")))?
            .map_err(|e| ServiceError::Internal(format!("cannot save calibration: {e}")))?;
        info!(
            gallery = %saved.gallery,
            impostors = saved.calibration.impostor.count,
            sampled,
            "calibration fitted"
        );
        Ok(saved)
    }

    /// Impostor and genuine scores of every pair among a sample of the
    /// gallery's records, spread evenly over its id order.
    async fn gallery_pair_scores(&self, key: GalleryKey, max_records: usize) -> Result<(Vec<f32>, Vec<f32>, usize)> {
        let want = match max_records {
            0 => default_sample(key.modality),
            n if n > MAX_SAMPLE => {
                return Err(ServiceError::InvalidArgument(format!(
                    "max_records {n} exceeds {MAX_SAMPLE}"
                )));
            }
            n => n,
        };
        let Some(g) = self.catalog.get(&key.name()).transpose()? else {
            return Err(ServiceError::NotFound(format!("there is no {} gallery", key.name())));
        };
        let version = self.cfg.iris_code_version.clone();
        let (iris, fingerprint, max_dim) = (self.iris.clone(), self.fingerprint, self.cfg.max_dimension);
        self.pool
            .run(move |_| {
                use rayon::prelude::*;
                let all = g.list(None, usize::MAX, None, false);
                let step = (all.len() as f64 / want as f64).max(1.0);
                let picked: Vec<(String, Vec<f32>)> = (0..want.min(all.len()))
                    .filter_map(|i| {
                        let meta = &all[(i as f64 * step) as usize].meta;
                        let row = g.get(&meta.record_id, true)?.vector?;
                        Some((meta.subject_id.clone(), row))
                    })
                    .collect();
                let scorers: Vec<Scoring> = picked
                    .iter()
                    .map(|(_, row)| -> Result<Scoring> {
                        Ok(match key.modality {
                            Modality::Iris => {
                                let t = IrisTemplate::from_row(row, &version);
                                Scoring::Iris(iris.clone(), iris.prepare(&t))
                            }
                            Modality::Fingerprint => Scoring::Fingerprint(
                                fingerprint,
                                FingerTemplate::from_codes(row_cylinders(row)?.into_owned()),
                            ),
                            m => Scoring::Embedding(Embedding::new(m, row.clone(), max_dim)?),
                        })
                    })
                    .collect::<Result<_>>()?;
                let per_probe: Vec<(Vec<f32>, Vec<f32>)> = (0..picked.len())
                    .into_par_iter()
                    .map(|i| {
                        let (mut imp, mut gen_scores) = (Vec::new(), Vec::new());
                        for (subject, row) in &picked[i + 1..] {
                            let s = scorers[i].score(row).0;
                            if *subject == picked[i].0 {
                                gen_scores.push(s)
                            } else {
                                imp.push(s)
                            }
                        }
                        (imp, gen_scores)
                    })
                    .collect();
                let (imp, gen_scores) = per_probe.into_iter().fold((Vec::new(), Vec::new()), |mut acc, (i, g)| {
                    acc.0.extend(i);
                    acc.1.extend(g);
                    acc
                });
                Ok((imp, gen_scores, picked.len()))
            })
            .await?
    }

    /// A gallery's calibration, or FAILED_PRECONDITION naming the call that
    /// fits it.
    pub fn calibration(&self, key: GalleryKey) -> Result<Arc<GalleryCalibration>> {
        self.calibrations.get(&key.name()).ok_or_else(|| {
            ServiceError::FailedPrecondition(format!(
                "gallery {} is not calibrated: call Calibrate (or `biomatch calibrate`) first",
                key.name()
            ))
        })
    }

    /// The calibration of a named modality's gallery, for GetCalibration.
    pub fn get_calibration(&self, modality: Modality, dim: Option<usize>) -> Result<Arc<GalleryCalibration>> {
        let key = self.calibration_key(modality, dim)?;
        self.calibrations
            .get(&key.name())
            .ok_or_else(|| ServiceError::NotFound(format!("gallery {} is not calibrated", key.name())))
    }

    /// The decision threshold for a probe of gallery `key`: the given one,
    /// the one for a target FMR, or the modality default.
    pub(crate) fn decision_threshold(
        &self,
        key: GalleryKey,
        threshold: Option<f32>,
        target_fmr: Option<f64>,
    ) -> Result<f32> {
        match (threshold, target_fmr) {
            (Some(_), Some(_)) => Err(ServiceError::InvalidArgument(
                "give threshold or target_fmr, not both".into(),
            )),
            (t, None) => self.threshold(key.modality, t),
            (None, Some(fmr)) => {
                calibration::check_target(fmr)?;
                Ok(self.calibration(key)?.calibration.threshold_for(fmr)?)
            }
        }
    }

    /// The false match rate of `score` in gallery `key`, when calibrated.
    pub(crate) fn score_fmr(&self, key: GalleryKey, score: f32) -> Option<f64> {
        self.calibrations.get(&key.name()).map(|c| c.calibration.fmr(score))
    }
}

impl MatchService {
    /// Fills in the SPRT score models a stream left to the calibration: the
    /// gallery's impostor and genuine score statistics.
    pub fn resolve_policy(&self, key: GalleryKey, policy: super::Policy) -> Result<super::Policy> {
        use super::Policy;
        if !policy.needs_models() {
            return policy.validated();
        }
        let cal = self.calibration(key)?;
        let c = &cal.calibration;
        let g = c.genuine.ok_or_else(|| {
            ServiceError::FailedPrecondition(format!(
                "gallery {} was calibrated without genuine pairs: give the SPRT genuine model, or calibrate with genuine scores",
                key.name()
            ))
        })?;
        let fill = |given: (f64, f64), fitted: (f64, f64)| if given.1 == 0.0 { fitted } else { given };
        match policy {
            Policy::Sprt {
                alpha,
                beta,
                genuine,
                impostor,
            } => Policy::Sprt {
                alpha,
                beta,
                genuine: fill(genuine, (g.mean, g.std)),
                impostor: fill(impostor, (c.impostor.mean, c.impostor.std)),
            }
            .validated(),
            p => p.validated(),
        }
    }
}
