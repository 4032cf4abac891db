#!/usr/bin/env python3
"""Graph ANN search: biomatch vs hnswlib and faiss-cpu IndexHNSWFlat (and
usearch, f32 and i8, and the Rust crate hnsw_rs, for the library comparison
in docs/ann.md).

Same data, same ground truth, same thread count, same graph parameters (M,
efConstruction), one run on one machine. For each engine: build time, memory
added by the index, and for each search beam width the queries per second
(all queries, spread over the threads) and recall@k against exact search.

Every index is built first; then the searches are timed in --rounds rounds,
each engine once per round in a rotating order. A round's QPS is the best of
--repeats passes; the reported QPS is the median over rounds, and the
summary also lists each round's ratio to hnswlib, so the spread the shared
machine adds is visible next to the ratio.

Datasets:
  synthetic:N:D   clustered unit vectors (N/100 identities, ~100 samples
                  each; probes are new samples of enrolled identities)
  lfw             ../shared/datasets/face/lfw_facenet128 (2921 x 128, real)
  voice           ../shared/datasets/voice/librispeech_test_other_10spk
                  (40 x 256, real)

usage: ann_vs_hnswlib_faiss.py --data synthetic:1000000:128 [--threads 2]
           [--queries 1000] [--m 16] [--ef-construction 100]
           [--ef 16,32,64,96,128,200] [--rounds 3] [--repeats 3]
           [--out bench-out/ann.json]
needs: pip install -r benches/peers/requirements.txt
       cargo build --release -p biomatch-benches --bin ann_bench
       for --engines ...,hnsw_rs also:
       cargo build --release -p biomatch-benches --features hnsw-rs --bin hnsw_rs_bench
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


class Engine:
    """A built index: what its build cost, and a way to time its searches."""

    def __init__(self, name, version, build_s, rss_delta_bytes, timed, extra=None):
        self.name, self.version = name, version
        self.build_s, self.rss_delta_bytes = build_s, rss_delta_bytes
        self.timed = timed  # () -> [{"ef", "qps", "recall_at_k"}]
        self.extra = extra or {}
        self.rounds = []


def in_process(name, version, build, search_of, xq, truth, a):
    before = rss()
    t = time.perf_counter()
    index = build()
    build_s = time.perf_counter() - t
    mem = rss() - before
    search = search_of(index)
    return Engine(name, version, build_s, mem, lambda: timed_runs(search, xq, truth, a.k, a.efs, a.repeats))


def build_hnswlib(xb, xq, truth, a):
    import hnswlib

    def build():
        index = hnswlib.Index(space="ip", dim=xb.shape[1])
        index.init_index(max_elements=len(xb), M=a.m, ef_construction=a.ef_construction, random_seed=1)
        index.add_items(xb, num_threads=a.threads)
        return index

    def search_of(index):
        def search(ef):
            index.set_ef(max(ef, a.k))
            return index.knn_query(xq, k=a.k, num_threads=a.threads)[0]
        return search

    return in_process("hnswlib", getattr(hnswlib, "__version__", "0.8"), build, search_of, xq, truth, a)


def build_faiss(xb, xq, truth, a):
    import faiss

    faiss.omp_set_num_threads(a.threads)

    def build():
        index = faiss.IndexHNSWFlat(xb.shape[1], a.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = a.ef_construction
        index.add(xb)
        return index

    def search_of(index):
        def search(ef):
            index.hnsw.efSearch = max(ef, a.k)
            return index.search(xq, a.k)[1]
        return search

    return in_process("faiss IndexHNSWFlat", faiss.__version__, build, search_of, xq, truth, a)


def build_usearch(xb, xq, truth, a, dtype):
    from usearch.index import Index
    import usearch

    def build():
        index = Index(ndim=xb.shape[1], metric="ip", dtype=dtype, connectivity=a.m, expansion_add=a.ef_construction)
        index.add(np.arange(len(xb)), xb, threads=a.threads)
        return index

    def search_of(index):
        def search(ef):
            index.expansion_search = max(ef, a.k)
            return index.search(xq, a.k, threads=a.threads).keys
        return search

    return in_process(f"usearch {dtype}", usearch.__version__, build, search_of, xq, truth, a)


def build_biomatch(gallery, queries, truth_path, a):
    """Builds the graph in a first ann_bench run (which also times a first
    round, discarded like every engine's warm-up); later rounds reuse the
    graph file and skip the quantisation check."""
    exe = ROOT / "target/release/ann_bench"
    cmd = [str(exe), "--gallery", str(gallery), "--queries", str(queries), "--truth", str(truth_path),
           "--threads", str(a.threads), "--m", str(a.m), "--ef-construction", str(a.ef_construction),
           "--ef", ",".join(map(str, a.efs)), "--k", str(a.k), "--repeats", str(a.repeats),
           "--graph", str(Path(a.work) / "biomatch.hnsw")]
    Path(a.work, "biomatch.hnsw").unlink(missing_ok=True)
    first = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)

    def timed():
        res = subprocess.run(cmd + ["--reuse", "--no-quant-check"], check=True, capture_output=True, text=True)
        return json.loads(res.stdout)["runs"]

    extra = {k: first[k] for k in ("isa", "open_s", "graph_file_bytes", "int8_rescore_top_k_identical_to_exact")}
    return Engine("biomatch", "this tree", first["build_s"], first["rss_delta_bytes"], timed, extra)


def build_hnsw_rs(gallery, queries, truth_path, a):
    """hnsw_rs, the Rust crate, in a process that keeps its index in memory:
    it prints its build figures, then one line of timed runs per line it
    reads, so every round searches the same index."""
    exe = ROOT / "target/release/hnsw_rs_bench"
    cmd = [str(exe), "--gallery", str(gallery), "--queries", str(queries), "--truth", str(truth_path),
           "--threads", str(a.threads), "--m", str(a.m), "--ef-construction", str(a.ef_construction),
           "--ef", ",".join(map(str, a.efs)), "--k", str(a.k), "--repeats", str(a.repeats)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    built = json.loads(proc.stdout.readline())

    def timed():
        proc.stdin.write("run\n")
        proc.stdin.flush()
        return json.loads(proc.stdout.readline())["runs"]

    return Engine("hnsw_rs", "0.3 (crates.io)", built["build_s"], built["rss_delta_bytes"], timed)


def median_runs(rounds):
    """Per beam width, the median QPS over rounds (recall is the same in every round)."""
    out = []
    for i, run in enumerate(rounds[0]):
        qps = sorted(r[i]["qps"] for r in rounds)
        out.append({"ef": run["ef"], "qps": qps[len(qps) // 2], "recall_at_k": run["recall_at_k"]})
    return out


def per_round_ratio(r, ref, ef, ref_ef):
    """Each round's QPS ratio at the two engines' chosen beam widths."""
    def qps(runs, e):
        return next(x["qps"] for x in runs if x["ef"] == e)
    return [qps(a, ef) / qps(b, ref_ef) for a, b in zip(r["rounds"], ref["rounds"])]


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
    p.add_argument("--repeats", type=int, default=3, help="passes per beam width in a round; the best counts")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds; the median counts")
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

    engines = []
    for engine in a.engines.split(","):
        print(f"== build {engine}", file=sys.stderr, flush=True)
        if engine == "biomatch":
            engines.append(build_biomatch(gpath, qpath, tpath, a))
        elif engine == "hnsw_rs":
            engines.append(build_hnsw_rs(gpath, qpath, tpath, a))
        elif engine == "hnswlib":
            engines.append(build_hnswlib(xb, xq, truth, a))
        elif engine == "faiss":
            engines.append(build_faiss(xb, xq, truth, a))
        elif engine in ("usearch", "usearch-i8"):
            engines.append(build_usearch(xb, xq, truth, a, "f32" if engine == "usearch" else "i8"))
        else:
            sys.exit(f"unknown engine {engine}")
    # Searches are timed in rounds, every engine once per round and the
    # order rotating, so that a slow spell of the shared machine lands on
    # all engines alike instead of on whichever ran during it.
    for rnd in range(a.rounds):
        shift = rnd % len(engines)
        for e in engines[shift:] + engines[:shift]:
            e.rounds.append(e.timed())
            print(f"round {rnd + 1} {e.name}: " + json.dumps(e.rounds[-1]), file=sys.stderr, flush=True)

    results = [dict(engine=e.name, version=e.version, build_s=e.build_s, rss_delta_bytes=e.rss_delta_bytes,
                    runs=median_runs(e.rounds), rounds=e.rounds, **e.extra) for e in engines]
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
                row["qps_ratio_per_round"] = per_round_ratio(r, ref, best["ef"], rb["ef"])
            row["build_ratio_vs_hnswlib"] = r["build_s"] / ref["build_s"]
        summary.append(row)
    doc = {"data": a.data, "n": len(xb), "dim": xb.shape[1], "queries": len(xq), "threads": a.threads,
           "m": a.m, "ef_construction": a.ef_construction, "k": k, "rounds": a.rounds, "results": results,
           "summary": summary}
    text = json.dumps(doc, indent=2)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(text)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
