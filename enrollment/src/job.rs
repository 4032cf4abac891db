//! A job's state and its files. Each job owns a folder under the jobs
//! directory: `job.json` (the spec and the last checkpoint, replaced
//! atomically), `errors.ndjson` (one line per refused record) and
//! `duplicates.ndjson` (one line per suspected duplicate). The checkpoint
//! records how long both reports were, so that lines written after it by a
//! run that then crashed are cut off when the job resumes.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Cursor, EnrollmentError, JobSpec};

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Importing (also a job that the server will resume after a restart).
    Running,
    /// Every record was handled; the enrolled ones are durable.
    Succeeded,
    /// Stopped by an error that is not about one record (see `error`).
    Failed,
    /// Stopped on request; what was enrolled stays.
    Cancelled,
}

impl JobState {
    /// Whether the job will not change any more.
    pub fn is_terminal(self) -> bool {
        self != JobState::Running
    }
}

/// Per-outcome record counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCounts {
    /// Records read from the source so far.
    pub processed: u64,
    /// Records this job enrolled.
    pub enrolled: u64,
    /// Records whose id was already enrolled before this job (skipped).
    pub already_present: u64,
    /// Records refused (parse, validation or quality); see the error report.
    pub rejected: u64,
    /// Suspected duplicates of another subject; see the duplicate report.
    pub duplicates: u64,
}

/// A job's state as stored in its checkpoint and reported to clients.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    /// The job id.
    pub job_id: String,
    /// What it imports.
    pub spec: JobSpec,
    /// Its state.
    pub state: JobState,
    /// Records in the source, when known.
    pub total: Option<u64>,
    /// Where the source resumes.
    pub cursor: Cursor,
    /// Outcome counts.
    pub counts: JobCounts,
    /// Why the job failed.
    pub error: Option<String>,
    /// Submission time, ms since the Unix epoch.
    pub created_ms: u64,
    /// Last checkpoint, ms since the Unix epoch.
    pub updated_ms: u64,
    /// Time spent importing, summed over runs, in ms.
    pub elapsed_ms: u64,
    /// Times the job was resumed after a server restart.
    pub resumed: u32,
    /// Length of `errors.ndjson` at the checkpoint.
    pub errors_len: u64,
    /// Length of `duplicates.ndjson` at the checkpoint.
    pub duplicates_len: u64,
}

impl JobStatus {
    /// Records per second over the time spent importing.
    pub fn records_per_second(&self) -> f64 {
        if self.elapsed_ms == 0 {
            0.0
        } else {
            self.counts.processed as f64 * 1000.0 / self.elapsed_ms as f64
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The folder of one job.
#[derive(Clone, Debug)]
pub struct JobFiles {
    dir: PathBuf,
}

impl JobFiles {
    /// The files of job `id` under `jobs_dir`.
    pub fn new(jobs_dir: &Path, id: &str) -> JobFiles {
        JobFiles { dir: jobs_dir.join(id) }
    }

    /// The error report.
    pub fn errors(&self) -> PathBuf {
        self.dir.join("errors.ndjson")
    }

    /// The duplicate report.
    pub fn duplicates(&self) -> PathBuf {
        self.dir.join("duplicates.ndjson")
    }

    fn checkpoint(&self) -> PathBuf {
        self.dir.join("job.json")
    }

    /// Creates the folder and empty reports for a new job.
    pub fn create(&self) -> Result<(), EnrollmentError> {
        std::fs::create_dir_all(&self.dir).map_err(EnrollmentError::io(&self.dir))?;
        for p in [self.errors(), self.duplicates()] {
            File::create(&p).map_err(EnrollmentError::io(&p))?;
        }
        Ok(())
    }

    /// Reads the checkpoint.
    pub fn load(&self) -> Result<JobStatus, EnrollmentError> {
        let p = self.checkpoint();
        let bytes = std::fs::read(&p).map_err(EnrollmentError::io(&p))?;
        serde_json::from_slice(&bytes).map_err(|e| EnrollmentError::Format {
            path: p,
            detail: e.to_string(),
        })
    }

    /// Replaces the checkpoint atomically and durably: a crash leaves either
    /// the old or the new one.
    pub fn save(&self, status: &JobStatus) -> Result<(), EnrollmentError> {
        let p = self.checkpoint();
        let tmp = self.dir.join("job.json.tmp");
        let bytes = serde_json::to_vec_pretty(status).map_err(|e| EnrollmentError::Format {
            path: p.clone(),
            detail: e.to_string(),
        })?;
        let mut f = File::create(&tmp).map_err(EnrollmentError::io(&tmp))?;
        f.write_all(&bytes).map_err(EnrollmentError::io(&tmp))?;
        f.sync_all().map_err(EnrollmentError::io(&tmp))?;
        std::fs::rename(&tmp, &p).map_err(EnrollmentError::io(&p))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(EnrollmentError::io(&self.dir))
    }

    /// Cuts both reports back to their lengths at the checkpoint.
    pub fn truncate_reports(&self, status: &JobStatus) -> Result<(), EnrollmentError> {
        for (p, len) in [
            (self.errors(), status.errors_len),
            (self.duplicates(), status.duplicates_len),
        ] {
            let f = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&p)
                .map_err(EnrollmentError::io(&p))?;
            f.set_len(len).map_err(EnrollmentError::io(&p))?;
        }
        Ok(())
    }

    /// Appends JSON lines to a report, syncs it and returns its new length.
    pub fn append(&self, path: &Path, lines: &[serde_json::Value]) -> Result<u64, EnrollmentError> {
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(EnrollmentError::io(path))?;
        if !lines.is_empty() {
            let mut buf = Vec::new();
            for l in lines {
                buf.extend_from_slice(l.to_string().as_bytes());
                buf.push(b'\n');
            }
            f.write_all(&buf).map_err(EnrollmentError::io(path))?;
            f.sync_data().map_err(EnrollmentError::io(path))?;
        }
        Ok(f.metadata().map_err(EnrollmentError::io(path))?.len())
    }

    /// Ids of the jobs stored under `jobs_dir`.
    pub fn list(jobs_dir: &Path) -> Result<Vec<String>, EnrollmentError> {
        let mut ids = Vec::new();
        let rd = match std::fs::read_dir(jobs_dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
            Err(e) => return Err(EnrollmentError::io(jobs_dir)(e)),
        };
        for entry in rd {
            let entry = entry.map_err(EnrollmentError::io(jobs_dir))?;
            if entry.path().join("job.json").is_file()
                && let Some(name) = entry.file_name().to_str()
            {
                ids.push(name.to_string());
            }
        }
        ids.sort();
        Ok(ids)
    }
}
