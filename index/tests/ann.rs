//! Approximate search through a real gallery on disk: optimisation into
//! indexed shards, recall against exact search, filters, deletes that never
//! come back, compaction that leaves no deleted template bytes in any file,
//! restart, and a damaged graph falling back to exact scans.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use biomatch_index::ann::{AnnOptions, AnnQuery, HnswParams, SearchMode};
use biomatch_index::{Gallery, GalleryOptions, NewRecord, RecordMeta, Search};
use biomatch_kernels::quantize_i8;
use rand::{Rng, SeedableRng, rngs::StdRng};

const DIM: usize = 32;
const N: usize = 6_000;

/// Unit vectors around 60 centres (identities with ~100 samples each).
fn clustered(n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut centres_rng = StdRng::seed_from_u64(99);
    let centres: Vec<Vec<f32>> = (0..60)
        .map(|_| (0..DIM).map(|_| centres_rng.random::<f32>() - 0.5).collect())
        .collect();
    (0..n)
        .map(|_| {
            let c = &centres[rng.random_range(0..centres.len())];
            let v: Vec<f32> = c.iter().map(|x| x + 0.2 * (rng.random::<f32>() - 0.5)).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / norm).collect()
        })
        .collect()
}

fn opts() -> GalleryOptions {
    GalleryOptions {
        flush_records: 1_000,
        ann: AnnOptions {
            min_rows: 2_000,
            shards: 2,
            hnsw: HnswParams::default(),
        },
    }
}

fn id(i: usize) -> String {
    format!("r{i:05}")
}

fn filled(dir: &Path) -> (Gallery, Vec<Vec<f32>>) {
    let g = Gallery::create(dir, "face-32", DIM, opts()).unwrap();
    let vs = clustered(N, 1);
    for (c, chunk) in vs.chunks(500).enumerate() {
        let batch = chunk
            .iter()
            .enumerate()
            .map(|(j, v)| {
                let i = c * 500 + j;
                let mut metadata = BTreeMap::new();
                metadata.insert("site".into(), if i % 3 == 0 { "north" } else { "south" }.to_string());
                NewRecord {
                    meta: RecordMeta {
                        record_id: id(i),
                        subject_id: format!("s{}", i / 2),
                        metadata,
                        quality: 50.0,
                        enrolled_at_ms: i as u64,
                    },
                    vector: v.clone(),
                }
            })
            .collect();
        assert!(g.insert(batch).iter().all(Result::is_ok));
    }
    (g, vs)
}

fn ids(g: &Gallery, probe: &[f32], mode: SearchMode, filter: Option<&BTreeMap<String, String>>) -> Vec<String> {
    let s = Search {
        k: 10,
        filter,
        ann: AnnQuery {
            mode,
            ..AnnQuery::default()
        },
        ..Search::default()
    };
    g.search(probe, &s).unwrap().into_iter().map(|h| h.record_id).collect()
}

fn recall(g: &Gallery, queries: &[Vec<f32>], filter: Option<&BTreeMap<String, String>>) -> f64 {
    let mut hits = 0;
    for q in queries {
        let exact = ids(g, q, SearchMode::Exact, filter);
        let approx = ids(g, q, SearchMode::Auto, filter);
        hits += exact.iter().filter(|x| approx.contains(x)).count();
    }
    hits as f64 / (10 * queries.len()) as f64
}

#[test]
fn optimised_gallery_searches_its_graphs_with_high_recall() {
    let dir = tempfile::tempdir().unwrap();
    let (g, _) = filled(dir.path());
    assert!(g.needs_optimize());
    let report = g.optimize().unwrap();
    assert_eq!((report.rows, report.segments_after, report.indexed_segments), (N, 2, 2));
    let st = g.stats();
    assert_eq!(
        (st.indexed_segments, st.indexed_records, st.records),
        (2, N as u64, N as u64)
    );
    assert!(!g.needs_optimize());

    let queries = clustered(100, 2);
    let r = recall(&g, &queries, None);
    assert!(r >= 0.95, "recall@10 {r}");
    let north = BTreeMap::from([("site".to_string(), "north".to_string())]);
    let r = recall(&g, &queries, Some(&north));
    assert!(r >= 0.95, "filtered recall@10 {r}");
    for q in &queries[..10] {
        for hit in ids(&g, q, SearchMode::Ann, Some(&north)) {
            let i: usize = hit[1..].parse().unwrap();
            assert_eq!(i % 3, 0, "{hit} is not at site north");
        }
    }
}

#[test]
fn small_galleries_stay_exact() {
    let dir = tempfile::tempdir().unwrap();
    let g = Gallery::create(dir.path(), "voice-32", DIM, opts()).unwrap();
    let vs = clustered(500, 3);
    let recs = vs
        .iter()
        .enumerate()
        .map(|(i, v)| NewRecord {
            meta: RecordMeta {
                record_id: id(i),
                subject_id: format!("s{i}"),
                metadata: BTreeMap::new(),
                quality: 50.0,
                enrolled_at_ms: 0,
            },
            vector: v.clone(),
        })
        .collect();
    assert!(g.insert(recs).iter().all(Result::is_ok));
    assert!(!g.needs_optimize());
    let report = g.optimize().unwrap();
    assert_eq!(report.indexed_segments, 0);
    assert_eq!(g.stats().indexed_segments, 0);
    assert_eq!(ids(&g, &vs[7], SearchMode::Ann, None)[0], id(7));
}

#[test]
fn deleted_records_never_come_back_and_compaction_erases_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (g, vs) = filled(dir.path());
    g.optimize().unwrap();
    let doomed: Vec<usize> = (0..N).step_by(10).collect();
    let gone = g.delete(&doomed.iter().map(|&i| id(i)).collect::<Vec<_>>()).unwrap();
    assert_eq!(gone.len(), doomed.len());
    let doomed_ids: HashSet<String> = doomed.iter().map(|&i| id(i)).collect();
    // The hardest probes: the deleted templates themselves.
    for &i in doomed.iter().step_by(3) {
        for mode in [SearchMode::Ann, SearchMode::Exact] {
            let found = ids(&g, &vs[i], mode, None);
            assert_eq!(found.len(), 10);
            assert!(
                found.iter().all(|x| !doomed_ids.contains(x)),
                "{mode:?} returned a deleted record"
            );
        }
    }
    assert_eq!(g.pending_deletes(), doomed.len());
    assert_eq!(g.compact().unwrap(), doomed.len());
    assert_eq!(g.pending_deletes(), 0);
    assert_eq!(g.stats().indexed_segments, 2, "rewritten shards keep their graphs");
    assert!(recall(&g, &clustered(50, 4), None) >= 0.95);

    let files: Vec<Vec<u8>> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert!(files.len() >= 5, "manifest, log, two segments, two graphs");
    for &i in &doomed {
        let raw: Vec<u8> = vs[i].iter().flat_map(|x| x.to_le_bytes()).collect();
        let mut codes = vec![0i8; DIM];
        quantize_i8(&vs[i], &mut codes);
        let codes: Vec<u8> = codes.iter().map(|c| *c as u8).collect();
        for f in &files {
            assert!(!contains(f, &raw), "f32 template of {} still on disk", id(i));
            assert!(!contains(f, &codes), "int8 codes of {} still on disk", id(i));
        }
    }
    // The survivors' bytes are still there, so the search above was not vacuous.
    let raw: Vec<u8> = vs[1].iter().flat_map(|x| x.to_le_bytes()).collect();
    assert!(files.iter().any(|f| contains(f, &raw)));
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_restart_maps_the_graphs_and_answers_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let queries = clustered(20, 5);
    let before: Vec<Vec<String>> = {
        let (g, _) = filled(dir.path());
        g.optimize().unwrap();
        queries.iter().map(|q| ids(&g, q, SearchMode::Ann, None)).collect()
    };
    let g = Gallery::open(dir.path(), "face-32", opts()).unwrap();
    assert_eq!(g.stats().indexed_segments, 2);
    let after: Vec<Vec<String>> = queries.iter().map(|q| ids(&g, q, SearchMode::Ann, None)).collect();
    assert_eq!(before, after);
}

#[test]
fn deletes_during_an_optimisation_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (g, vs) = filled(dir.path());
    let doomed: Vec<String> = (0..N).step_by(7).map(id).collect();
    std::thread::scope(|s| {
        let opt = s.spawn(|| g.optimize().unwrap());
        for chunk in doomed.chunks(50) {
            g.delete(chunk).unwrap();
        }
        opt.join().unwrap();
    });
    let doomed_set: HashSet<&String> = doomed.iter().collect();
    assert_eq!(g.stats().records as usize, N - doomed.len());
    for i in (0..N).step_by(7).take(100) {
        let found = ids(&g, &vs[i], SearchMode::Ann, None);
        assert!(found.iter().all(|x| !doomed_set.contains(x)));
    }
    // And they survive a restart.
    drop(g);
    let g = Gallery::open(dir.path(), "face-32", opts()).unwrap();
    assert_eq!(g.stats().records as usize, N - doomed.len());
    assert!(!g.contains(&doomed[3]));
}

#[test]
fn a_damaged_graph_falls_back_to_exact_search() {
    let dir = tempfile::tempdir().unwrap();
    let queries = clustered(10, 6);
    let exact: Vec<Vec<String>> = {
        let (g, _) = filled(dir.path());
        g.optimize().unwrap();
        queries.iter().map(|q| ids(&g, q, SearchMode::Exact, None)).collect()
    };
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "hnsw") {
            let mut b = std::fs::read(&p).unwrap();
            let at = b.len() / 2;
            b[at] ^= 0xff;
            std::fs::write(&p, b).unwrap();
        }
    }
    let g = Gallery::open(dir.path(), "face-32", opts()).unwrap();
    assert_eq!(g.stats().indexed_segments, 0);
    let got: Vec<Vec<String>> = queries.iter().map(|q| ids(&g, q, SearchMode::Auto, None)).collect();
    assert_eq!(got, exact);
    assert!(g.needs_optimize());
    g.optimize().unwrap();
    assert_eq!(g.stats().indexed_segments, 2);
}

#[test]
fn a_filter_that_admits_a_handful_of_records_still_finds_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let (g, vs) = filled(dir.path());
    g.optimize().unwrap();
    // Tag 5 records of 6,000 (and none of them is near the probe).
    let rare = [17usize, 1_234, 2_999, 4_000, 5_555];
    let recs: Vec<NewRecord> = rare
        .iter()
        .map(|&i| NewRecord {
            meta: RecordMeta {
                record_id: format!("rare-{i}"),
                subject_id: format!("rare-{i}"),
                metadata: BTreeMap::from([("watchlist".to_string(), "yes".to_string())]),
                quality: 50.0,
                enrolled_at_ms: 0,
            },
            vector: vs[i].clone(),
        })
        .collect();
    assert!(g.insert(recs).iter().all(Result::is_ok));
    g.optimize().unwrap();
    assert_eq!(g.stats().indexed_segments, 2);
    let filter = BTreeMap::from([("watchlist".to_string(), "yes".to_string())]);
    let found = ids(&g, &vs[100], SearchMode::Ann, Some(&filter));
    let mut found = found;
    found.sort();
    let mut want: Vec<String> = rare.iter().map(|i| format!("rare-{i}")).collect();
    want.sort();
    assert_eq!(found, want);
}
