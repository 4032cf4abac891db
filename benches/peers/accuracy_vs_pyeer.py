#!/usr/bin/env python3
"""ISO/IEC 19795-1 figures of every shared dataset: biomatch next to pyeer.

For each set, `biomatch bench accuracy` scores the templates with the real
matchers and writes its score files, report and DET/CMC plots under --out.
pyeer 0.5.6 then computes its statistics from the *same* score files in the
same run. The script prints both, their largest difference, and how long
each took for the metrics alone (biomatch re-reads the score files with
--genuine/--impostor, so both sides do the same work).

usage: accuracy_vs_pyeer.py [--shared ../shared/datasets] [--out docs/accuracy]
needs: pip install pyeer numpy "setuptools<81"
       cargo build --release -p biomatch-api --bin biomatch
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from pyeer.eer_info import get_eer_stats

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "target" / "release" / "biomatch"


def sets(shared):
    face = shared / "face" / "lfw_facenet128"
    yield "lfw_facenet128", "LFW FaceNet-128 (353 identities)", [
        "--modality", "face", "--input", str(face / "LFW_tensor.bytes"), "--dim", "128",
        "--labels", str(face / "LFW_labels.tsv")]
    voice = shared / "voice" / "librispeech_test_other_10spk" / "embeddings.csv"
    yield "librispeech_10spk", "LibriSpeech test-other, Resemblyzer-256 (10 speakers)", [
        "--modality", "voice", "--input", str(voice)]
    for s in ["fvc2002_db1_b", "fvc2002_db2_b", "nbis_samples"]:
        yield s, f"{s} (NBIS mindtct ISO templates, biomatch MCC)", [
            "--modality", "fingerprint", "--input", str(shared / "fingerprint" / s / "templates")]
    yield "synthetic_face", "synthetic face 512-d, 2000 x 5, noise 1.6", [
        "--modality", "face", "--synthetic", "--subjects", "2000", "--samples", "5", "--noise", "1.6"]
    yield "synthetic_voice", "synthetic voice 192-d, 1000 x 4, noise 1.6", [
        "--modality", "voice", "--synthetic", "--subjects", "1000", "--samples", "4", "--noise", "1.6"]
    yield "synthetic_iris", "synthetic iris (Daugman statistics), 300 x 3", [
        "--modality", "iris", "--synthetic", "--subjects", "300", "--samples", "3"]
    yield "synthetic_fingerprint", "synthetic minutiae, 100 x 4", [
        "--modality", "fingerprint", "--synthetic", "--subjects", "100", "--samples", "4"]


PAIRS = {"eer": "eer", "fmr100": "fmr100", "fmr1000": "fmr1000",
         "zero_fmr": "fmr0", "zero_fnmr": "fnmr0", "d_prime": "decidability"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=str(ROOT.parent / "shared" / "datasets"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "accuracy"))
    a = ap.parse_args()
    if not BIN.exists():
        sys.exit(f"{BIN} missing: cargo build --release -p biomatch-api --bin biomatch")
    rows = []
    for name, title, args in sets(Path(a.shared)):
        out = Path(a.out) / name
        report = json.loads(subprocess.run(
            [str(BIN), "bench", "accuracy", *args, "--out", str(out), "--title", title],
            check=True, capture_output=True, text=True).stdout)
        gen, imp = out / "genuine.txt", out / "impostor.txt"
        t = time.perf_counter()
        subprocess.run([str(BIN), "bench", "accuracy", "--genuine", str(gen), "--impostor", str(imp)],
                       check=True, capture_output=True)
        bm_s = time.perf_counter() - t
        t = time.perf_counter()
        ref = get_eer_stats(np.loadtxt(gen), np.loadtxt(imp))
        py_s = time.perf_counter() - t
        v = report["verification"]
        diff = max(abs(v[k] - float(getattr(ref, p))) for k, p in PAIRS.items())
        ident = report.get("identification", {})
        fnir = {f"fnir@fpir{p['fpir']}": p["fnir"] for p in ident.get("fnir_at_fpir", [])}
        row = {"set": name, "templates": report["source"]["templates"], "genuine": v["genuine"], "fmr10000": v["fmr10000"],
               "impostor": v["impostor"], "impostors_sampled": report["protocol"]["impostors_sampled"],
               **{k: v[k] for k in PAIRS}, "pyeer_eer": float(ref.eer), "max_abs_diff_vs_pyeer": diff,
               "rank1": ident.get("rank1"), **fnir,
               "metrics_seconds_biomatch": bm_s, "metrics_seconds_pyeer": py_s,
               "pyeer_over_biomatch_time": py_s / bm_s}
        rows.append(row)
        print(json.dumps(row))
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / "summary.json").write_text(json.dumps(rows, indent=2))
    print(f"\n{'set':<24} {'EER %':>7} {'FMR100':>7} {'FMR1000':>8} {'ZeroFMR':>8} {'rank1':>6} "
          f"{'FNIR@.01':>8} {'|d| pyeer':>9} {'time ratio':>10}")
    for r in rows:
        print(f"{r['set']:<24} {100 * r['eer']:>7.3f} {100 * r['fmr100']:>7.2f} {100 * r['fmr1000']:>8.2f} "
              f"{100 * r['zero_fmr']:>8.2f} {r['rank1'] or 0:>6.3f} {r.get('fnir@fpir0.01', 0):>8.3f} "
              f"{r['max_abs_diff_vs_pyeer']:>9.1e} {r['pyeer_over_biomatch_time']:>10.1f}")


if __name__ == "__main__":
    main()
