//! IRIS through the real server: open-iris templates in, Hamming distances
//! and rotations out, durable like every gallery.

mod common;

use biomatch_datasets::{PackedIris, SyntheticIris};
use biomatch_matcher::{IrisMatchConfig, IrisMatcher, IrisTemplate};
use biomatch_proto::v1 as pb;
use common::*;
use tonic::Code;

fn json(t: &PackedIris) -> pb::Template {
    let text = IrisTemplate::from_packed(&t.code, &t.mask, "v2.1")
        .unwrap()
        .to_open_iris_json();
    pb::Template {
        modality: pb::Modality::Iris as i32,
        kind: Some(pb::template::Kind::Iris(pb::IrisTemplate {
            form: Some(pb::iris_template::Form::OpenIrisJson(text)),
        })),
        quality: 0.0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iris_enroll_verify_identify_stream_and_restart() {
    let (set, labels) = SyntheticIris {
        subjects: 60,
        samples_per_subject: 2,
        poor_capture_share: 0.0,
        seed: 8,
    }
    .generate();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [("BIOMATCH_FLUSH_RECORDS", "25")];
    let server = Server::start(&data, &env);
    let mut c = server.client().await;
    for s in 0..60 {
        // Even subjects as packed bits, odd ones as open-iris JSON.
        let t = if s % 2 == 0 {
            packed_iris(&set[2 * s])
        } else {
            json(&set[2 * s])
        };
        let r = c
            .enroll(enroll_req(&format!("eye-{s}"), &format!("iris-{s}"), t))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.gallery, "iris-16384");
        assert_eq!(labels[2 * s], s);
    }
    let oracle = IrisMatcher::new(IrisMatchConfig::default()).unwrap();
    let tpl = |i: usize| IrisTemplate::from_packed(&set[i].code, &set[i].mask, "v2.1").unwrap();
    for s in 0..60 {
        let g = c
            .verify(pb::VerifyRequest {
                probe: Some(packed_iris(&set[2 * s + 1])),
                target: Some(pb::verify_request::Target::SubjectId(format!("eye-{s}"))),
                threshold: None,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let want = oracle.compare(&tpl(2 * s + 1), &tpl(2 * s));
        assert_eq!((g.distance, g.rotation), (want.distance, want.shift), "subject {s}");
        assert!((g.score as f64 - (1.0 - want.distance)).abs() < 1e-6);
        assert!(g.r#match, "genuine {s} rejected at distance {}", g.distance);
        let other = (s + 1) % 60;
        let i = c
            .verify(pb::VerifyRequest {
                probe: Some(packed_iris(&set[2 * s + 1])),
                target: Some(pb::verify_request::Target::SubjectId(format!("eye-{other}"))),
                threshold: None,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(!i.r#match, "impostor accepted at distance {}", i.distance);
        let r = c
            .identify(pb::IdentifyRequest {
                probe: Some(json(&set[2 * s + 1])),
                top_k: 3,
                threshold: None,
                metadata_filter: Default::default(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.candidates[0].subject_id, format!("eye-{s}"));
        assert_eq!(r.candidates[0].distance, want.distance);
        assert!(r.candidates.windows(2).all(|w| w[0].distance <= w[1].distance));
    }

    // StreamVerify over iris frames.
    let mut msgs = vec![pb::StreamVerifyRequest {
        config: Some(pb::StreamVerifyConfig {
            subject_id: "eye-3".into(),
            threshold: None,
            window: 2,
            ..Default::default()
        }),
        frame: None,
    }];
    for i in [7, 9, 11] {
        msgs.push(pb::StreamVerifyRequest {
            config: None,
            frame: Some(packed_iris(&set[i])),
        });
    }
    let mut out = c.stream_verify(tokio_stream::iter(msgs)).await.unwrap().into_inner();
    let first = out.message().await.unwrap().unwrap();
    assert_eq!(first.decision, pb::StreamDecision::StreamMatch as i32, "{first:?}");
    let mut last = first;
    while let Some(m) = out.message().await.unwrap() {
        last = m;
    }
    assert_eq!(last.decision, pb::StreamDecision::StreamNoMatch as i32);

    // Bad iris input is refused and stores nothing.
    let before = total(&mut c).await;
    let e = c
        .enroll(enroll_req("x", "", packed_iris_version(&set[0], "v1.0")))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("iris_code_version v1.0"), "{}", e.message());
    let mut short = set[0].clone();
    short.code.truncate(100);
    let e = c.enroll(enroll_req("x", "", packed_iris(&short))).await.unwrap_err();
    assert!(
        e.code() == Code::InvalidArgument && e.message().contains("100 bytes"),
        "{e:?}"
    );
    let bad_json = pb::Template {
        modality: pb::Modality::Iris as i32,
        kind: Some(pb::template::Kind::Iris(pb::IrisTemplate {
            form: Some(pb::iris_template::Form::OpenIrisJson(
                r#"{"iris_codes": "%%", "mask_codes": "", "iris_code_version": "v2.1"}"#.into(),
            )),
        })),
        quality: 0.0,
    };
    let e = c.enroll(enroll_req("x", "", bad_json)).await.unwrap_err();
    assert!(
        e.code() == Code::InvalidArgument && e.message().contains("base64"),
        "{e:?}"
    );
    let mut blind = set[0].clone();
    blind.mask = vec![0; blind.mask.len()];
    let e = c.enroll(enroll_req("x", "", packed_iris(&blind))).await.unwrap_err();
    assert!(
        e.code() == Code::InvalidArgument && e.message().contains("no valid bit"),
        "{e:?}"
    );
    assert_eq!(total(&mut c).await, before);

    // Restart: the templates come back bit for bit.
    server.stop();
    let server = Server::start(&data, &env);
    let mut c = server.client().await;
    assert_eq!(total(&mut c).await, 60);
    let r = c
        .get_record(pb::GetRecordRequest {
            record_id: "iris-5".into(),
            include_template: true,
        })
        .await
        .unwrap()
        .into_inner();
    let Some(pb::template::Kind::Iris(pb::IrisTemplate {
        form: Some(pb::iris_template::Form::Packed(p)),
    })) = r.template.unwrap().kind
    else {
        panic!("iris record without packed template")
    };
    assert_eq!(
        (p.code, p.mask, p.version.as_str()),
        (set[10].code.clone(), set[10].mask.clone(), "v2.1")
    );
    let r = c
        .identify(pb::IdentifyRequest {
            probe: Some(packed_iris(&set[41])),
            top_k: 1,
            threshold: None,
            metadata_filter: Default::default(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.candidates[0].subject_id, "eye-20");
}
