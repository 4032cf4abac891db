//! The jobs of one server: started, watched, cancelled and, after a
//! restart, resumed from their checkpoints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use tokio::sync::watch;
use tracing::info;

use crate::job::now_ms;
use crate::{Cursor, EnrollmentError, JobCounts, JobFiles, JobSink, JobSpec, JobState, JobStatus, runner};

struct Handle {
    rx: watch::Receiver<JobStatus>,
    cancel: Arc<AtomicBool>,
}

/// Owns every job stored under one directory.
pub struct JobManager<S> {
    dir: PathBuf,
    sink: Arc<S>,
    jobs: Mutex<BTreeMap<String, Handle>>,
}

/// Checks a client-chosen job id: 1 to 64 ASCII letters, digits, `-`, `_` or `.`,
/// not starting with `.` (it names a folder).
pub fn validate_job_id(id: &str) -> Result<(), EnrollmentError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(EnrollmentError::InvalidSpec(format!(
            "job id {id:?} must be 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'"
        )))
    }
}

impl<S: JobSink> JobManager<S> {
    /// Loads the jobs stored under `dir` and resumes the ones that were
    /// running when the server stopped. Needs a tokio runtime.
    pub fn open(dir: &Path, sink: Arc<S>) -> Result<Arc<JobManager<S>>, EnrollmentError> {
        std::fs::create_dir_all(dir).map_err(EnrollmentError::io(dir))?;
        let m = Arc::new(JobManager {
            dir: dir.to_path_buf(),
            sink,
            jobs: Mutex::new(BTreeMap::new()),
        });
        for id in JobFiles::list(dir)? {
            let files = JobFiles::new(dir, &id);
            let mut status = files.load()?;
            if status.state == JobState::Running {
                status.resumed += 1;
                info!(job = %id, at = status.cursor.index, "resuming enrollment job");
                m.spawn(files, status);
            } else {
                let (tx, rx) = watch::channel(status);
                drop(tx);
                m.jobs.lock().insert(
                    id,
                    Handle {
                        rx,
                        cancel: Arc::new(AtomicBool::new(false)),
                    },
                );
            }
        }
        Ok(m)
    }

    fn spawn(&self, files: JobFiles, status: JobStatus) {
        let (tx, rx) = watch::channel(status.clone());
        let cancel = Arc::new(AtomicBool::new(false));
        self.jobs.lock().insert(
            status.job_id.clone(),
            Handle {
                rx,
                cancel: cancel.clone(),
            },
        );
        tokio::spawn(runner::run(self.sink.clone(), files, status, cancel, tx));
    }

    /// Starts a job. With a `job_id` the call is idempotent: the same id and
    /// spec return the existing job; the same id with another spec is refused.
    pub fn start(&self, job_id: Option<String>, spec: JobSpec) -> Result<JobStatus, EnrollmentError> {
        let spec = spec.validated()?;
        let id = match job_id.filter(|s| !s.is_empty()) {
            Some(id) => {
                validate_job_id(&id)?;
                if let Ok(existing) = self.get(&id) {
                    if existing.spec == spec {
                        return Ok(existing);
                    }
                    return Err(EnrollmentError::AlreadyExists(format!(
                        "job {id:?} exists with a different spec"
                    )));
                }
                id
            }
            None => uuid::Uuid::new_v4().to_string(),
        };
        let files = JobFiles::new(&self.dir, &id);
        files.create()?;
        let now = now_ms();
        let status = JobStatus {
            job_id: id.clone(),
            spec,
            state: JobState::Running,
            total: None,
            cursor: Cursor::default(),
            counts: JobCounts::default(),
            error: None,
            created_ms: now,
            updated_ms: now,
            elapsed_ms: 0,
            resumed: 0,
            errors_len: 0,
            duplicates_len: 0,
        };
        files.save(&status)?;
        info!(job = %id, source = %status.spec.source.display(), "enrollment job started");
        self.spawn(files, status.clone());
        Ok(status)
    }

    /// The sink jobs enroll through (also used by stream imports, which
    /// need no job files).
    pub fn sink(&self) -> &Arc<S> {
        &self.sink
    }

    /// The job's latest checkpoint.
    pub fn get(&self, id: &str) -> Result<JobStatus, EnrollmentError> {
        self.jobs
            .lock()
            .get(id)
            .map(|h| h.rx.borrow().clone())
            .ok_or_else(|| EnrollmentError::NotFound(id.into()))
    }

    /// A receiver that sees every checkpoint of the job; closed once it ends.
    pub fn watch(&self, id: &str) -> Result<watch::Receiver<JobStatus>, EnrollmentError> {
        self.jobs
            .lock()
            .get(id)
            .map(|h| h.rx.clone())
            .ok_or_else(|| EnrollmentError::NotFound(id.into()))
    }

    /// Asks a running job to stop after its current batch; returns its state.
    pub fn cancel(&self, id: &str) -> Result<JobStatus, EnrollmentError> {
        let jobs = self.jobs.lock();
        let h = jobs.get(id).ok_or_else(|| EnrollmentError::NotFound(id.into()))?;
        h.cancel.store(true, Ordering::Release);
        Ok(h.rx.borrow().clone())
    }

    /// Every job, oldest first.
    pub fn list(&self) -> Vec<JobStatus> {
        let mut v: Vec<JobStatus> = self.jobs.lock().values().map(|h| h.rx.borrow().clone()).collect();
        v.sort_by(|a, b| (a.created_ms, &a.job_id).cmp(&(b.created_ms, &b.job_id)));
        v
    }

    /// The files of job `id`.
    pub fn files(&self, id: &str) -> JobFiles {
        JobFiles::new(&self.dir, id)
    }
}
