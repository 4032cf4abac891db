//! Approximate Identify through the real server on the real LFW FaceNet-128
//! embeddings: OptimizeGallery, graph search against exact search, request
//! validation, deletes that never come back, restart, the CLI, and the
//! background optimiser.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use biomatch_proto::v1 as pb;
use common::*;
use pb::matcher_client::MatcherClient;
use tonic::Code;
use tonic::transport::Channel;

const N: usize = 2921;

fn lfw() -> Vec<Vec<f32>> {
    let raw = std::fs::read(shared().join("face/lfw_facenet128/LFW_tensor.bytes")).unwrap();
    let x: Vec<f32> = raw
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(x.len(), N * 128);
    x.chunks(128).map(<[f32]>::to_vec).collect()
}

fn search(v: &[f32], mode: pb::SearchMode, ef: u32) -> pb::IdentifyRequest {
    pb::IdentifyRequest {
        probe: Some(face(v)),
        top_k: 10,
        search_mode: mode as i32,
        ef,
        ..Default::default()
    }
}

async fn ids(c: &mut MatcherClient<Channel>, req: pb::IdentifyRequest) -> Vec<String> {
    let r = c.identify(req).await.unwrap().into_inner();
    r.candidates.into_iter().map(|c| c.record_id).collect()
}

async fn face_info(c: &mut MatcherClient<Channel>) -> pb::GalleryInfo {
    let r = c.gallery_stats(pb::GalleryStatsRequest {}).await.unwrap().into_inner();
    r.galleries.into_iter().find(|g| g.name == "face-128").unwrap()
}

/// Each record its own subject, so that Identify's subjects are records.
async fn enroll_lfw(c: &mut MatcherClient<Channel>, x: &[Vec<f32>], rows: std::ops::Range<usize>) {
    let n = rows.len();
    let reqs = rows
        .map(|i| enroll_req(&format!("s{i}"), &format!("lfw-{i}"), face(&x[i])))
        .collect();
    assert_eq!(enroll_all(c, reqs).await, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimised_gallery_answers_identify_from_its_graphs() {
    let x = lfw();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let env = [
        ("BIOMATCH_ANN_MIN_RECORDS", "1000"),
        ("BIOMATCH_ANN_SHARDS", "2"),
        ("BIOMATCH_ANN_AUTO_OPTIMIZE", "false"),
        ("BIOMATCH_FLUSH_RECORDS", "700"),
        // No background compaction: the CLI's optimisation below purges.
        ("BIOMATCH_COMPACTION_INTERVAL_SECS", "3600"),
    ];
    let server = Server::start(&data, &env);
    let mut c = server.client().await;
    enroll_lfw(&mut c, &x, 0..N).await;
    assert_eq!(face_info(&mut c).await.indexed_segments, 0);

    let r = c
        .optimize_gallery(pb::OptimizeGalleryRequest {
            modality: pb::Modality::Face as i32,
            dimension: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (r.gallery.as_str(), r.records, r.segments_after, r.indexed_segments),
        ("face-128", N as u64, 2, 2)
    );
    let info = face_info(&mut c).await;
    assert_eq!((info.indexed_segments, info.indexed_records), (2, N as u64));

    // Graph search against exact search, on every 10th face as probe.
    let probes: Vec<usize> = (0..N).step_by(10).collect();
    let (mut hits, mut self_first) = (0, 0);
    for &p in &probes {
        let exact = ids(&mut c, search(&x[p], pb::SearchMode::Exact, 0)).await;
        let approx = ids(&mut c, search(&x[p], pb::SearchMode::Ann, 0)).await;
        hits += exact.iter().filter(|e| approx.contains(e)).count();
        self_first += (approx[0] == format!("lfw-{p}")) as usize;
    }
    let recall = hits as f64 / (10 * probes.len()) as f64;
    assert!(recall >= 0.97, "recall@10 {recall}");
    assert_eq!(self_first, probes.len(), "every face finds itself first");

    // Bad options are refused with INVALID_ARGUMENT.
    for (req, what) in [
        (search(&x[0], pb::SearchMode::Ann, 5_000), "ef"),
        (
            pb::IdentifyRequest {
                oversample: 65,
                ..search(&x[0], pb::SearchMode::Ann, 0)
            },
            "oversample",
        ),
        (
            pb::IdentifyRequest {
                search_mode: 9,
                ..search(&x[0], pb::SearchMode::Ann, 0)
            },
            "search_mode",
        ),
    ] {
        let err = c.identify(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err:?}");
        assert!(err.message().contains(what), "{}", err.message());
    }
    let err = c
        .optimize_gallery(pb::OptimizeGalleryRequest {
            modality: pb::Modality::Iris as i32,
            dimension: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // Delete 10% (without purge): no search ever returns them, even probed
    // with their own templates.
    let doomed: Vec<usize> = (0..N).step_by(10).collect();
    for &d in &doomed {
        c.delete(pb::DeleteRequest {
            target: Some(pb::delete_request::Target::RecordId(format!("lfw-{d}"))),
            purge: false,
        })
        .await
        .unwrap();
    }
    let doomed_ids: HashSet<String> = doomed.iter().map(|d| format!("lfw-{d}")).collect();
    for &d in &doomed {
        for mode in [pb::SearchMode::Ann, pb::SearchMode::Exact] {
            let got = ids(&mut c, search(&x[d], mode, 0)).await;
            assert!(
                got.iter().all(|g| !doomed_ids.contains(g)),
                "{mode:?} returned a deleted record"
            );
        }
    }
    let before: Vec<Vec<String>> = {
        let mut v = Vec::new();
        for p in (5..N).step_by(50) {
            v.push(ids(&mut c, search(&x[p], pb::SearchMode::Ann, 0)).await);
        }
        v
    };

    // A restart serves the same graphs and the same answers.
    server.stop();
    let server = Server::start(&data, &env);
    let mut c = server.client().await;
    let info = face_info(&mut c).await;
    assert_eq!(info.indexed_segments, 2);
    assert_eq!(info.records, (N - doomed.len()) as u64);
    let mut after = Vec::new();
    for p in (5..N).step_by(50) {
        after.push(ids(&mut c, search(&x[p], pb::SearchMode::Ann, 0)).await);
    }
    assert_eq!(before, after);

    // The CLI: optimise (purges the deletes) and identify with search options.
    let probe = tmp.path().join("probe.json");
    std::fs::write(&probe, serde_json::to_string(&x[7]).unwrap()).unwrap();
    let cli = |args: &[&str]| serde_json::from_str::<serde_json::Value>(&cli(&server, "face", args)).unwrap();
    let opt = cli(&["optimize"]);
    assert_eq!(opt["purged"], doomed.len() as u64, "{opt}");
    assert_eq!(opt["indexed_segments"], 2, "{opt}");
    let found = cli(&[
        "identify",
        "--search",
        "ann",
        "--ef",
        "64",
        "--oversample",
        "2",
        "--input",
        probe.to_str().unwrap(),
    ]);
    assert_eq!(found["candidates"][0]["record_id"], "lfw-7", "{found}");
    assert_eq!(found["candidates"].as_array().unwrap().len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_optimiser_indexes_a_growing_gallery() {
    let x = lfw();
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        &tmp.path().join("data"),
        &[
            ("BIOMATCH_ANN_MIN_RECORDS", "1500"),
            ("BIOMATCH_COMPACTION_INTERVAL_SECS", "1"),
        ],
    );
    let mut c = server.client().await;
    enroll_lfw(&mut c, &x, 0..1000).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        face_info(&mut c).await.indexed_segments,
        0,
        "below the minimum: exact only"
    );
    enroll_lfw(&mut c, &x, 1000..N).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let info = face_info(&mut c).await;
        if info.indexed_segments == 1 && info.indexed_records == N as u64 {
            break;
        }
        assert!(Instant::now() < deadline, "not indexed after 120 s: {info:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let got = ids(&mut c, search(&x[2000], pb::SearchMode::Ann, 0)).await;
    assert_eq!(got[0], "lfw-2000");
}

/// Waits up to `limit` for the face gallery's pending deletes to reach
/// `want`, and returns the last count seen.
async fn pending_after(c: &mut MatcherClient<Channel>, want: u64, limit: Duration) -> u64 {
    let start = Instant::now();
    loop {
        let pending = face_info(c).await.pending_deletes;
        if pending == want || start.elapsed() >= limit {
            return pending;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn delete(c: &mut MatcherClient<Channel>, id: &str, purge: bool) {
    c.delete(pb::DeleteRequest {
        target: Some(pb::delete_request::Target::RecordId(id.into())),
        purge,
    })
    .await
    .unwrap();
}

/// The background purge of indexed segments keeps its erase interval across
/// a restart: the time of the last purge is kept in the data directory, so
/// a restart neither rebuilds the graph at once nor forgets the interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_erase_interval_holds_across_a_restart() {
    let x = lfw();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let env = [
        ("BIOMATCH_ANN_MIN_RECORDS", "1000"),
        ("BIOMATCH_ANN_SHARDS", "1"),
        ("BIOMATCH_ANN_AUTO_OPTIMIZE", "false"),
        ("BIOMATCH_FLUSH_RECORDS", "700"),
        ("BIOMATCH_COMPACTION_INTERVAL_SECS", "1"),
        ("BIOMATCH_ANN_ERASE_INTERVAL_SECS", "3600"),
    ];
    let server = Server::start(&data, &env);
    let mut c = server.client().await;
    enroll_lfw(&mut c, &x, 0..1200).await;
    c.optimize_gallery(pb::OptimizeGalleryRequest {
        modality: pb::Modality::Face as i32,
        dimension: 0,
    })
    .await
    .unwrap();
    assert_eq!(face_info(&mut c).await.indexed_records, 1200);

    // Never purged before: the first delete's bytes leave at the next pass,
    // and the time of that purge is written down.
    delete(&mut c, "lfw-0", false).await;
    assert_eq!(pending_after(&mut c, 0, Duration::from_secs(60)).await, 0);
    assert!(data.join("erase-clock.json").is_file());
    assert_eq!(face_info(&mut c).await.indexed_records, 1199);

    // Within the hour the next delete waits, before a restart and after.
    delete(&mut c, "lfw-1", false).await;
    assert_eq!(pending_after(&mut c, 0, Duration::from_secs(4)).await, 1);
    server.stop();
    let server = Server::start(&data, &env);
    let mut c = server.client().await;
    assert_eq!(
        pending_after(&mut c, 0, Duration::from_secs(5)).await,
        1,
        "a restart must not purge the indexed segment before the interval"
    );

    // A delete with purge erases at once, whatever the clock says.
    delete(&mut c, "lfw-2", true).await;
    let info = face_info(&mut c).await;
    assert_eq!(
        (info.pending_deletes, info.indexed_records, info.records),
        (0, 1197, 1197)
    );
}
