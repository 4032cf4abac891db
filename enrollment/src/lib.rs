//! Batch enrollment: import a gallery from files into the matching service
//! as a job that reports progress, can be cancelled, and resumes from its
//! last checkpoint after a crash with every record enrolled exactly once.
//!
//! - [`source`] reads NDJSON records, `.npy` matrices with labels, and folders
//!   of ISO/IEC 19794-2 or open-iris templates, with deterministic record ids.
//! - [`JobSink`] is the service side: validation, the quality gate, the
//!   duplicate check and durable enrollment of a batch.
//! - [`JobManager`] owns the jobs of a server and their files.

#![warn(missing_docs)]

mod error;
mod job;
mod manager;
mod runner;
mod sink;
pub mod source;
mod spec;

pub use error::EnrollmentError;
pub use job::{JobCounts, JobFiles, JobState, JobStatus, now_ms};
pub use manager::{JobManager, validate_job_id};
pub use sink::{JOB_METADATA_KEY, JobContext, JobSink, Outcome};
pub use source::{Cursor, RecordSource, SourceFailure, SourceItem, SourceRecord};
pub use spec::{
    DEFAULT_BATCH, DuplicateAction, DuplicateCheck, JobSpec, MAX_BATCH, QualityGate, SourceFormat, check_handling,
};
