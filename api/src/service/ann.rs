//! Approximate search in the service: request checks, explicit
//! optimisation, and the background upkeep of embedding galleries' graphs.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use biomatch_index::ann::{AnnQuery, SearchMode};
use biomatch_matcher::Modality;
use parking_lot::Mutex;
use tracing::{info, warn};

use super::{GalleryKey, MatchService, Result};
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

/// Refuses search options that cannot apply: graph search of a gallery
/// that never has graphs, and out-of-range beam or oversampling.
pub(super) fn check_query(modality: Modality, q: &AnnQuery) -> Result<()> {
    if q.mode == SearchMode::Ann && !modality.is_embedding() {
        return Err(ServiceError::InvalidArgument(format!(
            "search_mode ANN applies to FACE and VOICE galleries; {modality} galleries are always searched exactly"
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

/// When each gallery's indexed segments were last compacted, so that the
/// background task rebuilds a graph to erase deleted templates at most once
/// per erase interval instead of after every delete.
#[derive(Default)]
pub struct EraseClock(Mutex<HashMap<String, Instant>>);

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
        let due: Vec<String> = {
            let last = clock.0.lock();
            catalog
                .ready()
                .iter()
                .filter(|g| last.get(g.name()).is_none_or(|t| t.elapsed() >= erase_interval))
                .map(|g| g.name().to_string())
                .collect()
        };
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
            let mut last = clock.0.lock();
            for name in full {
                last.insert(name, Instant::now());
            }
        }
    }
}
