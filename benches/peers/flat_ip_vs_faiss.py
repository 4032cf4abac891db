#!/usr/bin/env python3
"""Exact 1:N inner-product search: biomatch vs faiss-cpu IndexFlatIP and
hnswlib's brute-force BFIndex.

Same data (written once as .npy), same thread count, same run. For each
thread count it times single-probe searches (median over the probes) and one
batch of 32, checks that the engines return the same top-k, and prints the
ratios. Also prints biomatch's scan bandwidth as a share of the machine's
copy bandwidth (STREAM-style: bytes read + written per second).

usage: flat_ip_vs_faiss.py [--n 1000000] [--dim 512] [--queries 50]
                           [--threads 1,2] [--out bench-out/flat_ip.json]
needs: pip install -r benches/peers/requirements.txt
       cargo build --release -p biomatch-benches --bin flat_scan
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def faiss_times(xb, xq, k, threads, batch):
    import faiss

    faiss.omp_set_num_threads(threads)
    index = faiss.IndexFlatIP(xb.shape[1])
    index.add(xb)
    index.search(xq[:1], k)  # warm up
    single, ids = [], []
    for i in range(len(xq)):
        t = time.perf_counter()
        _, I = index.search(xq[i : i + 1], k)
        single.append(time.perf_counter() - t)
        ids.append(I[0].tolist())
    single.sort()
    bt = []
    for _ in range(3):
        t = time.perf_counter()
        index.search(xq[:batch], k)
        bt.append(time.perf_counter() - t)
    bt.sort()
    return {"single_median_s": single[len(single) // 2], "batch_median_s": bt[1], "top_ids": ids, "faiss": faiss.__version__}


def hnswlib_times(xb, xq, k, threads, batch):
    """hnswlib.BFIndex: exact search, the peer for an exact scan (its HNSW
    graph index is the peer of issue 5's ANN index, not of this)."""
    try:
        import hnswlib
    except ImportError:
        return None
    index = hnswlib.BFIndex(space="ip", dim=xb.shape[1])
    index.init_index(max_elements=len(xb))
    index.add_items(xb)
    index.knn_query(xq[:1], k=k, num_threads=threads)
    single, ids = [], []
    for i in range(len(xq)):
        t = time.perf_counter()
        labels, _ = index.knn_query(xq[i : i + 1], k=k, num_threads=threads)
        single.append(time.perf_counter() - t)
        ids.append(labels[0].tolist())
    single.sort()
    bt = []
    for _ in range(3):
        t = time.perf_counter()
        index.knn_query(xq[:batch], k=k, num_threads=threads)
        bt.append(time.perf_counter() - t)
    bt.sort()
    return {"single_median_s": single[len(single) // 2], "batch_median_s": bt[1], "top_ids": ids}


def cpu_flags():
    try:
        flags = next(l for l in open("/proc/cpuinfo") if l.startswith("flags")).split(":")[1].split()
        model = next(l for l in open("/proc/cpuinfo") if l.startswith("model name")).split(":")[1].strip()
    except (OSError, StopIteration):
        return "unknown", []
    keep = [f for f in flags if f.startswith(("avx", "fma", "popcnt", "bmi", "sse4"))]
    return model, sorted(keep)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--out", default=str(ROOT / "bench-out" / "flat_ip.json"))
    a = ap.parse_args()

    rng = np.random.default_rng(1)
    xb = rng.standard_normal((a.n, a.dim), dtype=np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    xq = rng.standard_normal((max(a.queries, a.batch), a.dim), dtype=np.float32)
    xq /= np.linalg.norm(xq, axis=1, keepdims=True)
    binary = ROOT / "target" / "release" / "flat_scan"
    if not binary.exists():
        sys.exit(f"{binary} missing: cargo build --release -p biomatch-benches --bin flat_scan")
    model, flags = cpu_flags()
    print(f"CPU: {model}; flags: {' '.join(flags)}; n={a.n} dim={a.dim} k={a.k}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        gb, qb = Path(tmp) / "gallery.npy", Path(tmp) / "queries.npy"
        np.save(gb, xb)
        np.save(qb, xq)
        for threads in [int(t) for t in a.threads.split(",")]:
            env = {**os.environ, "RAYON_NUM_THREADS": str(threads)}
            out = subprocess.run(
                [str(binary), "--gallery", str(gb), "--queries", str(qb), "--threads", str(threads),
                 "--k", str(a.k), "--batch", str(a.batch)],
                check=True, capture_output=True, text=True, env=env)
            bm = json.loads(out.stdout)
            fs = faiss_times(xb, xq, a.k, threads, a.batch)
            same = sum(b == f for b, f in zip(bm["top_ids"], fs["top_ids"])) / len(fs["top_ids"])
            row = {
                "threads": threads,
                "biomatch_single_ms": bm["single_median_s"] * 1e3,
                "faiss_single_ms": fs["single_median_s"] * 1e3,
                "single_speedup_vs_faiss": fs["single_median_s"] / bm["single_median_s"],
                "biomatch_batch_ms": bm["batch_median_s"] * 1e3,
                "faiss_batch_ms": fs["batch_median_s"] * 1e3,
                "batch_speedup_vs_faiss": fs["batch_median_s"] / bm["batch_median_s"],
                "biomatch_scan_gbps": bm["single_gbps"],
                "copy_gbps": bm["copy_gbps"],
                "scan_share_of_copy_bw": bm["single_gbps"] / bm["copy_gbps"] if bm["copy_gbps"] else None,
                "identical_topk_share": same,
                "isa": bm["isa"],
                "faiss_version": fs["faiss"],
            }
            hs = hnswlib_times(xb, xq, a.k, threads, a.batch)
            if hs is not None:
                row["hnswlib_bf_single_ms"] = hs["single_median_s"] * 1e3
                row["single_speedup_vs_hnswlib_bf"] = hs["single_median_s"] / bm["single_median_s"]
                row["hnswlib_bf_batch_ms"] = hs["batch_median_s"] * 1e3
                row["batch_speedup_vs_hnswlib_bf"] = hs["batch_median_s"] / bm["batch_median_s"]
                row["identical_topk_share_hnswlib_bf"] = sum(
                    sorted(b) == sorted(h) for b, h in zip(bm["top_ids"], hs["top_ids"])) / len(hs["top_ids"])
            results.append(row)
            print(json.dumps(row))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"cpu": model, "flags": flags, "n": a.n, "dim": a.dim, "results": results}, indent=2))
    print(f"\n{'threads':>7} {'single ms (bm/faiss)':>22} {'ratio':>6} {'batch32 ms (bm/faiss)':>24} {'ratio':>6} {'scan GB/s':>9} {'copy GB/s':>9} {'share':>6} {'same top-k':>10}")
    for r in results:
        print(f"{r['threads']:>7} {r['biomatch_single_ms']:>10.2f} / {r['faiss_single_ms']:<9.2f} {r['single_speedup_vs_faiss']:>6.2f} "
              f"{r['biomatch_batch_ms']:>11.1f} / {r['faiss_batch_ms']:<10.1f} {r['batch_speedup_vs_faiss']:>6.2f} "
              f"{r['biomatch_scan_gbps']:>9.2f} {r['copy_gbps']:>9.2f} {r['scan_share_of_copy_bw']:>6.2f} {r['identical_topk_share']:>10.2f}")
        if "hnswlib_bf_single_ms" in r:
            print(f"{'':>7} hnswlib BFIndex: single {r['hnswlib_bf_single_ms']:.2f} ms (x{r['single_speedup_vs_hnswlib_bf']:.2f}), "
                  f"batch32 {r['hnswlib_bf_batch_ms']:.1f} ms (x{r['batch_speedup_vs_hnswlib_bf']:.2f}), "
                  f"same top-k {r['identical_topk_share_hnswlib_bf']:.2f}")


if __name__ == "__main__":
    main()
