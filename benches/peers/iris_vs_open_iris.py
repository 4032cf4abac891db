#!/usr/bin/env python3
"""Iris matching speed: open-iris 1.11.2 vs biomatch, same machine, same run.

Times open-iris's HammingDistanceMatcher (defaults: 31 rotations, normalised,
half matching) on the conformance pairs, then biomatch's 1:N iris scan on one
thread, and prints comparisons per second and the ratio.

usage (open-iris in its own venv):
  python3 -m venv /tmp/iris-venv && /tmp/iris-venv/bin/pip install open-iris==1.11.2
  cargo build --release -p biomatch-benches --bins
  /tmp/iris-venv/bin/python benches/peers/iris_vs_open_iris.py [--pairs 300] [--n 200000]
"""
import argparse
import json
import subprocess
import time
from pathlib import Path

from iris.io.dataclasses import IrisTemplate
from iris.nodes.matcher.hamming_distance_matcher import HammingDistanceMatcher

ROOT = Path(__file__).resolve().parents[2]
ap = argparse.ArgumentParser()
ap.add_argument("--pairs", type=int, default=300)
ap.add_argument("--n", type=int, default=200_000)
a = ap.parse_args()

lines = subprocess.run([str(ROOT / "target/release/iris_pairs"), "--n", str(a.pairs)], check=True,
                       capture_output=True, text=True).stdout.splitlines()
pairs = [(IrisTemplate.deserialize(p["probe"]), IrisTemplate.deserialize(p["gallery"]))
         for p in map(json.loads, lines)]
m = HammingDistanceMatcher()
t = time.perf_counter()
for p, g in pairs:
    m.run(p, g)
oi = len(pairs) / (time.perf_counter() - t)
out = subprocess.run([str(ROOT / "target/release/iris_scan"), "--n", str(a.n), "--threads", "1", "--reps", "3"],
                     check=True, capture_output=True, text=True).stdout
bm = json.loads(out.splitlines()[0])["comparisons_per_s"]
print(json.dumps({"open_iris_comparisons_per_s": oi, "biomatch_comparisons_per_s_1_thread": bm, "ratio": bm / oi}))
