//! End to end: the real server binary on loopback, a real tonic client.

mod common;

use biomatch_datasets::SyntheticEmbeddings;
use biomatch_proto::v1 as pb;
use common::*;
use tonic::Code;

const DIM: usize = 512;

fn dataset() -> biomatch_datasets::SyntheticSet {
    // Two samples per subject: index 2i is enrolled, 2i+1 probes.
    SyntheticEmbeddings {
        dim: DIM,
        subjects: 1000,
        samples_per_subject: 2,
        noise: 0.6,
        seed: 42,
    }
    .generate()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_subjects_verify_identify_delete_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let set = dataset();
    // A small flush size so that the server writes several segments.
    let env = [("BIOMATCH_FLUSH_RECORDS", "300")];
    let server = Server::start(&data, &env);
    let mut c = server.client().await;

    // First 100 one by one, the rest over a stream.
    for s in 0..100 {
        let r = c
            .enroll(enroll_req(
                &format!("subj-{s}"),
                &format!("rec-{s}"),
                face(set.row(2 * s)),
            ))
            .await
            .unwrap();
        assert_eq!(r.into_inner().gallery, "face-512");
    }
    let reqs: Vec<_> = (100..1000)
        .map(|s| enroll_req(&format!("subj-{s}"), &format!("rec-{s}"), face(set.row(2 * s))))
        .collect();
    assert_eq!(enroll_all(&mut c, reqs).await, 900);
    assert_eq!(total(&mut c).await, 1000);

    // Genuine accepted, impostor rejected, at the default threshold.
    for s in (0..1000).step_by(7) {
        let probe = face(set.row(2 * s + 1));
        let g = c
            .verify(pb::VerifyRequest {
                probe: Some(probe.clone()),
                target: Some(pb::verify_request::Target::SubjectId(format!("subj-{s}"))),
                threshold: None,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(g.r#match, "genuine subject {s} rejected: {g:?}");
        let other = (s + 1) % 1000;
        let i = c
            .verify(pb::VerifyRequest {
                probe: Some(probe),
                target: Some(pb::verify_request::Target::SubjectId(format!("subj-{other}"))),
                threshold: None,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(!i.r#match, "impostor accepted: {s} vs {other}: {i:?}");
    }

    // Rank-1 identification for every subject.
    let identify = |s: usize| pb::IdentifyRequest {
        probe: Some(face(set.row(2 * s + 1))),
        top_k: 5,
        threshold: None,
        metadata_filter: Default::default(),
        ..Default::default()
    };
    for s in 0..1000 {
        let r = c.identify(identify(s)).await.unwrap().into_inner();
        assert_eq!(r.candidates[0].subject_id, format!("subj-{s}"), "rank 1 of subject {s}");
        assert_eq!(r.candidates.len(), 5);
        assert_eq!(r.gallery_size, 1000);
    }

    // Delete a subject and a record; they never come back.
    let d = c
        .delete(pb::DeleteRequest {
            target: Some(pb::delete_request::Target::SubjectId("subj-7".into())),
            purge: false,
        })
        .await
        .unwrap();
    assert_eq!(d.into_inner().record_ids, vec!["rec-7".to_string()]);
    c.delete(pb::DeleteRequest {
        target: Some(pb::delete_request::Target::RecordId("rec-8".into())),
        purge: true,
    })
    .await
    .unwrap();
    for s in [7, 8] {
        let r = c
            .identify(pb::IdentifyRequest {
                top_k: 1000,
                ..identify(s)
            })
            .await
            .unwrap()
            .into_inner();
        assert!(r.candidates.iter().all(|c| c.subject_id != format!("subj-{s}")));
        let e = c
            .get_record(pb::GetRecordRequest {
                record_id: format!("rec-{s}"),
                include_template: false,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::NotFound);
    }
    assert_eq!(total(&mut c).await, 998);

    // Restart: everything not deleted is still there, byte for byte.
    server.stop();
    let server = Server::start(&data, &env);
    let mut c = server.client().await;
    assert_eq!(total(&mut c).await, 998);
    for s in 0..1000 {
        let r = c
            .get_record(pb::GetRecordRequest {
                record_id: format!("rec-{s}"),
                include_template: true,
            })
            .await;
        if s == 7 || s == 8 {
            assert_eq!(r.unwrap_err().code(), Code::NotFound);
            continue;
        }
        let r = r.unwrap().into_inner();
        assert_eq!(r.subject_id, format!("subj-{s}"));
        assert_eq!(r.dimension, DIM as u32);
        assert_eq!(vector_of(&r), unit(set.row(2 * s)));
    }
    for s in (0..1000).step_by(50).filter(|s| *s != 7 && *s != 8) {
        let r = c.identify(identify(s)).await.unwrap().into_inner();
        assert_eq!(r.candidates[0].subject_id, format!("subj-{s}"));
    }
    let stats = c.gallery_stats(pb::GalleryStatsRequest {}).await.unwrap().into_inner();
    assert!(stats.galleries[0].segments >= 2, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_a_clear_error_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[("BIOMATCH_MAX_MESSAGE_BYTES", "65536")]);
    let mut c = server.client().await;
    let good: Vec<f32> = (0..DIM).map(|i| (i as f32).sin()).collect();
    c.enroll(enroll_req("alice", "a-1", face(&good))).await.unwrap();
    let before = total(&mut c).await;

    let expect = |r: Result<tonic::Response<pb::EnrollResponse>, tonic::Status>, code: Code, words: &[&str]| {
        let e = r.expect_err("must be refused");
        assert_eq!(e.code(), code, "{e:?}");
        for w in words {
            assert!(e.message().contains(w), "message {:?} lacks {w:?}", e.message());
        }
    };
    let mut nan = good.clone();
    nan[3] = f32::NAN;
    expect(
        c.enroll(enroll_req("bob", "", face(&nan))).await,
        Code::InvalidArgument,
        &["index 3", "NaN"],
    );
    let mut inf = good.clone();
    inf[0] = f32::INFINITY;
    expect(
        c.enroll(enroll_req("bob", "", face(&inf))).await,
        Code::InvalidArgument,
        &["index 0", "inf"],
    );
    expect(
        c.enroll(enroll_req("bob", "", face(&[]))).await,
        Code::InvalidArgument,
        &["empty template"],
    );
    expect(
        c.enroll(enroll_req("bob", "", face(&vec![0.0; DIM]))).await,
        Code::InvalidArgument,
        &["zero vector"],
    );
    let no_kind = pb::Template {
        modality: pb::Modality::Face as i32,
        kind: None,
        quality: 0.0,
    };
    expect(
        c.enroll(enroll_req("bob", "", no_kind)).await,
        Code::InvalidArgument,
        &["empty template"],
    );
    let mut bytes = face(&good);
    if let Some(pb::template::Kind::Embedding(pb::Embedding {
        values: Some(pb::embedding::Values::F32Le(b)),
    })) = &mut bytes.kind
    {
        b.pop();
    }
    expect(
        c.enroll(enroll_req("bob", "", bytes)).await,
        Code::InvalidArgument,
        &["not a multiple of 4"],
    );
    expect(
        c.enroll(enroll_req("", "", face(&good))).await,
        Code::InvalidArgument,
        &["subject_id is required"],
    );
    expect(
        c.enroll(enroll_req("bob", "a-1", face(&good))).await,
        Code::AlreadyExists,
        &["a-1"],
    );
    let unspecified = pb::Template {
        modality: 0,
        ..face(&good)
    };
    expect(
        c.enroll(enroll_req("bob", "", unspecified)).await,
        Code::InvalidArgument,
        &["template.modality is required"],
    );
    let multi = pb::Template {
        modality: pb::Modality::Multi as i32,
        ..face(&good)
    };
    expect(
        c.enroll(enroll_req("bob", "", multi)).await,
        Code::InvalidArgument,
        &["MULTI", "enroll each modality"],
    );
    // Over the configured 64 KiB limit (but under the transport's cap).
    let huge = pb::EnrollRequest {
        metadata: [("blob".to_string(), "x".repeat(100_000))].into(),
        ..enroll_req("bob", "", face(&good))
    };
    expect(
        c.enroll(huge).await,
        Code::InvalidArgument,
        &["over the limit of 65536 bytes"],
    );

    // Wrong dimension against an existing gallery.
    let short = face(&good[..128]);
    let e = c
        .identify(pb::IdentifyRequest {
            probe: Some(short.clone()),
            top_k: 3,
            threshold: None,
            metadata_filter: Default::default(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains("dimension 128") && e.message().contains("512"),
        "{}",
        e.message()
    );
    let e = c
        .verify(pb::VerifyRequest {
            probe: Some(short),
            target: Some(pb::verify_request::Target::SubjectId("alice".into())),
            threshold: None,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(
        e.message().contains("dimension 128") && e.message().contains("dimension 512"),
        "{}",
        e.message()
    );
    // Unknown subject and record.
    let e = c
        .verify(pb::VerifyRequest {
            probe: Some(face(&good)),
            target: Some(pb::verify_request::Target::SubjectId("nobody".into())),
            threshold: None,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains("nobody"));
    let e = c
        .delete(pb::DeleteRequest {
            target: Some(pb::delete_request::Target::RecordId("nope".into())),
            purge: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = c
        .identify(pb::IdentifyRequest {
            probe: Some(face(&good)),
            top_k: 5000,
            threshold: None,
            metadata_filter: Default::default(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("top_k"));
    let e = c
        .verify(pb::VerifyRequest {
            probe: Some(face(&good)),
            target: None,
            threshold: None,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    // Mixed stream: bad records are reported, good ones stored.
    let reqs = vec![
        enroll_req("carol", "c-1", face(&good)),
        enroll_req("carol", "c-2", face(&nan)),
        enroll_req("carol", "a-1", face(&good)),
    ];
    let mut acks = c.enroll_stream(tokio_stream::iter(reqs)).await.unwrap().into_inner();
    let (mut ok, mut errs) = (Vec::new(), Vec::new());
    while let Some(a) = acks.message().await.unwrap() {
        ok.extend(a.record_ids);
        errs.extend(a.errors);
    }
    assert_eq!(ok, vec!["c-1".to_string()]);
    assert_eq!(
        errs.iter().map(|e| (e.index, e.code)).collect::<Vec<_>>(),
        vec![(1, Code::InvalidArgument as i32), (2, Code::AlreadyExists as i32)]
    );
    assert_eq!(total(&mut c).await, before + 1);
    let a1 = c
        .get_record(pb::GetRecordRequest {
            record_id: "a-1".into(),
            include_template: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a1.subject_id, "alice", "the refused duplicate did not overwrite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_a_segment_is_reported_with_the_file_name_and_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [("BIOMATCH_FLUSH_RECORDS", "50")];
    let server = Server::start(&data, &env);
    let mut c = server.client().await;
    let set = SyntheticEmbeddings {
        dim: 64,
        subjects: 60,
        samples_per_subject: 1,
        noise: 0.1,
        seed: 1,
    }
    .generate();
    for s in 0..60 {
        c.enroll(enroll_req(&format!("s{s}"), &format!("r{s}"), face(set.row(s))))
            .await
            .unwrap();
        c.enroll(enroll_req(
            &format!("s{s}"),
            &format!("v{s}"),
            emb(pb::Modality::Voice, set.row(s)),
        ))
        .await
        .unwrap();
    }
    server.stop();
    let seg = data.join("galleries/face-64/seg-00000001.seg");
    let mut b = std::fs::read(&seg).unwrap();
    b[64 + 4 * 100] ^= 0x04; // a bit inside the vector block
    std::fs::write(&seg, b).unwrap();

    let server = Server::start(&data, &env);
    let mut c = server.client().await;
    let e = c
        .identify(pb::IdentifyRequest {
            probe: Some(face(set.row(3))),
            top_k: 1,
            threshold: None,
            metadata_filter: Default::default(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::DataLoss);
    assert!(
        e.message().contains("seg-00000001.seg") && e.message().contains("checksum"),
        "{}",
        e.message()
    );
    let e = c.enroll(enroll_req("x", "x", face(set.row(0)))).await.unwrap_err();
    assert_eq!(e.code(), Code::DataLoss, "no writes into a damaged gallery");
    let stats = c.gallery_stats(pb::GalleryStatsRequest {}).await.unwrap().into_inner();
    let face_g = stats.galleries.iter().find(|g| g.name == "face-64").unwrap();
    assert!(face_g.error.contains("seg-00000001.seg"), "{face_g:?}");
    // The healthy voice gallery keeps serving.
    let r = c
        .identify(pb::IdentifyRequest {
            probe: Some(emb(pb::Modality::Voice, set.row(3))),
            top_k: 1,
            threshold: None,
            metadata_filter: Default::default(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.candidates[0].subject_id, "s3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_streaming_verify_filters_health_and_reflection() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let mut c = server.client().await;
    let set = SyntheticEmbeddings {
        dim: 32,
        subjects: 25,
        samples_per_subject: 4,
        noise: 0.4,
        seed: 5,
    }
    .generate();
    for i in 0..100 {
        let mut r = enroll_req(
            &format!("s{:02}", set.labels[i]),
            &format!("r{i:03}"),
            emb(pb::Modality::Voice, set.row(i)),
        );
        r.metadata
            .insert("site".into(), if i % 2 == 0 { "even" } else { "odd" }.into());
        c.enroll(r).await.unwrap();
    }
    // Paged listing: 100 records in pages of 30, in id order.
    let mut pages = c
        .list_records(pb::ListRecordsRequest {
            page_size: 30,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut ids = Vec::new();
    let mut n_pages = 0;
    while let Some(p) = pages.message().await.unwrap() {
        n_pages += 1;
        ids.extend(p.records.into_iter().map(|r| r.record_id));
    }
    assert_eq!(n_pages, 4);
    assert_eq!(ids, (0..100).map(|i| format!("r{i:03}")).collect::<Vec<_>>());
    let mut one = c
        .list_records(pb::ListRecordsRequest {
            page_size: 10,
            page_token: "r049".into(),
            max_pages: 1,
            subject_id: String::new(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let p = one.message().await.unwrap().unwrap();
    assert_eq!(p.records[0].record_id, "r050");
    assert_eq!(p.next_page_token, "r059");
    assert!(one.message().await.unwrap().is_none());

    // Metadata filter.
    let r = c
        .identify(pb::IdentifyRequest {
            probe: Some(emb(pb::Modality::Voice, set.row(1))),
            top_k: 25,
            threshold: None,
            metadata_filter: [("site".to_string(), "even".to_string())].into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    for cand in &r.candidates {
        assert_eq!(cand.record_id[1..].parse::<usize>().unwrap() % 2, 0);
    }

    // Streaming verification: genuine frames match, impostor frames do not.
    let subject = format!("s{:02}", set.labels[0]);
    let mut msgs = vec![pb::StreamVerifyRequest {
        config: Some(pb::StreamVerifyConfig {
            subject_id: subject,
            threshold: Some(0.5),
            window: 3,
            ..Default::default()
        }),
        frame: None,
    }];
    for i in [1, 2, 3, 50, 60, 70, 80] {
        msgs.push(pb::StreamVerifyRequest {
            config: None,
            frame: Some(emb(pb::Modality::Voice, set.row(i))),
        });
    }
    let mut out = c.stream_verify(tokio_stream::iter(msgs)).await.unwrap().into_inner();
    let mut resp = Vec::new();
    while let Some(r) = out.message().await.unwrap() {
        resp.push(r);
    }
    assert_eq!(resp.len(), 7);
    assert_eq!(resp[2].decision, pb::StreamDecision::StreamMatch as i32);
    assert_eq!(resp[2].frames_in_window, 3);
    assert_eq!(resp[6].decision, pb::StreamDecision::StreamNoMatch as i32);
    let mean: f32 = resp[4..7].iter().map(|r| r.score).sum::<f32>() / 3.0;
    assert!((resp[6].running_score - mean).abs() < 1e-5);
    // A stream without config is refused.
    let bad = vec![pb::StreamVerifyRequest {
        config: None,
        frame: Some(emb(pb::Modality::Voice, set.row(1))),
    }];
    let mut out = c.stream_verify(tokio_stream::iter(bad)).await.unwrap().into_inner();
    assert_eq!(out.message().await.unwrap_err().code(), Code::InvalidArgument);

    // Standard health service and reflection answer.
    let ch = tonic::transport::Channel::from_shared(server.addr.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut h = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    let st = h
        .check(tonic_health::pb::HealthCheckRequest {
            service: "biomatch.v1.Matcher".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        st.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut rc = ServerReflectionClient::new(ch);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut rs = rc
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(l)) = rs.message().await.unwrap().unwrap().message_response else {
        panic!("no service list")
    };
    assert!(l.service.iter().any(|s| s.name == "biomatch.v1.Matcher"), "{l:?}");
}
