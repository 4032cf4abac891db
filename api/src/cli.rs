//! The command line: `biomatch serve` and the client subcommands that talk to
//! a running server over gRPC. Client commands print one JSON object per line
//! on standard output.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use biomatch_benches::accuracy::{self, AccuracyArgs};
use biomatch_benches::load::{self, LoadArgs};
use biomatch_datasets::{VectorRecord, read_dir_files, read_json_objects, read_vectors};
use biomatch_proto::v1 as pb;
use clap::{Args, Parser, Subcommand, ValueEnum};
use pb::matcher_client::MatcherClient;
use serde_json::json;

/// biomatch: biometric matching over gRPC.
#[derive(Parser, Debug)]
#[command(name = "biomatch", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (embedded defaults: ./biomatch-data, 127.0.0.1:50051).
    Serve(ServeArgs),
    /// Enroll vectors from a JSON or .npy file.
    Enroll(EnrollArgs),
    /// Verify each vector of a file against a subject or record.
    Verify(VerifyArgs),
    /// Identify each vector of a file in its gallery.
    Identify(IdentifyArgs),
    /// Delete a record or a subject.
    Delete(DeleteArgs),
    /// Print gallery statistics.
    Stats(ClientArgs),
    /// Fit a gallery's score calibration (so that decisions can be asked
    /// for by false match rate) and print it.
    Calibrate(CalibrateArgs),
    /// Rewrite a FACE or VOICE gallery into its shards with graph indexes
    /// for approximate identification (after a bulk import, say).
    Optimize(OptimizeArgs),
    /// Batch enrollment jobs: import files on the server, follow, cancel.
    #[command(subcommand)]
    Job(crate::job_cli::JobCommand),
    /// Benchmarks and evaluations.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Operator commands on the platform database: the first administrator,
    /// API keys.
    #[command(subcommand)]
    Admin(crate::admin_cli::AdminCommand),
}

/// `bench` subcommands.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// ISO/IEC 19795-1 accuracy: scores a labelled set with the real
    /// matchers (or reads score files) and reports FMR/FNMR, EER, FMR100,
    /// FMR1000, FMR10000, ZeroFMR, d' for 1:1 and CMC, FNIR at FPIR for 1:N;
    /// with --out also the score files and DET and CMC plots. Prints JSON.
    Accuracy(AccuracyArgs),
    /// Drives a running server over gRPC with a verify/identify/enroll mix
    /// and reports throughput and latency percentiles. Prints JSON.
    Load(LoadArgs),
}

/// `serve` flags; each overrides the config file and environment.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// gRPC listen address (port 0 picks a free one).
    #[arg(long)]
    pub grpc_addr: Option<std::net::SocketAddr>,
    /// Write the bound gRPC address to this file once listening.
    #[arg(long)]
    pub port_file: Option<PathBuf>,
    /// REST listen address (port 0 picks a free one).
    #[arg(long)]
    pub http_addr: Option<std::net::SocketAddr>,
    /// Write the bound REST address to this file once listening.
    #[arg(long)]
    pub http_port_file: Option<PathBuf>,
}

/// Where the server is.
#[derive(Args, Debug)]
pub struct ClientArgs {
    /// Server URL.
    #[arg(long, env = "BIOMATCH_SERVER", default_value = "http://127.0.0.1:50051")]
    pub server: String,
    /// API key (`bmk_…`) or access token for servers that require
    /// credentials.
    #[arg(long, env = "BIOMATCH_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

impl ClientArgs {
    /// A connected channel that sends the credentials with every call.
    pub async fn channel(&self) -> Result<biomatch_proto::AuthedChannel, Box<dyn std::error::Error>> {
        let creds = match &self.api_key {
            Some(k) => {
                biomatch_proto::Credentials::from_secret(k).ok_or("--api-key holds characters a header cannot carry")?
            }
            None => biomatch_proto::Credentials::none(),
        };
        let ch = tonic::transport::Channel::from_shared(self.server.clone())
            .map_err(|e| format!("--server {:?}: {e}", self.server))?
            .connect()
            .await
            .map_err(|e| format!("cannot reach biomatch at {}: {e}", self.server))?;
        Ok(tonic::service::interceptor::InterceptedService::new(ch, creds))
    }
}

/// Server, modality and the file of vectors: what every vector command takes.
#[derive(Args, Debug)]
pub struct VectorArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Modality of the vectors.
    #[arg(long, value_enum)]
    modality: CliModality,
    /// FACE/VOICE: JSON (a vector, a list of vectors, or a list of records)
    /// or .npy. IRIS: open-iris template JSON (one object, a list, or one per
    /// line), each optionally with "subject_id", "record_id", "metadata".
    /// FINGERPRINT: an ISO/IEC 19794-2:2005 record, or a directory of them;
    /// from a directory each file's stem is its record id and the stem's
    /// part before the first '_' its subject (FVC naming: 101_3 is
    /// impression 3 of finger 101).
    #[arg(long)]
    input: PathBuf,
}

/// Embedding modalities the CLI sends.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum CliModality {
    /// Face embeddings.
    Face,
    /// Voice embeddings.
    Voice,
    /// open-iris iris templates.
    Iris,
    /// ISO/IEC 19794-2 finger minutiae records.
    Fingerprint,
}

impl CliModality {
    fn pb(self) -> pb::Modality {
        match self {
            CliModality::Face => pb::Modality::Face,
            CliModality::Voice => pb::Modality::Voice,
            CliModality::Iris => pb::Modality::Iris,
            CliModality::Fingerprint => pb::Modality::Fingerprint,
        }
    }
}

/// `calibrate` arguments.
#[derive(Args, Debug)]
pub struct CalibrateArgs {
    #[command(flatten)]
    gallery: GalleryArgs,
    /// Gallery records to sample (every pair of them is scored).
    #[arg(long)]
    max_records: Option<u32>,
    /// Fit from these impostor scores instead (one number per line).
    #[arg(long)]
    impostor_scores: Option<PathBuf>,
    /// Genuine scores to go with them (one number per line).
    #[arg(long, requires = "impostor_scores")]
    genuine_scores: Option<PathBuf>,
}

/// `enroll` arguments.
#[derive(Args, Debug)]
pub struct EnrollArgs {
    #[command(flatten)]
    vectors: VectorArgs,
    /// Subject for vectors whose record names none.
    #[arg(long)]
    subject: Option<String>,
    /// Record id (only with a single vector).
    #[arg(long)]
    record: Option<String>,
    /// Metadata `key=value`, repeatable.
    #[arg(long = "meta", value_parser = parse_kv)]
    meta: Vec<(String, String)>,
}

/// `verify` arguments.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    vectors: VectorArgs,
    /// Subject to verify against.
    #[arg(long, conflicts_with = "record", required_unless_present = "record")]
    subject: Option<String>,
    /// Record to verify against.
    #[arg(long)]
    record: Option<String>,
    /// Decision threshold (modality default otherwise).
    #[arg(long, conflicts_with = "target_fmr")]
    threshold: Option<f32>,
    /// Decide at this false match rate (the gallery must be calibrated).
    #[arg(long)]
    target_fmr: Option<f64>,
}

/// `identify` arguments.
#[derive(Args, Debug)]
pub struct IdentifyArgs {
    #[command(flatten)]
    vectors: VectorArgs,
    /// Candidates to return.
    #[arg(long, default_value_t = 10)]
    top_k: u32,
    /// Minimum score.
    #[arg(long, conflicts_with = "target_fmr")]
    threshold: Option<f32>,
    /// Only candidates whose score's false match rate is at most this.
    #[arg(long)]
    target_fmr: Option<f64>,
    /// Metadata filter `key=value`, repeatable.
    #[arg(long = "filter", value_parser = parse_kv)]
    filter: Vec<(String, String)>,
    /// FACE/VOICE: `exact` scans every record, `ann` searches the graphs,
    /// `auto` lets the server's planner choose. FINGERPRINT: `ann` screens
    /// the gallery and scores the shortlist in full.
    #[arg(long, value_enum, default_value_t = CliSearchMode::Auto)]
    search: CliSearchMode,
    /// Graph search beam width (0 = server default).
    #[arg(long, default_value_t = 0)]
    ef: u32,
    /// Graph candidates rescored exactly per candidate wanted (0 = default).
    #[arg(long, default_value_t = 0)]
    oversample: u32,
    /// FINGERPRINT with `--search ann`: share of the gallery the screen
    /// passes to the full matcher, (0, 1]; 0 = the server's default.
    #[arg(long, default_value_t = 0.0)]
    penetration: f32,
}

/// How Identify searches.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CliSearchMode {
    /// The planner's choice.
    Auto,
    /// Exact scan.
    Exact,
    /// Graph search.
    Ann,
}

impl CliSearchMode {
    fn pb(self) -> pb::SearchMode {
        match self {
            CliSearchMode::Auto => pb::SearchMode::Unspecified,
            CliSearchMode::Exact => pb::SearchMode::Exact,
            CliSearchMode::Ann => pb::SearchMode::Ann,
        }
    }
}

/// `optimize` arguments.
#[derive(Args, Debug)]
pub struct OptimizeArgs {
    #[command(flatten)]
    gallery: GalleryArgs,
}

/// A server and one of its galleries.
#[derive(Args, Debug)]
pub struct GalleryArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The gallery's modality.
    #[arg(long, value_enum)]
    modality: CliModality,
    /// Embedding dimension (needed when the modality has several galleries).
    #[arg(long)]
    dimension: Option<u32>,
}

/// `delete` arguments.
#[derive(Args, Debug)]
pub struct DeleteArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Record to delete.
    #[arg(long, conflicts_with = "subject", required_unless_present = "subject")]
    record: Option<String>,
    /// Subject whose records to delete.
    #[arg(long)]
    subject: Option<String>,
    /// Compact before returning, so the bytes are gone from disk.
    #[arg(long)]
    purge: bool,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected key=value, got {s:?}"))
}

type CliResult = Result<(), Box<dyn std::error::Error>>;

fn emit(v: serde_json::Value) -> CliResult {
    writeln!(std::io::stdout().lock(), "{v}")?;
    Ok(())
}

async fn connect(c: &ClientArgs) -> Result<MatcherClient<biomatch_proto::AuthedChannel>, Box<dyn std::error::Error>> {
    Ok(MatcherClient::new(c.channel().await?)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20))
}

/// A template read from a file, with the labels the file gave it.
struct Item {
    subject_id: Option<String>,
    record_id: Option<String>,
    metadata: HashMap<String, String>,
    template: pb::Template,
}

/// Reads the templates of `--input` for `--modality`.
fn load(a: &VectorArgs) -> Result<Vec<Item>, Box<dyn std::error::Error>> {
    let items: Vec<Item> = match a.modality {
        CliModality::Iris => read_json_objects(&a.input)?.into_iter().map(iris_item).collect(),
        CliModality::Fingerprint => fingerprint_items(&a.input)?,
        m => read_vectors(&a.input)?
            .into_iter()
            .map(|v: VectorRecord| Item {
                subject_id: v.subject_id,
                record_id: v.record_id,
                metadata: v.metadata.into_iter().collect(),
                template: pb::Template::embedding(m.pb(), &v.vector),
            })
            .collect(),
    };
    if items.is_empty() {
        return Err(format!("{} holds no templates", a.input.display()).into());
    }
    Ok(items)
}

/// ISO records from a file or a directory (see [`VectorArgs`]).
fn fingerprint_items(input: &Path) -> Result<Vec<Item>, Box<dyn std::error::Error>> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let item = |bytes: Vec<u8>| pb::Template {
        modality: pb::Modality::Fingerprint as i32,
        kind: Some(pb::template::Kind::Fingerprint(pb::FingerprintTemplate {
            iso_19794_2: bytes,
        })),
        quality: 0.0,
    };
    if !input.is_dir() {
        return Ok(vec![Item {
            subject_id: None,
            record_id: None,
            metadata: HashMap::new(),
            template: item(read(input)?),
        }]);
    }
    Ok(read_dir_files(input)?
        .into_iter()
        .map(|(stem, bytes)| Item {
            subject_id: stem.split('_').next().map(String::from),
            record_id: Some(stem),
            metadata: HashMap::new(),
            template: item(bytes),
        })
        .collect())
}

/// An open-iris template object (extra keys: labels) as an item.
fn iris_item(o: serde_json::Value) -> Item {
    let label = |k: &str| o.get(k).and_then(|v| v.as_str()).map(String::from);
    let metadata = o
        .get("metadata")
        .and_then(|m| m.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Item {
        subject_id: label("subject_id"),
        record_id: label("record_id"),
        metadata,
        template: pb::Template {
            modality: pb::Modality::Iris as i32,
            kind: Some(pb::template::Kind::Iris(pb::IrisTemplate {
                form: Some(pb::iris_template::Form::OpenIrisJson(o.to_string())),
            })),
            quality: 0.0,
        },
    }
}

/// Adds the iris distance and rotation to an output object.
fn with_iris(mut o: serde_json::Value, modality: CliModality, distance: f64, rotation: i32) -> serde_json::Value {
    if matches!(modality, CliModality::Iris) {
        o["distance"] = json!(distance);
        o["rotation"] = json!(rotation);
    }
    o
}

/// Runs a client subcommand.
pub async fn run_client(cmd: Command) -> CliResult {
    match cmd {
        Command::Serve(_) => unreachable!("serve is handled by main"),
        Command::Enroll(a) => enroll(a).await,
        Command::Verify(a) => {
            let mut c = connect(&a.vectors.client).await?;
            for v in load(&a.vectors)? {
                let target = match (&a.subject, &a.record) {
                    (Some(s), _) => pb::verify_request::Target::SubjectId(s.clone()),
                    (None, Some(r)) => pb::verify_request::Target::RecordId(r.clone()),
                    (None, None) => unreachable!("clap requires one"),
                };
                let r = c
                    .verify(pb::VerifyRequest {
                        probe: Some(v.template),
                        target: Some(target),
                        threshold: a.threshold,
                        target_fmr: a.target_fmr,
                    })
                    .await?
                    .into_inner();
                let out = json!({"score": r.score, "match": r.r#match, "threshold": r.threshold,
                                 "record_id": r.record_id, "compared": r.compared, "fmr": r.fmr});
                emit(with_iris(out, a.vectors.modality, r.distance, r.rotation))?;
            }
            Ok(())
        }
        Command::Identify(a) => {
            let mut c = connect(&a.vectors.client).await?;
            for v in load(&a.vectors)? {
                let r = c
                    .identify(pb::IdentifyRequest {
                        probe: Some(v.template),
                        top_k: a.top_k,
                        threshold: a.threshold,
                        target_fmr: a.target_fmr,
                        metadata_filter: a.filter.iter().cloned().collect::<HashMap<_, _>>(),
                        search_mode: a.search.pb() as i32,
                        ef: a.ef,
                        oversample: a.oversample,
                        penetration: a.penetration,
                    })
                    .await?
                    .into_inner();
                let cands: Vec<_> = r
                    .candidates
                    .iter()
                    .map(|c| {
                        let o = json!({"rank": c.rank, "subject_id": c.subject_id, "record_id": c.record_id,
                                       "score": c.score, "fmr": c.fmr});
                        with_iris(o, a.vectors.modality, c.distance, c.rotation)
                    })
                    .collect();
                emit(json!({"gallery": r.gallery, "gallery_size": r.gallery_size, "candidates": cands}))?;
            }
            Ok(())
        }
        Command::Delete(a) => {
            let mut c = connect(&a.client).await?;
            let target = match (a.subject, a.record) {
                (Some(s), _) => pb::delete_request::Target::SubjectId(s),
                (None, Some(r)) => pb::delete_request::Target::RecordId(r),
                (None, None) => unreachable!("clap requires one"),
            };
            let r = c
                .delete(pb::DeleteRequest {
                    target: Some(target),
                    purge: a.purge,
                })
                .await?
                .into_inner();
            emit(json!({"deleted": r.deleted, "record_ids": r.record_ids}))
        }
        Command::Bench(b) => bench(b).await,
        Command::Job(j) => crate::job_cli::run(j).await,
        Command::Admin(a) => crate::admin_cli::run(a).await,
        Command::Calibrate(a) => calibrate(a).await,
        Command::Optimize(a) => {
            let mut c = connect(&a.gallery.client).await?;
            let r = c
                .optimize_gallery(pb::OptimizeGalleryRequest {
                    modality: a.gallery.modality.pb() as i32,
                    dimension: a.gallery.dimension.unwrap_or(0),
                })
                .await?
                .into_inner();
            emit(
                json!({"gallery": r.gallery, "segments_before": r.segments_before, "segments_after": r.segments_after,
                        "records": r.records, "indexed_segments": r.indexed_segments, "purged": r.purged,
                        "seconds": r.seconds}),
            )
        }
        Command::Stats(a) => {
            let mut c = connect(&a).await?;
            let r = c.gallery_stats(pb::GalleryStatsRequest {}).await?.into_inner();
            let gs: Vec<_> = r
                .galleries
                .iter()
                .map(|g| {
                    json!({"name": g.name, "records": g.records, "subjects": g.subjects, "pending_deletes": g.pending_deletes,
                           "segments": g.segments, "unflushed_records": g.unflushed_records, "disk_bytes": g.disk_bytes,
                           "indexed_segments": g.indexed_segments, "indexed_records": g.indexed_records,
                           "error": g.error})
                })
                .collect();
            emit(json!({"total_records": r.total_records, "galleries": gs}))
        }
    }
}

/// Reads one score per line; blank lines and `#` comments are skipped.
fn read_scores(path: &Path) -> Result<Vec<f32>, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(i, l)| (i, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .map(|(i, l)| {
            l.parse::<f32>()
                .map_err(|e| format!("{} line {}: {l:?} is not a score: {e}", path.display(), i + 1).into())
        })
        .collect()
}

async fn calibrate(a: CalibrateArgs) -> CliResult {
    let impostor_scores = a
        .impostor_scores
        .as_deref()
        .map(read_scores)
        .transpose()?
        .unwrap_or_default();
    let genuine_scores = a
        .genuine_scores
        .as_deref()
        .map(read_scores)
        .transpose()?
        .unwrap_or_default();
    let mut c = connect(&a.gallery.client).await?;
    let r = c
        .calibrate(pb::CalibrateRequest {
            modality: a.gallery.modality.pb() as i32,
            dimension: a.gallery.dimension.unwrap_or(0),
            max_records: a.max_records.unwrap_or(0),
            impostor_scores,
            genuine_scores,
        })
        .await?
        .into_inner();
    let summary = |s: &Option<pb::ScoreSummary>| {
        s.as_ref()
            .map(|s| json!({"count": s.count, "mean": s.mean, "std": s.std}))
    };
    let thresholds: Vec<_> = r
        .thresholds
        .iter()
        .map(|t| json!({"fmr": t.fmr, "threshold": t.threshold, "extrapolated": t.extrapolated}))
        .collect();
    emit(
        json!({"gallery": r.gallery, "impostor": summary(&r.impostor), "genuine": summary(&r.genuine),
                "max_impostor": r.max_impostor, "empirical_floor": r.empirical_floor, "thresholds": thresholds,
                "records_sampled": r.records_sampled}),
    )
}

async fn enroll(a: EnrollArgs) -> CliResult {
    let items = load(&a.vectors)?;
    if a.record.is_some() && items.len() != 1 {
        return Err("--record applies to a single template; give record ids in the input file instead".into());
    }
    let mut reqs = Vec::with_capacity(items.len());
    for (i, v) in items.into_iter().enumerate() {
        let subject = v
            .subject_id
            .or_else(|| a.subject.clone())
            .ok_or_else(|| format!("template {i} names no subject_id and --subject was not given"))?;
        let mut metadata = v.metadata;
        metadata.extend(a.meta.iter().cloned());
        reqs.push(pb::EnrollRequest {
            subject_id: subject,
            record_id: v.record_id.or_else(|| a.record.clone()).unwrap_or_default(),
            template: Some(v.template),
            metadata,
        });
    }
    let mut c = connect(&a.vectors.client).await?;
    let total = reqs.len();
    let mut acks = c.enroll_stream(tokio_stream::iter(reqs)).await?.into_inner();
    let (mut ok, mut failed) = (0u64, 0u64);
    while let Some(ack) = acks.message().await? {
        ok += ack.record_ids.len() as u64;
        for e in &ack.errors {
            failed += 1;
            emit(json!({"error": {"index": e.index, "record_id": e.record_id, "code": e.code, "message": e.message}}))?;
        }
        for id in ack.record_ids {
            emit(json!({"enrolled": id}))?;
        }
    }
    emit(json!({"submitted": total, "enrolled": ok, "failed": failed}))?;
    if failed > 0 {
        Err(format!("{failed} of {total} records were refused").into())
    } else {
        Ok(())
    }
}

async fn bench(cmd: BenchCommand) -> CliResult {
    let report = match cmd {
        BenchCommand::Accuracy(a) => tokio::task::spawn_blocking(move || accuracy::run(&a)).await??,
        BenchCommand::Load(a) => load::run(&a).await?,
    };
    emit(report)
}
