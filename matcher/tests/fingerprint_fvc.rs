//! Real fingerprint data from ../shared/datasets/fingerprint: every ISO
//! record there (NBIS mindtct's and SecuGen's) parses and writes back byte
//! for byte, and on each FVC2002 set the MCC matcher's EER over all ordered
//! pairs is below bozorth3's on the same templates and pairs.

use std::collections::HashMap;
use std::path::PathBuf;

use biomatch_datasets::metrics::VerificationStats;
use biomatch_datasets::read_dir_files;
use biomatch_matcher::fingerprint::{FingerRecord, FingerTemplate, FingerprintMatcher};

fn fingerprint_sets() -> PathBuf {
    let p = std::env::var_os("BIOMATCH_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    let p = p.join("datasets/fingerprint");
    assert!(
        p.is_dir(),
        "fingerprint data not found at {} (set BIOMATCH_SHARED)",
        p.display()
    );
    p
}

fn read_dir(dir: PathBuf) -> Vec<(String, Vec<u8>)> {
    read_dir_files(&dir).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_shared_record_parses_and_round_trips() {
    let mut n = 0;
    for set in ["fvc2002_db1_b", "fvc2002_db2_b", "nbis_samples"] {
        for sub in ["templates", "templates_secugen"] {
            let dir = fingerprint_sets().join(set).join(sub);
            if sub == "templates_secugen" && set == "nbis_samples" {
                continue;
            }
            for (name, bytes) in read_dir(dir) {
                let r = FingerRecord::from_iso(&bytes).unwrap_or_else(|e| panic!("{set}/{sub}/{name}: {e}"));
                assert_eq!(r.to_iso().unwrap(), bytes, "{set}/{sub}/{name} does not round-trip");
                assert!(!r.views[0].minutiae.is_empty());
                n += 1;
            }
        }
    }
    assert_eq!(n, 80 * 4 + 6);
}

#[test]
fn mcc_beats_bozorth3_on_every_fvc_set() {
    let m = FingerprintMatcher::default();
    for set in ["fvc2002_db1_b", "fvc2002_db2_b"] {
        let dir = fingerprint_sets().join(set);
        let t: HashMap<String, FingerTemplate> = read_dir(dir.join("templates"))
            .into_iter()
            .map(|(k, b)| (k, FingerTemplate::from_iso(&b).unwrap()))
            .collect();
        let csv = std::fs::read_to_string(dir.join("scores_bozorth3.csv")).unwrap();
        let (mut ours, mut theirs) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
        for line in csv.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            let s = f64::from(m.score(&t[f[0]], &t[f[1]]));
            let b: f64 = f[2].parse().unwrap();
            if f[3] == "1" {
                ours.0.push(s);
                theirs.0.push(b);
            } else {
                ours.1.push(s);
                theirs.1.push(b);
            }
        }
        assert_eq!(ours.0.len() + ours.1.len(), 6320);
        let (o, b) = (
            VerificationStats::new(&ours.0, &ours.1),
            VerificationStats::new(&theirs.0, &theirs.1),
        );
        eprintln!(
            "{set}: biomatch EER {:.4} FMR100 {:.4} | bozorth3 EER {:.4} FMR100 {:.4}",
            o.eer, o.fmr100, b.eer, b.fmr100
        );
        assert!(o.eer < b.eer, "{set}: {o:?} vs bozorth3 {b:?}");
        assert!(
            o.fmr100 < b.fmr100 && o.fmr1000 < b.fmr1000,
            "{set}: {o:?} vs bozorth3 {b:?}"
        );
    }
}
