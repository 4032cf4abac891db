//! Batch enrollment jobs against the real binary: crash and resume, the
//! duplicate check, the quality gate, idempotent re-runs, every source
//! format, and the CLI.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use biomatch_datasets::{Matrix, SyntheticEmbeddings, SyntheticIris, write_npy};
use biomatch_matcher::IrisTemplate;
use biomatch_proto::v1 as pb;
use common::*;
use pb::enrollment_jobs_client::EnrollmentJobsClient;
use tonic::transport::Channel;

async fn jobs(s: &Server) -> EnrollmentJobsClient<Channel> {
    EnrollmentJobsClient::connect(s.addr.clone()).await.expect("connect")
}

fn spec(source: &Path, batch: u32) -> pb::JobSpec {
    pb::JobSpec {
        source: source.display().to_string(),
        batch_size: batch,
        ..Default::default()
    }
}

async fn start(c: &mut EnrollmentJobsClient<Channel>, id: &str, spec: pb::JobSpec) -> pb::Job {
    c.start_job(pb::StartJobRequest {
        job_id: id.into(),
        spec: Some(spec),
    })
    .await
    .expect("start job")
    .into_inner()
}

/// Follows WatchJob to the end and returns the final state.
async fn finish(c: &mut EnrollmentJobsClient<Channel>, id: &str) -> pb::Job {
    let mut s = c
        .watch_job(pb::JobRef { job_id: id.into() })
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    let deadline = Instant::now() + Duration::from_secs(300);
    while let Some(j) = s.message().await.unwrap() {
        assert!(Instant::now() < deadline, "job {id} did not end within 300 s");
        last = Some(j);
    }
    let j = last.expect("no state");
    assert_ne!(j.state, pb::JobState::JobRunning as i32, "watch ended on a running job");
    j
}

async fn report(c: &mut EnrollmentJobsClient<Channel>, id: &str, kind: pb::JobReportKind) -> Vec<serde_json::Value> {
    let page = c
        .get_job_report(pb::JobReportRequest {
            job_id: id.into(),
            kind: kind as i32,
            offset: 0,
            limit: 10_000,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!page.more);
    page.lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Every live record id, via ListRecords.
async fn all_ids(s: &Server) -> Vec<String> {
    let mut c = s.client().await;
    let mut pages = c
        .list_records(pb::ListRecordsRequest {
            page_size: 10_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut ids = Vec::new();
    while let Some(p) = pages.message().await.unwrap() {
        ids.extend(p.records.into_iter().map(|r| r.record_id));
    }
    ids
}

fn embedding_line(w: &mut impl Write, id: &str, subject: &str, v: &[f32]) {
    let vals: Vec<String> = v.iter().map(|x| format!("{x:.6}")).collect();
    writeln!(
        w,
        r#"{{"record_id":"{id}","subject_id":"{subject}","modality":"face","embedding":[{}]}}"#,
        vals.join(",")
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_killed_mid_import_resumes_and_enrolls_every_record_exactly_once() {
    // Small batches go through the write-ahead log.
    killed_mid_import_and_resumed(250).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_of_bulk_segments_killed_mid_import_resumes_exactly_once() {
    // Batches of 4,096 and more are written as segments of their own.
    killed_mid_import_and_resumed(5_000).await;
}

/// Starts a 60,000-record job in batches of `batch`, kills the server with
/// SIGKILL a fifth of the way in, restarts it, and checks that the resumed
/// job enrolls every good record exactly once.
async fn killed_mid_import_and_resumed(batch: u32) {
    const N: usize = 60_000;
    const DIM: usize = 64;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("people.ndjson");
    let data = SyntheticEmbeddings::uniform(DIM, N, 5);
    let bad: BTreeSet<usize> = [7, 20_011, 45_000].into();
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&src).unwrap());
        for i in 0..N {
            if i == 7 {
                writeln!(w, "{{not json").unwrap();
            } else if bad.contains(&i) {
                embedding_line(&mut w, &format!("r{i}"), &format!("s{}", i % 5000), &[0.0; DIM]);
            } else {
                embedding_line(
                    &mut w,
                    &format!("r{i}"),
                    &format!("s{}", i % 5000),
                    &data[i * DIM..(i + 1) * DIM],
                );
            }
        }
    }
    let db = dir.path().join("data");
    let server = Server::start(&db, &[]);
    let mut c = jobs(&server).await;
    let started = start(&mut c, "crash", spec(&src, batch)).await;
    assert_eq!(started.state, pb::JobState::JobRunning as i32);
    // Kill while the job is part-way through.
    let deadline = Instant::now() + Duration::from_secs(120);
    let at_kill = loop {
        let j = c
            .get_job(pb::JobRef { job_id: "crash".into() })
            .await
            .unwrap()
            .into_inner();
        if j.processed >= N as u64 / 5 {
            break j;
        }
        assert!(Instant::now() < deadline, "job made no progress: {j:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    server.kill9();
    assert_eq!(
        at_kill.state,
        pb::JobState::JobRunning as i32,
        "job ended before the kill: {at_kill:?}"
    );
    assert!(at_kill.processed < N as u64, "{at_kill:?}");

    let server = Server::start(&db, &[]);
    let mut c = jobs(&server).await;
    let done = finish(&mut c, "crash").await;
    assert_eq!(done.state, pb::JobState::JobSucceeded as i32, "{done:?}");
    assert_eq!(done.resumed, 1);
    assert_eq!(done.processed, N as u64);
    assert_eq!(done.total, N as u64);
    assert_eq!(done.rejected, bad.len() as u64);
    assert_eq!(done.enrolled, (N - bad.len()) as u64, "{done:?}");
    assert_eq!(
        done.already_present, 0,
        "records the crashed run enrolled count as this job's"
    );

    // Exactly once, no gaps: the gallery holds every good id and nothing else.
    let ids = all_ids(&server).await;
    let unique: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(ids.len(), unique.len());
    let want: BTreeSet<String> = (0..N).filter(|i| !bad.contains(i)).map(|i| format!("r{i}")).collect();
    assert_eq!(unique, want);
    // One report line per refused record, none repeated by the resumed run.
    let errors = report(&mut c, "crash", pb::JobReportKind::JobReportErrors).await;
    let idx: Vec<u64> = errors.iter().map(|e| e["index"].as_u64().unwrap()).collect();
    assert_eq!(idx, bad.iter().map(|&i| i as u64).collect::<Vec<_>>());
    assert!(errors[0]["message"].as_str().unwrap().contains("not a valid record"));
    assert_eq!(errors[1]["code"], "INVALID_ARGUMENT");

    // Which write path the batches took: whole segments (the log only for
    // the records the killed run had in flight), or the log.
    let info = server
        .client()
        .await
        .gallery_stats(pb::GalleryStatsRequest {})
        .await
        .unwrap()
        .into_inner()
        .galleries
        .into_iter()
        .find(|g| g.name == "face-64")
        .expect("the face-64 gallery");
    if batch >= 4096 {
        assert!(info.segments >= 5, "{info:?}");
        assert!(info.unflushed_records < u64::from(batch), "{info:?}");
    } else {
        assert_eq!(info.segments, 0, "{info:?}");
        assert_eq!(info.unflushed_records, (N - bad.len()) as u64, "{info:?}");
    }

    // A second job over the same file enrolls nothing new.
    let again = start(&mut c, "again", spec(&src, 4096)).await;
    let again = finish(&mut c, &again.job_id).await;
    assert_eq!((again.enrolled, again.already_present), (0, (N - bad.len()) as u64));
    assert_eq!(total(&mut server.client().await).await, (N - bad.len()) as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_duplicates_are_reported_and_not_merged() {
    const DIM: usize = 128;
    let dir = tempfile::tempdir().unwrap();
    let set = SyntheticEmbeddings {
        dim: DIM,
        subjects: 300,
        samples_per_subject: 2,
        noise: 0.3,
        seed: 9,
    }
    .generate();
    let src = dir.path().join("gallery.ndjson");
    // Planted: a second sample of subject k filed under a new identity,
    // some right after the original (same batch), some far from it.
    let planted: Vec<(usize, usize)> = vec![(3, 0), (150, 1), (299, 0), (20, 1), (200, 1)];
    let mut planted_ids = BTreeSet::new();
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&src).unwrap());
        for i in 0..set.labels.len() {
            embedding_line(&mut w, &format!("r{i}"), &format!("s{}", set.labels[i]), set.row(i));
            if let Some(&(k, _)) = planted.iter().find(|(k, s)| 2 * k + s == i) {
                let other = 2 * k + (1 - i % 2);
                let id = format!("alias-{k}");
                embedding_line(&mut w, &id, &format!("alias-subject-{k}"), set.row(other));
                planted_ids.insert(id);
            }
        }
    }
    let server = Server::start(&dir.path().join("data"), &[]);
    let mut c = jobs(&server).await;
    let mut s = spec(&src, 64);
    s.dedup = true;
    s.dedup_threshold = Some(0.6);
    let j = start(&mut c, "dedup", s).await;
    let j = finish(&mut c, &j.job_id).await;
    assert_eq!(j.state, pb::JobState::JobSucceeded as i32, "{j:?}");
    let dups = report(&mut c, "dedup", pb::JobReportKind::JobReportDuplicates).await;
    let found: BTreeSet<String> = dups
        .iter()
        .map(|d| d["record_id"].as_str().unwrap().to_string())
        .collect();
    // Every planted alias is reported; a subject's own second sample is not.
    assert_eq!(found, planted_ids, "{dups:#?}");
    for d in &dups {
        let k = d["record_id"].as_str().unwrap().trim_start_matches("alias-");
        assert_eq!(d["matched_subject_id"].as_str().unwrap(), format!("s{k}"));
        assert_eq!(d["enrolled"], false);
        assert!(d["score"].as_f64().unwrap() >= 0.6);
    }
    assert_eq!(j.duplicates, planted.len() as u64);
    assert_eq!(j.enrolled, 600);
    let ids: BTreeSet<String> = all_ids(&server).await.into_iter().collect();
    assert!(ids.is_disjoint(&planted_ids), "a suspected duplicate was enrolled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folders_npy_quality_gate_idempotent_start_and_bad_specs() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let mut c = jobs(&server).await;

    // Real ISO/IEC 19794-2 templates (FVC2002 DB1_B), gated at 30 minutiae.
    let fvc = shared().join("fingerprint/fvc2002_db1_b/templates");
    let mut s = spec(&fvc, 16);
    s.format = "iso_dir".into();
    s.min_minutiae = 30;
    let j = start(&mut c, "fvc", s.clone()).await;
    let j = finish(&mut c, &j.job_id).await;
    assert_eq!(j.processed, 80);
    assert!(j.rejected > 0 && j.enrolled > 0, "{j:?}");
    assert_eq!(j.enrolled + j.rejected, 80);
    let errors = report(&mut c, "fvc", pb::JobReportKind::JobReportErrors).await;
    assert_eq!(errors.len() as u64, j.rejected);
    assert!(errors.iter().all(|e| e["code"] == "QUALITY"), "{errors:?}");
    assert!(errors[0]["message"].as_str().unwrap().contains("minutiae"));
    let ids = all_ids(&server).await;
    assert!(ids.contains(&"101_1".to_string()) || errors.iter().any(|e| e["record_id"] == "101_1"));
    // Same id and spec: the same job, not a second import.
    assert_eq!(start(&mut c, "fvc", s.clone()).await.processed, 80);
    // Same id, other spec: refused.
    s.min_minutiae = 10;
    let e = c
        .start_job(pb::StartJobRequest {
            job_id: "fvc".into(),
            spec: Some(s),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::AlreadyExists);

    // open-iris JSON files.
    let iris_dir = dir.path().join("iris");
    std::fs::create_dir(&iris_dir).unwrap();
    let (eyes, labels) = SyntheticIris {
        subjects: 10,
        samples_per_subject: 2,
        poor_capture_share: 0.0,
        seed: 3,
    }
    .generate();
    for (i, (t, l)) in eyes.iter().zip(&labels).enumerate() {
        let json = IrisTemplate::from_packed(&t.code, &t.mask, "v2.1")
            .unwrap()
            .to_open_iris_json();
        std::fs::write(iris_dir.join(format!("eye{l}_{i}.json")), json).unwrap();
    }
    std::fs::write(iris_dir.join("broken_0.json"), "{}").unwrap();
    let mut s = spec(&iris_dir, 0);
    s.format = "iris_dir".into();
    let j = start(&mut c, "iris", s).await;
    let j = finish(&mut c, &j.job_id).await;
    assert_eq!((j.enrolled, j.rejected), (20, 1), "{j:?}");

    // .npy rows with a labels file.
    let m = Matrix {
        rows: 50,
        cols: 32,
        data: SyntheticEmbeddings::uniform(32, 50, 2),
    };
    write_npy(&dir.path().join("voices.npy"), &m).unwrap();
    let labels: String = (0..50).map(|i| format!("spk{}\n", i / 5)).collect();
    std::fs::write(dir.path().join("voices.txt"), labels).unwrap();
    let mut s = spec(&dir.path().join("voices.npy"), 0);
    s.modality = pb::Modality::Voice as i32;
    s.labels = dir.path().join("voices.txt").display().to_string();
    let j = start(&mut c, "", s.clone()).await;
    let j = finish(&mut c, &j.job_id).await;
    assert_eq!(j.enrolled, 50);
    let r = server
        .client()
        .await
        .get_record(pb::GetRecordRequest {
            record_id: "voices-49".into(),
            include_template: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (r.subject_id.as_str(), r.modality),
        ("spk9", pb::Modality::Voice as i32)
    );

    // Bad specs are refused up front with INVALID_ARGUMENT naming the problem.
    let bad = |f: &dyn Fn(&mut pb::JobSpec)| {
        let mut b = s.clone();
        f(&mut b);
        b
    };
    for (b, want) in [
        (bad(&|b| b.labels.clear()), "labels"),
        (bad(&|b| b.modality = pb::Modality::Iris as i32), "face or voice"),
        (bad(&|b| b.source = "/nonexistent/x.npy".into()), "does not exist"),
        (bad(&|b| b.format = "csv".into()), "not one of"),
        (bad(&|b| b.batch_size = 1_000_000), "batch_size"),
        (bad(&|b| b.min_quality = f32::NAN), "finite"),
    ] {
        let e = c
            .start_job(pb::StartJobRequest {
                job_id: String::new(),
                spec: Some(b),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
        assert!(e.message().contains(want), "{want}: {}", e.message());
    }
    let e = c.get_job(pb::JobRef { job_id: "nope".into() }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    let e = c.get_job(pb::JobRef { job_id: "../x".into() }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_job_stores_exactly_its_committed_batches() {
    // Reading and preparing run ahead of the commit; a cancel must drop
    // what they hold, not enroll it.
    const N: usize = 40_000;
    const DIM: usize = 32;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("people.ndjson");
    let data = SyntheticEmbeddings::uniform(DIM, N, 8);
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&src).unwrap());
        for i in 0..N {
            embedding_line(
                &mut w,
                &format!("c{i}"),
                &format!("s{i}"),
                &data[i * DIM..(i + 1) * DIM],
            );
        }
    }
    let server = Server::start(&dir.path().join("data"), &[]);
    let mut c = jobs(&server).await;
    start(&mut c, "cut", spec(&src, 200)).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let j = c
            .get_job(pb::JobRef { job_id: "cut".into() })
            .await
            .unwrap()
            .into_inner();
        if j.processed >= 2_000 {
            break;
        }
        assert!(Instant::now() < deadline, "job made no progress: {j:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    c.cancel_job(pb::JobRef { job_id: "cut".into() }).await.unwrap();
    let cut = finish(&mut c, "cut").await;
    assert_eq!(cut.state, pb::JobState::JobCancelled as i32, "{cut:?}");
    assert!(cut.processed < N as u64, "{cut:?}");
    assert_eq!(cut.enrolled, cut.processed);
    // Nothing prepared ahead was written after the cancel.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(total(&mut server.client().await).await, cut.enrolled);
    // A new job over the same file enrolls exactly the rest.
    start(&mut c, "rest", spec(&src, 4096)).await;
    let rest = finish(&mut c, "rest").await;
    assert_eq!(rest.state, pb::JobState::JobSucceeded as i32, "{rest:?}");
    assert_eq!(
        (rest.enrolled, rest.already_present),
        (N as u64 - cut.enrolled, cut.enrolled)
    );
    assert_eq!(total(&mut server.client().await).await, N as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_starts_follows_and_reports_a_job() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let src = dir.path().join("faces.ndjson");
    {
        let mut w = std::fs::File::create(&src).unwrap();
        let v = SyntheticEmbeddings::uniform(16, 100, 4);
        for i in 0..100 {
            embedding_line(
                &mut w,
                &format!("f{i}"),
                &format!("p{}", i / 2),
                &v[i * 16..(i + 1) * 16],
            );
        }
        writeln!(w, r#"{{"subject_id":"x","modality":"face","embedding":[0,0]}}"#).unwrap();
    }
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_biomatch"))
            .args(args)
            .env("BIOMATCH_SERVER", &server.addr)
            .output()
            .unwrap()
    };
    let out = cli(&["job", "start", src.to_str().unwrap(), "--job-id", "cli"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["state"], "SUCCEEDED");
    assert_eq!((v["enrolled"].as_u64(), v["rejected"].as_u64()), (Some(100), Some(1)));
    let out = cli(&["job", "report", "cli"]);
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["record_id"], "faces-100");
    let out = cli(&["job", "list"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    let out = cli(&["job", "start", "/nonexistent.ndjson"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}
