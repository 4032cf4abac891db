//! `biomatch job ...`: start, follow and control batch enrollment jobs on a
//! running server. Following a job draws a progress bar with an ETA on
//! standard error; the final state is printed as JSON on standard output.

use std::io::Write;
use std::path::PathBuf;

use biomatch_proto::v1 as pb;
use clap::{Args, Subcommand, ValueEnum};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use pb::enrollment_jobs_client::EnrollmentJobsClient;
use serde_json::json;

use crate::cli::ClientArgs;

type CliResult = Result<(), Box<dyn std::error::Error>>;

/// `job` subcommands.
#[derive(Subcommand, Debug)]
pub enum JobCommand {
    /// Start an import and follow it to the end (unless --detach).
    Start(JobStartArgs),
    /// Print a job's state.
    Get(JobRefArgs),
    /// Follow a job to the end with a progress bar.
    Watch(JobRefArgs),
    /// Stop a job after its current batch.
    Cancel(JobRefArgs),
    /// Print every job.
    List(ClientArgs),
    /// Print a job's error or duplicate report (JSON lines).
    Report(JobReportArgs),
}

/// Source formats.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum JobFormat {
    /// One JSON record per line.
    Ndjson,
    /// A .npy matrix with --labels.
    Npy,
    /// A folder of ISO/IEC 19794-2 records named SUBJECT_SAMPLE.
    IsoDir,
    /// A folder of open-iris template JSON files named SUBJECT_SAMPLE.json.
    IrisDir,
}

/// Modalities of .npy sources.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum NpyModality {
    /// Face embeddings.
    Face,
    /// Voice embeddings.
    Voice,
}

/// `job start` arguments.
#[derive(Args, Debug)]
pub struct JobStartArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// File or folder to import, as the server sees it (made absolute here).
    source: PathBuf,
    /// Format; inferred from .ndjson/.jsonl/.npy when absent.
    #[arg(long, value_enum)]
    format: Option<JobFormat>,
    /// Modality of a .npy source.
    #[arg(long, value_enum)]
    modality: Option<NpyModality>,
    /// Labels of a .npy source: one subject per line.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Prefix of derived record ids.
    #[arg(long)]
    id_prefix: Option<String>,
    /// Job id; starting the same id and spec again returns the existing job.
    #[arg(long)]
    job_id: Option<String>,
    /// Records per durable batch (0: 1,024).
    #[arg(long, default_value_t = 0)]
    batch_size: u32,
    /// Quality gate: minimum reported quality (0..100).
    #[arg(long, default_value_t = 0.0)]
    min_quality: f32,
    /// Quality gate: minimum minutiae per fingerprint view.
    #[arg(long, default_value_t = 0)]
    min_minutiae: u32,
    /// Quality gate: minimum fraction of valid iris bits.
    #[arg(long, default_value_t = 0.0)]
    min_iris_valid: f32,
    /// Search each record first and report suspected duplicates.
    #[arg(long)]
    dedup: bool,
    /// Duplicate threshold (default: the modality's threshold).
    #[arg(long, requires = "dedup")]
    dedup_threshold: Option<f32>,
    /// Enroll suspected duplicates anyway (they are still reported).
    #[arg(long, requires = "dedup")]
    enroll_duplicates: bool,
    /// Return once the job is started instead of following it.
    #[arg(long)]
    detach: bool,
}

/// A job id and the server.
#[derive(Args, Debug)]
pub struct JobRefArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The job id.
    job_id: String,
}

/// `job report` arguments.
#[derive(Args, Debug)]
pub struct JobReportArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The job id.
    job_id: String,
    /// The duplicate report instead of the error report.
    #[arg(long)]
    duplicates: bool,
}

async fn connect(
    c: &ClientArgs,
) -> Result<EnrollmentJobsClient<biomatch_proto::AuthedChannel>, Box<dyn std::error::Error>> {
    Ok(EnrollmentJobsClient::new(c.channel().await?))
}

/// A job as printed.
fn job_json(j: &pb::Job) -> serde_json::Value {
    let state = pb::JobState::try_from(j.state).map_or("UNKNOWN", |s| s.as_str_name());
    json!({
        "job_id": j.job_id,
        "state": state.trim_start_matches("JOB_"),
        "source": j.spec.as_ref().map(|s| s.source.clone()),
        "format": j.spec.as_ref().map(|s| s.format.clone()),
        "total": j.total,
        "processed": j.processed,
        "enrolled": j.enrolled,
        "already_present": j.already_present,
        "rejected": j.rejected,
        "duplicates": j.duplicates,
        "records_per_second": (j.records_per_second * 10.0).round() / 10.0,
        "resumed": j.resumed,
        "error": (!j.error.is_empty()).then(|| j.error.clone()),
    })
}

fn emit(v: serde_json::Value) -> CliResult {
    writeln!(std::io::stdout().lock(), "{v}")?;
    Ok(())
}

/// Runs one `job` subcommand.
pub async fn run(cmd: JobCommand) -> CliResult {
    match cmd {
        JobCommand::Start(a) => {
            let mut client = connect(&a.client).await?;
            let abs = |p: PathBuf| std::path::absolute(&p).unwrap_or(p).display().to_string();
            let format = a.format.map(|f| match f {
                JobFormat::Ndjson => "ndjson",
                JobFormat::Npy => "npy",
                JobFormat::IsoDir => "iso_dir",
                JobFormat::IrisDir => "iris_dir",
            });
            let modality = match a.modality {
                Some(NpyModality::Face) => pb::Modality::Face,
                Some(NpyModality::Voice) => pb::Modality::Voice,
                None => pb::Modality::Unspecified,
            };
            let spec = pb::JobSpec {
                source: abs(a.source),
                format: format.unwrap_or_default().to_string(),
                modality: modality as i32,
                labels: a.labels.map(abs).unwrap_or_default(),
                id_prefix: a.id_prefix,
                batch_size: a.batch_size,
                min_quality: a.min_quality,
                min_minutiae: a.min_minutiae,
                min_iris_valid_fraction: a.min_iris_valid,
                dedup: a.dedup,
                dedup_threshold: a.dedup_threshold,
                enroll_duplicates: a.enroll_duplicates,
            };
            let job = client
                .start_job(pb::StartJobRequest {
                    job_id: a.job_id.unwrap_or_default(),
                    spec: Some(spec),
                })
                .await?
                .into_inner();
            if a.detach {
                return emit(job_json(&job));
            }
            follow(&mut client, &job.job_id).await
        }
        JobCommand::Get(a) => {
            let job = connect(&a.client)
                .await?
                .get_job(pb::JobRef { job_id: a.job_id })
                .await?;
            emit(job_json(job.get_ref()))
        }
        JobCommand::Watch(a) => follow(&mut connect(&a.client).await?, &a.job_id).await,
        JobCommand::Cancel(a) => {
            let job = connect(&a.client)
                .await?
                .cancel_job(pb::JobRef { job_id: a.job_id })
                .await?;
            emit(job_json(job.get_ref()))
        }
        JobCommand::List(c) => {
            for j in connect(&c)
                .await?
                .list_jobs(pb::ListJobsRequest {})
                .await?
                .into_inner()
                .jobs
            {
                emit(job_json(&j))?;
            }
            Ok(())
        }
        JobCommand::Report(a) => {
            let mut client = connect(&a.client).await?;
            let kind = if a.duplicates {
                pb::JobReportKind::JobReportDuplicates
            } else {
                pb::JobReportKind::JobReportErrors
            };
            let mut offset = 0;
            loop {
                let page = client
                    .get_job_report(pb::JobReportRequest {
                        job_id: a.job_id.clone(),
                        kind: kind as i32,
                        offset,
                        limit: 0,
                    })
                    .await?
                    .into_inner();
                let mut out = std::io::stdout().lock();
                for l in &page.lines {
                    writeln!(out, "{l}")?;
                }
                offset = page.next_offset;
                if !page.more {
                    return Ok(());
                }
            }
        }
    }
}

/// Follows a job with a progress bar until it ends; fails when the job fails.
async fn follow(client: &mut EnrollmentJobsClient<biomatch_proto::AuthedChannel>, job_id: &str) -> CliResult {
    let mut stream = client
        .watch_job(pb::JobRef { job_id: job_id.into() })
        .await?
        .into_inner();
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, ETA {eta}) {msg}",
        )
        .map_err(|e| e.to_string())?,
    );
    let mut last = None;
    while let Some(j) = stream.next().await {
        let j = j?;
        bar.set_length(j.total);
        bar.set_position(j.processed);
        bar.set_message(format!(
            "enrolled {} rejected {} duplicates {}",
            j.enrolled, j.rejected, j.duplicates
        ));
        last = Some(j);
    }
    bar.finish_and_clear();
    let j = last.ok_or("the server ended the watch without a state")?;
    emit(job_json(&j))?;
    if j.state == pb::JobState::JobFailed as i32 {
        return Err(format!("job {} failed: {}", j.job_id, j.error).into());
    }
    Ok(())
}
