//! Crash safety: `kill -9` while a client streams enrollments, with one
//! write shard and with four (a log per shard).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use biomatch_datasets::SyntheticEmbeddings;
use biomatch_proto::v1 as pb;
use common::*;

const N: usize = 20_000;
const DIM: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_enrollments_survive_sigkill_and_nothing_partial_is_visible() {
    let dir = tempfile::tempdir().unwrap();
    enroll_kill_and_check(&dir.path().join("data"), "1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_four_write_shards_too_and_across_a_change_of_shard_count() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let listed = enroll_kill_and_check(&data, "4").await;
    // Reopened with two shards, the logs of the four-shard layout are
    // replayed and flushed at start: the same records, and writes go on.
    let server = Server::start(&data, &[("BIOMATCH_ANN_SHARDS", "2")]);
    let mut c = server.client().await;
    assert_eq!(total(&mut c).await as usize, listed + 1);
    c.enroll(enroll_req("after", "after-reshard", face(&[1.0; DIM])))
        .await
        .unwrap();
    assert_eq!(total(&mut c).await as usize, listed + 2);
    let names: Vec<String> = std::fs::read_dir(data.join("galleries/face-64"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("wal"))
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(names, ["wal-0.log", "wal-1.log"]);
}

/// Streams enrollments to a server with `shards` write shards, kills it
/// with SIGKILL mid-stream, restarts it and checks that every acknowledged
/// record is there, intact, and nothing partial is. Returns the records
/// listed after the restart (before one more enroll).
async fn enroll_kill_and_check(data: &std::path::Path, shards: &str) -> usize {
    let env = [("BIOMATCH_FLUSH_RECORDS", "1500"), ("BIOMATCH_ANN_SHARDS", shards)];
    let server = Server::start(data, &env);
    let mut c = server.client().await;
    let set = SyntheticEmbeddings::uniform(DIM, N, 11);
    let sent: HashMap<String, Vec<f32>> = (0..N)
        .map(|i| (format!("k{i:05}"), set[i * DIM..(i + 1) * DIM].to_vec()))
        .collect();

    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let feeder = {
        let set = set.clone();
        tokio::spawn(async move {
            for i in 0..N {
                let r = enroll_req(
                    &format!("p{}", i % 977),
                    &format!("k{i:05}"),
                    face(&set[i * DIM..(i + 1) * DIM]),
                );
                if tx.send(r).await.is_err() {
                    break;
                }
                if i % 64 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    let mut acks = c
        .enroll_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let a2 = acked.clone();
    let reader = tokio::spawn(async move {
        while let Ok(Some(a)) = acks.message().await {
            assert!(a.errors.is_empty(), "{:?}", a.errors);
            a2.lock().unwrap().extend(a.record_ids);
        }
    });
    // Kill once a good share is acknowledged, while the stream is still going.
    for _ in 0..6000 {
        if acked.lock().unwrap().len() >= 3000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill9();
    let _ = reader.await;
    feeder.abort();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 3000, "only {} acknowledged before the kill", acked.len());
    assert!(
        acked.len() < N,
        "the kill came after the whole stream; nothing was in flight"
    );

    let server = Server::start(data, &env);
    let mut c = server.client().await;
    // Every acknowledged record is there, intact.
    for id in &acked {
        let r = c
            .get_record(pb::GetRecordRequest {
                record_id: id.clone(),
                include_template: true,
            })
            .await;
        let r = r.unwrap_or_else(|e| panic!("acknowledged {id} lost: {e}")).into_inner();
        assert_eq!(vector_of(&r), unit(&sent[id]), "{id} altered");
    }
    // Nothing visible is partial: every listed record is one that was sent, whole.
    let mut pages = c
        .list_records(pb::ListRecordsRequest {
            page_size: 5000,
            include_templates: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut listed = 0;
    while let Some(p) = pages.message().await.unwrap() {
        for r in p.records {
            let v = sent
                .get(&r.record_id)
                .unwrap_or_else(|| panic!("unknown record {}", r.record_id));
            assert_eq!(vector_of(&r), unit(v), "{} is not what was sent", r.record_id);
            listed += 1;
        }
    }
    assert!(listed >= acked.len());
    assert_eq!(total(&mut c).await as usize, listed);
    // And the gallery still takes writes after recovery.
    c.enroll(enroll_req("after", "after-crash", face(&sent["k00000"])))
        .await
        .unwrap();
    server.stop();
    listed
}
