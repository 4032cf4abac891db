//! `biomatch bench load`: drives a running server over gRPC with a mix of
//! verify, identify and enroll calls and reports throughput and latency
//! percentiles (HDR histograms, microsecond resolution).
//!
//! Closed loop (default): `--clients` callers each send their next request
//! when the previous one returns, which measures capacity. Open loop
//! (`--rate R`): requests are issued on a fixed schedule of R per second
//! whatever the server does, and each latency is measured from the
//! request's *scheduled* time, so a stalled server shows up in the tail
//! instead of being hidden (coordinated omission).
//!
//! The run enrols its own synthetic subjects first (`--gallery`, under a
//! fresh id prefix) so verify and identify have genuine targets.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use biomatch_datasets::SyntheticEmbeddings;
use biomatch_proto::v1 as pb;
use biomatch_proto::{AuthedChannel, Credentials};
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use pb::matcher_client::MatcherClient;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::BenchError;
use crate::plot::{self, Series};

/// Embedding modalities the load generator sends.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum LoadModality {
    /// Face embeddings.
    Face,
    /// Voice embeddings.
    Voice,
}

/// `bench load` arguments.
#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// Server URL.
    #[arg(long, env = "BIOMATCH_SERVER", default_value = "http://127.0.0.1:50051")]
    pub server: String,
    /// API key (`bmk_…`) or access token for servers that require
    /// credentials.
    #[arg(long, env = "BIOMATCH_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Concurrent callers (closed loop) or the most requests in flight
    /// (open loop).
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Operation weights, e.g. `verify=8,identify=2,enroll=1`.
    #[arg(long, default_value = "verify=8,identify=2")]
    pub mix: String,
    /// Open loop at this many requests per second in total (closed loop
    /// when absent).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds measured.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds run first and not measured.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Modality of the synthetic embeddings.
    #[arg(long, value_enum, default_value = "face")]
    pub modality: LoadModality,
    /// Embedding dimension.
    #[arg(long, default_value_t = 512)]
    pub dim: usize,
    /// Subjects enrolled before the run.
    #[arg(long, default_value_t = 10_000)]
    pub gallery: usize,
    /// Candidates per identify.
    #[arg(long, default_value_t = 10)]
    pub top_k: u32,
    /// Seed of the synthetic data and of the operation choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Subject id prefix of the seeded gallery (default: a fresh one per
    /// run, so runs never collide).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Do not enrol: an earlier run with the same --prefix, --gallery,
    /// --dim and --seed already did, so the probes regenerate identically.
    #[arg(long, requires = "prefix")]
    pub no_seed: bool,
    /// Per-call deadline in seconds; a call past it counts as a
    /// DeadlineExceeded error.
    #[arg(long, default_value_t = 30.0)]
    pub call_timeout: f64,
    /// Write report.json and the latency plot (SVG and PNG) here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// The operations a load run issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Verify,
    Identify,
    Enroll,
}

impl Op {
    const ALL: [Op; 3] = [Op::Verify, Op::Identify, Op::Enroll];

    fn name(self) -> &'static str {
        match self {
            Op::Verify => "verify",
            Op::Identify => "identify",
            Op::Enroll => "enroll",
        }
    }
}

/// Parses `verify=8,identify=2` into cumulative weights.
fn parse_mix(s: &str) -> Result<Vec<(Op, u32)>, BenchError> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, w) = part
            .split_once('=')
            .ok_or_else(|| BenchError::Usage(format!("--mix: expected op=weight, got {part:?}")))?;
        let op = Op::ALL.into_iter().find(|o| o.name() == name.trim()).ok_or_else(|| {
            BenchError::Usage(format!("--mix: unknown operation {name:?} (verify, identify, enroll)"))
        })?;
        let w: u32 = w
            .trim()
            .parse()
            .map_err(|_| BenchError::Usage(format!("--mix: weight of {name} is not a whole number")))?;
        if w > 0 {
            out.push((op, w));
        }
    }
    if out.is_empty() {
        return Err(BenchError::Usage("--mix gives no operation a positive weight".into()));
    }
    Ok(out)
}

/// What every caller shares: the probes, the targets and the counters.
struct Shared {
    modality: pb::Modality,
    dim: usize,
    run: String,
    gallery: usize,
    /// Probe vectors (noisy second samples of enrolled subjects), row-major.
    probes: Vec<f32>,
    mix: Vec<(Op, u32)>,
    top_k: u32,
    timeout: Duration,
    enrolled: AtomicU64,
    done: AtomicU64,
}

impl Shared {
    fn probe(&self, k: usize) -> (usize, &[f32]) {
        let n = self.probes.len() / self.dim;
        let k = k % n;
        (k, &self.probes[k * self.dim..(k + 1) * self.dim])
    }

    fn pick(&self, rng: &mut StdRng) -> Op {
        let total: u32 = self.mix.iter().map(|m| m.1).sum();
        let mut r = rng.random_range(0..total);
        for &(op, w) in &self.mix {
            if r < w {
                return op;
            }
            r -= w;
        }
        self.mix[0].0
    }

    /// Issues one call; Err carries the gRPC code's name.
    async fn call(&self, c: &mut MatcherClient<AuthedChannel>, op: Op, rng: &mut StdRng) -> Result<(), String> {
        let (k, v) = self.probe(rng.random_range(0..self.gallery.max(1)));
        let probe = pb::Template::embedding(self.modality, v);
        let t = self.timeout;
        let res = match op {
            Op::Verify => c
                .verify(timed(
                    t,
                    pb::VerifyRequest {
                        probe: Some(probe),
                        target: Some(pb::verify_request::Target::SubjectId(format!("{}-{k}", self.run))),
                        threshold: None,
                        target_fmr: None,
                    },
                ))
                .await
                .map(drop),
            Op::Identify => c
                .identify(timed(
                    t,
                    pb::IdentifyRequest {
                        probe: Some(probe),
                        top_k: self.top_k,
                        threshold: None,
                        metadata_filter: Default::default(),
                        target_fmr: None,
                        ..Default::default()
                    },
                ))
                .await
                .map(drop),
            Op::Enroll => {
                let n = self.enrolled.fetch_add(1, Ordering::Relaxed);
                let r = pb::EnrollRequest {
                    subject_id: format!("{}-new-{n}", self.run),
                    record_id: String::new(),
                    template: Some(probe),
                    metadata: Default::default(),
                };
                c.enroll(timed(t, r)).await.map(drop)
            }
        };
        res.map_err(|s| format!("{:?}", s.code()))
    }
}

/// A request with a deadline the server also sees (grpc-timeout).
fn timed<T>(timeout: Duration, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.set_timeout(timeout);
    r
}

/// Per-operation latency histograms and error counts.
#[derive(Default)]
struct Tally {
    hist: BTreeMap<Op, Histogram<u64>>,
    errors: BTreeMap<Op, BTreeMap<String, u64>>,
}

impl Tally {
    fn record(&mut self, op: Op, latency: Duration, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => {
                let h = self.hist.entry(op).or_insert_with(new_histogram);
                h.saturating_record((latency.as_micros() as u64).max(1));
            }
            Err(code) => *self.errors.entry(op).or_default().entry(code).or_default() += 1,
        }
    }

    fn merge(&mut self, other: Tally) {
        for (op, h) in other.hist {
            self.hist
                .entry(op)
                .or_insert_with(new_histogram)
                .add(h)
                .expect("same bounds");
        }
        for (op, e) in other.errors {
            let mine = self.errors.entry(op).or_default();
            for (code, n) in e {
                *mine.entry(code).or_default() += n;
            }
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid bounds")
}

async fn connect(server: &str, api_key: Option<&str>) -> Result<MatcherClient<AuthedChannel>, BenchError> {
    let creds = match api_key {
        Some(k) => Credentials::from_secret(k)
            .ok_or_else(|| BenchError::Usage("--api-key is not a valid header value".into()))?,
        None => Credentials::none(),
    };
    let ch = Channel::from_shared(server.to_string())
        .map_err(|e| BenchError::Usage(format!("--server {server:?}: {e}")))?
        .connect()
        .await
        .map_err(|e| BenchError::Server(format!("cannot reach {server}: {e}")))?;
    Ok(MatcherClient::new(InterceptedService::new(ch, creds))
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20))
}

/// Enrols the run's subjects through EnrollStream (unless `enrol` is
/// false) and returns the probes.
async fn seed_gallery(
    a: &LoadArgs,
    c: &mut MatcherClient<AuthedChannel>,
    run: &str,
    enrol: bool,
) -> Result<Vec<f32>, BenchError> {
    let modality = modality(a.modality);
    let chunk = 5_000;
    let mut probes = Vec::new();
    let mut start = 0;
    while start < a.gallery {
        let n = chunk.min(a.gallery - start);
        let set = SyntheticEmbeddings {
            dim: a.dim,
            subjects: n,
            samples_per_subject: 2,
            noise: 0.6,
            seed: a.seed.wrapping_add(start as u64),
        }
        .generate();
        let reqs: Vec<pb::EnrollRequest> = (0..n)
            .map(|i| pb::EnrollRequest {
                subject_id: format!("{run}-{}", start + i),
                record_id: String::new(),
                template: Some(pb::Template::embedding(modality, set.row(2 * i))),
                metadata: Default::default(),
            })
            .collect();
        // Up to 64k probes are kept; beyond that they repeat.
        for i in 0..n {
            if probes.len() < 65_536 * a.dim {
                probes.extend_from_slice(set.row(2 * i + 1));
            }
        }
        if !enrol {
            start += n;
            continue;
        }
        let mut acks = c
            .enroll_stream(futures::stream::iter(reqs))
            .await
            .map_err(|s| BenchError::Server(format!("enrolling the load gallery: {}", s.message())))?
            .into_inner();
        while let Some(ack) = acks
            .message()
            .await
            .map_err(|s| BenchError::Server(format!("enrolling the load gallery: {}", s.message())))?
        {
            if let Some(e) = ack.errors.first() {
                return Err(BenchError::Server(format!("enrolling the load gallery: {}", e.message)));
            }
        }
        start += n;
    }
    Ok(probes)
}

fn modality(m: LoadModality) -> pb::Modality {
    match m {
        LoadModality::Face => pb::Modality::Face,
        LoadModality::Voice => pb::Modality::Voice,
    }
}

/// Runs the load and returns the JSON report (also written to
/// `--out/report.json`).
pub async fn run(a: &LoadArgs) -> Result<serde_json::Value, BenchError> {
    let mix = parse_mix(&a.mix)?;
    if a.clients == 0 || a.dim == 0 || a.gallery == 0 {
        return Err(BenchError::Usage(
            "--clients, --dim and --gallery must be positive".into(),
        ));
    }
    let positive = |v: f64| v.is_finite() && v > 0.0;
    let valid = positive(a.duration) && a.warmup.is_finite() && a.warmup >= 0.0 && a.rate.is_none_or(positive);
    if !valid {
        return Err(BenchError::Usage(
            "--duration and --rate must be positive, --warmup not negative".into(),
        ));
    }
    let mut first = connect(&a.server, a.api_key.as_deref()).await?;
    let run = a.prefix.clone().unwrap_or_else(|| {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        format!("load-{ms}")
    });
    let seeding = Instant::now();
    let probes = seed_gallery(a, &mut first, &run, !a.no_seed).await?;
    let seed_secs = seeding.elapsed().as_secs_f64();
    let shared = Arc::new(Shared {
        modality: modality(a.modality),
        dim: a.dim,
        run: run.clone(),
        gallery: a.gallery,
        probes,
        mix,
        top_k: a.top_k,
        timeout: Duration::from_secs_f64(a.call_timeout),
        enrolled: AtomicU64::new(0),
        done: AtomicU64::new(0),
    });
    // One HTTP/2 connection per caller up to 16; calls multiplex beyond.
    let mut channels = vec![first];
    for _ in 1..a.clients.min(16) {
        channels.push(connect(&a.server, a.api_key.as_deref()).await?);
    }
    let bar = progress(a);
    let ticker = {
        let (bar, shared) = (bar.clone(), shared.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                bar.set_position(bar.elapsed().as_millis() as u64);
                bar.set_message(format!("{} calls", shared.done.load(Ordering::Relaxed)));
            }
        })
    };
    let warmup = Duration::from_secs_f64(a.warmup);
    let measured = Duration::from_secs_f64(a.duration);
    let t0 = Instant::now();
    let tally = match a.rate {
        None => closed_loop(a, &shared, &channels, t0 + warmup, t0 + warmup + measured).await,
        Some(rate) => open_loop(a, rate, &shared, &channels, t0 + warmup, t0 + warmup + measured).await,
    };
    ticker.abort();
    bar.finish_and_clear();
    report(a, &run, seed_secs, tally, measured.as_secs_f64(), &mut channels[0]).await
}

fn progress(a: &LoadArgs) -> ProgressBar {
    if a.no_progress {
        return ProgressBar::hidden();
    }
    let total = ((a.warmup + a.duration) * 1000.0) as u64;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {percent}% ETA {eta} {msg}")
            .expect("valid template"),
    );
    bar
}

async fn closed_loop(
    a: &LoadArgs,
    shared: &Arc<Shared>,
    channels: &[MatcherClient<AuthedChannel>],
    from: Instant,
    until: Instant,
) -> Tally {
    let mut tasks = Vec::with_capacity(a.clients);
    for k in 0..a.clients {
        let (shared, mut client) = (shared.clone(), channels[k % channels.len()].clone());
        let mut rng = StdRng::seed_from_u64(a.seed ^ (k as u64 + 1).wrapping_mul(0x9E37_79B9));
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            loop {
                let start = Instant::now();
                if start >= until {
                    return tally;
                }
                let op = shared.pick(&mut rng);
                let outcome = shared.call(&mut client, op, &mut rng).await;
                shared.done.fetch_add(1, Ordering::Relaxed);
                if start >= from {
                    tally.record(op, start.elapsed(), outcome);
                }
            }
        }));
    }
    let mut all = Tally::default();
    for t in tasks {
        if let Ok(t) = t.await {
            all.merge(t);
        }
    }
    all
}

async fn open_loop(
    a: &LoadArgs,
    rate: f64,
    shared: &Arc<Shared>,
    channels: &[MatcherClient<AuthedChannel>],
    from: Instant,
    until: Instant,
) -> Tally {
    let interval = Duration::from_secs_f64(1.0 / rate);
    let limit = Arc::new(tokio::sync::Semaphore::new(a.clients.max(1) * 64));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Tally>();
    let mut rng = StdRng::seed_from_u64(a.seed);
    let start = Instant::now();
    // Requests refused by the in-flight cap, by operation.
    let mut overflow = Tally::default();
    let mut k = 0u64;
    loop {
        let due = start + interval.mul_f64(k as f64);
        if due >= until {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let op = shared.pick(&mut rng);
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            // The server is so far behind that the in-flight cap is hit:
            // count the request as failed rather than wait (which would
            // hide the stall).
            if due >= from {
                overflow.record(op, Duration::ZERO, Err("ClientOverload".into()));
            }
            k += 1;
            continue;
        };
        let (shared, tx) = (shared.clone(), tx.clone());
        let mut client = channels[k as usize % channels.len()].clone();
        let mut call_rng = StdRng::seed_from_u64(a.seed ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        tokio::spawn(async move {
            let outcome = shared.call(&mut client, op, &mut call_rng).await;
            shared.done.fetch_add(1, Ordering::Relaxed);
            let mut t = Tally::default();
            if due >= from {
                // From the scheduled time, not the actual send.
                t.record(op, due.elapsed(), outcome);
            }
            drop(permit);
            let _ = tx.send(t);
        });
        k += 1;
    }
    drop(tx);
    let mut all = Tally::default();
    while let Some(t) = rx.recv().await {
        all.merge(t);
    }
    all.merge(overflow);
    all
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

async fn report(
    a: &LoadArgs,
    run: &str,
    seed_secs: f64,
    tally: Tally,
    secs: f64,
    client: &mut MatcherClient<AuthedChannel>,
) -> Result<serde_json::Value, BenchError> {
    let mut ops = serde_json::Map::new();
    let mut curves = Vec::new();
    let mut total = 0u64;
    let mut merged = new_histogram();
    for op in Op::ALL {
        let errors: u64 = tally.errors.get(&op).map_or(0, |e| e.values().sum());
        let Some(h) = tally.hist.get(&op) else {
            if errors > 0 {
                ops.insert(op.name().into(), json!({"ok": 0, "errors": tally.errors.get(&op)}));
            }
            continue;
        };
        total += h.len();
        merged.add(h).expect("same bounds");
        ops.insert(op.name().into(), summary(h, secs, errors, tally.errors.get(&op)));
        curves.push(Series {
            label: op.name().into(),
            points: quantile_curve(h),
        });
    }
    let stats = client
        .gallery_stats(pb::GalleryStatsRequest {})
        .await
        .map_err(|s| BenchError::Server(format!("GalleryStats: {}", s.message())))?
        .into_inner();
    let mut report = json!({
        "server": a.server,
        "client_machine": crate::machine(),
        "loop": if a.rate.is_some() { "open" } else { "closed" },
        "rate_per_second": a.rate,
        "clients": a.clients,
        "mix": a.mix,
        "modality": format!("{:?}", a.modality).to_lowercase(),
        "dim": a.dim,
        "gallery_subjects": a.gallery,
        "enrolled_gallery_this_run": !a.no_seed,
        "seeding_seconds": seed_secs,
        "server_total_records": stats.total_records,
        "run_prefix": run,
        "warmup_seconds": a.warmup,
        "measured_seconds": secs,
        "ok_calls": total,
        "throughput_per_second": total as f64 / secs,
        "all": summary(&merged, secs, 0, None),
        "operations": ops,
    });
    if let Some(out) = &a.out {
        std::fs::create_dir_all(out).map_err(|e| BenchError::Io(out.clone(), e))?;
        let title = format!(
            "{} loop, {} clients, {}",
            report["loop"].as_str().unwrap_or_default(),
            a.clients,
            a.mix
        );
        match plot::latency(&out.join("latency"), &title, &curves) {
            Ok(files) => report["plots"] = json!(files),
            Err(e) => {
                tracing::warn!(error = %e, "latency plot not written");
                report["plot_error"] = json!(e.to_string());
            }
        }
        let path = out.join("report.json");
        std::fs::write(&path, serde_json::to_string_pretty(&report).expect("JSON"))
            .map_err(|e| BenchError::Io(path.clone(), e))?;
    }
    Ok(report)
}

fn summary(h: &Histogram<u64>, secs: f64, errors: u64, codes: Option<&BTreeMap<String, u64>>) -> serde_json::Value {
    json!({
        "ok": h.len(),
        "errors": errors,
        "error_codes": codes,
        "throughput_per_second": h.len() as f64 / secs,
        "latency_ms": {
            "mean": h.mean() / 1000.0,
            "p50": ms(h.value_at_quantile(0.50)),
            "p90": ms(h.value_at_quantile(0.90)),
            "p95": ms(h.value_at_quantile(0.95)),
            "p99": ms(h.value_at_quantile(0.99)),
            "p999": ms(h.value_at_quantile(0.999)),
            "max": ms(h.max()),
        },
    })
}

/// Latency at quantiles from 0 to 0.9999, spaced evenly on the plot's
/// 1/(1-q) log axis.
fn quantile_curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    (0..=80)
        .map(|i| {
            let q = 1.0 - 10f64.powf(-(i as f64) / 20.0);
            (q, ms(h.value_at_quantile(q)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_parses_and_refuses_nonsense() {
        assert_eq!(
            parse_mix("verify=8, identify=2").unwrap(),
            vec![(Op::Verify, 8), (Op::Identify, 2)]
        );
        assert_eq!(parse_mix("enroll=1,verify=0").unwrap(), vec![(Op::Enroll, 1)]);
        for bad in ["", "verify=0", "delete=1", "verify", "verify=x"] {
            assert!(parse_mix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tally_merges_and_quantiles_rise() {
        let mut a = Tally::default();
        let mut b = Tally::default();
        for us in 1..=1000u64 {
            a.record(Op::Verify, Duration::from_micros(us), Ok(()));
        }
        b.record(Op::Verify, Duration::from_micros(5), Err("Unavailable".into()));
        b.record(Op::Identify, Duration::from_millis(3), Ok(()));
        a.merge(b);
        assert_eq!(a.hist[&Op::Verify].len(), 1000);
        assert_eq!(a.errors[&Op::Verify]["Unavailable"], 1);
        let curve = quantile_curve(&a.hist[&Op::Verify]);
        assert!(curve.windows(2).all(|w| w[0].1 <= w[1].1));
        assert!((curve[20].1 - 0.9).abs() < 0.01, "{:?}", curve[20]);
    }
}
