//! Black-box tests of galleries through the crate's public API, on real files.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use biomatch_index::{Catalog, Entry, Gallery, GalleryOptions, IndexError, NewRecord, RecordMeta, Search};
use rand::{Rng, SeedableRng, rngs::StdRng};

const DIM: usize = 24;

fn unit(rng: &mut StdRng) -> Vec<f32> {
    let v: Vec<f32> = (0..DIM).map(|_| rng.random::<f32>() - 0.5).collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

fn rec(i: usize, v: Vec<f32>) -> NewRecord {
    let mut metadata = BTreeMap::new();
    metadata.insert(
        "site".to_string(),
        if i.is_multiple_of(3) { "north" } else { "south" }.to_string(),
    );
    NewRecord {
        meta: RecordMeta {
            record_id: format!("r{i:05}"),
            subject_id: format!("s{}", i / 2),
            metadata,
            quality: 50.0,
            enrolled_at_ms: i as u64,
        },
        vector: v,
    }
}

fn fill(g: &Gallery, n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let vs: Vec<Vec<f32>> = (0..n).map(|_| unit(&mut rng)).collect();
    for chunk in vs.iter().enumerate().collect::<Vec<_>>().chunks(97) {
        let res = g.insert(chunk.iter().map(|(i, v)| rec(*i, (*v).clone())).collect());
        assert!(res.iter().all(|r| r.is_ok()));
    }
    vs
}

fn brute(vs: &[Vec<f32>], probe: &[f32], k: usize, skip: &dyn Fn(usize) -> bool) -> Vec<String> {
    let mut s: Vec<(f32, usize)> = vs
        .iter()
        .enumerate()
        .filter(|(i, _)| !skip(*i))
        .map(|(i, v)| (v.iter().zip(probe).map(|(a, b)| a * b).sum(), i))
        .collect();
    s.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    s.into_iter().take(k).map(|(_, i)| format!("r{i:05}")).collect()
}

fn search(g: &Gallery, probe: &[f32], k: usize) -> Vec<String> {
    g.search(
        probe,
        &Search {
            k,
            min_score: f32::NEG_INFINITY,
            filter: None,
            cancel: None,
            ann: Default::default(),
        },
    )
    .unwrap()
    .into_iter()
    .map(|h| h.record_id)
    .collect()
}

fn opts() -> GalleryOptions {
    GalleryOptions {
        flush_records: 500,
        ..Default::default()
    }
}

#[test]
fn exact_search_across_segments_and_tail_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("face-24");
    let g = Gallery::create(&path, "face-24", DIM, opts()).unwrap();
    let vs = fill(&g, 1650, 1);
    let st = g.stats();
    assert_eq!(st.records, 1650);
    assert!(st.segments >= 2, "flushes should have made segments: {st:?}");
    assert!(st.unflushed > 0);
    let mut rng = StdRng::seed_from_u64(9);
    let probes: Vec<Vec<f32>> = (0..20).map(|_| unit(&mut rng)).collect();
    for p in &probes {
        assert_eq!(search(&g, p, 10), brute(&vs, p, 10, &|_| false));
    }
    drop(g);
    let g = Gallery::open(&path, "face-24", opts()).unwrap();
    assert_eq!(g.stats().records, 1650);
    for p in &probes {
        assert_eq!(search(&g, p, 10), brute(&vs, p, 10, &|_| false));
    }
    let r = g.get("r01234", true).unwrap();
    assert_eq!(r.vector.unwrap(), vs[1234]);
    assert_eq!(r.meta.subject_id, "s617");
}

#[test]
fn duplicates_and_wrong_dimension_are_refused_without_side_effects() {
    let dir = tempfile::tempdir().unwrap();
    let g = Gallery::create(&dir.path().join("g"), "g", DIM, opts()).unwrap();
    fill(&g, 10, 2);
    let mut rng = StdRng::seed_from_u64(3);
    let res = g.insert(vec![
        rec(3, unit(&mut rng)),
        rec(50, vec![1.0; 5]),
        rec(51, unit(&mut rng)),
        rec(51, unit(&mut rng)),
    ]);
    assert!(matches!(res[0], Err(IndexError::AlreadyExists(_))));
    assert!(matches!(res[1], Err(IndexError::Dimension { expected: 24, got: 5 })));
    assert!(res[2].is_ok());
    assert!(matches!(res[3], Err(IndexError::AlreadyExists(_))));
    assert_eq!(g.stats().records, 11);
}

#[test]
fn a_bulk_insert_writes_one_segment_with_the_same_outcomes_and_durability() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g");
    let g = Gallery::create(&path, "g", DIM, opts()).unwrap();
    let mut vs = fill(&g, 120, 4);
    // The log now holds the tail and a delete of a tail record; that record
    // is then enrolled again, with a new vector, by the bulk insert.
    assert_eq!(g.delete(&["r00007".to_string()]).unwrap(), vec!["r00007".to_string()]);
    let mut rng = StdRng::seed_from_u64(5);
    let fresh: Vec<Vec<f32>> = (0..300).map(|_| unit(&mut rng)).collect();
    let mut batch: Vec<NewRecord> = fresh.iter().enumerate().map(|(i, v)| rec(120 + i, v.clone())).collect();
    vs[7] = unit(&mut rng);
    batch.push(rec(7, vs[7].clone()));
    batch.push(rec(3, unit(&mut rng)));
    batch.push(rec(900, vec![1.0; 5]));
    batch.push(rec(121, unit(&mut rng)));
    let before = g.stats().segments;
    let res = g.insert_bulk(batch);
    assert!(
        res[..301].iter().all(|r| r.is_ok()),
        "{:?}",
        &res[..301].iter().find(|r| r.is_err())
    );
    assert!(matches!(res[301], Err(IndexError::AlreadyExists(_))));
    assert!(matches!(res[302], Err(IndexError::Dimension { expected: 24, got: 5 })));
    assert!(matches!(res[303], Err(IndexError::AlreadyExists(_))));
    vs.extend(fresh);
    let st = g.stats();
    assert_eq!(st.records, 420);
    // The tail (and the delete) were flushed first, then one segment.
    assert_eq!(st.unflushed, 0);
    assert_eq!(st.segments, before + 2);
    let mut rng = StdRng::seed_from_u64(6);
    let probes: Vec<Vec<f32>> = (0..20).map(|_| unit(&mut rng)).collect();
    let check = |g: &Gallery| {
        for p in &probes {
            assert_eq!(search(g, p, 10), brute(&vs, p, 10, &|_| false));
        }
        assert_eq!(g.get("r00007", true).unwrap().vector.unwrap(), vs[7]);
        assert_eq!(g.get("r00300", true).unwrap().vector.unwrap(), vs[300]);
    };
    check(&g);
    // An empty or wholly refused batch writes nothing.
    assert!(g.insert_bulk(Vec::new()).is_empty());
    assert!(g.insert_bulk(vec![rec(5, unit(&mut rng))])[0].is_err());
    assert_eq!(g.stats().segments, before + 2);
    drop(g);
    let g = Gallery::open(&path, "g", opts()).unwrap();
    assert_eq!(g.stats().records, 420);
    check(&g);
    // Deletes after the bulk segment hit its rows, and survive a reopen.
    assert_eq!(g.delete(&["r00200".to_string()]).unwrap().len(), 1);
    drop(g);
    let g = Gallery::open(&path, "g", opts()).unwrap();
    assert!(g.get("r00200", false).is_none());
    assert_eq!(g.stats().records, 419);
}

#[test]
fn subjects_filters_and_verification_scores() {
    let dir = tempfile::tempdir().unwrap();
    let g = Gallery::create(&dir.path().join("g"), "g", DIM, opts()).unwrap();
    let vs = fill(&g, 800, 4);
    let probe = &vs[101];
    let hits = g
        .search_subjects(
            probe,
            &Search {
                k: 5,
                min_score: f32::NEG_INFINITY,
                filter: None,
                cancel: None,
                ann: Default::default(),
            },
        )
        .unwrap();
    assert_eq!(hits.len(), 5);
    assert_eq!(hits[0].subject_id, "s50");
    let subjects: std::collections::HashSet<_> = hits.iter().map(|h| &h.subject_id).collect();
    assert_eq!(subjects.len(), 5, "one candidate per subject");
    let north: BTreeMap<String, String> = [("site".to_string(), "north".to_string())].into();
    let hits = g
        .search(
            probe,
            &Search {
                k: 50,
                min_score: f32::NEG_INFINITY,
                filter: Some(&north),
                cancel: None,
                ann: Default::default(),
            },
        )
        .unwrap();
    assert_eq!(hits.len(), 50);
    assert!(hits.iter().all(|h| h.record_id[1..].parse::<usize>().unwrap() % 3 == 0));
    let mut ids = g.subject_records("s50");
    ids.sort();
    assert_eq!(ids, vec!["r00100".to_string(), "r00101".to_string()]);
    assert_eq!(g.get("r00101", true).unwrap().vector.as_deref(), Some(&probe[..]));
    assert!(g.subject_records("nobody").is_empty());
}

/// Every file under `dir`, concatenated.
fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        out.extend(std::fs::read(e.unwrap().path()).unwrap());
    }
    out
}

fn contains(hay: &[u8], needle: &[f32]) -> bool {
    let n: Vec<u8> = needle.iter().flat_map(|x| x.to_le_bytes()).collect();
    hay.windows(n.len()).any(|w| w == n.as_slice())
}

#[test]
fn deletes_hide_at_once_and_compaction_erases_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g");
    let g = Gallery::create(&path, "g", DIM, opts()).unwrap();
    let vs = fill(&g, 1200, 5);
    // Some deleted rows sit in segments, some in the unflushed tail.
    let doomed: Vec<usize> = (0..1200).filter(|i| i % 10 == 3).collect();
    let ids: Vec<String> = doomed.iter().map(|i| format!("r{i:05}")).collect();
    assert_eq!(g.delete(&ids).unwrap().len(), doomed.len());
    assert_eq!(g.delete(&ids).unwrap().len(), 0, "second delete finds nothing");
    let skip = |i: usize| i % 10 == 3;
    for i in (0..1200).step_by(37) {
        let got = search(&g, &vs[i], 20);
        assert_eq!(got, brute(&vs, &vs[i], 20, &skip));
    }
    assert!(g.get("r00003", false).is_none());
    assert!(
        contains(&all_bytes(&path), &vs[3]),
        "before compaction the bytes may remain"
    );
    assert_eq!(g.stats().pending_deletes, doomed.len() as u64);
    assert_eq!(g.compact().unwrap(), doomed.len());
    assert_eq!(g.stats().pending_deletes, 0);
    let bytes = all_bytes(&path);
    for i in &doomed {
        assert!(!contains(&bytes, &vs[*i]), "deleted record {i} still on disk");
    }
    assert!(contains(&bytes, &vs[4]));
    drop(g);
    let g = Gallery::open(&path, "g", opts()).unwrap();
    assert_eq!(g.stats().records, 1200 - doomed.len() as u64);
    for i in (0..1200).step_by(41) {
        assert_eq!(search(&g, &vs[i], 20), brute(&vs, &vs[i], 20, &skip));
    }
    // A deleted id may be enrolled again, and that survives a reopen.
    assert!(g.insert(vec![rec(3, vs[3].clone())])[0].is_ok());
    drop(g);
    let g = Gallery::open(&path, "g", opts()).unwrap();
    assert!(g.get("r00003", false).is_some());
}

#[test]
fn a_log_that_outlived_its_flush_replays_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g");
    let g = Gallery::create(
        &path,
        "g",
        DIM,
        GalleryOptions {
            flush_records: 1_000_000,
            ..Default::default()
        },
    )
    .unwrap();
    let vs = fill(&g, 300, 6);
    g.delete(&["r00007".to_string()]).unwrap();
    let wal = std::fs::read(path.join("wal-0.log")).unwrap();
    g.flush().unwrap();
    drop(g);
    // As if the process died after the manifest commit, before the log reset.
    std::fs::write(path.join("wal-0.log"), wal).unwrap();
    let g = Gallery::open(&path, "g", opts()).unwrap();
    let st = g.stats();
    assert_eq!(st.records, 299);
    assert!(g.get("r00007", false).is_none());
    assert_eq!(search(&g, &vs[8], 1), vec!["r00008".to_string()]);
}

#[test]
fn catalog_quarantines_a_corrupt_gallery_and_locks_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cat = Catalog::open(dir.path(), opts()).unwrap();
        assert!(matches!(Catalog::open(dir.path(), opts()), Err(IndexError::Locked(_))));
        fill(&cat.get_or_create("face-24", DIM).unwrap(), 600, 7);
        fill(&cat.get_or_create("voice-24", DIM).unwrap(), 10, 8);
    }
    let seg = dir.path().join("galleries/face-24/seg-00000001.seg");
    let mut b = std::fs::read(&seg).unwrap();
    b[5000] ^= 0x10;
    std::fs::write(&seg, b).unwrap();
    let cat = Catalog::open(dir.path(), opts()).unwrap();
    let err = cat
        .get("face-24")
        .unwrap()
        .err()
        .expect("corrupt gallery must not open");
    let msg = err.to_string();
    assert!(msg.contains("seg-00000001.seg") && msg.contains("checksum"), "{msg}");
    assert!(
        cat.get_or_create("face-24", DIM).is_err(),
        "no writes into a broken gallery"
    );
    assert!(matches!(
        cat.entries().iter().find(|(n, _)| n == "face-24").unwrap().1,
        Entry::Broken(_)
    ));
    assert_eq!(cat.get("voice-24").unwrap().unwrap().stats().records, 10);
}

/// A scorer that, on its first call (inside the scan, read guard held),
/// waits until an insert is queued for the write lock and then reads the
/// same gallery, as a verify job run by a rayon worker inside a scan does.
struct NestedReader {
    gallery: Arc<Gallery>,
    writer_queued: Arc<Barrier>,
    nested_read_done: AtomicBool,
}

impl biomatch_index::RowScorer for NestedReader {
    fn score_rows(&self, rows: &[f32], out: &mut [f32], _bound: f32) {
        if !self.nested_read_done.swap(true, Ordering::SeqCst) {
            self.writer_queued.wait();
            // Give the writer time to park on the lock.
            std::thread::sleep(Duration::from_millis(100));
            assert!(!self.gallery.subject_records("s0").is_empty());
        }
        for (o, r) in out.iter_mut().zip(rows.chunks(self.gallery.dim())) {
            *o = r[0];
        }
    }
}

#[test]
fn a_read_inside_a_scan_does_not_deadlock_with_a_queued_insert() {
    let dir = tempfile::tempdir().unwrap();
    let g = Arc::new(Gallery::create(dir.path(), "g", DIM, opts()).unwrap());
    fill(&g, 200, 5);
    let barrier = Arc::new(Barrier::new(2));
    let scorer = NestedReader {
        gallery: g.clone(),
        writer_queued: barrier.clone(),
        nested_read_done: AtomicBool::new(false),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let searcher = {
        let g = g.clone();
        std::thread::spawn(move || {
            let search = Search {
                k: 3,
                min_score: f32::NEG_INFINITY,
                filter: None,
                cancel: None,
                ann: Default::default(),
            };
            let _ = tx.send(g.search_by(&scorer, &search).map(|h| h.len()));
        })
    };
    let inserter = {
        let g = g.clone();
        std::thread::spawn(move || {
            barrier.wait();
            g.insert(vec![rec(900, vec![0.2f32; DIM])]).remove(0)
        })
    };
    // Before the fix this timed out: the nested read waited for the queued
    // insert, which waited for the scan's guard. (The stuck threads are
    // left behind; the test fails instead of hanging.)
    let hits = rx.recv_timeout(Duration::from_secs(20)).expect("scan deadlocked");
    assert_eq!(hits.unwrap(), 3);
    searcher.join().unwrap();
    inserter.join().unwrap().unwrap();
    assert!(g.contains("r00900"));
}

/// Scores rows by one coordinate: column 0 as a cheap screen, the inner
/// product with a probe as the exact score.
struct Column0;

impl biomatch_index::RowScorer for Column0 {
    fn score_rows(&self, rows: &[f32], out: &mut [f32], _bound: f32) {
        for (o, r) in out.iter_mut().zip(rows.chunks(DIM)) {
            *o = r[0];
        }
    }
}

struct Dot(Vec<f32>);

impl biomatch_index::RowScorer for Dot {
    fn score_rows(&self, rows: &[f32], out: &mut [f32], _bound: f32) {
        for (o, r) in out.iter_mut().zip(rows.chunks(DIM)) {
            *o = r.iter().zip(&self.0).map(|(a, b)| a * b).sum();
        }
    }
}

#[test]
fn a_screened_search_rescores_exactly_the_screens_shortlist() {
    let dir = tempfile::tempdir().unwrap();
    let g = Gallery::create(dir.path(), "g", DIM, opts()).unwrap();
    let vs = fill(&g, 1000, 21);
    let probe = vs[17].clone();
    let deleted: Vec<String> = (0..1000).step_by(10).map(|i| format!("r{i:05}")).collect();
    g.delete(&deleted).unwrap();
    assert_eq!((g.len(), g.stats().records), (900, 900));
    let s = Search {
        k: 5,
        ..Default::default()
    };
    // Expected: among live rows, the 100 with the largest column 0, then the
    // best 5 of those by inner product.
    let mut by_col: Vec<usize> = (0..1000).filter(|i| i % 10 != 0).collect();
    by_col.sort_by(|a, b| vs[*b][0].total_cmp(&vs[*a][0]).then(a.cmp(b)));
    let shortlist: Vec<Vec<f32>> = (0..1000)
        .map(|i| {
            if by_col[..100].contains(&i) {
                vs[i].clone()
            } else {
                vec![f32::NAN; DIM]
            }
        })
        .collect();
    let want = brute(&shortlist, &probe, 5, &|i| !by_col[..100].contains(&i));
    let got: Vec<String> = g
        .search_screened_by(&Column0, &Dot(probe.clone()), 100, &s)
        .unwrap()
        .into_iter()
        .map(|h| h.record_id)
        .collect();
    assert_eq!(got, want);
    // A shortlist covering the gallery is the exact search.
    let full: Vec<String> = g
        .search_screened_by(&Column0, &Dot(probe.clone()), 5000, &s)
        .unwrap()
        .into_iter()
        .map(|h| h.record_id)
        .collect();
    assert_eq!(full, brute(&vs, &probe, 5, &|i| i % 10 == 0));
    assert_eq!(full[0], "r00017");
    // Filters apply to the screen: only "north" rows come back, and a
    // raised cancel flag stops the search.
    let mut f = BTreeMap::new();
    f.insert("site".to_string(), "north".to_string());
    let north = g
        .search_screened_by(&Column0, &Dot(probe.clone()), 5000, &Search { filter: Some(&f), ..s })
        .unwrap();
    assert_eq!(north.len(), 5);
    assert!(
        north
            .iter()
            .all(|h| h.record_id[1..].parse::<usize>().unwrap() % 3 == 0)
    );
    let cancel = AtomicBool::new(true);
    assert!(matches!(
        g.search_screened_by(
            &Column0,
            &Dot(probe),
            100,
            &Search {
                cancel: Some(&cancel),
                ..s
            }
        ),
        Err(IndexError::Cancelled)
    ));
}

fn sharded(shards: usize, flush_records: usize) -> GalleryOptions {
    GalleryOptions {
        flush_records,
        ann: biomatch_index::ann::AnnOptions {
            shards,
            ..Default::default()
        },
    }
}

fn log_len(dir: &Path, name: &str) -> Option<u64> {
    std::fs::metadata(dir.join(name)).ok().map(|m| m.len())
}

#[test]
fn each_write_shard_logs_and_flushes_its_own_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g");
    let g = Gallery::create(&path, "g", DIM, sharded(4, 1_000_000)).unwrap();
    let vs = fill(&g, 400, 21);
    // Every shard got records, each in its own log; nothing is flushed yet.
    for s in 0..4 {
        assert!(log_len(&path, &format!("wal-{s}.log")).unwrap() > 0, "shard {s}");
    }
    assert_eq!(log_len(&path, "wal.log"), None);
    assert_eq!(g.stats().unflushed, 400);
    let gone: Vec<String> = (0..400).step_by(10).map(|i| format!("r{i:05}")).collect();
    assert_eq!(g.delete(&gone).unwrap().len(), 40);
    drop(g);

    let g = Gallery::open(&path, "g", sharded(4, 1_000_000)).unwrap();
    assert_eq!(g.stats().records, 360);
    let skip = |i: usize| i.is_multiple_of(10);
    let mut rng = StdRng::seed_from_u64(22);
    for _ in 0..10 {
        let p = unit(&mut rng);
        assert_eq!(search(&g, &p, 10), brute(&vs, &p, 10, &skip));
    }
    // A batch across shards: every record keeps its own outcome, in order.
    let mut rng = StdRng::seed_from_u64(28);
    let res = g.insert(vec![
        rec(3, unit(&mut rng)),
        rec(5000, vec![1.0; 5]),
        rec(5001, unit(&mut rng)),
        rec(5002, unit(&mut rng)),
        rec(5001, unit(&mut rng)),
    ]);
    assert!(matches!(res[0], Err(IndexError::AlreadyExists(_))));
    assert!(matches!(res[1], Err(IndexError::Dimension { expected: 24, got: 5 })));
    assert!(res[2].is_ok() && res[3].is_ok());
    assert!(matches!(res[4], Err(IndexError::AlreadyExists(_))));
    g.delete(&["r05001".to_string(), "r05002".to_string()]).unwrap();
    // A flush writes one segment per shard and empties every log.
    g.flush().unwrap();
    let st = g.stats();
    assert_eq!((st.segments, st.unflushed, st.records), (4, 0, 360));
    for s in 0..4 {
        assert_eq!(log_len(&path, &format!("wal-{s}.log")), Some(0), "shard {s}");
    }
}

#[test]
fn a_shard_flushes_at_its_share_of_flush_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g");
    // 400 records over 4 shards: each flushes at 100, so about one segment
    // each appears while 400 records would not fill an unsharded tail.
    let g = Gallery::create(&path, "g", DIM, sharded(4, 400)).unwrap();
    let vs = fill(&g, 700, 23);
    let st = g.stats();
    assert!(st.segments >= 4, "{st:?}");
    assert!(st.unflushed < 400, "{st:?}");
    drop(g);
    let g = Gallery::open(&path, "g", sharded(4, 400)).unwrap();
    assert_eq!(g.stats().records, 700);
    assert_eq!(search(&g, &vs[321], 1), vec!["r00321".to_string()]);
}

#[test]
fn logs_of_another_shard_layout_are_replayed_flushed_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g");
    let g = Gallery::create(&path, "g", DIM, sharded(1, 1_000_000)).unwrap();
    let vs = fill(&g, 300, 24);
    g.delete(&["r00007".to_string()]).unwrap();
    drop(g);
    // The layout of releases before write shards: one `wal.log`.
    std::fs::rename(path.join("wal-0.log"), path.join("wal.log")).unwrap();
    let g = Gallery::open(&path, "g", sharded(1, 1_000_000)).unwrap();
    let st = g.stats();
    assert_eq!((st.records, st.unflushed), (299, 0), "{st:?}");
    assert!(g.get("r00007", false).is_none());
    assert_eq!(log_len(&path, "wal.log"), None);
    assert_eq!(search(&g, &vs[8], 1), vec!["r00008".to_string()]);

    // More writes under one shard, then reopened with three: the records of
    // wal-0.log now belong to three shards, so they are flushed at once and
    // later writes cannot lose them.
    let mut rng = StdRng::seed_from_u64(25);
    let more: Vec<Vec<f32>> = (0..100).map(|_| unit(&mut rng)).collect();
    let res = g.insert(more.iter().enumerate().map(|(i, v)| rec(1000 + i, v.clone())).collect());
    assert!(res.iter().all(|r| r.is_ok()));
    g.delete(&["r01005".to_string(), "r00009".to_string()]).unwrap();
    drop(g);
    let g = Gallery::open(&path, "g", sharded(3, 1_000_000)).unwrap();
    let st = g.stats();
    assert_eq!((st.records, st.unflushed), (397, 0), "{st:?}");
    assert!(g.get("r01005", false).is_none() && g.get("r00009", false).is_none());
    let res = g.insert(vec![rec(2000, unit(&mut rng))]);
    assert!(res[0].is_ok());
    drop(g);
    // Back to two shards: wal-2.log is another layout's, replayed and removed.
    let g = Gallery::open(&path, "g", sharded(2, 1_000_000)).unwrap();
    assert_eq!(g.stats().records, 398);
    assert!(g.get("r02000", false).is_some());
    assert_eq!(log_len(&path, "wal-2.log"), None);
    assert_eq!(search(&g, &more[3], 1), vec!["r01003".to_string()]);
}

#[test]
fn concurrent_enrolls_and_flushes_of_different_shards_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g");
    // Small shares (16 records a shard) so that shards flush, and commit
    // manifests, while the others append.
    let g = Arc::new(Gallery::create(&path, "g", DIM, sharded(4, 64)).unwrap());
    let mut rng = StdRng::seed_from_u64(26);
    let vs: Vec<Vec<f32>> = (0..2000).map(|_| unit(&mut rng)).collect();
    let vs = Arc::new(vs);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (g, vs) = (g.clone(), vs.clone());
            std::thread::spawn(move || {
                for chunk in (t * 500..(t + 1) * 500).collect::<Vec<_>>().chunks(7) {
                    let res = g.insert(chunk.iter().map(|&i| rec(i, vs[i].clone())).collect());
                    assert!(res.iter().all(|r| r.is_ok()));
                    if chunk[0].is_multiple_of(49) {
                        g.delete(&[format!("r{:05}", chunk[0])]).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Each thread deleted the first record of its chunks that start at a
    // multiple of 49.
    let deleted = |i: usize| i.is_multiple_of(49) && (i % 500).is_multiple_of(7);
    let live = (0..2000).filter(|&i| !deleted(i)).count();
    assert_eq!(g.stats().records as usize, live);
    drop(g);
    let g = Gallery::open(&path, "g", sharded(4, 64)).unwrap();
    assert_eq!(g.stats().records as usize, live);
    for i in (0..2000).step_by(37) {
        assert_eq!(g.get(&format!("r{i:05}"), false).is_some(), !deleted(i), "r{i:05}");
    }
    let mut rng = StdRng::seed_from_u64(27);
    for _ in 0..5 {
        let p = unit(&mut rng);
        assert_eq!(search(&g, &p, 10), brute(&vs, &p, 10, &deleted));
    }
}
