//! One-probe and batched scans of a row-major gallery block with top-k
//! selection, parallel over chunks of rows.

use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use crate::{Kernels, TopK};

/// Rows scored per rayon task. 2,048 rows of 512-d are 4 MiB: large enough
/// that task overhead vanishes, small enough to balance two to hundreds of
/// threads and to notice a cancellation within a millisecond or so.
const CHUNK_ROWS: usize = 2048;
/// Bytes of rows scored per call of a [`ChunkScorer`] (see `scan_topk_by`).
const SUB_BLOCK_BYTES: usize = 128 * 1024;

/// How a probe and a row are scored. Scores are always "higher is better".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Inner product. Equals cosine similarity when probe and rows are
    /// L2-normalised, which is how galleries store face and voice embeddings.
    InnerProduct,
    /// Negated squared Euclidean distance.
    L2,
}

/// The scan was abandoned because its cancellation flag was raised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cancelled;

impl std::error::Error for Cancelled {}

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("scan cancelled")
    }
}

/// Decides whether a row may appear in the results (tombstones, metadata
/// filters). It is asked only for rows whose score would enter the top-k, so
/// a costly filter is paid for a handful of rows, not for the whole gallery.
pub type RowFilter<'a> = &'a (dyn Fn(u64) -> bool + Sync);

/// Parameters shared by [`scan_topk`] and [`scan_topk_batch`].
#[derive(Clone, Copy)]
pub struct ScanParams<'a> {
    /// Scoring rule.
    pub metric: Metric,
    /// Number of hits to keep per probe.
    pub k: usize,
    /// Hits scoring below this are dropped.
    pub min_score: f32,
    /// Checked between chunks; when raised the scan stops with [`Cancelled`].
    pub cancel: Option<&'a AtomicBool>,
    /// Rows for which this returns false are skipped.
    pub filter: Option<RowFilter<'a>>,
}

impl<'a> ScanParams<'a> {
    /// Top-`k` by `metric`, no threshold, no filter, not cancellable.
    pub fn new(metric: Metric, k: usize) -> ScanParams<'a> {
        ScanParams {
            metric,
            k,
            min_score: f32::NEG_INFINITY,
            cancel: None,
            filter: None,
        }
    }

    fn cancelled(&self) -> bool {
        self.cancel.is_some_and(|c| c.load(Ordering::Relaxed))
    }

    #[inline]
    fn offer(&self, top: &mut TopK, score: f32, id: u64) {
        // `>=`: an equal score may still enter on the lower-id tie-break.
        if score >= self.min_score && score >= top.threshold() && self.filter.is_none_or(|f| f(id)) {
            top.push(score, id);
        }
    }
}

/// Scores `probe` against every row of `rows` (row-major, `probe.len()`
/// columns) and returns the best `params.k`. Row `i` gets id `base_id + i`.
pub fn scan_topk(
    kernels: Kernels,
    probe: &[f32],
    rows: &[f32],
    base_id: u64,
    params: &ScanParams<'_>,
) -> Result<TopK, Cancelled> {
    let score = |chunk: &[f32], out: &mut [f32], _bound: f32| match params.metric {
        Metric::InnerProduct => kernels.dot_rows(probe, chunk, out),
        Metric::L2 => kernels.neg_l2_rows(probe, chunk, out),
    };
    scan_topk_by(rows, probe.len(), base_id, params, &score)
}

/// Scores a chunk of rows: `score(rows, out, bound)` fills `out[i]` for row
/// `i`. `bound` is the score a row must reach to matter (the larger of
/// `min_score` and the worst of the best `k` found so far in this part of the
/// scan); a scorer may stop early on a row that cannot reach it and report
/// any value below `bound`.
pub type ChunkScorer<'a> = &'a (dyn Fn(&[f32], &mut [f32], f32) + Sync);

/// [`scan_topk`] with any scoring rule: rows of `row_len` words are scored
/// by `score`, higher is better. `params.metric` is ignored.
pub fn scan_topk_by(
    rows: &[f32],
    row_len: usize,
    base_id: u64,
    params: &ScanParams<'_>,
    score: ChunkScorer<'_>,
) -> Result<TopK, Cancelled> {
    assert!(
        row_len > 0 && rows.len().is_multiple_of(row_len),
        "scan_topk_by: shape mismatch"
    );
    let chunk_rows = (CHUNK_ROWS * 512 / row_len).clamp(64, CHUNK_ROWS);
    let sub_rows = (SUB_BLOCK_BYTES / (4 * row_len)).clamp(1, chunk_rows);
    rows.par_chunks(chunk_rows * row_len)
        .enumerate()
        .map(|(c, chunk)| {
            if params.cancelled() {
                return Err(Cancelled);
            }
            let mut top = TopK::new(params.k);
            let mut first = base_id + (c * chunk_rows) as u64;
            let mut scores = vec![0.0f32; sub_rows];
            // Scored a block at a time so that each block's bound includes the
            // best k found so far: a scorer that can stop early on hopeless rows
            // gets a tighter bound as the chunk proceeds.
            for block in chunk.chunks(sub_rows * row_len) {
                let n = block.len() / row_len;
                let bound = params.min_score.max(top.threshold());
                score(block, &mut scores[..n], bound);
                for (i, v) in scores[..n].iter().enumerate() {
                    params.offer(&mut top, *v, first + i as u64);
                }
                first += n as u64;
            }
            Ok(top)
        })
        .try_reduce(|| TopK::new(params.k), |a, b| Ok(a.merge(b)))
}

/// Scores every probe of `probes` (row-major, `dim` columns) against every
/// row and returns each probe's best `params.k`, in probe order.
///
/// Probes are taken four at a time so that each gallery row is read from
/// memory once per four probes; this is what makes batches cheaper per probe
/// than single scans on a memory-bound machine.
pub fn scan_topk_batch(
    kernels: Kernels,
    probes: &[f32],
    dim: usize,
    rows: &[f32],
    base_id: u64,
    params: &ScanParams<'_>,
) -> Result<Vec<TopK>, Cancelled> {
    assert!(
        dim > 0 && rows.len().is_multiple_of(dim) && probes.len().is_multiple_of(dim),
        "scan_topk_batch: shape mismatch"
    );
    let nq = probes.len() / dim;
    if nq == 0 {
        return Ok(Vec::new());
    }
    let empty = || (0..nq).map(|_| TopK::new(params.k)).collect::<Vec<_>>();
    rows.par_chunks(CHUNK_ROWS * dim)
        .enumerate()
        .map(|(c, chunk)| {
            if params.cancelled() {
                return Err(Cancelled);
            }
            let n = chunk.len() / dim;
            let first = base_id + (c * CHUNK_ROWS) as u64;
            let mut tops = empty();
            let mut buf = vec![0.0f32; 4 * n];
            let mut q = 0;
            while q < nq {
                let take = (nq - q).min(4);
                let probe = |j: usize| &probes[(q + j.min(take - 1)) * dim..][..dim];
                let (b0, rest) = buf.split_at_mut(n);
                let (b1, rest) = rest.split_at_mut(n);
                let (b2, b3) = rest.split_at_mut(n);
                match params.metric {
                    Metric::InnerProduct => {
                        kernels.dot_rows_x4([probe(0), probe(1), probe(2), probe(3)], chunk, [b0, b1, b2, b3])
                    }
                    Metric::L2 => {
                        for (j, b) in [b0, b1, b2, b3].into_iter().enumerate().take(take) {
                            kernels.neg_l2_rows(probe(j), chunk, b);
                        }
                    }
                }
                for j in 0..take {
                    let top = &mut tops[q + j];
                    for (i, s) in buf[j * n..(j + 1) * n].iter().enumerate() {
                        params.offer(top, *s, first + i as u64);
                    }
                }
                q += take;
            }
            Ok(tops)
        })
        .try_reduce(empty, |a, b| {
            Ok(a.into_iter().zip(b).map(|(x, y)| x.merge(y)).collect())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Isa;

    fn data(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut x = seed | 1;
        (0..n * dim)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 20_000) as f32 / 10_000.0 - 1.0
            })
            .collect()
    }

    /// Exhaustive reference: score everything in f64, sort, take k.
    fn brute(probe: &[f32], rows: &[f32], k: usize, metric: Metric) -> Vec<u64> {
        let dim = probe.len();
        let mut s: Vec<(f64, u64)> = rows
            .chunks_exact(dim)
            .enumerate()
            .map(|(i, r)| {
                let v = match metric {
                    Metric::InnerProduct => probe.iter().zip(r).map(|(a, b)| *a as f64 * *b as f64).sum(),
                    Metric::L2 => -probe
                        .iter()
                        .zip(r)
                        .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
                        .sum::<f64>(),
                };
                (v, i as u64)
            })
            .collect();
        s.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        s.into_iter().take(k).map(|x| x.1).collect()
    }

    #[test]
    fn scan_matches_brute_force_across_chunks_and_isas() {
        let (n, dim, k) = (5000, 37, 10);
        let rows = data(n, dim, 7);
        let probe = data(1, dim, 99);
        for metric in [Metric::InnerProduct, Metric::L2] {
            let want = brute(&probe, &rows, k, metric);
            for isa in Isa::supported() {
                let kern = Kernels::for_isa(isa).unwrap();
                let got: Vec<u64> = scan_topk(kern, &probe, &rows, 0, &ScanParams::new(metric, k))
                    .unwrap()
                    .into_sorted_vec()
                    .iter()
                    .map(|h| h.id)
                    .collect();
                assert_eq!(got, want, "{isa:?} {metric:?}");
            }
        }
    }

    #[test]
    fn batch_equals_single_scans() {
        let (n, dim, k) = (4500, 64, 5);
        let rows = data(n, dim, 3);
        let probes = data(7, dim, 11);
        let kern = Kernels::active();
        for metric in [Metric::InnerProduct, Metric::L2] {
            let p = ScanParams::new(metric, k);
            let batch = scan_topk_batch(kern, &probes, dim, &rows, 100, &p).unwrap();
            assert_eq!(batch.len(), 7);
            for (q, top) in batch.into_iter().enumerate() {
                let single = scan_topk(kern, &probes[q * dim..(q + 1) * dim], &rows, 100, &p).unwrap();
                let (a, b) = (top.into_sorted_vec(), single.into_sorted_vec());
                // Same rows; scores may differ in the last bit (another summation order).
                assert_eq!(
                    a.iter().map(|h| h.id).collect::<Vec<_>>(),
                    b.iter().map(|h| h.id).collect::<Vec<_>>(),
                    "probe {q} {metric:?}"
                );
                assert!(
                    a.iter()
                        .zip(&b)
                        .all(|(x, y)| (x.score - y.score).abs() <= 1e-4 * x.score.abs().max(1.0))
                );
            }
        }
    }

    #[test]
    fn filter_threshold_and_cancel_are_honoured() {
        let (n, dim) = (3000, 16);
        let rows = data(n, dim, 5);
        let probe = data(1, dim, 6);
        let even = |id: u64| id.is_multiple_of(2);
        let mut p = ScanParams::new(Metric::InnerProduct, 50);
        p.filter = Some(&even);
        p.min_score = 0.5;
        let hits = scan_topk(Kernels::active(), &probe, &rows, 0, &p)
            .unwrap()
            .into_sorted_vec();
        assert!(!hits.is_empty());
        assert!(hits.iter().all(|h| h.id % 2 == 0 && h.score >= 0.5));

        let flag = AtomicBool::new(true);
        let mut p = ScanParams::new(Metric::InnerProduct, 5);
        p.cancel = Some(&flag);
        assert_eq!(
            scan_topk(Kernels::active(), &probe, &rows, 0, &p).unwrap_err(),
            Cancelled
        );
    }
}
