#!/usr/bin/env python3
"""Fingerprint matching speed: NIST bozorth3 (nbis-py 0.1.3) vs biomatch, same
machine, same run, one thread.

bozorth3 compares minutiae that nbis-py's mindtct extracts from the FVC2002
DB1_B images in ../shared (the same extractor that made the ISO templates);
biomatch runs its 1:N path (prepared probe, prepared gallery) on the ISO
templates of the same images. Prints matches per second and the ratio.

usage:
  python3 -m venv /tmp/peers-venv && /tmp/peers-venv/bin/pip install nbis-py==0.1.3
  cargo build --release -p biomatch-benches --bins
  /tmp/peers-venv/bin/python benches/peers/bozorth3_vs_biomatch.py [--pairs 2000]
"""
import argparse
import json
import subprocess
import time
from pathlib import Path

import nbis

ROOT = Path(__file__).resolve().parents[2]
SET = ROOT.parent / "shared/datasets/fingerprint/fvc2002_db1_b"
ap = argparse.ArgumentParser()
ap.add_argument("--pairs", type=int, default=2000)
a = ap.parse_args()

ex = nbis.new_nbis_extractor(nbis.NbisExtractorSettings(
    min_quality=0.0, get_center=False, check_fingerprint=False, compute_nfiq2=False, ppi=500.0))
images = sorted((SET / "images").glob("*.tif"))
minutiae = [ex.extract_minutiae(p.read_bytes()) for p in images]
pairs = [(i, j) for i in range(len(minutiae)) for j in range(len(minutiae)) if i != j][: a.pairs]
t = time.perf_counter()
for i, j in pairs:
    minutiae[i].compare(minutiae[j])
b3 = len(pairs) / (time.perf_counter() - t)
out = subprocess.run([str(ROOT / "target/release/fingerprint_throughput"), "--threads", "1",
                      "--root", str(SET.parent), "--sets", SET.name], check=True, capture_output=True, text=True).stdout
bm = json.loads(out.splitlines()[0])
print(json.dumps({"bozorth3_matches_per_s": b3, "biomatch_1_n_matches_per_s": bm["one_to_n_per_s_per_core"],
                  "ratio_1_n": bm["one_to_n_per_s_per_core"] / b3,
                  "biomatch_1_1_from_iso_per_s": bm["one_to_one_per_s_per_core"]}))
