//! ImportStream against the real binary: a client-streamed import gets the
//! quality gate, the duplicate check and per-record outcomes, and re-sending
//! after `kill -9` enrolls nothing twice.

mod common;

use biomatch_datasets::SyntheticEmbeddings;
use biomatch_proto::v1 as pb;
use common::*;
use pb::enrollment_jobs_client::EnrollmentJobsClient;
use tonic::Code;
use tonic::transport::Channel;

const DIM: usize = 256;

fn settings(id: &str) -> pb::ImportSettings {
    pb::ImportSettings {
        import_id: id.into(),
        batch_size: 4,
        min_quality: 50.0,
        dedup: true,
        ..Default::default()
    }
}

/// Twenty subjects, then a low-quality record, one without an id and a
/// planted duplicate of subject 0 under another subject.
fn records() -> Vec<pb::EnrollRequest> {
    let set = SyntheticEmbeddings {
        dim: DIM,
        subjects: 20,
        samples_per_subject: 1,
        noise: 0.3,
        seed: 3,
    }
    .generate();
    let mut out: Vec<_> = (0..20)
        .map(|s| enroll_req(&format!("s{s}"), &format!("r{s}"), face(set.row(s))))
        .collect();
    let mut poor = enroll_req("s20", "r20", face(set.row(1)));
    poor.template.as_mut().unwrap().quality = 10.0;
    out.push(poor);
    out.push(enroll_req("s21", "", face(set.row(2))));
    out.push(enroll_req("impostor", "r22", face(set.row(0))));
    out
}

async fn import(
    c: &mut EnrollmentJobsClient<Channel>,
    settings: pb::ImportSettings,
    recs: Vec<pb::EnrollRequest>,
) -> Result<Vec<pb::RecordOutcome>, tonic::Status> {
    let mut msgs = vec![pb::ImportStreamRequest {
        settings: Some(settings),
        record: None,
    }];
    msgs.extend(recs.into_iter().map(|r| pb::ImportStreamRequest {
        settings: None,
        record: Some(r),
    }));
    let mut acks = c.import_stream(tokio_stream::iter(msgs)).await?.into_inner();
    let mut out = Vec::new();
    while let Some(a) = acks.message().await? {
        assert!(a.outcomes.len() <= 4, "batch_size caps a batch");
        out.extend(a.outcomes);
        assert_eq!(a.answered_total, out.len() as u64);
    }
    Ok(out)
}

fn status(o: &pb::RecordOutcome) -> pb::RecordStatus {
    pb::RecordStatus::try_from(o.status).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_import_is_gated_deduplicated_and_safe_to_resend_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    let mut c = EnrollmentJobsClient::connect(server.addr.clone()).await.unwrap();

    // The first ten records, then the server is killed.
    let all = records();
    let first = import(&mut c, settings("imp"), all[..10].to_vec()).await.unwrap();
    assert_eq!(first.len(), 10);
    assert!(
        first.iter().all(|o| status(o) == pb::RecordStatus::RecordEnrolled),
        "{first:?}"
    );
    server.kill9();

    // The client re-sends everything under the same import id.
    let server = Server::start(&data, &[]);
    let mut c = EnrollmentJobsClient::connect(server.addr.clone()).await.unwrap();
    let out = import(&mut c, settings("imp"), all.clone()).await.unwrap();
    assert_eq!(out.len(), all.len());
    assert_eq!(
        out.iter().map(|o| o.index).collect::<Vec<_>>(),
        (0..all.len() as u64).collect::<Vec<_>>()
    );
    for o in &out[..10] {
        assert_eq!(status(o), pb::RecordStatus::RecordAlreadyPresent, "{o:?}");
        assert!(o.by_this_import);
    }
    for o in &out[10..20] {
        assert_eq!(status(o), pb::RecordStatus::RecordEnrolled, "{o:?}");
    }
    assert_eq!(status(&out[20]), pb::RecordStatus::RecordRejected);
    assert_eq!(out[20].code, "QUALITY");
    assert_eq!(status(&out[21]), pb::RecordStatus::RecordRejected);
    assert!(out[21].message.contains("record_id is required"), "{}", out[21].message);
    assert_eq!(status(&out[22]), pb::RecordStatus::RecordDuplicateSkipped);
    assert_eq!(
        (out[22].matched_subject_id.as_str(), out[22].matched_record_id.as_str()),
        ("s0", "r0")
    );
    let mut m = server.client().await;
    assert_eq!(
        total(&mut m).await,
        20,
        "every good record once, the duplicate not merged"
    );

    // Another import sending the same ids finds them, but not as its own.
    let again = import(&mut c, settings("other"), all[..3].to_vec()).await.unwrap();
    assert!(
        again
            .iter()
            .all(|o| status(o) == pb::RecordStatus::RecordAlreadyPresent && !o.by_this_import)
    );

    // Settings are checked before any record.
    let no_settings = c
        .import_stream(tokio_stream::iter(vec![pb::ImportStreamRequest {
            settings: None,
            record: Some(all[0].clone()),
        }]))
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap_err();
    assert_eq!(no_settings.code(), Code::InvalidArgument);
    for bad in [
        settings("bad/id"),
        pb::ImportSettings {
            batch_size: 1 << 20,
            ..settings("x")
        },
        pb::ImportSettings {
            min_quality: f32::NAN,
            ..settings("x")
        },
    ] {
        let err = import(&mut c, bad, all[..1].to_vec()).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    }
    assert_eq!(total(&mut m).await, 20);
}
