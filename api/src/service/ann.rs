//! Approximate search in the service: request checks, explicit
//! optimisation, the background upkeep of embedding galleries' graphs, and
//! the shortlist of a screened fingerprint search.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use biomatch_index::Gallery;
use biomatch_index::ann::{AnnQuery, SearchMode};
use biomatch_matcher::Modality;
use parking_lot::Mutex;
use tracing::{info, warn};

use super::{GalleryKey, MatchService, Result};
use crate::config::MatchingConfig;
use crate::error::ServiceError;

/// Largest beam width a request may ask for.
pub const MAX_EF: usize = 4_096;
/// Largest oversampling factor a request may ask for.
pub const MAX_OVERSAMPLE: usize = 64;

/// What an optimisation did, for the adapters.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizeOutput {
    /// The gallery's name.
    pub gallery: String,
    /// What the index did.
    pub report: biomatch_index::OptimizeReport,
}

/// Fewest records a screened fingerprint search scores in full, whatever
/// the penetration: below this the screen would save little and risk much.
pub const MIN_SHORTLIST: usize = 200;

/// Refuses search options that cannot apply: approximate search of a
/// gallery that has neither graphs nor a screen, and out-of-range beam or
/// oversampling.
pub(super) fn check_query(modality: Modality, q: &AnnQuery) -> Result<()> {
    if q.mode == SearchMode::Ann && !(modality.is_embedding() || modality == Modality::Fingerprint) {
        return Err(ServiceError::InvalidArgument(format!(
            "search_mode ANN applies to FACE, VOICE and FINGERPRINT galleries; {modality} galleries are always searched exactly"
        )));
    }
    if q.ef > MAX_EF {
        return Err(ServiceError::InvalidArgument(format!(
            "ef {} exceeds the maximum of {MAX_EF}",
            q.ef
        )));
    }
    if q.oversample > MAX_OVERSAMPLE {
        return Err(ServiceError::InvalidArgument(format!(
            "oversample {} exceeds the maximum of {MAX_OVERSAMPLE}",
            q.oversample
        )));
    }
    Ok(())
}

/// The penetration of a screened fingerprint search: the request's, checked,
/// or the configured default.
pub(super) fn penetration(modality: Modality, given: Option<f32>, cfg: &MatchingConfig) -> Result<f32> {
    match given {
        None => Ok(cfg.fingerprint_screen_penetration),
        Some(_) if modality != Modality::Fingerprint => Err(ServiceError::InvalidArgument(format!(
            "penetration applies to FINGERPRINT galleries, not {modality}"
        ))),
        Some(p) if p.is_finite() && p > 0.0 && p <= 1.0 => Ok(p),
        Some(p) => Err(ServiceError::InvalidArgument(format!(
            "penetration {p} is out of range: it must be greater than 0 and at most 1"
        ))),
    }
}

/// How many records a fingerprint search passes from the screen to the
/// full matcher, or None for an exact search: screened on request (ANN) or,
/// unless the request asks for EXACT, once the gallery holds `min_records`
/// (0 = never by default).
pub(super) fn screen_shortlist(g: &Gallery, mode: SearchMode, penetration: f32, min_records: u64) -> Option<usize> {
    let records = g.len();
    let screened = match mode {
        SearchMode::Ann => true,
        SearchMode::Exact => false,
        SearchMode::Auto => min_records > 0 && records as u64 >= min_records,
    };
    screened.then(|| ((f64::from(penetration) * records as f64).ceil() as usize).max(MIN_SHORTLIST))
}

/// When each gallery's indexed segments were last compacted, so that the
/// background task rebuilds a graph to erase deleted templates at most once
/// per erase interval instead of after every delete.
///
/// The times are wall-clock milliseconds kept in a file of the data
/// directory: a clock that started empty at every start would purge at once
/// after a restart (a graph rebuild that takes minutes at a million rows),
/// and one that started full would postpone erasure for as long as restarts
/// kept coming. A gallery without an entry, a time in the future (the system
/// clock went back) or an unreadable file all make the purge due: erasure
/// errs on the early side.
pub struct EraseClock {
    /// Where the clock is kept.
    path: PathBuf,
    /// Gallery name to the time of its last full compaction, Unix ms.
    last: Mutex<BTreeMap<String, u64>>,
}

impl EraseClock {
    /// The clock kept at `path`; empty when the file is absent, and empty
    /// with a warning when it cannot be read.
    pub fn open(path: PathBuf) -> EraseClock {
        let last = match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            read => read.and_then(|bytes| serde_json::from_slice(&bytes).map_err(std::io::Error::other)),
        }
        .unwrap_or_else(|e| {
            warn!(path = %path.display(), error = %e, "erase clock unreadable; purges are due now");
            BTreeMap::new()
        });
        EraseClock {
            path,
            last: Mutex::new(last),
        }
    }

    /// Whether `gallery`'s indexed segments are due for a purge at `now_ms`.
    pub fn is_due(&self, gallery: &str, interval: Duration, now_ms: u64) -> bool {
        self.last
            .lock()
            .get(gallery)
            .is_none_or(|&t| now_ms < t || now_ms - t >= interval.as_millis() as u64)
    }

    /// Records full compactions of `galleries` at `now_ms` and saves the
    /// clock with the index's atomic file replacement. A failed save is
    /// logged: it only makes the next purge come early.
    pub fn record(&self, galleries: &[String], now_ms: u64) {
        if galleries.is_empty() {
            return;
        }
        let bytes = {
            let mut last = self.last.lock();
            for g in galleries {
                last.insert(g.clone(), now_ms);
            }
            serde_json::to_vec(&*last).expect("a map of strings to integers serialises")
        };
        if let Err(e) = biomatch_index::write_atomic(&self.path, &bytes) {
            warn!(path = %self.path.display(), error = %e, "could not save the erase clock");
        }
    }
}

impl MatchService {
    /// Optimises one FACE or VOICE gallery now (see `Gallery::optimize`).
    pub async fn optimize(&self, modality: Modality, dim: Option<usize>) -> Result<OptimizeOutput> {
        if !modality.is_embedding() {
            return Err(ServiceError::InvalidArgument(format!(
                "only FACE and VOICE galleries have graph indexes, not {modality}"
            )));
        }
        let key: GalleryKey = self.calibration_key(modality, dim)?;
        let g = self
            .gallery(key)?
            .ok_or_else(|| ServiceError::NotFound(format!("there is no gallery {}", key.name())))?;
        let report = tokio::task::spawn_blocking(move || g.optimize())
            .await
            .map_err(|e| ServiceError::Internal(format!("optimisation worker failed: {e}")))??;
        Ok(OptimizeOutput {
            gallery: key.name(),
            report,
        })
    }

    /// Background upkeep, run periodically: compacts galleries with deletes
    /// pending (indexed segments at most once per `erase_interval`, since
    /// that rebuilds their graphs) and, when `auto_optimize`, optimises the
    /// embedding galleries that have outgrown their graphs.
    pub async fn maintain(&self, clock: &EraseClock, erase_interval: Duration, auto_optimize: bool) {
        let catalog = self.catalog.clone();
        let now = biomatch_enrollment::now_ms();
        let due: Vec<String> = catalog
            .ready()
            .iter()
            .filter(|g| clock.is_due(g.name(), erase_interval, now))
            .map(|g| g.name().to_string())
            .collect();
        let done = tokio::task::spawn_blocking(move || {
            let mut full = Vec::new();
            for g in catalog.ready() {
                let embedding = GalleryKey::parse(g.name()).is_some_and(|k| k.modality.is_embedding());
                if auto_optimize && embedding && g.needs_optimize() {
                    match g.optimize() {
                        Ok(report) => info!(gallery = g.name(), ?report, "background optimisation done"),
                        Err(e) => warn!(gallery = g.name(), error = %e, "optimisation failed; will retry"),
                    }
                    continue;
                }
                if g.pending_deletes() == 0 {
                    continue;
                }
                let all = due.iter().any(|d| d == g.name());
                let outcome = if all { g.compact() } else { g.compact_unindexed() };
                match outcome {
                    Ok(_) if all => full.push(g.name().to_string()),
                    Ok(_) => {}
                    Err(e) => warn!(gallery = g.name(), error = %e, "compaction failed; will retry"),
                }
            }
            full
        })
        .await;
        if let Ok(full) = done {
            clock.record(&full, biomatch_enrollment::now_ms());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3_600);
    const T0: u64 = 1_800_000_000_000;

    #[test]
    fn the_erase_clock_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("erase-clock.json");
        let clock = EraseClock::open(path.clone());
        assert!(clock.is_due("face-128", HOUR, T0), "never purged: due");
        clock.record(&["face-128".to_string()], T0);
        assert!(!clock.is_due("face-128", HOUR, T0 + 3_599_999));
        assert!(clock.is_due("face-128", HOUR, T0 + 3_600_000));
        assert!(
            clock.is_due("voice-256", HOUR, T0),
            "another gallery keeps its own time"
        );

        // A restart reads the same times back.
        let reopened = EraseClock::open(path);
        assert!(!reopened.is_due("face-128", HOUR, T0 + 60_000));
        assert!(reopened.is_due("face-128", HOUR, T0 + 3_600_000));
        // A clock set back before the last purge errs on the early side.
        assert!(reopened.is_due("face-128", HOUR, T0 - 1));
    }

    #[test]
    fn an_unreadable_erase_clock_makes_purges_due() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("erase-clock.json");
        std::fs::write(&path, b"{not json").unwrap();
        let clock = EraseClock::open(path.clone());
        assert!(clock.is_due("face-128", HOUR, T0));
        // The next record replaces the damaged file with a good one.
        clock.record(&["face-128".to_string()], T0);
        assert!(!EraseClock::open(path).is_due("face-128", HOUR, T0 + 1));
    }
}
