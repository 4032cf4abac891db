use rand::{Rng, SeedableRng, rngs::StdRng};

use super::*;

/// `n` unit vectors around `clusters` random centres.
fn clustered(n: usize, dim: usize, clusters: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let centres: Vec<f32> = (0..clusters * dim).map(|_| rng.random::<f32>() - 0.5).collect();
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let c = rng.random_range(0..clusters);
        let mut v: Vec<f32> = (0..dim)
            .map(|d| centres[c * dim + d] + 0.25 * (rng.random::<f32>() - 0.5))
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        out.extend(v);
    }
    out
}

/// Gallery rows and held-out queries drawn around the same centres.
fn split(mut all: Vec<f32>, at: usize) -> (Vec<f32>, Vec<f32>) {
    let queries = all.split_off(at);
    (all, queries)
}

fn exact_top(vectors: &[f32], dim: usize, q: &[f32], k: usize, keep: impl Fn(u32) -> bool) -> Vec<u32> {
    let mut s: Vec<(f32, u32)> = vectors
        .chunks(dim)
        .enumerate()
        .filter(|(i, _)| keep(*i as u32))
        .map(|(i, v)| (v.iter().zip(q).map(|(a, b)| a * b).sum(), i as u32))
        .collect();
    s.sort_by(|a, b| b.0.total_cmp(&a.0));
    s.into_iter().take(k).map(|x| x.1).collect()
}

fn built(dir: &std::path::Path, vectors: &[f32], dim: usize) -> Graph {
    let path = dir.join(Graph::file_name(3));
    Graph::build_to(&path, 3, vectors, dim, HnswParams::default()).unwrap();
    Graph::open(&path, 3, vectors.len() / dim, dim).unwrap()
}

#[test]
fn graph_search_recalls_the_exact_neighbours() {
    let (n, dim) = (6_000, 48);
    let (data, queries) = split(clustered(n + 100, dim, 40, 1), n * dim);
    let dir = tempfile::tempdir().unwrap();
    let g = built(dir.path(), &data, dim);
    assert_eq!(g.len(), n);
    let mut hits = 0;
    for q in queries.chunks(dim) {
        let want = exact_top(&data, dim, q, 10, |_| true);
        let got: Vec<u32> = g
            .search(q, 64, &|_| true, None)
            .unwrap()
            .into_iter()
            .map(|x| x.0)
            .collect();
        hits += want.iter().filter(|w| got.contains(w)).count();
    }
    let recall = hits as f64 / 1000.0;
    assert!(recall >= 0.95, "recall@10 within ef=64 candidates: {recall}");
}

#[test]
fn filtered_rows_never_come_back_and_the_rest_are_still_found() {
    let (n, dim) = (4_000, 32);
    let (data, queries) = split(clustered(n + 50, dim, 20, 3), n * dim);
    let dir = tempfile::tempdir().unwrap();
    let g = built(dir.path(), &data, dim);
    let keep = |i: u32| !i.is_multiple_of(10);
    let mut hits = 0;
    for q in queries.chunks(dim) {
        let got: Vec<u32> = g.search(q, 64, &keep, None).unwrap().into_iter().map(|x| x.0).collect();
        assert!(got.iter().all(|&i| keep(i)));
        let want = exact_top(&data, dim, q, 10, keep);
        hits += want.iter().filter(|w| got.contains(w)).count();
    }
    assert!(hits as f64 / 500.0 >= 0.95, "filtered recall {hits}/500");
}

#[test]
fn a_raised_cancel_flag_stops_the_search() {
    let data = clustered(3_000, 16, 10, 5);
    let dir = tempfile::tempdir().unwrap();
    let g = built(dir.path(), &data, 16);
    let cancel = std::sync::atomic::AtomicBool::new(true);
    assert!(g.search(&data[..16], 2_000, &|_| true, Some(&cancel)).is_err());
}

#[test]
fn damaged_or_mismatched_files_are_refused() {
    let data = clustered(500, 8, 5, 6);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(Graph::file_name(3));
    built(dir.path(), &data, 8);
    assert!(Graph::open(&path, 4, 500, 8).is_err(), "other segment");
    assert!(Graph::open(&path, 3, 499, 8).is_err(), "other row count");
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() - 5;
    bytes[at] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let err = Graph::open(&path, 3, 500, 8).err().unwrap().to_string();
    assert!(err.contains("checksum"), "{err}");
}

#[test]
fn tiny_and_empty_graphs_work() {
    let dir = tempfile::tempdir().unwrap();
    let g = built(dir.path(), &[], 4);
    assert!(g.search(&[1.0, 0.0, 0.0, 0.0], 10, &|_| true, None).unwrap().is_empty());
    let one = [0.0, 1.0, 0.0, 0.0];
    let g = built(dir.path(), &one, 4);
    assert_eq!(g.search(&one, 10, &|_| true, None).unwrap()[0].0, 0);
}

#[test]
fn plan_widens_the_beam_to_the_rescored_list() {
    let q = AnnQuery::default();
    assert_eq!(q.plan(10), (AnnQuery::DEFAULT_EF, 40));
    assert_eq!(q.plan(100), (100, 100));
    assert_eq!(AnnQuery { ef: 16, ..q }.plan(10), (16, 16));
    assert_eq!(
        AnnQuery {
            ef: 200,
            oversample: 2,
            ..q
        }
        .plan(10),
        (200, 20)
    );
}
