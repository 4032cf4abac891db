//! What a job hands its records to: the matching service, behind a trait so
//! that this crate does not depend on the server.

use std::future::Future;

use crate::{DuplicateCheck, EnrollmentError, QualityGate, SourceRecord};

/// Metadata key the sink stores on every record a job enrolls, with the job
/// id as value. A resumed job recognises its own records by it.
pub const JOB_METADATA_KEY: &str = "enrollment_job";

/// The settings a sink needs for each batch.
#[derive(Clone, Debug)]
pub struct JobContext {
    /// The job.
    pub job_id: String,
    /// The quality gate.
    pub quality: QualityGate,
    /// The duplicate check, when on.
    pub dedup: Option<DuplicateCheck>,
}

/// What became of one record.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Enrolled and durable.
    Enrolled,
    /// The record id was already enrolled; `by_this_job` when this job did it
    /// in a run that crashed before its checkpoint.
    AlreadyPresent {
        /// Whether the stored record carries this job's id.
        by_this_job: bool,
    },
    /// Refused: validation or quality.
    Rejected {
        /// gRPC status name (INVALID_ARGUMENT, ALREADY_EXISTS, ...) or QUALITY.
        code: String,
        /// Why.
        message: String,
    },
    /// Matches another subject's record at or above the duplicate threshold.
    Duplicate {
        /// The other subject.
        subject_id: String,
        /// Its record.
        record_id: String,
        /// The score.
        score: f32,
        /// Whether the record was enrolled anyway.
        enrolled: bool,
    },
}

/// Enrolls batches of records durably, in two steps so that a job can
/// overlap them: [`prepare`](JobSink::prepare) (conversion, validation,
/// building rows: CPU work that reads nothing stored) for the next batch
/// runs while [`commit`](JobSink::commit) writes the current one.
pub trait JobSink: Send + Sync + 'static {
    /// A batch after `prepare`.
    type Prepared: Send + 'static;

    /// Converts, validates and gates `batch` and does whatever else does not
    /// depend on what is stored. Problems with single records are carried to
    /// their outcomes.
    fn prepare(&self, job: &JobContext, batch: Vec<SourceRecord>) -> impl Future<Output = Self::Prepared> + Send;

    /// Checks and enrolls a prepared batch, returning one outcome per record
    /// in order. Must not return before the enrolled records are durable. An
    /// `Err` stops the job (the service is unusable).
    fn commit(
        &self,
        job: &JobContext,
        batch: Self::Prepared,
    ) -> impl Future<Output = Result<Vec<Outcome>, EnrollmentError>> + Send;

    /// `prepare` then `commit`.
    fn enroll(
        &self,
        job: &JobContext,
        batch: Vec<SourceRecord>,
    ) -> impl Future<Output = Result<Vec<Outcome>, EnrollmentError>> + Send {
        async move {
            let prepared = self.prepare(job, batch).await;
            self.commit(job, prepared).await
        }
    }
}
