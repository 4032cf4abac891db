#!/usr/bin/env python3
"""Markdown tables from ann_vs_hnswlib_faiss.py results (bench-out/ann-*.json):
one row per engine with build time, index memory, and QPS at the smallest
beam that reaches the recall target, with ratios to hnswlib; then every
engine's recall/QPS curve.

usage: ann_report.py bench-out/ann-1m-128.json [...] [--target 0.95]
"""
import argparse
import json

from ann_vs_hnswlib_faiss import at_recall as best


def main():
    p = argparse.ArgumentParser()
    p.add_argument("files", nargs="+")
    p.add_argument("--target", type=float, default=0.95)
    a = p.parse_args()
    for f in a.files:
        d = json.load(open(f))
        print(f"**{d['data']}**: {d['n']:,} x {d['dim']}, {d['queries']:,} queries, top-{d['k']}, "
              f"{d['threads']} threads, M={d['m']}, efConstruction={d['ef_construction']}\n")
        ref = next((r for r in d["results"] if r["engine"] == "hnswlib"), None)
        rb = ref and best(ref["runs"], a.target)
        print(f"| engine | build s | x hnswlib | index MiB | QPS at recall@{d['k']} >= {a.target} (ef, recall) | x hnswlib |")
        print("|---|---|---|---|---|---|")
        for r in d["results"]:
            b = best(r["runs"], a.target)
            qps = f"{b['qps']:,.0f} ({b['ef']}, {b['recall_at_k']:.4f})" if b else "not reached"
            ratio = f"{b['qps'] / rb['qps']:.2f}" if b and rb else "-"
            bratio = f"{r['build_s'] / ref['build_s']:.2f}" if ref and ref["build_s"] > 0 else "-"
            print(f"| {r['engine']} | {r['build_s']:.1f} | {bratio} | {r['rss_delta_bytes'] / 2**20:,.0f} | {qps} | {ratio} |")
        print()
        efs = sorted({run["ef"] for r in d["results"] for run in r["runs"]})
        print("| engine | " + " | ".join(f"ef {e}" for e in efs) + " |")
        print("|---|" + "---|" * len(efs))
        for r in d["results"]:
            by = {run["ef"]: run for run in r["runs"]}
            cells = [f"{by[e]['recall_at_k']:.4f} @ {by[e]['qps']:,.0f}" if e in by else "" for e in efs]
            print(f"| {r['engine']} | " + " | ".join(cells) + " |")
        for row in d.get("summary", []):
            per = row.get("qps_ratio_per_round")
            if per and row["engine"] != "hnswlib":
                print(f"\n{row['engine']}: QPS ratio to hnswlib per timing round: "
                      + ", ".join(f"{x:.2f}" for x in per))
        extra = next((r for r in d["results"] if r["engine"] == "biomatch"), None)
        if extra:
            print(f"\nbiomatch: graph file {extra['graph_file_bytes'] / 2**20:,.0f} MiB, opened in "
                  f"{extra['open_s'] * 1000:.0f} ms; int8 + rescore top-{d['k']} identical to exact f32 on "
                  f"{extra['int8_rescore_top_k_identical_to_exact'] * 100:.1f}% of queries; kernel flavour {extra['isa']}.")
        print()


if __name__ == "__main__":
    main()
