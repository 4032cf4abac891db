//! Calibration and MULTI fusion through the real server: decide by false
//! match rate, fuse face and voice, survive a restart.

mod common;

use biomatch_datasets::{SyntheticEmbeddings, SyntheticSet};
use biomatch_proto::v1 as pb;
use common::*;
use tonic::Code;

const SUBJECTS: usize = 60;
const SAMPLES: usize = 4;

/// Face (64-d) and voice (32-d) sets of the same subjects; the last sample
/// of each subject is held out as a probe.
fn sets() -> (SyntheticSet, SyntheticSet) {
    let gen_set = |dim, noise, seed| {
        SyntheticEmbeddings {
            dim,
            subjects: SUBJECTS,
            samples_per_subject: SAMPLES,
            noise,
            seed,
        }
        .generate()
    };
    (gen_set(64, 1.0, 11), gen_set(32, 1.1, 12))
}

fn subject(s: usize) -> String {
    format!("s{s:03}")
}

fn multi(parts: Vec<pb::Template>) -> pb::Template {
    pb::Template {
        modality: pb::Modality::Multi as i32,
        kind: Some(pb::template::Kind::Multi(pb::MultiTemplate { parts })),
        quality: 0.0,
    }
}

fn probe_of(set: &SyntheticSet, m: pb::Modality, s: usize) -> pb::Template {
    emb(m, set.row(s * SAMPLES + SAMPLES - 1))
}

fn verify(probe: pb::Template, s: usize) -> pb::VerifyRequest {
    pb::VerifyRequest {
        probe: Some(probe),
        target: Some(pb::verify_request::Target::SubjectId(subject(s))),
        ..Default::default()
    }
}

/// Verification of `probe` against subject `s` at a target FMR.
fn at_fmr(fmr: f64, probe: pb::Template, s: usize) -> pb::VerifyRequest {
    pb::VerifyRequest {
        target_fmr: Some(fmr),
        ..verify(probe, s)
    }
}

/// Enrolls all but the held-out sample; the last subject gets no voice.
async fn enroll(c: &mut pb::matcher_client::MatcherClient<tonic::transport::Channel>) {
    let (face, voice) = sets();
    let mut reqs = Vec::new();
    for s in 0..SUBJECTS {
        for k in 0..SAMPLES - 1 {
            let i = s * SAMPLES + k;
            reqs.push(enroll_req(
                &subject(s),
                &format!("f{i}"),
                emb(pb::Modality::Face, face.row(i)),
            ));
            if s + 1 < SUBJECTS {
                reqs.push(enroll_req(
                    &subject(s),
                    &format!("v{i}"),
                    emb(pb::Modality::Voice, voice.row(i)),
                ));
            }
        }
    }
    let n = reqs.len();
    assert_eq!(enroll_all(c, reqs).await, n);
}

/// Impostor-like and genuine-like voice scores a client measured elsewhere.
fn voice_scores() -> (Vec<f32>, Vec<f32>) {
    let (_, voice) = sets();
    let (mut imp, mut gen_scores) = (Vec::new(), Vec::new());
    for i in 0..voice.len() {
        for j in i + 1..voice.len() {
            let d: f32 = voice.row(i).iter().zip(voice.row(j)).map(|(a, b)| a * b).sum();
            if voice.labels[i] == voice.labels[j] {
                gen_scores.push(d)
            } else {
                imp.push(d)
            }
        }
    }
    (imp, gen_scores)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calibrate_decide_by_fmr_fuse_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    let mut c = server.client().await;
    enroll(&mut c).await;
    let (face, voice) = sets();

    // Before calibration a decision by FMR cannot be made.
    let err = c
        .verify(at_fmr(1e-3, probe_of(&face, pb::Modality::Face, 1), 1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("face-64"), "{}", err.message());

    // FACE from the gallery's own pairs.
    let cal = c
        .calibrate(pb::CalibrateRequest {
            modality: pb::Modality::Face as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cal.gallery, "face-64");
    let n = (SUBJECTS * (SAMPLES - 1)) as u64;
    assert_eq!(cal.records_sampled, n);
    let genuine = cal.genuine.unwrap();
    assert_eq!(genuine.count, (SUBJECTS * 3) as u64, "3 pairs per subject of 3 samples");
    assert_eq!(cal.impostor.unwrap().count, n * (n - 1) / 2 - genuine.count);
    assert_eq!(cal.thresholds.len(), 5);
    assert!(cal.thresholds.windows(2).all(|w| w[1].threshold > w[0].threshold));
    assert!(!cal.thresholds[0].extrapolated && cal.thresholds[4].extrapolated);
    let t3 = cal.thresholds[1].threshold;

    // VOICE from scores the client brings; too few is the client's mistake.
    let (imp, gen_scores) = voice_scores();
    let err = c
        .calibrate(pb::CalibrateRequest {
            modality: pb::Modality::Voice as i32,
            impostor_scores: imp[..10].to_vec(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let vcal = c
        .calibrate(pb::CalibrateRequest {
            modality: pb::Modality::Voice as i32,
            dimension: 32,
            impostor_scores: imp.clone(),
            genuine_scores: gen_scores.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(vcal.gallery, "voice-32");
    assert_eq!(vcal.records_sampled, 0);
    assert_eq!(vcal.impostor.unwrap().count, imp.len() as u64);

    // Decide at FMR 1e-3: the threshold is the calibrated one.
    let v = c
        .verify(at_fmr(1e-3, probe_of(&face, pb::Modality::Face, 1), 1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.threshold, t3);
    assert_eq!(v.r#match, v.score >= t3);
    assert!(v.fmr.unwrap() > 0.0 && v.fmr.unwrap() <= 1.0);
    let v = c
        .verify(at_fmr(1e-3, probe_of(&face, pb::Modality::Face, 1), 2))
        .await
        .unwrap()
        .into_inner();
    assert!(!v.r#match, "an impostor at FMR 1e-3: {v:?}");
    // Plain verification reports the score's FMR too once calibrated.
    let v = c
        .verify(verify(probe_of(&face, pb::Modality::Face, 3), 3))
        .await
        .unwrap()
        .into_inner();
    assert!(v.fmr.is_some());
    for bad in [
        pb::VerifyRequest {
            target_fmr: Some(1e-3),
            threshold: Some(0.5),
            ..verify(probe_of(&face, pb::Modality::Face, 1), 1)
        },
        pb::VerifyRequest {
            target_fmr: Some(0.9),
            ..verify(probe_of(&face, pb::Modality::Face, 1), 1)
        },
    ] {
        let err = c.verify(bad).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    }
    // Identify by FMR: only candidates within it.
    let found = c
        .identify(pb::IdentifyRequest {
            probe: Some(probe_of(&face, pb::Modality::Face, 4)),
            top_k: 20,
            target_fmr: Some(1e-2),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        found
            .candidates
            .iter()
            .all(|c| c.fmr.unwrap() <= 1e-2 && c.score >= cal.thresholds[0].threshold)
    );

    // MULTI verify: both modalities scored and fused.
    let both = |s: usize| {
        multi(vec![
            probe_of(&face, pb::Modality::Face, s),
            probe_of(&voice, pb::Modality::Voice, s),
        ])
    };
    let mut genuine_fused = Vec::new();
    let mut impostor_fused = Vec::new();
    for s in 0..SUBJECTS - 1 {
        let v = c.verify(verify(both(s), s)).await.unwrap().into_inner();
        assert_eq!(v.modalities.len(), 2);
        assert!(v.modalities.iter().all(|m| m.present));
        assert_eq!(v.modalities[0].gallery, "face-64");
        let fmr = v.fmr.unwrap();
        assert!(((-fmr.log10()) as f32 - v.score).abs() < 1e-3, "{v:?}");
        genuine_fused.push(v.score);
        let w = c
            .verify(verify(both(s), (s + 1) % (SUBJECTS - 1)))
            .await
            .unwrap()
            .into_inner();
        impostor_fused.push(w.score);
        assert_eq!(w.threshold, 4.0, "the configured MULTI default");
    }
    let accepted = genuine_fused.iter().filter(|&&s| s >= 4.0).count();
    let false_accepts = impostor_fused.iter().filter(|&&s| s >= 4.0).count();
    assert!(
        accepted >= SUBJECTS * 9 / 10,
        "{accepted} of {} genuine fused",
        SUBJECTS - 1
    );
    assert_eq!(false_accepts, 0, "{impostor_fused:?}");

    // A subject without voice is decided on face alone.
    let last = SUBJECTS - 1;
    let v = c.verify(verify(both(last), last)).await.unwrap().into_inner();
    assert!(v.modalities[0].present && !v.modalities[1].present, "{v:?}");
    assert_eq!(v.modalities[1].fmr, 1.0);
    let face_only = c
        .verify(verify(probe_of(&face, pb::Modality::Face, last), last))
        .await
        .unwrap()
        .into_inner();
    let (fused_fmr, face_fmr) = (v.fmr.unwrap(), face_only.fmr.unwrap());
    assert!(
        (fused_fmr - face_fmr).abs() <= 1e-5 * face_fmr,
        "{fused_fmr} vs {face_fmr}"
    );

    // MULTI identify: the right subject first.
    for s in [0, 7, 33] {
        let found = c
            .identify(pb::IdentifyRequest {
                probe: Some(both(s)),
                top_k: 5,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(found.candidates[0].subject_id, subject(s), "{found:?}");
        assert_eq!(found.candidates[0].modalities.len(), 2);
        assert!(found.candidates.windows(2).all(|w| w[0].score >= w[1].score));
    }

    // Bad MULTI probes.
    let uncalibrated = emb(pb::Modality::Face, &[1.0; 16]);
    for (probe, code) in [
        (multi(vec![]), Code::InvalidArgument),
        (
            multi(vec![
                probe_of(&face, pb::Modality::Face, 1),
                probe_of(&face, pb::Modality::Face, 2),
            ]),
            Code::InvalidArgument,
        ),
        (
            multi(vec![multi(vec![probe_of(&face, pb::Modality::Face, 1)])]),
            Code::InvalidArgument,
        ),
        (
            multi(vec![probe_of(&face, pb::Modality::Face, 1), uncalibrated]),
            Code::FailedPrecondition,
        ),
    ] {
        let err = c.verify(verify(probe, 1)).await.unwrap_err();
        assert_eq!(err.code(), code, "{err:?}");
    }
    let err = c
        .verify(pb::VerifyRequest {
            target: Some(pb::verify_request::Target::RecordId("f0".into())),
            ..verify(both(0), 0)
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = c.enroll(enroll_req("x", "", both(0))).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("MULTI"), "{}", err.message());

    // Calibrations are stored with the galleries.
    server.stop();
    let server = Server::start(&data, &[]);
    let mut c = server.client().await;
    let again = c
        .get_calibration(pb::GetCalibrationRequest {
            modality: pb::Modality::Face as i32,
            dimension: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, cal);
    let v = c
        .verify(at_fmr(1e-3, probe_of(&face, pb::Modality::Face, 1), 1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.threshold, t3);
    let err = c
        .get_calibration(pb::GetCalibrationRequest {
            modality: pb::Modality::Iris as i32,
            dimension: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // A damaged calibration file is ignored (logged), not fatal: that gallery
    // answers as uncalibrated, the others as before.
    server.stop();
    let file = data.join("calibration/voice-32.json");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text = text.replace("\"knots\"", "\"knots_gone\"");
    std::fs::write(&file, text).unwrap();
    let server = Server::start(&data, &[]);
    let mut c = server.client().await;
    let err = c
        .verify(at_fmr(1e-3, probe_of(&voice, pb::Modality::Voice, 1), 1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let v = c
        .verify(at_fmr(1e-3, probe_of(&face, pb::Modality::Face, 1), 1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.threshold, t3);
}
