//! Real embeddings from ../shared/datasets through the real server: LFW
//! FaceNet-128 faces and LibriSpeech Resemblyzer-256 voices.

mod common;

use biomatch_proto::v1 as pb;
use common::*;

fn identify(probe: pb::Template, k: u32) -> pb::IdentifyRequest {
    pb::IdentifyRequest {
        probe: Some(probe),
        top_k: k,
        threshold: None,
        metadata_filter: Default::default(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lfw_faces_one_enrollment_per_identity() {
    let dir = shared().join("face/lfw_facenet128");
    let raw = std::fs::read(dir.join("LFW_tensor.bytes")).unwrap();
    let x: Vec<f32> = raw
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let labels: Vec<String> = std::fs::read_to_string(dir.join("LFW_labels.tsv"))
        .unwrap()
        .lines()
        .take(2921)
        .map(String::from)
        .collect();
    assert_eq!(x.len(), 2921 * 128);
    let row = |i: usize| &x[i * 128..(i + 1) * 128];

    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), &[]);
    let mut c = server.client().await;
    let mut enrolled = std::collections::HashSet::new();
    let mut probes = Vec::new();
    let mut reqs = Vec::new();
    for (i, l) in labels.iter().enumerate() {
        if enrolled.insert(l.clone()) {
            reqs.push(enroll_req(l, &format!("lfw-{i}"), face(row(i))));
        } else {
            probes.push(i);
        }
    }
    enroll_all(&mut c, reqs).await;
    assert_eq!(total(&mut c).await, 353);
    let (mut rank1, mut genuine_accepted) = (0usize, 0usize);
    for &p in &probes {
        let r = c.identify(identify(face(row(p)), 1)).await.unwrap().into_inner();
        rank1 += (r.candidates[0].subject_id == labels[p]) as usize;
        let v = c
            .verify(pb::VerifyRequest {
                probe: Some(face(row(p))),
                target: Some(pb::verify_request::Target::SubjectId(labels[p].clone())),
                threshold: None,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        genuine_accepted += v.r#match as usize;
    }
    let (rank1, tar) = (
        rank1 as f64 / probes.len() as f64,
        genuine_accepted as f64 / probes.len() as f64,
    );
    // numpy on the same data: rank-1 0.9864, genuine >= 0.40 for 0.9961.
    assert!(rank1 >= 0.985, "rank-1 identification rate {rank1}");
    assert!(tar >= 0.995, "genuine acceptance at the default threshold {tar}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librispeech_voices_identify_every_speaker_and_threshold_separates() {
    let path = shared().join("voice/librispeech_test_other_10spk/embeddings.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let rows: Vec<(String, String, Vec<f32>)> = text
        .lines()
        .skip(1)
        .map(|l| {
            let mut f = l.split(',');
            let utt = f.next().unwrap().to_string();
            let spk = f.next().unwrap().to_string();
            (utt, spk, f.map(|v| v.parse().unwrap()).collect())
        })
        .collect();
    assert_eq!(rows.len(), 40);
    let voice = |v: &[f32]| emb(pb::Modality::Voice, v);
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), &[]);
    let mut c = server.client().await;
    let mut first = std::collections::HashSet::new();
    for (utt, spk, v) in &rows {
        if first.insert(spk.clone()) {
            c.enroll(enroll_req(spk, utt, voice(v))).await.unwrap();
        }
    }
    for (utt, spk, v) in rows.iter().filter(|(u, _, _)| !u.ends_with("-0000")) {
        let r = c.identify(identify(voice(v), 10)).await.unwrap().into_inner();
        assert_eq!(&r.candidates[0].subject_id, spk, "{utt}");
        assert_eq!(r.gallery, "voice-256");
        for cand in &r.candidates {
            let v = c
                .verify(pb::VerifyRequest {
                    probe: Some(voice(v)),
                    target: Some(pb::verify_request::Target::SubjectId(cand.subject_id.clone())),
                    threshold: None,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(
                v.r#match,
                &cand.subject_id == spk,
                "{utt} vs {}: score {}",
                cand.subject_id,
                v.score
            );
        }
    }
}
