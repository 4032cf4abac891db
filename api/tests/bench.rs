//! `biomatch bench` as a user runs it: the real binary, real data from
//! ../shared/datasets, and a real server for the load generator.

mod common;

use std::path::Path;
use std::process::Command;

use biomatch_datasets::metrics::VerificationStats;
use common::{Server, shared};
use serde_json::Value;

/// Runs `biomatch ARGS`; returns (success, stdout JSON or Null, stderr).
fn biomatch(args: &[&str]) -> (bool, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_biomatch"))
        .args(args)
        .env("BIOMATCH_LOG", "warn")
        .output()
        .expect("run biomatch");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (out.status.success(), json, String::from_utf8_lossy(&out.stderr).into())
}

fn read_scores(p: &Path) -> Vec<f64> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

fn assert_plot_pair(dir: &Path, stem: &str) {
    let svg = std::fs::read_to_string(dir.join(format!("{stem}.svg"))).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("<polyline"),
        "{stem}.svg has no curve"
    );
    let png = std::fs::read(dir.join(format!("{stem}.png"))).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{stem}.png is not a PNG");
}

#[test]
fn accuracy_on_lfw_faces_matches_the_published_summary() {
    let dir = shared().join("face/lfw_facenet128");
    let out = tempfile::tempdir().unwrap();
    let (ok, r, err) = biomatch(&[
        "bench",
        "accuracy",
        "--modality",
        "face",
        "--input",
        dir.join("LFW_tensor.bytes").to_str().unwrap(),
        "--dim",
        "128",
        "--labels",
        dir.join("LFW_labels.tsv").to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    // The dataset README: 15,789 genuine and 4,248,871 impostor pairs, EER
    // about 0.66 % at 0.415.
    let v = &r["verification"];
    assert_eq!(
        (v["genuine"].as_u64(), v["impostor"].as_u64()),
        (Some(15_789), Some(4_248_871))
    );
    let eer = v["eer"].as_f64().unwrap();
    assert!((0.0060..0.0072).contains(&eer), "EER {eer}");
    assert!((v["eer_threshold"].as_f64().unwrap() - 0.415).abs() < 0.01);
    // 353 identities enrolled once; every other face is a probe.
    let id = &r["identification"];
    assert_eq!(
        (id["gallery"].as_u64(), id["mated_searches"].as_u64()),
        (Some(353), Some(2921 - 353))
    );
    let cmc: Vec<f64> = serde_json::from_value(id["cmc"].clone()).unwrap();
    assert_eq!(cmc.len(), 20);
    assert!(cmc[0] > 0.97 && cmc.windows(2).all(|w| w[0] <= w[1]), "{cmc:?}");
    assert_eq!(id["fnir_at_fpir"].as_array().unwrap().len(), 3);
    // The score files reproduce the report, and the plots are there.
    let g = read_scores(&out.path().join("genuine.txt"));
    let i = read_scores(&out.path().join("impostor.txt"));
    assert_eq!(VerificationStats::new(&g, &i).eer, eer);
    assert_plot_pair(out.path(), "det");
    assert_plot_pair(out.path(), "cmc");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(saved["verification"], r["verification"]);
}

#[test]
fn accuracy_on_fvc_and_voice_and_score_files_agree() {
    let fvc = shared().join("fingerprint/fvc2002_db1_b/templates");
    let (ok, r, err) = biomatch(&[
        "bench",
        "accuracy",
        "--modality",
        "fingerprint",
        "--input",
        fvc.to_str().unwrap(),
        "--threshold",
        "0.03",
    ]);
    assert!(ok, "{err}");
    // At the service's default threshold no FVC impostor matches (the
    // fingerprint section's calibration).
    let at = &r["verification"]["at_thresholds"][0];
    assert_eq!((at["threshold"].as_f64(), at["fmr"].as_f64()), (Some(0.03), Some(0.0)));
    assert!(at["fnmr"].as_f64().unwrap() < 0.15, "{at}");
    // 10 fingers x 8 impressions: C(8,2) x 10 genuine pairs.
    assert_eq!(r["verification"]["genuine"].as_u64(), Some(280));
    assert!(r["verification"]["eer"].as_f64().unwrap() < 0.04);
    assert_eq!(r["identification"]["gallery"].as_u64(), Some(10));

    let voice = shared().join("voice/librispeech_test_other_10spk/embeddings.csv");
    let (ok, r, err) = biomatch(&[
        "bench",
        "accuracy",
        "--modality",
        "voice",
        "--input",
        voice.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert_eq!(r["source"]["subjects"].as_u64(), Some(10));
    assert_eq!(r["verification"]["genuine"].as_u64(), Some(60));

    // The dataset's own cosine score file gives the same verification
    // figures as scoring the embeddings (every ordered pair is each
    // unordered pair twice, which leaves the rates unchanged).
    let csv = shared().join("voice/librispeech_test_other_10spk/scores_cosine.csv");
    let (ok, from_file, err) = biomatch(&["bench", "accuracy", "--scores", csv.to_str().unwrap()]);
    assert!(ok, "{err}");
    for k in ["eer", "fmr100", "zero_fmr"] {
        let (a, b) = (
            from_file["verification"][k].as_f64().unwrap(),
            r["verification"][k].as_f64().unwrap(),
        );
        assert!((a - b).abs() < 1e-9, "{k}: {a} vs {b}");
    }
}

#[test]
fn accuracy_on_synthetic_sets_of_every_modality() {
    for (modality, subjects) in [("face", "60"), ("voice", "60"), ("iris", "40"), ("fingerprint", "20")] {
        let (ok, r, err) = biomatch(&[
            "bench",
            "accuracy",
            "--modality",
            modality,
            "--synthetic",
            "--subjects",
            subjects,
            "--samples",
            "3",
        ]);
        assert!(ok, "{modality}: {err}");
        let n: u64 = subjects.parse().unwrap();
        assert_eq!(r["verification"]["genuine"].as_u64(), Some(3 * n), "{modality}");
        assert!(r["verification"]["eer"].as_f64().unwrap() < 0.05, "{modality}: {r}");
        assert!(r["identification"]["rank1"].as_f64().unwrap() > 0.9, "{modality}");
    }
}

#[test]
fn accuracy_refuses_bad_input_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("x.bytes");
    std::fs::write(&raw, [0u8; 12]).unwrap();
    let lfw = shared().join("face/lfw_facenet128/LFW_tensor.bytes");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--modality", "face", "--input", lfw.to_str().unwrap(), "--dim", "128"],
            "names no subject",
        ),
        (
            vec!["--modality", "face", "--input", raw.to_str().unwrap(), "--dim", "8"],
            "not a whole",
        ),
        (
            vec!["--modality", "fingerprint", "--input", raw.to_str().unwrap()],
            "directory",
        ),
        (vec!["--input", raw.to_str().unwrap()], "--modality is required"),
        (vec!["--modality", "iris", "--input", raw.to_str().unwrap()], "line 1"),
    ];
    for (args, want) in cases {
        let mut full = vec!["bench", "accuracy"];
        full.extend(args);
        let (ok, _, err) = biomatch(&full);
        assert!(!ok && err.contains(want), "{full:?}: {err}");
    }
}

#[test]
fn load_closed_and_open_loop_against_a_real_server() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), &[]);
    let out = tmp.path().join("load");
    let (ok, r, err) = biomatch(&[
        "bench",
        "load",
        "--server",
        &server.addr,
        "--clients",
        "4",
        "--mix",
        "verify=3,identify=1,enroll=1",
        "--duration",
        "2",
        "--warmup",
        "0.5",
        "--dim",
        "64",
        "--gallery",
        "300",
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
        "--prefix",
        "t1",
    ]);
    assert!(ok, "{err}");
    assert_eq!(r["loop"], "closed");
    assert_eq!(r["gallery_subjects"].as_u64(), Some(300));
    for op in ["verify", "identify", "enroll"] {
        let o = &r["operations"][op];
        assert!(o["ok"].as_u64().unwrap() > 0, "{op}: {o}");
        assert_eq!(o["errors"].as_u64(), Some(0), "{op}: {o}");
        let l = &o["latency_ms"];
        assert!(l["p50"].as_f64().unwrap() <= l["p99"].as_f64().unwrap());
        assert!(l["p99"].as_f64().unwrap() <= l["max"].as_f64().unwrap());
    }
    // Enrolls landed: the seed gallery plus every enroll call.
    let enrolled = r["operations"]["enroll"]["ok"].as_u64().unwrap();
    assert!(r["server_total_records"].as_u64().unwrap() >= 300 + enrolled);
    assert_plot_pair(&out, "latency");

    // Open loop on the same gallery, not enrolled again: calls go out on
    // schedule, 100/s for 1.5 s, and every verify finds its subject.
    let before = r["server_total_records"].as_u64().unwrap();
    let (ok, r, err) = biomatch(&[
        "bench",
        "load",
        "--server",
        &server.addr,
        "--rate",
        "100",
        "--duration",
        "1.5",
        "--warmup",
        "0.2",
        "--dim",
        "64",
        "--gallery",
        "300",
        "--mix",
        "verify=1",
        "--no-progress",
        "--prefix",
        "t1",
        "--no-seed",
    ]);
    assert!(ok, "{err}");
    assert_eq!(r["loop"], "open");
    assert_eq!(r["server_total_records"].as_u64(), Some(before));
    let v = &r["operations"]["verify"];
    assert_eq!(v["errors"].as_u64(), Some(0), "{v}");
    let calls = v["ok"].as_u64().unwrap();
    assert!((149..=151).contains(&calls), "{calls} calls scheduled");

    let (ok, _, err) = biomatch(&["bench", "load", "--server", "http://127.0.0.1:1", "--duration", "1"]);
    assert!(!ok && err.contains("cannot reach"), "{err}");
    server.stop();
}
