#!/usr/bin/env python3
"""Graph ANN search: biomatch vs hnswlib and faiss-cpu IndexHNSWFlat (and
usearch, f32 and i8, for the library comparison in docs/ann.md).

Same data, same ground truth, same thread count, same graph parameters (M,
efConstruction), one run on one machine. For each engine: build time, memory
added by the index, and for each search beam width the queries per second
(all queries, spread over the threads) and recall@k against exact search.

Datasets:
  synthetic:N:D   clustered unit vectors (N/100 identities, ~100 samples
                  each; probes are new samples of enrolled identities)
  lfw             ../shared/datasets/face/lfw_facenet128 (2921 x 128, real)
  voice           ../shared/datasets/voice/librispeech_test_other_10spk
                  (40 x 256, real)

usage: ann_vs_hnswlib_faiss.py --data synthetic:1000000:128 [--threads 2]
           [--queries 1000] [--m 16] [--ef-construction 100]
           [--ef 16,32,64,96,128,200] [--out bench-out/ann.json]
needs: pip install -r benches/peers/requirements.txt
       cargo build --release -p biomatch-benches --bin ann_bench
"""
import argparse
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "datasets"


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def synthetic(n, d, nq, seed=7):
    rng = np.random.default_rng(seed)
    ids = max(1, n // 100)
    centres = rng.standard_normal((ids, d), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    sigma = np.float32(0.6 / np.sqrt(d))

    def draw(count):
        out = np.empty((count, d), dtype=np.float32)
        for s in range(0, count, 65536):
            e = min(count, s + 65536)
            who = rng.integers(0, ids, e - s)
            x = centres[who] + sigma * rng.standard_normal((e - s, d), dtype=np.float32)
            out[s:e] = x / np.linalg.norm(x, axis=1, keepdims=True)
        return out

    return draw(n), draw(nq)


def real(name):
    if name == "lfw":
        x = np.fromfile(SHARED / "face/lfw_facenet128/LFW_tensor.bytes", "<f4").reshape(2921, 128)
    else:
        rows = (SHARED / "voice/librispeech_test_other_10spk/embeddings.csv").read_text().splitlines()[1:]
        x = np.array([[float(v) for v in r.split(",")[2:]] for r in rows], dtype=np.float32)
    x = np.ascontiguousarray(x)
    return x, x.copy()  # every embedding probes the whole gallery


def truth_of(xb, xq, k, threads):
    import faiss

    faiss.omp_set_num_threads(threads)
    index = faiss.IndexFlatIP(xb.shape[1])
    index.add(xb)
    _, ids = index.search(xq, k)
    return ids


def recall(ids, truth, k):
    return float(np.mean([len(set(a[:k]) & set(b[:k])) / k for a, b in zip(ids, truth)]))


def timed_runs(search, xq, truth, k, efs, repeats):
    runs = []
    for ef in efs:
        best, ids = float("inf"), None
        for _ in range(repeats):
            t = time.perf_counter()
            ids = search(ef)
            best = min(best, time.perf_counter() - t)
        runs.append({"ef": ef, "qps": len(xq) / best, "recall_at_k": recall(ids, truth, k)})
    return runs


def run_hnswlib(xb, xq, truth, a):
    import hnswlib

    before = rss()
    t = time.perf_counter()
    index = hnswlib.Index(space="ip", dim=xb.shape[1])
    index.init_index(max_elements=len(xb), M=a.m, ef_construction=a.ef_construction, random_seed=1)
    index.add_items(xb, num_threads=a.threads)
    build = time.perf_counter() - t
    mem = rss() - before

    def search(ef):
        index.set_ef(max(ef, a.k))
        return index.knn_query(xq, k=a.k, num_threads=a.threads)[0]

    out = {"engine": "hnswlib", "version": getattr(hnswlib, "__version__", "0.8"), "build_s": build, "rss_delta_bytes": mem}
    out["runs"] = timed_runs(search, xq, truth, a.k, a.efs, a.repeats)
    del index
    gc.collect()
    return out


def run_faiss(xb, xq, truth, a):
    import faiss

    faiss.omp_set_num_threads(a.threads)
    before = rss()
    t = time.perf_counter()
    index = faiss.IndexHNSWFlat(xb.shape[1], a.m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = a.ef_construction
    index.add(xb)
    build = time.perf_counter() - t
    mem = rss() - before

    def search(ef):
        index.hnsw.efSearch = max(ef, a.k)
        return index.search(xq, a.k)[1]

    out = {"engine": "faiss IndexHNSWFlat", "version": faiss.__version__, "build_s": build, "rss_delta_bytes": mem}
    out["runs"] = timed_runs(search, xq, truth, a.k, a.efs, a.repeats)
    del index
    gc.collect()
    return out


def run_usearch(xb, xq, truth, a, dtype):
    from usearch.index import Index
    import usearch

    before = rss()
    t = time.perf_counter()
    index = Index(ndim=xb.shape[1], metric="ip", dtype=dtype, connectivity=a.m, expansion_add=a.ef_construction)
    index.add(np.arange(len(xb)), xb, threads=a.threads)
    build = time.perf_counter() - t
    mem = rss() - before

    def search(ef):
        index.expansion_search = max(ef, a.k)
        return index.search(xq, a.k, threads=a.threads).keys

    out = {"engine": f"usearch {dtype}", "version": usearch.__version__, "build_s": build, "rss_delta_bytes": mem}
    out["runs"] = timed_runs(search, xq, truth, a.k, a.efs, a.repeats)
    del index
    gc.collect()
    return out


def run_biomatch(gallery, queries, truth_path, a):
    exe = ROOT / "target/release/ann_bench"
    cmd = [str(exe), "--gallery", str(gallery), "--queries", str(queries), "--truth", str(truth_path),
           "--threads", str(a.threads), "--m", str(a.m), "--ef-construction", str(a.ef_construction),
           "--ef", ",".join(map(str, a.efs)), "--k", str(a.k), "--repeats", str(a.repeats),
           "--graph", str(Path(a.work) / "biomatch.hnsw")]
    res = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(res.stdout)


def at_recall(runs, target):
    ok = [r for r in runs if r["recall_at_k"] >= target]
    return max(ok, key=lambda r: r["qps"]) if ok else None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="synthetic:100000:128")
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--ef-construction", type=int, default=100)
    p.add_argument("--ef", default="16,32,64,96,128,200")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--engines", default="biomatch,hnswlib,faiss")
    p.add_argument("--work", default="target/ann-work")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    a.efs = [int(x) for x in a.ef.split(",")]
    Path(a.work).mkdir(parents=True, exist_ok=True)

    if a.data.startswith("synthetic:"):
        _, n, d = a.data.split(":")
        xb, xq = synthetic(int(n), int(d), a.queries)
    else:
        xb, xq = real(a.data)
    k = min(a.k, len(xb))
    a.k = k
    truth = truth_of(xb, xq, k, a.threads)
    gpath, qpath, tpath = (Path(a.work) / f for f in ("gallery.npy", "queries.npy", "truth.npy"))
    np.save(gpath, xb)
    np.save(qpath, xq)
    np.save(tpath, truth.astype(np.float32))

    results = []
    for engine in a.engines.split(","):
        print(f"== {engine}", file=sys.stderr, flush=True)
        if engine == "biomatch":
            results.append(run_biomatch(gpath, qpath, tpath, a))
        elif engine == "hnswlib":
            results.append(run_hnswlib(xb, xq, truth, a))
        elif engine == "faiss":
            results.append(run_faiss(xb, xq, truth, a))
        elif engine in ("usearch", "usearch-i8"):
            results.append(run_usearch(xb, xq, truth, a, "f32" if engine == "usearch" else "i8"))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)

    ref = next((r for r in results if r["engine"] == "hnswlib"), None)
    summary = []
    for r in results:
        best = at_recall(r["runs"], 0.95)
        row = {"engine": r["engine"], "build_s": r["build_s"], "rss_delta_mib": r["rss_delta_bytes"] / 2**20,
               "qps_at_recall_0.95": best and best["qps"], "ef_at_recall_0.95": best and best["ef"]}
        if ref:
            rb = at_recall(ref["runs"], 0.95)
            if best and rb:
                row["qps_ratio_vs_hnswlib"] = best["qps"] / rb["qps"]
            row["build_ratio_vs_hnswlib"] = r["build_s"] / ref["build_s"]
        summary.append(row)
    doc = {"data": a.data, "n": len(xb), "dim": xb.shape[1], "queries": len(xq), "threads": a.threads,
           "m": a.m, "ef_construction": a.ef_construction, "k": k, "results": results, "summary": summary}
    text = json.dumps(doc, indent=2)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(text)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
