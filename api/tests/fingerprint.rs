//! FINGERPRINT through the real server: ISO/IEC 19794-2 records of the real
//! FVC2002 DB1_B set in, MCC scores out, durable through `kill -9`, and the
//! CLI on the same server.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use biomatch_datasets::read_dir_files;
use biomatch_matcher::fingerprint::{FingerRecord, FingerTemplate, FingerprintMatcher};
use biomatch_proto::v1 as pb;
use common::*;
use tonic::Code;

/// The DB1_B templates by stem ("101_1" ...), as ISO bytes.
fn fvc() -> BTreeMap<String, Vec<u8>> {
    read_dir_files(&shared().join("fingerprint/fvc2002_db1_b/templates"))
        .unwrap()
        .into_iter()
        .collect()
}

fn identify(iso: &[u8], k: u32) -> pb::IdentifyRequest {
    pb::IdentifyRequest {
        probe: Some(finger(iso)),
        top_k: k,
        threshold: None,
        metadata_filter: Default::default(),
        ..Default::default()
    }
}

/// Fingers 101..110; impressions 1-4 enrolled, 5-8 probes.
fn split(stem: &str) -> (String, u32) {
    let (f, i) = stem.split_once('_').unwrap();
    (f.to_string(), i.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fingerprint_enroll_verify_identify_stream_survive_kill9() {
    let set = fvc();
    assert_eq!(set.len(), 80);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Flush every 15 records: the gallery spans segments and the log.
    let env = [("BIOMATCH_FLUSH_RECORDS", "15")];
    let server = Server::start(&data, &env);
    let mut c = server.client().await;
    let gallery: Vec<(&String, &Vec<u8>)> = set.iter().filter(|(s, _)| split(s).1 <= 4).collect();
    let reqs: Vec<pb::EnrollRequest> = gallery
        .iter()
        .map(|(stem, iso)| enroll_req(&split(stem).0, stem, finger(iso)))
        .collect();
    assert_eq!(enroll_all(&mut c, reqs).await, 40);

    // The library's own scores are the oracle: the server must agree exactly.
    let m = FingerprintMatcher::default();
    let prepared: BTreeMap<&String, FingerTemplate> = set
        .iter()
        .map(|(s, b)| (s, FingerTemplate::from_iso(b).unwrap()))
        .collect();
    let best_of = |probe: &String, subject: &str| {
        gallery
            .iter()
            .filter(|(s, _)| split(s).0 == subject)
            .map(|(s, _)| m.score(&prepared[probe], &prepared[*s]))
            .fold(f32::NEG_INFINITY, f32::max)
    };
    let (mut genuine_accepted, mut impostor_accepted, mut rank1) = (0, 0, 0);
    let probes: Vec<(&String, &Vec<u8>)> = set.iter().filter(|(s, _)| split(s).1 > 4).collect();
    for (stem, iso) in &probes {
        let subject = split(stem).0;
        let other = format!("{}", 101 + (subject.parse::<u32>().unwrap() - 100) % 10);
        for (target, genuine) in [(&subject, true), (&other, false)] {
            let v = c
                .verify(pb::VerifyRequest {
                    probe: Some(finger(iso)),
                    target: Some(pb::verify_request::Target::SubjectId(target.clone())),
                    threshold: None,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(v.compared, 4);
            assert_eq!(v.score, best_of(stem, target), "{stem} against {target}");
            assert!((v.threshold - 0.03).abs() < 1e-9);
            if genuine {
                genuine_accepted += v.r#match as u32;
            } else {
                impostor_accepted += v.r#match as u32;
            }
        }
        let r = c.identify(identify(iso, 3)).await.unwrap().into_inner();
        assert_eq!(r.gallery, "fingerprint-1");
        assert_eq!(r.gallery_size, 40);
        assert!(r.candidates.windows(2).all(|w| w[0].score >= w[1].score));
        let best = (101..=110)
            .map(|f| (best_of(stem, &f.to_string()), f))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap();
        assert_eq!(r.candidates[0].score, best.0);
        rank1 += (r.candidates[0].subject_id == subject) as u32;
    }
    // FVC2002 DB1_B at the default threshold: no impostor accepted, most
    // genuine probes accepted, nearly every probe identified at rank 1.
    assert_eq!(impostor_accepted, 0);
    assert!(
        genuine_accepted >= 32,
        "{genuine_accepted} of 40 genuine probes accepted"
    );
    assert!(rank1 >= 38, "rank-1 identification {rank1} of 40");

    // StreamVerify over fingerprint frames: a genuine stream, then an impostor's.
    let frames = |subject: &str| -> Vec<pb::StreamVerifyRequest> {
        let mut m = vec![pb::StreamVerifyRequest {
            config: Some(pb::StreamVerifyConfig {
                subject_id: "103".into(),
                threshold: None,
                window: 3,
                ..Default::default()
            }),
            frame: None,
        }];
        for i in 5..=7 {
            m.push(pb::StreamVerifyRequest {
                config: None,
                frame: Some(finger(&set[&format!("{subject}_{i}")])),
            });
        }
        m
    };
    for (subject, want) in [
        ("103", pb::StreamDecision::StreamMatch),
        ("108", pb::StreamDecision::StreamNoMatch),
    ] {
        let mut out = c
            .stream_verify(tokio_stream::iter(frames(subject)))
            .await
            .unwrap()
            .into_inner();
        let mut last = None;
        while let Some(msg) = out.message().await.unwrap() {
            last = Some(msg);
        }
        let last = last.unwrap();
        assert_eq!(last.frames_in_window, 3);
        assert_eq!(last.decision, want as i32, "frames of {subject}: {last:?}");
    }

    // Bad records are refused with the reason and store nothing.
    let before = total(&mut c).await;
    let good = &set["101_1"];
    let mut truncated = good.clone();
    truncated.truncate(good.len() - 3);
    let mut two_views = FingerRecord::from_iso(good).unwrap();
    two_views.views.push(two_views.views[0].clone());
    two_views.views[1].view_number = 1;
    let mut sparse = FingerRecord::from_iso(good).unwrap();
    sparse.views[0].minutiae.truncate(1);
    let cases: Vec<(pb::Template, &str)> = vec![
        (finger(b"not a record"), "byte 0"),
        (finger(&truncated), "byte"),
        (finger(&two_views.to_iso().unwrap()), "2 finger views"),
        (finger(&sparse.to_iso().unwrap()), "enough neighbours"),
        (finger(b""), "empty"),
        (
            pb::Template {
                modality: pb::Modality::Fingerprint as i32,
                ..face(&[1.0, 0.0])
            },
            "fingerprint template",
        ),
    ];
    for (t, why) in cases {
        let e = c.enroll(enroll_req("bad", "", t.clone())).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(e.message().contains(why), "{why}: {}", e.message());
        let e = c
            .identify(pb::IdentifyRequest {
                probe: Some(t),
                ..identify(b"", 1)
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    }
    assert_eq!(total(&mut c).await, before);

    // kill -9, restart: every acknowledged record is back, the records read
    // back as the ISO records enrolled (less extended data), scores unchanged.
    server.kill9();
    let server = Server::start(&data, &env);
    let mut c = server.client().await;
    assert_eq!(total(&mut c).await, 40);
    for (stem, iso) in &gallery {
        let r = c
            .get_record(pb::GetRecordRequest {
                record_id: (*stem).clone(),
                include_template: true,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((r.modality, r.dimension), (pb::Modality::Fingerprint as i32, 0));
        let Some(pb::template::Kind::Fingerprint(f)) = r.template.unwrap().kind else {
            panic!("fingerprint record without its template")
        };
        let mut want = FingerRecord::from_iso(iso).unwrap();
        want.views[0].extended.clear();
        assert_eq!(FingerRecord::from_iso(&f.iso_19794_2).unwrap(), want, "{stem}");
    }
    let (stem, iso) = probes[0];
    let r = c.identify(identify(iso, 1)).await.unwrap().into_inner();
    assert_eq!(r.candidates[0].score, best_of(stem, &r.candidates[0].subject_id));

    // The CLI against the same server: enroll a directory, identify a file.
    let cli_dir = dir.path().join("cli");
    std::fs::create_dir(&cli_dir).unwrap();
    for i in 1..=2 {
        std::fs::write(cli_dir.join(format!("901_{i}.iso")), &set[&format!("110_{}", i + 5)]).unwrap();
    }
    let cli = |args: &[&str]| cli(&server, "fingerprint", args);
    let out = cli(&["enroll", "--input", cli_dir.to_str().unwrap()]);
    assert!(out.contains(r#""enrolled":2"#), "{out}");
    let probe: PathBuf = shared().join("fingerprint/fvc2002_db1_b/templates/110_8.iso");
    let out = cli(&["identify", "--top-k", "2", "--input", probe.to_str().unwrap()]);
    let line: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let top = line["candidates"][0]["subject_id"].as_str().unwrap();
    assert!(top == "110" || top == "901", "{out}");
    assert_eq!(line["gallery_size"], 42);
}

/// Every ISO record of both FVC sets, NBIS and SecuGen, keyed
/// "<set>/<kind>/<stem>", as (subject, bytes): 320 records of 20 fingers.
fn fvc_all() -> Vec<(String, String, Vec<u8>)> {
    let mut out = Vec::new();
    for set in ["fvc2002_db1_b", "fvc2002_db2_b"] {
        for kind in ["templates", "templates_secugen"] {
            for (stem, iso) in read_dir_files(&shared().join(format!("fingerprint/{set}/{kind}"))).unwrap() {
                let subject = format!("{set}/{}", split(&stem).0);
                out.push((format!("{set}/{kind}/{stem}"), subject, iso));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screened_identify_scores_exactly_the_screens_shortlist() {
    use biomatch_matcher::fingerprint::ScreenProbe;
    let all = fvc_all();
    assert_eq!(all.len(), 320);
    // Impressions 1-6 enrolled (240 records), the NBIS impressions 7 and 8 probe.
    let impression = |key: &str| split(key.rsplit('/').next().unwrap()).1;
    let (enrolled, probes): (Vec<_>, Vec<_>) = all.iter().partition(|(key, _, _)| impression(key) <= 6);
    let probes: Vec<_> = probes
        .into_iter()
        .filter(|(key, _, _)| !key.contains("secugen"))
        .collect();
    assert_eq!((enrolled.len(), probes.len()), (240, 40));
    let dir = tempfile::tempdir().unwrap();
    // The planner screens galleries of 100 or more; the shortlist floor is 200.
    let server = Server::start(
        &dir.path().join("data"),
        &[
            ("BIOMATCH_FLUSH_RECORDS", "70"),
            ("BIOMATCH_FINGERPRINT_SCREEN_MIN_RECORDS", "100"),
        ],
    );
    let mut c = server.client().await;
    let reqs = enrolled
        .iter()
        .map(|(key, subject, iso)| enroll_req(subject, key, finger(iso)))
        .collect();
    assert_eq!(enroll_all(&mut c, reqs).await, 240);

    let m = FingerprintMatcher::default();
    let stored: Vec<(&String, &String, FingerTemplate)> = enrolled
        .iter()
        .map(|(key, subject, iso)| (key, subject, FingerTemplate::from_iso(iso).unwrap()))
        .collect();
    // The best `k` subjects by the full matcher among `records`.
    let top_subjects = |probe: &FingerTemplate, records: &[usize], k: usize| {
        let mut best: BTreeMap<&String, (f32, &String)> = BTreeMap::new();
        for &i in records {
            let (key, subject, t) = &stored[i];
            let s = m.score(probe, t);
            let e = best.entry(*subject).or_insert((s, *key));
            if s > e.0 {
                *e = (s, *key);
            }
        }
        let mut v: Vec<(f32, &String, &String)> = best.into_iter().map(|(sub, (s, key))| (s, sub, key)).collect();
        v.sort_by(|a, b| b.0.total_cmp(&a.0));
        v.truncate(k);
        v.into_iter().map(|(s, sub, _)| (sub.clone(), s)).collect::<Vec<_>>()
    };
    let got = |r: pb::IdentifyResponse| {
        r.candidates
            .into_iter()
            .map(|c| (c.subject_id, c.score))
            .collect::<Vec<_>>()
    };
    let (mut compared, mut rank1_screened, mut rank1_exact) = (0, 0, 0);
    for (key, subject, iso) in &probes {
        let probe = FingerTemplate::from_iso(iso).unwrap();
        let screen = ScreenProbe::new(probe.codes());
        let mut order: Vec<(f32, usize)> = (0..stored.len())
            .map(|i| (screen.score(stored[i].2.codes()), i))
            .collect();
        order.sort_by(|a, b| b.0.total_cmp(&a.0));
        let everything: Vec<usize> = (0..stored.len()).collect();
        let exact = top_subjects(&probe, &everything, 3);
        let req = |mode: pb::SearchMode, penetration: f32| pb::IdentifyRequest {
            search_mode: mode as i32,
            penetration,
            ..identify(iso, 3)
        };
        // EXACT ignores the planner; a penetration of 1 screens nothing out.
        assert_eq!(
            got(c.identify(req(pb::SearchMode::Exact, 0.0)).await.unwrap().into_inner()),
            exact
        );
        assert_eq!(
            got(c.identify(req(pb::SearchMode::Ann, 1.0)).await.unwrap().into_inner()),
            exact
        );
        rank1_exact += (exact[0].0 == **subject) as u32;
        // The planner screens (240 >= 100) and keeps the floor of 200 rows;
        // ANN at 0.9 keeps 216. Both must be the full matcher's top 3 over
        // exactly the screen's best rows, whenever the cut is not a tie.
        for (mode, penetration, keep) in [(pb::SearchMode::Unspecified, 0.0, 200), (pb::SearchMode::Ann, 0.9, 216)] {
            if order[keep - 1].0 == order[keep].0 {
                continue;
            }
            let shortlist: Vec<usize> = order[..keep].iter().map(|x| x.1).collect();
            let want = top_subjects(&probe, &shortlist, 3);
            let r = got(c.identify(req(mode, penetration)).await.unwrap().into_inner());
            assert_eq!(r, want, "{key} {mode:?} {penetration}");
            compared += 1;
            if mode == pb::SearchMode::Unspecified {
                rank1_screened += (r[0].0 == **subject) as u32;
            }
        }
    }
    // Ties at the cut are rare: nearly every probe is checked both ways.
    assert!(compared >= 72, "{compared} of 80 screened searches compared");
    // On these small sets the screen loses at most a few rank-1 hits.
    assert!(rank1_exact >= 38, "exact rank-1 {rank1_exact} of 40");
    assert!(
        rank1_screened + 2 >= rank1_exact,
        "screened rank-1 {rank1_screened}, exact {rank1_exact}"
    );

    // The CLI asks for the same screened search and gets the same answer.
    let (probe_key, _, probe_iso) = probes[3];
    let file = dir.path().join("probe.iso");
    std::fs::write(&file, probe_iso).unwrap();
    let out = cli(
        &server,
        "fingerprint",
        &[
            "identify",
            "--top-k",
            "3",
            "--search",
            "ann",
            "--penetration",
            "0.9",
            "--input",
            file.to_str().unwrap(),
        ],
    );
    let line: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let via_grpc = got(c
        .identify(pb::IdentifyRequest {
            search_mode: pb::SearchMode::Ann as i32,
            penetration: 0.9,
            ..identify(probe_iso, 3)
        })
        .await
        .unwrap()
        .into_inner());
    let via_cli: Vec<(String, f32)> = line["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["subject_id"].as_str().unwrap().to_string(),
                c["score"].as_f64().unwrap() as f32,
            )
        })
        .collect();
    assert_eq!(via_cli, via_grpc, "{probe_key}: {out}");

    // Bad options are refused before any scoring.
    for (req, what) in [
        (
            pb::IdentifyRequest {
                penetration: 1.5,
                ..identify(&probes[0].2, 3)
            },
            "penetration",
        ),
        (
            pb::IdentifyRequest {
                penetration: f32::NAN,
                ..identify(&probes[0].2, 3)
            },
            "penetration",
        ),
        (
            pb::IdentifyRequest {
                penetration: -0.1,
                ..identify(&probes[0].2, 3)
            },
            "penetration",
        ),
        (
            pb::IdentifyRequest {
                probe: Some(face(&[0.5; 8])),
                penetration: 0.5,
                ..Default::default()
            },
            "penetration applies to FINGERPRINT",
        ),
    ] {
        let e = c.identify(req).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(e.message().contains(what), "{}", e.message());
    }
}
