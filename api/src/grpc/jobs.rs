//! The gRPC adapter of batch enrollment jobs.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use biomatch_enrollment::{
    DuplicateAction, DuplicateCheck, JobManager, JobSpec, JobState, JobStatus, QualityGate, SourceFormat,
};
use biomatch_proto::v1 as pb;
use futures::Stream;
use pb::enrollment_jobs_server::EnrollmentJobs;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::error::ServiceError;
use crate::jobs::ServiceSink;

/// Largest report page.
const MAX_REPORT_LINES: u32 = 10_000;

/// The `biomatch.v1.EnrollmentJobs` service.
#[derive(Clone)]
pub struct JobsGrpc {
    jobs: Arc<JobManager<ServiceSink>>,
}

impl JobsGrpc {
    /// An adapter over `jobs`.
    pub fn new(jobs: Arc<JobManager<ServiceSink>>) -> JobsGrpc {
        JobsGrpc { jobs }
    }
}

fn spec_from_pb(s: Option<pb::JobSpec>) -> Result<JobSpec, ServiceError> {
    let s = s.ok_or_else(|| ServiceError::InvalidArgument("spec is required".into()))?;
    let format = match s.format.as_str() {
        "" => None,
        f => Some(SourceFormat::parse(f).ok_or_else(|| {
            ServiceError::InvalidArgument(format!("format {f:?} is not one of ndjson, npy, iso_dir, iris_dir"))
        })?),
    };
    let modality = match pb::Modality::try_from(s.modality) {
        Ok(pb::Modality::Unspecified) => None,
        Ok(pb::Modality::Face) => Some("face".to_string()),
        Ok(pb::Modality::Voice) => Some("voice".to_string()),
        Ok(m) => Some(m.as_str_name().to_ascii_lowercase()),
        Err(_) => {
            return Err(ServiceError::InvalidArgument(format!(
                "spec.modality has unknown value {}",
                s.modality
            )));
        }
    };
    let finite = |name: &str, v: f32| {
        if v.is_finite() {
            Ok(v)
        } else {
            Err(ServiceError::InvalidArgument(format!(
                "spec.{name} is not a finite number"
            )))
        }
    };
    Ok(JobSpec {
        source: PathBuf::from(s.source),
        format,
        modality,
        labels: (!s.labels.is_empty()).then(|| PathBuf::from(s.labels)),
        id_prefix: s.id_prefix,
        batch_size: s.batch_size as usize,
        quality: QualityGate {
            min_quality: finite("min_quality", s.min_quality)?,
            min_minutiae: s.min_minutiae,
            min_iris_valid_fraction: finite("min_iris_valid_fraction", s.min_iris_valid_fraction)?,
        },
        dedup: DuplicateCheck::from_flags(s.dedup, s.dedup_threshold, s.enroll_duplicates),
    })
}

fn spec_to_pb(s: &JobSpec) -> pb::JobSpec {
    let modality = match s.modality.as_deref() {
        Some("face") => pb::Modality::Face,
        Some("voice") => pb::Modality::Voice,
        _ => pb::Modality::Unspecified,
    };
    pb::JobSpec {
        source: s.source.display().to_string(),
        format: s.format.map(|f| f.name().to_string()).unwrap_or_default(),
        modality: modality as i32,
        labels: s.labels.as_ref().map(|l| l.display().to_string()).unwrap_or_default(),
        id_prefix: s.id_prefix.clone(),
        batch_size: s.batch_size as u32,
        min_quality: s.quality.min_quality,
        min_minutiae: s.quality.min_minutiae,
        min_iris_valid_fraction: s.quality.min_iris_valid_fraction,
        dedup: s.dedup.is_some(),
        dedup_threshold: s.dedup.as_ref().and_then(|d| d.threshold),
        enroll_duplicates: s.dedup.as_ref().is_some_and(|d| d.action == DuplicateAction::Enroll),
    }
}

/// A job's status as the proto message.
pub fn job_to_pb(j: &JobStatus) -> pb::Job {
    let state = match j.state {
        JobState::Running => pb::JobState::JobRunning,
        JobState::Succeeded => pb::JobState::JobSucceeded,
        JobState::Failed => pb::JobState::JobFailed,
        JobState::Cancelled => pb::JobState::JobCancelled,
    };
    pb::Job {
        job_id: j.job_id.clone(),
        spec: Some(spec_to_pb(&j.spec)),
        state: state as i32,
        total: j.total.unwrap_or(0),
        processed: j.counts.processed,
        enrolled: j.counts.enrolled,
        already_present: j.counts.already_present,
        rejected: j.counts.rejected,
        duplicates: j.counts.duplicates,
        error: j.error.clone().unwrap_or_default(),
        records_per_second: j.records_per_second(),
        created_at_ms: j.created_ms,
        updated_at_ms: j.updated_ms,
        resumed: j.resumed,
    }
}

fn job_id(id: &str) -> Result<&str, ServiceError> {
    biomatch_enrollment::validate_job_id(id)?;
    Ok(id)
}

type JobStream = Pin<Box<dyn Stream<Item = Result<pb::Job, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl EnrollmentJobs for JobsGrpc {
    async fn start_job(&self, request: Request<pb::StartJobRequest>) -> Result<Response<pb::Job>, Status> {
        let r = request.into_inner();
        let spec = spec_from_pb(r.spec)?;
        let jobs = self.jobs.clone();
        // Validation stats the source: blocking file I/O.
        let status = tokio::task::spawn_blocking(move || jobs.start(Some(r.job_id), spec))
            .await
            .map_err(|e| ServiceError::Internal(format!("job start failed: {e}")))?
            .map_err(ServiceError::from)?;
        Ok(Response::new(job_to_pb(&status)))
    }

    async fn get_job(&self, request: Request<pb::JobRef>) -> Result<Response<pb::Job>, Status> {
        let r = request.into_inner();
        let status = self.jobs.get(job_id(&r.job_id)?).map_err(ServiceError::from)?;
        Ok(Response::new(job_to_pb(&status)))
    }

    type WatchJobStream = JobStream;

    async fn watch_job(&self, request: Request<pb::JobRef>) -> Result<Response<Self::WatchJobStream>, Status> {
        let r = request.into_inner();
        let mut rx = self.jobs.watch(job_id(&r.job_id)?).map_err(ServiceError::from)?;
        let stream = async_stream(move |tx| async move {
            loop {
                let current = rx.borrow_and_update().clone();
                let ended = current.state.is_terminal();
                if tx.send(Ok(job_to_pb(&current))).await.is_err() || ended {
                    return;
                }
                if rx.changed().await.is_err() {
                    // The runner is gone: its last state is the final one.
                    let last = rx.borrow().clone();
                    let _ = tx.send(Ok(job_to_pb(&last))).await;
                    return;
                }
            }
        });
        Ok(Response::new(stream))
    }

    async fn cancel_job(&self, request: Request<pb::JobRef>) -> Result<Response<pb::Job>, Status> {
        let r = request.into_inner();
        let status = self.jobs.cancel(job_id(&r.job_id)?).map_err(ServiceError::from)?;
        Ok(Response::new(job_to_pb(&status)))
    }

    async fn list_jobs(
        &self,
        _request: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        Ok(Response::new(pb::ListJobsResponse {
            jobs: self.jobs.list().iter().map(job_to_pb).collect(),
        }))
    }

    async fn get_job_report(
        &self,
        request: Request<pb::JobReportRequest>,
    ) -> Result<Response<pb::JobReportPage>, Status> {
        let r = request.into_inner();
        let id = job_id(&r.job_id)?.to_string();
        self.jobs.get(&id).map_err(ServiceError::from)?;
        let files = self.jobs.files(&id);
        let path = match pb::JobReportKind::try_from(r.kind) {
            Ok(pb::JobReportKind::JobReportErrors) => files.errors(),
            Ok(pb::JobReportKind::JobReportDuplicates) => files.duplicates(),
            _ => return Err(ServiceError::InvalidArgument("kind must be ERRORS or DUPLICATES".into()).into()),
        };
        let limit = match r.limit {
            0 => 1000,
            n if n > MAX_REPORT_LINES => {
                return Err(ServiceError::InvalidArgument(format!("limit {n} is above {MAX_REPORT_LINES}")).into());
            }
            n => n,
        } as usize;
        let offset = r.offset;
        let page = tokio::task::spawn_blocking(move || -> Result<pb::JobReportPage, ServiceError> {
            let f =
                std::fs::File::open(&path).map_err(|e| ServiceError::Internal(format!("{}: {e}", path.display())))?;
            let mut lines = Vec::new();
            let mut more = false;
            for (i, line) in BufReader::new(f).lines().enumerate() {
                let line = line.map_err(|e| ServiceError::Internal(format!("{}: {e}", path.display())))?;
                if (i as u64) < offset {
                    continue;
                }
                if lines.len() == limit {
                    more = true;
                    break;
                }
                lines.push(line);
            }
            Ok(pb::JobReportPage {
                next_offset: offset + lines.len() as u64,
                lines,
                more,
            })
        })
        .await
        .map_err(|e| ServiceError::Internal(format!("report reader failed: {e}")))??;
        Ok(Response::new(page))
    }

    type ImportStreamStream = Pin<Box<dyn Stream<Item = Result<pb::ImportAck, Status>> + Send + 'static>>;

    async fn import_stream(
        &self,
        request: Request<tonic::Streaming<pb::ImportStreamRequest>>,
    ) -> Result<Response<Self::ImportStreamStream>, Status> {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let sink = self.jobs.sink().clone();
        tokio::spawn(
            super::import::run(sink, request.into_inner(), tx).instrument(tracing::info_span!("import_stream")),
        );
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }
}

/// A stream fed by a task that gets the sending half of a small channel.
fn async_stream<F, Fut>(f: F) -> JobStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<pb::Job, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
