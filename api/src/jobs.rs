//! The service side of batch enrollment jobs: converts the records a job
//! reads into the service's types, applies the quality gate and the
//! duplicate check, and enrolls them durably.

use std::sync::Arc;

use biomatch_enrollment::{
    DuplicateAction, DuplicateCheck, JOB_METADATA_KEY, JobContext, JobSink, Outcome, SourceRecord,
};
use biomatch_enrollment::{EnrollmentError, QualityGate};
use biomatch_matcher::iris::IRIS_CODE_BITS;

use crate::error::ServiceError;
use crate::grpc::convert;
use crate::service::{EnrollInput, IdentifyInput, MatchService, PreparedBatch, Template};

/// Enrolls job batches through the shared [`MatchService`].
pub struct ServiceSink {
    svc: Arc<MatchService>,
}

impl ServiceSink {
    /// A sink over `svc`.
    pub fn new(svc: Arc<MatchService>) -> ServiceSink {
        ServiceSink { svc }
    }
}

/// The metadata value that marks a record as enrolled by record `index` of
/// job `job`; a resumed job (or a re-sent import stream) knows its own
/// records by the part before the `/` (job ids cannot contain one).
fn job_tag(job: &str, index: u64) -> String {
    format!("{job}/{index}")
}

/// Whether a stored tag was written by `job`.
fn tagged_by(tag: Option<&String>, job: &str) -> bool {
    tag.and_then(|t| t.rsplit_once('/')).is_some_and(|(j, _)| j == job)
}

fn rejected(e: &ServiceError) -> Outcome {
    Outcome::Rejected {
        code: e.code_name().into(),
        message: e.to_string(),
    }
}

/// Why `t` fails the gate, if it does.
fn quality_problem(gate: &QualityGate, t: &Template, quality: f32) -> Option<String> {
    if quality > 0.0 && quality < gate.min_quality {
        return Some(format!("quality {quality} is below the minimum {}", gate.min_quality));
    }
    match t {
        Template::Fingerprint(r) => {
            let most = r.views.iter().map(|v| v.minutiae.len()).max().unwrap_or(0);
            (most < gate.min_minutiae as usize)
                .then(|| format!("{most} minutiae; the quality gate needs at least {}", gate.min_minutiae))
        }
        Template::Iris(i) => {
            let valid: u32 = i.mask_words().iter().map(|w| w.count_ones()).sum();
            let frac = valid as f32 / IRIS_CODE_BITS as f32;
            (frac < gate.min_iris_valid_fraction).then(|| {
                format!(
                    "{:.1}% of iris bits are valid; the quality gate needs {:.1}%",
                    frac * 100.0,
                    gate.min_iris_valid_fraction * 100.0
                )
            })
        }
        Template::Embedding(_) => None,
    }
}

impl ServiceSink {
    /// Converts and gates one record.
    fn input(&self, job: &JobContext, r: SourceRecord) -> Result<EnrollInput, Outcome> {
        let (template, quality) =
            convert::template(&self.svc, Some(r.template), "template").map_err(|e| rejected(&e))?;
        if let Some(why) = quality_problem(&job.quality, &template, quality) {
            return Err(Outcome::Rejected {
                code: "QUALITY".into(),
                message: why,
            });
        }
        let mut metadata = r.metadata;
        metadata.insert(JOB_METADATA_KEY.into(), job_tag(&job.job_id, r.index));
        Ok(EnrollInput {
            subject_id: r.subject_id,
            record_id: Some(r.record_id),
            template,
            quality,
            metadata,
        })
    }

    /// The outcome of an enrollment attempt; an id that exists already is
    /// this job's own record (written before a crash) or an earlier one.
    async fn settle(&self, id: &str, job: &str, result: Result<(), ServiceError>, done: Outcome) -> Outcome {
        match result {
            Ok(()) => done,
            Err(ServiceError::AlreadyExists(m)) => match self.svc.get_record(id, false).await {
                Ok(v) => Outcome::AlreadyPresent {
                    by_this_job: tagged_by(v.record.meta.metadata.get(JOB_METADATA_KEY), job),
                },
                Err(_) => rejected(&ServiceError::AlreadyExists(m)),
            },
            Err(e) => rejected(&e),
        }
    }

    /// Searches for another subject's record at or above the job's threshold.
    async fn duplicate_of(
        &self,
        input: &EnrollInput,
        threshold: Option<f32>,
    ) -> Result<Option<(String, String, f32)>, ServiceError> {
        let t = threshold.unwrap_or_else(|| self.svc.default_threshold(input.template.modality()));
        let found = self
            .svc
            .identify(IdentifyInput {
                probe: input.template.clone(),
                top_k: 4,
                threshold: Some(t),
                target_fmr: None,
                filter: Default::default(),
                // The planner's default: graph search once the gallery is
                // indexed, which is what keeps de-duplication affordable at
                // national scale.
                search: Default::default(),
                penetration: None,
            })
            .await?;
        Ok(found
            .candidates
            .into_iter()
            .find(|c| c.subject_id != input.subject_id)
            .map(|c| (c.subject_id, c.record_id, c.score)))
    }
}

/// A job batch after [`JobSink::prepare`].
pub struct PreparedJobBatch {
    /// Outcomes settled while preparing (repeated ids, conversion and
    /// quality failures), by position.
    out: Vec<Option<Outcome>>,
    pending: Pending,
}

/// The records still to be enrolled.
enum Pending {
    /// Without a duplicate check: rows already built, with each position
    /// and record id.
    Rows(Vec<(usize, String)>, PreparedBatch),
    /// With one: each record is searched for and enrolled in turn at commit,
    /// so that every search sees the records enrolled before it.
    Checked(DuplicateCheck, Vec<(usize, EnrollInput)>),
}

impl JobSink for ServiceSink {
    type Prepared = PreparedJobBatch;

    async fn prepare(&self, job: &JobContext, batch: Vec<SourceRecord>) -> PreparedJobBatch {
        let mut out: Vec<Option<Outcome>> = vec![None; batch.len()];
        let mut pending = Vec::new();
        let mut seen = std::collections::HashMap::new();
        for (i, r) in batch.into_iter().enumerate() {
            if let Some(first) = seen.insert(r.record_id.clone(), r.index) {
                out[i] = Some(Outcome::Rejected {
                    code: "ALREADY_EXISTS".into(),
                    message: format!("record id {:?} repeats the record at index {first}", r.record_id),
                });
                continue;
            }
            match self.input(job, r) {
                Ok(inp) => pending.push((i, inp)),
                Err(o) => out[i] = Some(o),
            }
        }
        let pending = match &job.dedup {
            None => {
                let ids: Vec<(usize, String)> = pending
                    .iter()
                    .map(|(i, inp)| (*i, inp.record_id.clone().unwrap_or_default()))
                    .collect();
                let rows = self
                    .svc
                    .prepare_batch(pending.into_iter().map(|(_, inp)| inp).collect())
                    .await;
                Pending::Rows(ids, rows)
            }
            Some(check) => Pending::Checked(check.clone(), pending),
        };
        PreparedJobBatch { out, pending }
    }

    async fn commit(&self, job: &JobContext, batch: PreparedJobBatch) -> Result<Vec<Outcome>, EnrollmentError> {
        let PreparedJobBatch { mut out, pending } = batch;
        match pending {
            Pending::Rows(ids, rows) => {
                let results = self.svc.commit_batch(rows).await;
                for ((i, id), r) in ids.into_iter().zip(results) {
                    out[i] = Some(self.settle(&id, &job.job_id, r.map(|_| ()), Outcome::Enrolled).await);
                }
            }
            Pending::Checked(check, pending) => {
                // One record at a time, so that each search sees every record
                // enrolled before it, this batch's included.
                for (i, inp) in pending {
                    let id = inp.record_id.clone().unwrap_or_default();
                    let dup = match self.duplicate_of(&inp, check.threshold).await {
                        Ok(d) => d,
                        Err(e) => {
                            out[i] = Some(rejected(&e));
                            continue;
                        }
                    };
                    let enroll = dup.is_none() || check.action == DuplicateAction::Enroll;
                    let result = if enroll {
                        self.svc.enroll(inp).await.map(|_| ())
                    } else {
                        Ok(())
                    };
                    let done = match dup {
                        Some((subject_id, record_id, score)) => Outcome::Duplicate {
                            subject_id,
                            record_id,
                            score,
                            enrolled: enroll,
                        },
                        None => Outcome::Enrolled,
                    };
                    out[i] = Some(self.settle(&id, &job.job_id, result, done).await);
                }
            }
        }
        out.into_iter()
            .map(|o| o.ok_or_else(|| EnrollmentError::Sink("a record got no outcome".into())))
            .collect()
    }
}
