//! The service layer: every matching operation, independent of transport.
//!
//! Adapters (gRPC now, REST later) validate and convert their messages into
//! the domain types of [`types`], call one method here, and convert back.
//! CPU-heavy work runs on the [`SearchPool`]; blocking file I/O (log appends
//! with fsync, compaction) on tokio's blocking threads; neither ever runs on
//! an async worker.

mod ann;
pub mod calibration;
mod fusion;
mod stream;
pub mod types;
pub mod validate;

use std::collections::BTreeMap;
use std::sync::Arc;

use biomatch_index::{Catalog, Entry, Gallery, NewRecord, RecordMeta, RowScorer, Search};
use biomatch_matcher::fingerprint::{
    FINGER_ROW_WORDS, FingerRecord, FingerTemplate, FingerprintMatcher, FingerprintTemplate, ScreenProbe, row_cylinders,
};
use biomatch_matcher::iris::{IRIS_ROW_WORDS, PreparedIris};
use biomatch_matcher::{Embedding, IrisMatch, IrisMatchConfig, IrisMatcher, IrisTemplate, Modality, is_match};
use tracing::{info, warn};

use crate::config::MatchingConfig;
use crate::error::ServiceError;
use crate::pool::SearchPool;
use ann::screen_shortlist;
pub use ann::{EraseClock, MAX_EF, MAX_OVERSAMPLE, MIN_SHORTLIST, OptimizeOutput};
pub use calibration::{CalibrateInput, CalibrationStore, GalleryCalibration};
pub use fusion::{FusedCandidate, FusedIdentifyOutput, FusedVerifyOutput, MAX_PARTS, ModalityPart};
pub use stream::{MAX_WINDOW, Policy, PolicyState, StreamOutcome, StreamStep};
pub use types::*;

/// Largest `top_k` an Identify may ask for.
pub const MAX_TOP_K: usize = 1000;

/// The matching service shared by all adapters.
pub struct MatchService {
    catalog: Arc<Catalog>,
    pool: SearchPool,
    cfg: MatchingConfig,
    iris: Arc<IrisMatcher>,
    fingerprint: FingerprintMatcher,
    calibrations: Arc<CalibrationStore>,
}

/// An Identify that scans at most this many rows exactly (the rest from
/// graphs) runs without waiting for its turn at the whole pool.
const UNGATED_SCAN_ROWS: usize = 65_536;

/// A batch of at least this many records for one gallery (an enrollment
/// job's batch, a large EnrollStream batch) is written as a segment of its
/// own (`Gallery::insert_bulk`) instead of through the log. Smaller ones
/// go through the log: as segments of their own they would leave thousands
/// of small segments behind a large import (nothing merges them until an
/// optimisation or compaction rewrites them).
const BULK_SEGMENT_RECORDS: usize = 4096;

/// Records validated and turned into gallery rows by
/// [`MatchService::prepare_batch`], waiting for
/// [`MatchService::commit_batch`].
pub struct PreparedBatch {
    /// Records in the batch.
    n: usize,
    /// Rows by gallery, with their positions in the batch.
    groups: BTreeMap<GalleryKey, Vec<(usize, NewRecord)>>,
    /// Records refused while preparing, with their positions.
    failed: Vec<(usize, ServiceError)>,
}

/// Scores iris rows by 1 - Hamming distance for a prepared probe.
struct IrisScorer<'a> {
    matcher: &'a IrisMatcher,
    probe: &'a PreparedIris,
}

impl RowScorer for IrisScorer<'_> {
    fn score_rows(&self, rows: &[f32], out: &mut [f32], bound: f32) {
        let cutoff = IrisMatch::cutoff_for_score(bound);
        for (o, row) in out.iter_mut().zip(rows.chunks_exact(IRIS_ROW_WORDS)) {
            *o = match self.matcher.compare_row_within(self.probe, row, cutoff) {
                Some(r) => r.similarity(),
                None => f32::NEG_INFINITY,
            };
        }
    }
}

/// Scores fingerprint rows by the MCC similarity to a prepared probe.
struct FingerScorer<'a> {
    matcher: FingerprintMatcher,
    probe: &'a FingerTemplate,
}

impl RowScorer for FingerScorer<'_> {
    fn score_rows(&self, rows: &[f32], out: &mut [f32], _bound: f32) {
        for (o, row) in out.iter_mut().zip(rows.chunks_exact(FINGER_ROW_WORDS)) {
            *o = finger_score(self.matcher, self.probe, row);
        }
    }
}

/// Ranks stored fingerprint rows by the screen (see
/// `biomatch_matcher::fingerprint::screen`) ahead of the full matcher.
struct FingerScreen {
    probe: ScreenProbe,
}

impl RowScorer for FingerScreen {
    fn score_rows(&self, rows: &[f32], out: &mut [f32], _bound: f32) {
        for (o, row) in out.iter_mut().zip(rows.chunks_exact(FINGER_ROW_WORDS)) {
            *o = match row_cylinders(row) {
                Ok(codes) => self.probe.score(&codes),
                Err(_) => f32::NEG_INFINITY,
            };
        }
    }
}

/// The similarity of a prepared probe and a stored fingerprint row. Rows
/// come from checksummed segments or the log, so an unreadable one means a
/// bug, not bad input: it is logged and scores as no match.
fn finger_score(m: FingerprintMatcher, probe: &FingerTemplate, row: &[f32]) -> f32 {
    match row_cylinders(row) {
        Ok(codes) => m.score_codes(probe.codes(), &codes),
        Err(e) => {
            warn!(error = %e, "unreadable fingerprint row scored as no match");
            f32::NEG_INFINITY
        }
    }
}

/// A probe ready to score stored rows of its gallery.
enum Scoring {
    Embedding(Embedding),
    Iris(Arc<IrisMatcher>, PreparedIris),
    Fingerprint(FingerprintMatcher, FingerTemplate),
}

impl Scoring {
    /// (score, iris detail) of one stored row.
    fn score(&self, row: &[f32]) -> (f32, Option<IrisMatch>) {
        match self {
            Scoring::Embedding(e) => (biomatch_kernels::Kernels::active().dot(e.values(), row), None),
            Scoring::Iris(m, p) => {
                let r = m.compare_row(p, row);
                (r.similarity(), Some(r))
            }
            Scoring::Fingerprint(m, p) => (finger_score(*m, p, row), None),
        }
    }
}

type Result<T, E = ServiceError> = std::result::Result<T, E>;

impl MatchService {
    /// A service over `catalog`, scoring on `pool`, with the calibrations
    /// in `calibrations`; fails when the iris matcher settings or the
    /// fingerprint screen's penetration are out of range.
    pub fn new(
        catalog: Arc<Catalog>,
        pool: SearchPool,
        cfg: MatchingConfig,
        calibrations: CalibrationStore,
    ) -> Result<MatchService> {
        let p = cfg.fingerprint_screen_penetration;
        if !(p.is_finite() && p > 0.0 && p <= 1.0) {
            return Err(ServiceError::InvalidArgument(format!(
                "matching.fingerprint_screen_penetration {p} is out of range: it must be greater than 0 and at most 1"
            )));
        }
        let iris = IrisMatcher::new(IrisMatchConfig {
            rotation_shift: cfg.iris_rotation_shift,
            normalise: cfg.iris_normalise,
            separate_half_matching: cfg.iris_separate_half_matching,
            ..IrisMatchConfig::default()
        })?;
        Ok(MatchService {
            catalog,
            pool,
            cfg,
            iris: Arc::new(iris),
            fingerprint: FingerprintMatcher::default(),
            calibrations: Arc::new(calibrations),
        })
    }

    /// Prepares a probe; fingerprint cylinders are built on the pool.
    async fn scoring(&self, t: Template) -> Result<Scoring> {
        Ok(match t {
            Template::Embedding(e) => Scoring::Embedding(e),
            Template::Iris(t) => Scoring::Iris(self.iris.clone(), self.iris.prepare(&t)),
            Template::Fingerprint(r) => {
                let prepared = self.pool.run(move |_| FingerprintTemplate::from_record(r)).await??;
                Scoring::Fingerprint(self.fingerprint, prepared.into_prepared())
            }
        })
    }

    /// The matching configuration.
    pub fn config(&self) -> &MatchingConfig {
        &self.cfg
    }

    /// The default decision threshold of `modality`.
    pub fn default_threshold(&self, modality: Modality) -> f32 {
        match modality {
            Modality::Voice => self.cfg.voice_threshold,
            Modality::Iris => self.cfg.iris_threshold,
            Modality::Fingerprint => self.cfg.fingerprint_threshold,
            Modality::Multi => self.cfg.multi_threshold,
            Modality::Face => self.cfg.face_threshold,
        }
    }

    fn threshold(&self, modality: Modality, given: Option<f32>) -> Result<f32> {
        match given {
            Some(t) if !t.is_finite() => Err(ServiceError::InvalidArgument(format!(
                "threshold {t} is not a finite number"
            ))),
            Some(t) => Ok(t),
            None => Ok(self.default_threshold(modality)),
        }
    }

    /// Galleries of one modality, with their keys.
    fn galleries_of(&self, modality: Modality) -> Vec<(GalleryKey, Entry)> {
        self.catalog
            .entries()
            .into_iter()
            .filter_map(|(name, e)| {
                GalleryKey::parse(&name)
                    .filter(|k| k.modality == modality)
                    .map(|k| (k, e))
            })
            .collect()
    }

    /// The gallery for `key`, or why there is none.
    fn gallery(&self, key: GalleryKey) -> Result<Option<Arc<Gallery>>> {
        match self.catalog.get(&key.name()) {
            Some(Ok(g)) => Ok(Some(g)),
            Some(Err(e)) => Err(e.into()),
            None => {
                let other: Vec<String> = self
                    .galleries_of(key.modality)
                    .iter()
                    .map(|(k, _)| k.dim.to_string())
                    .collect();
                if other.is_empty() {
                    Ok(None)
                } else {
                    Err(ServiceError::InvalidArgument(format!(
                        "probe dimension {} does not match any {} gallery (dimensions held: {})",
                        key.dim,
                        key.modality,
                        other.join(", ")
                    )))
                }
            }
        }
    }

    /// Enrolls one record durably.
    pub async fn enroll(&self, input: EnrollInput) -> Result<EnrollOutput> {
        self.enroll_batch(vec![input])
            .await
            .pop()
            .unwrap_or_else(|| Err(ServiceError::Internal("empty enroll result".into())))
    }

    /// Enrolls many records; each gallery's share costs one fsync. Each
    /// record gets its own outcome.
    pub async fn enroll_batch(&self, inputs: Vec<EnrollInput>) -> Vec<Result<EnrollOutput>> {
        let prepared = self.prepare_batch(inputs).await;
        self.commit_batch(prepared).await
    }

    /// The CPU half of [`enroll_batch`](Self::enroll_batch): validates the
    /// records and builds their rows (a millisecond per fingerprint) on the
    /// search pool. Nothing is stored, so a job can prepare its next batch
    /// while the current one is being written.
    pub async fn prepare_batch(&self, inputs: Vec<EnrollInput>) -> PreparedBatch {
        let n = inputs.len();
        let mut batch = PreparedBatch {
            n,
            groups: BTreeMap::new(),
            failed: Vec::new(),
        };
        let now_ms = biomatch_enrollment::now_ms();
        let cfg = self.cfg.clone();
        let prepared = self
            .pool
            .run(move |_| {
                use rayon::prelude::*;
                inputs
                    .into_par_iter()
                    .map(|inp| prepare(&cfg, inp, now_ms))
                    .collect::<Vec<_>>()
            })
            .await;
        match prepared {
            Ok(p) => {
                for (i, p) in p.into_iter().enumerate() {
                    match p {
                        Ok((key, rec)) => batch.groups.entry(key).or_default().push((i, rec)),
                        Err(e) => batch.failed.push((i, e)),
                    }
                }
            }
            Err(e) => batch.failed = (0..n).map(|i| (i, clone_err(&e))).collect(),
        }
        batch
    }

    /// The storing half of [`enroll_batch`](Self::enroll_batch): writes a
    /// prepared batch durably, one outcome per record in input order.
    pub async fn commit_batch(&self, batch: PreparedBatch) -> Vec<Result<EnrollOutput>> {
        let PreparedBatch { n, groups, failed } = batch;
        let mut out: Vec<Option<Result<EnrollOutput>>> = (0..n).map(|_| None).collect();
        for (i, e) in failed {
            out[i] = Some(Err(e));
        }
        let catalog = self.catalog.clone();
        let done = tokio::task::spawn_blocking(move || {
            let mut results = Vec::new();
            for (key, items) in groups {
                let name = key.name();
                let (idx, recs): (Vec<usize>, Vec<NewRecord>) = items.into_iter().unzip();
                // Record ids are unique across galleries, not only within one.
                let others: Vec<_> = catalog.ready().into_iter().filter(|g| g.name() != name).collect();
                let taken: Vec<bool> = recs
                    .iter()
                    .map(|r| others.iter().any(|g| g.contains(&r.meta.record_id)))
                    .collect();
                let ids: Vec<String> = recs.iter().map(|r| r.meta.record_id.clone()).collect();
                let (ok_idx, ok_recs): (Vec<usize>, Vec<NewRecord>) = idx
                    .iter()
                    .copied()
                    .zip(recs)
                    .zip(&taken)
                    .filter(|(_, t)| !**t)
                    .map(|(p, _)| p)
                    .unzip();
                for ((i, id), t) in idx.iter().zip(&ids).zip(&taken) {
                    if *t {
                        results.push((
                            *i,
                            Err(ServiceError::AlreadyExists(format!("record {id:?} already exists"))),
                        ));
                    }
                }
                match catalog.get_or_create(&name, key.row_len()) {
                    Ok(g) => {
                        let ok_ids: Vec<String> = ok_recs.iter().map(|r| r.meta.record_id.clone()).collect();
                        // Large batches go straight to a segment of their own: their
                        // bytes are written once, not to the log and again at the
                        // next flush.
                        let outcomes = if ok_recs.len() >= BULK_SEGMENT_RECORDS {
                            g.insert_bulk(ok_recs)
                        } else {
                            g.insert(ok_recs)
                        };
                        for ((i, id), r) in ok_idx.into_iter().zip(ok_ids).zip(outcomes) {
                            results.push((
                                i,
                                r.map(|()| EnrollOutput {
                                    record_id: id,
                                    gallery: name.clone(),
                                })
                                .map_err(Into::into),
                            ));
                        }
                    }
                    Err(e) => {
                        let msg = ServiceError::from(e);
                        for i in ok_idx {
                            results.push((i, Err(clone_err(&msg))));
                        }
                    }
                }
            }
            results
        })
        .await;
        match done {
            Ok(results) => {
                for (i, r) in results {
                    out[i] = Some(r);
                }
            }
            Err(e) => {
                for o in out.iter_mut().filter(|o| o.is_none()) {
                    *o = Some(Err(ServiceError::Internal(format!("enroll worker failed: {e}"))));
                }
            }
        }
        out.into_iter()
            .map(|o| o.unwrap_or_else(|| Err(ServiceError::Internal("record lost in enroll".into()))))
            .collect()
    }

    /// Compares a probe with a subject's or a record's templates.
    pub async fn verify(&self, input: VerifyInput) -> Result<VerifyOutput> {
        let key = input.probe.key();
        let threshold = self.decision_threshold(key, input.threshold, input.target_fmr)?;
        let (target_field, target_id) = match &input.target {
            Target::Subject(s) => ("subject_id", s),
            Target::Record(r) => ("record_id", r),
        };
        validate::id(target_field, target_id)?;
        let gallery = self.catalog.get(&key.name()).transpose()?;
        let scoring = Arc::new(self.scoring(input.probe).await?);
        let scores = match gallery {
            Some(g) => {
                let ids = match &input.target {
                    Target::Subject(s) => g.subject_records(s),
                    Target::Record(r) => vec![r.clone()],
                };
                self.score_records(scoring, g, ids, BTreeMap::new()).await?
            }
            None => Vec::new(),
        };
        let compared = scores.len() as u32;
        let Some((record_id, score, iris)) = best_scored(scores) else {
            return Err(self.explain_missing(&input.target, key));
        };
        Ok(VerifyOutput {
            score,
            matched: is_match(score, threshold),
            threshold,
            record_id,
            compared,
            iris,
            fmr: self.score_fmr(key, score),
        })
    }

    /// Scores the stored rows of `ids` in `g` whose metadata holds every
    /// pair of `filter`, on the pool; ids no longer stored are skipped.
    async fn score_records(
        &self,
        scoring: Arc<Scoring>,
        g: Arc<Gallery>,
        ids: Vec<String>,
        filter: BTreeMap<String, String>,
    ) -> Result<Vec<(String, f32, Option<IrisMatch>)>> {
        self.pool
            .run(move |_| {
                ids.into_iter()
                    .filter_map(|id| {
                        let r = g.get(&id, true)?;
                        if !filter.iter().all(|(k, v)| r.meta.metadata.get(k) == Some(v)) {
                            return None;
                        }
                        let (score, iris) = scoring.score(&r.vector?);
                        Some((id, score, iris))
                    })
                    .collect()
            })
            .await
    }

    /// Why a verification target was not found in `key`'s gallery.
    fn explain_missing(&self, target: &Target, key: GalleryKey) -> ServiceError {
        let elsewhere: Vec<GalleryKey> = self
            .catalog
            .ready()
            .iter()
            .filter(|g| match target {
                Target::Subject(s) => !g.subject_records(s).is_empty(),
                Target::Record(r) => g.contains(r),
            })
            .filter_map(|g| GalleryKey::parse(g.name()))
            .collect();
        let what = match target {
            Target::Subject(s) => format!("subject {s:?}"),
            Target::Record(r) => format!("record {r:?}"),
        };
        if elsewhere.is_empty() {
            return ServiceError::NotFound(format!("{what} not found"));
        }
        let held: Vec<String> = elsewhere
            .iter()
            .map(|k| format!("{} dimension {}", k.modality, k.dim))
            .collect();
        ServiceError::InvalidArgument(format!(
            "{what} has no {} template of dimension {} to compare with (it holds: {})",
            key.modality,
            key.dim,
            held.join(", ")
        ))
    }

    /// Searches the probe's gallery for the best `top_k` subjects.
    pub async fn identify(&self, input: IdentifyInput) -> Result<IdentifyOutput> {
        let top_k = match input.top_k {
            0 => 10,
            k if k > MAX_TOP_K => {
                return Err(ServiceError::InvalidArgument(format!(
                    "top_k {k} exceeds the maximum of {MAX_TOP_K}"
                )));
            }
            k => k,
        };
        let key = input.probe.key();
        let min_score = match (input.threshold, input.target_fmr) {
            (None, None) => f32::NEG_INFINITY,
            (t, fmr) => self.decision_threshold(key, t, fmr)?,
        };
        validate::metadata("metadata_filter", &input.filter)?;
        ann::check_query(key.modality, &input.search)?;
        let penetration = ann::penetration(key.modality, input.penetration, &self.cfg)?;
        let Some(g) = self.gallery(key)? else {
            return Ok(IdentifyOutput {
                candidates: Vec::new(),
                gallery_size: 0,
                gallery: String::new(),
            });
        };
        let scoring = self.scoring(input.probe).await?;
        let filter = input.filter;
        let ann = input.search;
        let gallery = g.clone();
        let calibration = self.calibrations.get(&key.name());
        let screen_min_records = self.cfg.fingerprint_screen_min_records;
        // A graph search is a single-threaded walk of a few thousand rows:
        // it needs no turn at the whole pool, and gating it behind scans
        // would leave cores idle under concurrent load.
        let graph_only = matches!(scoring, Scoring::Embedding(_))
            && g.scanned_rows(&ann).is_some_and(|rows| rows < UNGATED_SCAN_ROWS);
        let job = move |cancel: &std::sync::atomic::AtomicBool| -> Result<Vec<Candidate>, biomatch_index::IndexError> {
            let opts = Search {
                k: top_k,
                min_score,
                filter: (!filter.is_empty()).then_some(&filter),
                cancel: Some(cancel),
                ann,
            };
            let hits = match &scoring {
                Scoring::Embedding(e) => gallery.search_subjects(e.values(), &opts)?,
                Scoring::Iris(m, p) => gallery.search_subjects_by(&IrisScorer { matcher: m, probe: p }, &opts)?,
                Scoring::Fingerprint(m, p) => {
                    let exact = FingerScorer { matcher: *m, probe: p };
                    match screen_shortlist(&gallery, ann.mode, penetration, screen_min_records) {
                        Some(shortlist) => {
                            let screen = FingerScreen {
                                probe: ScreenProbe::new(p.codes()),
                            };
                            gallery.search_subjects_screened_by(&screen, &exact, shortlist, &opts)?
                        }
                        None => gallery.search_subjects_by(&exact, &opts)?,
                    }
                }
            };
            // The scan ranks by f32 score; report the iris candidates'
            // exact distance and rotation.
            Ok(hits
                .into_iter()
                .map(|h| {
                    let iris = match &scoring {
                        Scoring::Iris(..) => gallery
                            .get(&h.record_id, true)
                            .and_then(|r| r.vector)
                            .and_then(|row| scoring.score(&row).1),
                        Scoring::Embedding(_) | Scoring::Fingerprint(..) => None,
                    };
                    Candidate {
                        subject_id: h.subject_id,
                        record_id: h.record_id,
                        score: h.score,
                        iris,
                        fmr: calibration.as_ref().map(|c| c.calibration.fmr(h.score)),
                    }
                })
                .collect())
        };
        let candidates = if graph_only {
            self.pool.run(job).await??
        } else {
            self.pool.run_scan(job).await??
        };
        Ok(IdentifyOutput {
            candidates,
            gallery_size: g.len() as u64,
            gallery: key.name(),
        })
    }

    /// Deletes a record or all of a subject's records, in every gallery.
    /// With `purge`, the affected galleries are compacted before returning.
    pub async fn delete(&self, target: Target, purge: bool) -> Result<Vec<String>> {
        let (field, id) = match &target {
            Target::Subject(s) => ("subject_id", s.clone()),
            Target::Record(r) => ("record_id", r.clone()),
        };
        validate::id(field, &id)?;
        let catalog = self.catalog.clone();
        let outcome = tokio::task::spawn_blocking(move || -> Result<Vec<String>> {
            let mut deleted = Vec::new();
            for g in catalog.ready() {
                let ids = match &target {
                    Target::Subject(s) => g.delete_subject(s)?,
                    Target::Record(r) => g.delete(std::slice::from_ref(r))?,
                };
                if !ids.is_empty() {
                    if purge {
                        g.compact()?;
                    }
                    deleted.extend(ids);
                }
            }
            Ok(deleted)
        })
        .await
        .map_err(|e| ServiceError::Internal(format!("delete worker failed: {e}")))??;
        if outcome.is_empty() {
            return Err(ServiceError::NotFound(format!(
                "{} {id:?} not found",
                field.trim_end_matches("_id")
            )));
        }
        info!(target = field, count = outcome.len(), purge, "records deleted");
        Ok(outcome)
    }

    /// Reads one record.
    pub async fn get_record(&self, record_id: &str, with_template: bool) -> Result<RecordView> {
        validate::id("record_id", record_id)?;
        let catalog = self.catalog.clone();
        let id = record_id.to_string();
        tokio::task::spawn_blocking(move || {
            catalog.ready().into_iter().find_map(|g| {
                let key = GalleryKey::parse(g.name())?;
                g.get(&id, with_template)
                    .map(|record| RecordView { gallery: key, record })
            })
        })
        .await
        .map_err(|e| ServiceError::Internal(format!("read worker failed: {e}")))?
        .ok_or_else(|| ServiceError::NotFound(format!("record {record_id:?} not found")))
    }

    /// One page of records in id order across galleries.
    pub async fn list(
        &self,
        modality: Option<Modality>,
        subject: Option<String>,
        after: Option<String>,
        limit: usize,
        with_templates: bool,
    ) -> Result<ListPage> {
        let catalog = self.catalog.clone();
        tokio::task::spawn_blocking(move || {
            let mut all: Vec<RecordView> = Vec::new();
            for g in catalog.ready() {
                let Some(key) = GalleryKey::parse(g.name()) else {
                    continue;
                };
                if modality.is_some_and(|m| m != key.modality) {
                    continue;
                }
                for record in g.list(after.as_deref(), limit + 1, subject.as_deref(), with_templates) {
                    all.push(RecordView { gallery: key, record });
                }
            }
            all.sort_by(|a, b| a.record.meta.record_id.cmp(&b.record.meta.record_id));
            let more = all.len() > limit;
            all.truncate(limit);
            let next_token = more
                .then(|| all.last().map(|r| r.record.meta.record_id.clone()))
                .flatten();
            ListPage {
                records: all,
                next_token,
            }
        })
        .await
        .map_err(|e| ServiceError::Internal(format!("list worker failed: {e}")))
    }

    /// Every gallery's sizes and health.
    pub fn stats(&self) -> Vec<GalleryInfo> {
        self.catalog
            .entries()
            .into_iter()
            .map(|(name, e)| {
                let key = GalleryKey::parse(&name);
                match e {
                    Entry::Ready(g) => GalleryInfo {
                        name,
                        key,
                        stats: g.stats(),
                        error: None,
                    },
                    Entry::Broken(why) => GalleryInfo {
                        name,
                        key,
                        stats: Default::default(),
                        error: Some(why.to_string()),
                    },
                }
            })
            .collect()
    }

    /// Fails for modalities that have no gallery of their own: MULTI is a
    /// probe of several galleries, never a stored template.
    pub fn ensure_served(&self, modality: Modality) -> Result<()> {
        if modality.is_embedding() || modality == Modality::Iris || modality == Modality::Fingerprint {
            Ok(())
        } else {
            Err(ServiceError::InvalidArgument(format!(
                "{modality} is not a template of one gallery: enroll each modality's template under the same \
                 subject_id, and send MULTI probes (Template.multi) to Verify or Identify"
            )))
        }
    }

    /// Accepts a parsed fingerprint record of exactly one finger view; its
    /// cylinders are built later, on the pool.
    pub fn fingerprint_template(&self, r: FingerRecord) -> Result<Template> {
        FingerprintTemplate::check_single_view(&r)?;
        Ok(Template::Fingerprint(r))
    }

    /// Accepts an iris template of the configured `iris_code_version`.
    pub fn iris_template(&self, t: IrisTemplate) -> Result<Template> {
        if t.version() != self.cfg.iris_code_version {
            return Err(ServiceError::InvalidArgument(format!(
                "iris_code_version {} does not match this server's {}; codes of different versions are not comparable",
                t.version(),
                self.cfg.iris_code_version
            )));
        }
        Ok(Template::Iris(t))
    }

    /// Validates an embedding probe or enrollment template.
    pub fn embedding(&self, modality: Modality, values: Vec<f32>) -> Result<Embedding> {
        self.ensure_served(modality)?;
        Ok(Embedding::new(modality, values, self.cfg.max_dimension)?)
    }
}

/// The best of scored records: the highest score, ties to the smaller
/// record id, so that repeated calls agree.
fn best_scored<T>(scores: Vec<(String, f32, T)>) -> Option<(String, f32, T)> {
    scores
        .into_iter()
        .max_by(|a, b| a.1.total_cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
}

/// Validates a record to enroll and builds its row.
fn prepare(cfg: &MatchingConfig, inp: EnrollInput, now_ms: u64) -> Result<(GalleryKey, NewRecord)> {
    validate::id("subject_id", &inp.subject_id)?;
    if let Some(r) = &inp.record_id {
        validate::id("record_id", r)?;
    }
    validate::metadata("metadata", &inp.metadata)?;
    if !(0.0..=100.0).contains(&inp.quality) {
        return Err(ServiceError::InvalidArgument(format!(
            "quality {} is outside 0 to 100",
            inp.quality
        )));
    }
    let key = inp.template.key();
    let allowed = allowed_dims(cfg, key.modality);
    if !allowed.is_empty() && !allowed.contains(&key.dim) {
        return Err(ServiceError::InvalidArgument(format!(
            "{} embeddings must have dimension {}; got {}",
            key.modality,
            allowed.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(" or "),
            key.dim
        )));
    }
    let meta = RecordMeta {
        record_id: inp.record_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        subject_id: inp.subject_id,
        metadata: inp.metadata,
        quality: inp.quality,
        enrolled_at_ms: now_ms,
    };
    Ok((
        key,
        NewRecord {
            meta,
            vector: inp.template.into_row()?,
        },
    ))
}

/// Embedding dimensions `modality` accepts; empty allows any.
fn allowed_dims(cfg: &MatchingConfig, modality: Modality) -> &[usize] {
    match modality {
        Modality::Face => &cfg.face_dimensions,
        Modality::Voice => &cfg.voice_dimensions,
        _ => &[],
    }
}

fn clone_err(e: &ServiceError) -> ServiceError {
    match e {
        ServiceError::InvalidArgument(m) => ServiceError::InvalidArgument(m.clone()),
        ServiceError::NotFound(m) => ServiceError::NotFound(m.clone()),
        ServiceError::AlreadyExists(m) => ServiceError::AlreadyExists(m.clone()),
        ServiceError::FailedPrecondition(m) => ServiceError::FailedPrecondition(m.clone()),
        ServiceError::Unimplemented(m) => ServiceError::Unimplemented(m.clone()),
        ServiceError::DataLoss(m) => ServiceError::DataLoss(m.clone()),
        ServiceError::Cancelled => ServiceError::Cancelled,
        ServiceError::Internal(m) => ServiceError::Internal(m.clone()),
    }
}
