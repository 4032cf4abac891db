//! The loop that runs one job: read a batch, prepare it, enroll it, write
//! the reports, then the checkpoint. Reading (with parsing) and preparing
//! run one batch ahead each, on their own thread and task, so that the CPU
//! work of later batches overlaps the durable write of the current one; the
//! checkpoint only ever names committed batches. Enrollment is idempotent
//! by record id, so records enrolled after the last checkpoint by a run
//! that crashed are found again and skipped: every record ends up enrolled
//! exactly once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde_json::json;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::job::now_ms;
use crate::{Cursor, EnrollmentError, JobContext, JobFiles, JobSink, JobState, JobStatus, Outcome, SourceItem, source};

/// Runs a job from its checkpoint to the end, a cancel, or a failure,
/// publishing every checkpoint on `tx`.
pub async fn run<S: JobSink>(
    sink: Arc<S>,
    files: JobFiles,
    mut status: JobStatus,
    cancel: Arc<AtomicBool>,
    tx: watch::Sender<JobStatus>,
) {
    if let Err(e) = drive(&sink, &files, &mut status, &cancel, &tx).await {
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

/// A batch read from the source and prepared by the sink, waiting to be
/// committed.
struct Staged<P> {
    /// Records read (good and bad).
    n: u64,
    /// Report lines of records the source could not read.
    errors: Vec<serde_json::Value>,
    /// (index, record id, subject id) of each record handed to the sink.
    keys: Vec<(u64, String, String)>,
    prepared: P,
    /// Where the source stood after this batch.
    cursor: Cursor,
}

/// What flows between the pipeline's stages: a batch, the end of the
/// source (None), or the error that stops the job.
type Flow<T> = Result<Option<T>, EnrollmentError>;

/// Splits a read batch into report lines and records, and prepares the
/// records.
async fn stage<S: JobSink>(sink: &S, ctx: &JobContext, batch: Vec<SourceItem>, cursor: Cursor) -> Staged<S::Prepared> {
    let n = batch.len() as u64;
    let mut errors = Vec::new();
    let mut records = Vec::with_capacity(batch.len());
    for item in batch {
        match item {
            Ok(r) => records.push(r),
            Err(f) => errors.push(json!({
                "index": f.index, "record_id": f.record_id, "code": "INVALID_ARGUMENT", "message": f.message,
            })),
        }
    }
    let keys = records
        .iter()
        .map(|r| (r.index, r.record_id.clone(), r.subject_id.clone()))
        .collect();
    let prepared = sink.prepare(ctx, records).await;
    Staged {
        n,
        errors,
        keys,
        prepared,
        cursor,
    }
}

/// Starts the first two stages of a job: a reader thread (file reads and
/// parsing) feeding a preparer task (conversion, gating, row building), each
/// one batch ahead of the next stage. The commit is the caller's third
/// stage, so reading, preparing and the durable write of three consecutive
/// batches overlap. Both stages stop when the job drops the receiver.
fn start_pipeline<S: JobSink>(
    sink: Arc<S>,
    ctx: JobContext,
    mut src: Box<dyn source::RecordSource>,
    batch_size: usize,
) -> Pipeline<S::Prepared> {
    let (raw_tx, mut raw_rx) = mpsc::channel::<Flow<(Vec<SourceItem>, Cursor)>>(1);
    tokio::task::spawn_blocking(move || {
        loop {
            let flow = match src.next_batch(batch_size) {
                Ok(b) if b.is_empty() => Ok(None),
                Ok(b) => Ok(Some((b, src.cursor()))),
                Err(e) => Err(e),
            };
            let more = matches!(flow, Ok(Some(_)));
            // A closed channel means the job has stopped.
            if raw_tx.blocking_send(flow).is_err() || !more {
                return;
            }
        }
    });
    let (tx, rx) = mpsc::channel(1);
    let preparer = tokio::spawn(async move {
        while let Some(flow) = raw_rx.recv().await {
            let flow = match flow {
                Ok(Some((batch, cursor))) => Ok(Some(stage(&*sink, &ctx, batch, cursor).await)),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            };
            let more = matches!(flow, Ok(Some(_)));
            if tx.send(flow).await.is_err() || !more {
                return;
            }
        }
    });
    Pipeline {
        staged: rx,
        _preparer: AbortOnDrop(preparer),
    }
}

/// The receiving end of [`start_pipeline`]: prepared batches in order.
/// Dropping it stops the preparer at once and the reader at its next send.
struct Pipeline<P> {
    staged: mpsc::Receiver<Flow<Staged<P>>>,
    _preparer: AbortOnDrop,
}

async fn drive<S: JobSink>(
    sink: &Arc<S>,
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
    let mut pipeline = start_pipeline(sink.clone(), ctx.clone(), src, status.spec.batch_size);
    loop {
        if cancel.load(Ordering::Acquire) {
            status.state = JobState::Cancelled;
            break;
        }
        let started = Instant::now();
        let staged = match pipeline.staged.recv().await {
            Some(flow) => flow?,
            None => return Err(EnrollmentError::Sink("the batch pipeline stopped".into())),
        };
        let Some(staged) = staged else {
            status.state = JobState::Succeeded;
            break;
        };
        commit_batch(&**sink, files, &ctx, status, staged).await?;
        status.elapsed_ms += started.elapsed().as_millis() as u64;
        status.updated_ms = now_ms();
        files.save(status)?;
        tx.send_replace(status.clone());
    }
    status.updated_ms = now_ms();
    files.save(status)
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn commit_batch<S: JobSink>(
    sink: &S,
    files: &JobFiles,
    ctx: &JobContext,
    status: &mut JobStatus,
    staged: Staged<S::Prepared>,
) -> Result<(), EnrollmentError> {
    let Staged {
        n,
        mut errors,
        keys,
        prepared,
        cursor,
    } = staged;
    let mut dups = Vec::new();
    let outcomes = sink.commit(ctx, prepared).await?;
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
