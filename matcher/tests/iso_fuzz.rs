//! Fuzzing the ISO/IEC 19794-2 reader with proptest: arbitrary bytes, and
//! real records from ../shared with bytes flipped, inserted, removed or cut.
//! The reader must never panic, and whatever it accepts must write back to
//! exactly the bytes it read (so nothing is silently dropped or altered).
//!
//! CI runs 20,000 cases per strategy; `BIOMATCH_FUZZ_CASES=1000000` runs a
//! million (see BENCHMARKS.md for the run).

use std::cell::Cell;
use std::path::PathBuf;

use biomatch_datasets::read_dir_files;
use biomatch_matcher::fingerprint::{FingerRecord, FingerTemplate};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn cases() -> u32 {
    std::env::var("BIOMATCH_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

fn seeds() -> Vec<Vec<u8>> {
    let root = std::env::var_os("BIOMATCH_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
        .join("datasets/fingerprint");
    let mut out = Vec::new();
    for dir in [
        "fvc2002_db1_b/templates",
        "fvc2002_db2_b/templates_secugen",
        "nbis_samples/templates",
    ] {
        let files = read_dir_files(&root.join(dir)).unwrap_or_else(|e| panic!("{e}"));
        out.extend(files.into_iter().take(5).map(|(_, bytes)| bytes));
    }
    out
}

fn check(bytes: &[u8], accepted: &Cell<u64>) -> Result<(), TestCaseError> {
    if let Ok(r) = FingerRecord::from_iso(bytes) {
        accepted.set(accepted.get() + 1);
        prop_assert_eq!(r.to_iso().unwrap(), bytes.to_vec());
        if accepted.get().is_multiple_of(97) {
            // Every template the reader accepts can be prepared for matching.
            std::hint::black_box(FingerTemplate::from_view(&r, &r.views[0]));
        }
    }
    Ok(())
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut runner = TestRunner::new(Config::with_cases(cases()));
    let accepted = Cell::new(0u64);
    runner
        .run(&proptest::collection::vec(any::<u8>(), 0..300), |b| {
            check(&b, &accepted)
        })
        .unwrap();
}

/// An edit of a real record.
#[derive(Clone, Debug)]
enum Edit {
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

#[test]
fn edited_real_records_never_panic_and_round_trip_when_accepted() {
    let seeds = seeds();
    let edit = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Edit::Set(i, v)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Edit::Insert(i, v)),
        any::<usize>().prop_map(Edit::Remove),
        any::<usize>().prop_map(Edit::Truncate),
    ];
    let strategy = (0..seeds.len(), proptest::collection::vec(edit, 1..4));
    let mut runner = TestRunner::new(Config::with_cases(cases()));
    let accepted = Cell::new(0u64);
    runner
        .run(&strategy, |(s, edits)| {
            let mut b = seeds[s].clone();
            for e in edits {
                let n = b.len().max(1);
                match e {
                    Edit::Set(i, v) if !b.is_empty() => b[i % n] = v,
                    Edit::Insert(i, v) => b.insert(i % (b.len() + 1), v),
                    Edit::Remove(i) if !b.is_empty() => {
                        b.remove(i % n);
                    }
                    Edit::Truncate(i) => b.truncate(i % n),
                    _ => {}
                }
            }
            check(&b, &accepted)
        })
        .unwrap();
    // Single-byte edits of minutia angles or qualities keep records valid:
    // the accepting path must have been exercised too.
    let accepted = accepted.get();
    assert!(accepted > u64::from(cases()) / 50, "only {accepted} accepted");
}
