//! ImportStream: a client-streamed import through the job sink, so that
//! streamed records get the same validation, quality gate, duplicate check
//! and idempotence by record id as file jobs.

use biomatch_enrollment::{
    DuplicateCheck, EnrollmentError, JobContext, JobSink, Outcome, QualityGate, SourceRecord, check_handling,
    validate_job_id,
};
use biomatch_proto::v1 as pb;
use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use crate::error::ServiceError;
use crate::jobs::ServiceSink;

/// The prefix of an import's job tag: `:` cannot occur in a job id, so an
/// import never mistakes a file job's records for its own, or the reverse.
const IMPORT_TAG_PREFIX: &str = "import:";

/// The settings as a job context and a batch size, checked as a file job's
/// spec is.
fn context(s: pb::ImportSettings) -> Result<(JobContext, usize), ServiceError> {
    validate_job_id(&s.import_id).map_err(|e| ServiceError::InvalidArgument(format!("settings.import_id: {e}")))?;
    let quality = QualityGate {
        min_quality: s.min_quality,
        min_minutiae: s.min_minutiae,
        min_iris_valid_fraction: s.min_iris_valid_fraction,
    };
    let dedup = DuplicateCheck::from_flags(s.dedup, s.dedup_threshold, s.enroll_duplicates);
    let batch = check_handling(s.batch_size as usize, &quality, dedup.as_ref()).map_err(|e| match e {
        EnrollmentError::InvalidSpec(m) => ServiceError::InvalidArgument(format!("settings: {m}")),
        other => other.into(),
    })?;
    let job = JobContext {
        job_id: format!("{IMPORT_TAG_PREFIX}{}", s.import_id),
        quality,
        dedup,
    };
    Ok((job, batch))
}

fn outcome_to_pb(index: u64, record_id: String, o: Outcome) -> pb::RecordOutcome {
    let mut r = pb::RecordOutcome {
        index,
        record_id,
        ..Default::default()
    };
    match o {
        Outcome::Enrolled => r.status = pb::RecordStatus::RecordEnrolled as i32,
        Outcome::AlreadyPresent { by_this_job } => {
            r.status = pb::RecordStatus::RecordAlreadyPresent as i32;
            r.by_this_import = by_this_job;
        }
        Outcome::Rejected { code, message } => {
            r.status = pb::RecordStatus::RecordRejected as i32;
            r.code = code;
            r.message = message;
        }
        Outcome::Duplicate {
            subject_id,
            record_id,
            score,
            enrolled,
        } => {
            r.status = if enrolled {
                pb::RecordStatus::RecordDuplicateEnrolled
            } else {
                pb::RecordStatus::RecordDuplicateSkipped
            } as i32;
            r.matched_subject_id = subject_id;
            r.matched_record_id = record_id;
            r.score = score;
        }
    }
    r
}

/// A streamed record as a source record, or its rejection.
fn record(index: u64, r: pb::EnrollRequest) -> Result<SourceRecord, Box<pb::RecordOutcome>> {
    let reject = |id: &str, m: &str| {
        Box::new(outcome_to_pb(
            index,
            id.to_string(),
            Outcome::Rejected {
                code: "INVALID_ARGUMENT".into(),
                message: m.into(),
            },
        ))
    };
    if r.record_id.is_empty() {
        return Err(reject(
            "",
            "record.record_id is required in an import (it makes re-sending safe)",
        ));
    }
    let Some(template) = r.template else {
        return Err(reject(&r.record_id, "record.template is required"));
    };
    Ok(SourceRecord {
        index,
        record_id: r.record_id,
        subject_id: r.subject_id,
        template,
        metadata: r.metadata.into_iter().collect(),
    })
}

/// Serves one ImportStream call, sending acknowledgements on `tx`.
pub(super) async fn run(
    sink: std::sync::Arc<ServiceSink>,
    mut inbound: Streaming<pb::ImportStreamRequest>,
    tx: mpsc::Sender<Result<pb::ImportAck, Status>>,
) {
    let mut ctx: Option<(JobContext, usize)> = None;
    let mut index = 0u64;
    let mut answered = 0u64;
    let mut ended = false;
    while !ended {
        // Wait for one message, then take what has already arrived, up to
        // the batch size: full batches under load, no delay when idle.
        let mut batch = Vec::new();
        let mut early: Vec<pb::RecordOutcome> = Vec::new();
        let limit = ctx.as_ref().map_or(1, |c| c.1);
        let mut first = true;
        while batch.len() + early.len() < limit {
            let next = if first {
                first = false;
                inbound.next().await
            } else {
                match inbound.next().now_or_never() {
                    Some(m) => m,
                    None => break,
                }
            };
            let m = match next {
                None => {
                    ended = true;
                    break;
                }
                Some(Err(s)) => {
                    let _ = tx.send(Err(s)).await;
                    return;
                }
                Some(Ok(m)) => m,
            };
            match (m.settings, &ctx) {
                (Some(s), None) => match context(s) {
                    Ok(c) => ctx = Some(c),
                    Err(e) => {
                        let _ = tx.send(Err(e.into())).await;
                        return;
                    }
                },
                (Some(_), Some(_)) => {
                    let e = ServiceError::InvalidArgument("settings may only be sent on the first message".into());
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
                (None, None) => {
                    let e = ServiceError::InvalidArgument("the first message must carry settings".into());
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
                (None, Some(_)) => {}
            }
            if let Some(r) = m.record {
                match record(index, r) {
                    Ok(r) => batch.push(r),
                    Err(o) => early.push(*o),
                }
                index += 1;
            }
        }
        if batch.is_empty() && early.is_empty() {
            continue;
        }
        let Some((job, _)) = &ctx else { continue };
        let keys: Vec<(u64, String)> = batch.iter().map(|r| (r.index, r.record_id.clone())).collect();
        let mut outcomes = early;
        if !batch.is_empty() {
            match sink.enroll(job, batch).await {
                Ok(os) => outcomes.extend(keys.into_iter().zip(os).map(|((i, id), o)| outcome_to_pb(i, id, o))),
                Err(e) => {
                    let _ = tx.send(Err(ServiceError::from(e).into())).await;
                    return;
                }
            }
        }
        outcomes.sort_by_key(|o| o.index);
        answered += outcomes.len() as u64;
        let ack = pb::ImportAck {
            outcomes,
            answered_total: answered,
        };
        if tx.send(Ok(ack)).await.is_err() {
            return;
        }
    }
}
