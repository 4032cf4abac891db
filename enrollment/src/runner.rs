//! The loop that runs one job: read a batch, enroll it, write the reports,
//! then the checkpoint. Enrollment is idempotent by record id, so records
//! enrolled after the last checkpoint by a run that crashed are found again
//! and skipped: every record ends up enrolled exactly once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde_json::json;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::job::now_ms;
use crate::{Cursor, EnrollmentError, JobContext, JobFiles, JobSink, JobState, JobStatus, Outcome, source};

/// Runs a job from its checkpoint to the end, a cancel, or a failure,
/// publishing every checkpoint on `tx`.
pub async fn run<S: JobSink>(
    sink: Arc<S>,
    files: JobFiles,
    mut status: JobStatus,
    cancel: Arc<AtomicBool>,
    tx: watch::Sender<JobStatus>,
) {
    if let Err(e) = drive(&*sink, &files, &mut status, &cancel, &tx).await {
        warn!(job = %status.job_id, error = %e, "enrollment job failed");
        status.state = JobState::Failed;
        status.error = Some(e.to_string());
        status.updated_ms = now_ms();
        if let Err(e) = files.save(&status) {
            warn!(job = %status.job_id, error = %e, "could not record the failure");
        }
    }
    info!(job = %status.job_id, state = ?status.state, counts = ?status.counts, "enrollment job ended");
    tx.send_replace(status);
}

async fn drive<S: JobSink>(
    sink: &S,
    files: &JobFiles,
    status: &mut JobStatus,
    cancel: &AtomicBool,
    tx: &watch::Sender<JobStatus>,
) -> Result<(), EnrollmentError> {
    files.truncate_reports(status)?;
    let spec = status.spec.clone();
    let at = status.cursor;
    let src = tokio::task::spawn_blocking(move || source::open(&spec, at))
        .await
        .map_err(|e| EnrollmentError::Sink(format!("source reader failed: {e}")))??;
    status.total = src.total();
    let ctx = JobContext {
        job_id: status.job_id.clone(),
        quality: status.spec.quality.clone(),
        dedup: status.spec.dedup.clone(),
    };
    let batch_size = status.spec.batch_size;
    // The next batch is read and parsed while the current one is enrolled:
    // parsing (JSON floats, ISO records) and enrolling (row building, the
    // fsynced log write) then overlap instead of taking turns.
    let read = |mut src: Box<dyn source::RecordSource>| {
        tokio::task::spawn_blocking(move || {
            let b = src.next_batch(batch_size);
            (src, b)
        })
    };
    let mut next = read(src);
    loop {
        if cancel.load(Ordering::Acquire) {
            status.state = JobState::Cancelled;
            break;
        }
        let started = Instant::now();
        let (src, batch) = next
            .await
            .map_err(|e| EnrollmentError::Sink(format!("source reader failed: {e}")))?;
        let batch = batch?;
        if batch.is_empty() {
            status.state = JobState::Succeeded;
            break;
        }
        // The checkpoint after this batch: where the source stood once it
        // was read, before the prefetch moves on.
        let cursor = src.cursor();
        next = read(src);
        apply_batch(sink, files, &ctx, status, batch, cursor).await?;
        status.elapsed_ms += started.elapsed().as_millis() as u64;
        status.updated_ms = now_ms();
        files.save(status)?;
        tx.send_replace(status.clone());
    }
    status.updated_ms = now_ms();
    files.save(status)
}

async fn apply_batch<S: JobSink>(
    sink: &S,
    files: &JobFiles,
    ctx: &JobContext,
    status: &mut JobStatus,
    batch: Vec<crate::SourceItem>,
    cursor: Cursor,
) -> Result<(), EnrollmentError> {
    let n = batch.len() as u64;
    let mut errors = Vec::new();
    let mut dups = Vec::new();
    let mut records = Vec::with_capacity(batch.len());
    for item in batch {
        match item {
            Ok(r) => records.push(r),
            Err(f) => errors.push(json!({
                "index": f.index, "record_id": f.record_id, "code": "INVALID_ARGUMENT", "message": f.message,
            })),
        }
    }
    let keys: Vec<(u64, String, String)> = records
        .iter()
        .map(|r| (r.index, r.record_id.clone(), r.subject_id.clone()))
        .collect();
    let outcomes = sink.enroll(ctx, records).await?;
    if outcomes.len() != keys.len() {
        return Err(EnrollmentError::Sink(format!(
            "{} outcomes for {} records",
            outcomes.len(),
            keys.len()
        )));
    }
    let c = &mut status.counts;
    c.processed += n;
    c.rejected += errors.len() as u64;
    for ((index, record_id, subject_id), o) in keys.into_iter().zip(outcomes) {
        match o {
            Outcome::Enrolled | Outcome::AlreadyPresent { by_this_job: true } => c.enrolled += 1,
            Outcome::AlreadyPresent { by_this_job: false } => c.already_present += 1,
            Outcome::Rejected { code, message } => {
                c.rejected += 1;
                errors.push(json!({"index": index, "record_id": record_id, "code": code, "message": message}));
            }
            Outcome::Duplicate {
                subject_id: other_subject,
                record_id: other_record,
                score,
                enrolled,
            } => {
                c.duplicates += 1;
                if enrolled {
                    c.enrolled += 1;
                }
                dups.push(json!({
                    "index": index, "record_id": record_id, "subject_id": subject_id,
                    "matched_subject_id": other_subject, "matched_record_id": other_record,
                    "score": score, "enrolled": enrolled,
                }));
            }
        }
    }
    status.errors_len = files.append(&files.errors(), &errors)?;
    status.duplicates_len = files.append(&files.duplicates(), &dups)?;
    status.cursor = cursor;
    Ok(())
}
