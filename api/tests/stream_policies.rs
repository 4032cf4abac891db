//! StreamVerify policies through the real server: k of n, mean, SPRT, early
//! accept and reject, frame and time limits, on embeddings, iris codes and
//! fingerprints.

mod common;

use std::time::{Duration, Instant};

use biomatch_datasets::{SyntheticEmbeddings, SyntheticIris, read_dir_files};
use biomatch_proto::v1 as pb;
use common::*;
use pb::matcher_client::MatcherClient;
use tonic::Code;
use tonic::transport::Channel;

type Client = MatcherClient<Channel>;

fn config(subject: &str, policy: Option<pb::stream_verify_config::Policy>) -> pb::StreamVerifyConfig {
    pb::StreamVerifyConfig {
        subject_id: subject.into(),
        policy,
        ..Default::default()
    }
}

fn k_of_n(k: u32, n: u32) -> Option<pb::stream_verify_config::Policy> {
    Some(pb::stream_verify_config::Policy::KOfN(pb::KOfNPolicy { k, n }))
}

/// Sends the config and `frames`, all at once, and collects every answer
/// until the server ends the stream; Err on a status.
async fn stream(
    c: &mut Client,
    cfg: pb::StreamVerifyConfig,
    frames: Vec<pb::Template>,
) -> Result<Vec<pb::StreamVerifyResponse>, tonic::Status> {
    let mut reqs = vec![pb::StreamVerifyRequest {
        config: Some(cfg),
        frame: None,
    }];
    reqs.extend(frames.into_iter().map(|f| pb::StreamVerifyRequest {
        config: None,
        frame: Some(f),
    }));
    let mut out = Vec::new();
    let mut answers = c.stream_verify(tokio_stream::iter(reqs)).await?.into_inner();
    while let Some(a) = answers.message().await? {
        out.push(a);
    }
    Ok(out)
}

fn outcome(r: &pb::StreamVerifyResponse) -> pb::StreamOutcome {
    pb::StreamOutcome::try_from(r.outcome).unwrap()
}

const DIM: usize = 64;
const SUBJECTS: usize = 40;

fn faces() -> biomatch_datasets::SyntheticSet {
    SyntheticEmbeddings {
        dim: DIM,
        subjects: SUBJECTS,
        samples_per_subject: 12,
        noise: 0.9,
        seed: 5,
    }
    .generate()
}

/// Frames of `subject`: samples 4.. (0..4 are enrolled).
fn frames_of(set: &biomatch_datasets::SyntheticSet, subject: usize, n: usize) -> Vec<pb::Template> {
    (0..n).map(|k| face(set.row(subject * 12 + 4 + k))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_decide_early_and_limits_end_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let mut c = server.client().await;
    let set = faces();
    let reqs: Vec<_> = (0..SUBJECTS)
        .flat_map(|s| (0..4).map(move |k| (s, k)))
        .map(|(s, k)| enroll_req(&format!("p{s}"), &format!("r{s}-{k}"), face(set.row(s * 12 + k))))
        .collect();
    enroll_all(&mut c, reqs).await;

    // k of n: two matching frames accept at the second; the server ends the
    // stream there even though the client sent eight.
    let got = stream(&mut c, config("p1", k_of_n(2, 4)), frames_of(&set, 1, 8))
        .await
        .unwrap();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(outcome(&got[0]), pb::StreamOutcome::Undecided);
    assert_eq!(outcome(&got[1]), pb::StreamOutcome::StreamAccepted);
    assert_eq!(got[1].running_score, 2.0);
    assert_eq!(got[1].threshold, 0.40, "the FACE default");
    // An impostor's frames: rejected once 2 of 4 is out of reach (frame 3).
    let got = stream(&mut c, config("p1", k_of_n(2, 4)), frames_of(&set, 2, 8))
        .await
        .unwrap();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(outcome(&got[2]), pb::StreamOutcome::StreamRejected);

    // Mean, final once the window is full.
    let mean = Some(pb::stream_verify_config::Policy::Mean(pb::MeanPolicy {
        window: 3,
        final_when_full: true,
    }));
    let got = stream(&mut c, config("p3", mean), frames_of(&set, 3, 8)).await.unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(outcome(&got[2]), pb::StreamOutcome::StreamAccepted);
    let mean_of_three = got.iter().map(|r| r.score).sum::<f32>() / 3.0;
    assert!((got[2].running_score - mean_of_three).abs() < 1e-5);

    // The old shorthand (window, no policy) keeps monitoring until the
    // client stops; max_frames turns it inconclusive.
    let cfg = pb::StreamVerifyConfig {
        window: 2,
        ..config("p4", None)
    };
    let got = stream(&mut c, cfg.clone(), frames_of(&set, 4, 6)).await.unwrap();
    assert_eq!(got.len(), 6);
    assert!(got.iter().all(|r| outcome(r) == pb::StreamOutcome::Undecided));
    let got = stream(
        &mut c,
        pb::StreamVerifyConfig { max_frames: 3, ..cfg },
        frames_of(&set, 4, 6),
    )
    .await
    .unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(outcome(&got[2]), pb::StreamOutcome::StreamInconclusive);

    // SPRT needs the score models: from the calibration, which needs
    // genuine pairs (four samples per subject enrolled give them).
    let sprt = Some(pb::stream_verify_config::Policy::Sprt(pb::SprtPolicy {
        alpha: 1e-4,
        beta: 1e-3,
        ..Default::default()
    }));
    let err = stream(&mut c, config("p5", sprt), frames_of(&set, 5, 2))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    c.calibrate(pb::CalibrateRequest {
        modality: pb::Modality::Face as i32,
        ..Default::default()
    })
    .await
    .unwrap();
    let (mut accepted, mut rejected, mut frames_used) = (0, 0, 0);
    for s in 0..10 {
        let genuine = stream(&mut c, config(&format!("p{s}"), sprt), frames_of(&set, s, 8))
            .await
            .unwrap();
        let last = genuine.last().unwrap();
        accepted += usize::from(outcome(last) == pb::StreamOutcome::StreamAccepted);
        frames_used += genuine.len();
        let impostor = stream(
            &mut c,
            config(&format!("p{s}"), sprt),
            frames_of(&set, (s + 1) % SUBJECTS, 8),
        )
        .await
        .unwrap();
        rejected += usize::from(outcome(impostor.last().unwrap()) == pb::StreamOutcome::StreamRejected);
    }
    assert_eq!((accepted, rejected), (10, 10));
    assert!(
        frames_used < 10 * 8,
        "SPRT stopped early: {frames_used} frames for 10 streams"
    );
    // Explicit models need no calibration lookup, and bad ones are refused
    // before any frame.
    let bad = Some(pb::stream_verify_config::Policy::Sprt(pb::SprtPolicy {
        alpha: 0.6,
        beta: 0.1,
        ..Default::default()
    }));
    for (cfg, what) in [
        (config("p1", bad), "alpha"),
        (config("p1", k_of_n(5, 4)), "k_of_n.k"),
        (config("p1", k_of_n(1, 5000)), "k_of_n.n"),
        (
            pb::StreamVerifyConfig {
                threshold: Some(0.5),
                target_fmr: Some(1e-3),
                ..config("p1", None)
            },
            "not both",
        ),
    ] {
        let err = stream(&mut c, cfg, vec![]).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains(what), "{}", err.message());
    }
    // Per-frame threshold by FMR.
    let got = stream(
        &mut c,
        pb::StreamVerifyConfig {
            target_fmr: Some(1e-3),
            ..config("p6", k_of_n(1, 3))
        },
        frames_of(&set, 6, 3),
    )
    .await
    .unwrap();
    assert!(got[0].threshold > 0.0 && got[0].threshold != 0.40);
    // A frame of another gallery mid-stream is refused.
    let mut frames = frames_of(&set, 7, 1);
    frames.push(emb(pb::Modality::Voice, &[1.0; 8]));
    let err = stream(&mut c, config("p7", None), frames).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("voice-8"), "{}", err.message());

    // Timeout: the client sends one frame and then goes quiet; the server
    // answers TIMED_OUT and ends the stream.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(pb::StreamVerifyRequest {
        config: Some(pb::StreamVerifyConfig {
            timeout_ms: 300,
            ..config("p8", k_of_n(3, 5))
        }),
        frame: frames_of(&set, 8, 1).pop(),
    })
    .await
    .unwrap();
    let started = Instant::now();
    let mut answers = c
        .stream_verify(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let first = answers.message().await.unwrap().unwrap();
    assert_eq!(outcome(&first), pb::StreamOutcome::Undecided);
    let timed_out = tokio::time::timeout(Duration::from_secs(20), answers.message())
        .await
        .expect("the server ends a stream past its timeout")
        .unwrap()
        .unwrap();
    assert_eq!(outcome(&timed_out), pb::StreamOutcome::StreamTimedOut);
    assert_eq!(timed_out.frame_index, 1, "one frame was scored");
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(answers.message().await.unwrap().is_none(), "stream ended");
    drop(tx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k_of_n_on_iris_and_fingerprint_frames() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let mut c = server.client().await;

    // Iris: 3 subjects x 6 samples; samples 0-1 enrolled, 2-5 are frames.
    let (codes, labels) = SyntheticIris {
        subjects: 3,
        samples_per_subject: 6,
        poor_capture_share: 0.0,
        seed: 9,
    }
    .generate();
    let reqs: Vec<_> = (0..codes.len())
        .filter(|i| i % 6 < 2)
        .map(|i| enroll_req(&format!("eye{}", labels[i]), &format!("i{i}"), packed_iris(&codes[i])))
        .collect();
    enroll_all(&mut c, reqs).await;
    let frames = |s: usize| (2..6).map(|k| packed_iris(&codes[s * 6 + k])).collect::<Vec<_>>();
    let got = stream(&mut c, config("eye0", k_of_n(2, 4)), frames(0)).await.unwrap();
    assert_eq!(outcome(got.last().unwrap()), pb::StreamOutcome::StreamAccepted);
    assert_eq!(got.len(), 2);
    let got = stream(&mut c, config("eye0", k_of_n(2, 4)), frames(1)).await.unwrap();
    assert_eq!(outcome(got.last().unwrap()), pb::StreamOutcome::StreamRejected);

    // Fingerprint: FVC finger 101, impressions 1-2 enrolled, 3-8 frames.
    let fvc: std::collections::BTreeMap<String, Vec<u8>> =
        read_dir_files(&shared().join("fingerprint/fvc2002_db1_b/templates"))
            .unwrap()
            .into_iter()
            .collect();
    let iso = |name: &str| fvc.get(name).unwrap_or_else(|| panic!("{name}")).clone();
    let reqs: Vec<_> = ["101_1", "101_2", "102_1", "102_2"]
        .iter()
        .map(|n| enroll_req(&n[..3], n, finger(&iso(n))))
        .collect();
    enroll_all(&mut c, reqs).await;
    let frames = |f: &str| (3..9).map(|k| finger(&iso(&format!("{f}_{k}")))).collect::<Vec<_>>();
    let got = stream(&mut c, config("101", k_of_n(3, 6)), frames("101"))
        .await
        .unwrap();
    assert_eq!(
        outcome(got.last().unwrap()),
        pb::StreamOutcome::StreamAccepted,
        "{got:?}"
    );
    let got = stream(&mut c, config("101", k_of_n(3, 6)), frames("102"))
        .await
        .unwrap();
    assert_eq!(
        outcome(got.last().unwrap()),
        pb::StreamOutcome::StreamRejected,
        "{got:?}"
    );
}
