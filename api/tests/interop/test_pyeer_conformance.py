"""Metric conformance: `biomatch bench accuracy` against pyeer 0.5.6 itself,
on the example score files shipped in the pyeer package (non-histogram format).

pyeer's histogram-format examples hold impostor counts per score bin, an input
form biomatch does not read; they are not compared.
"""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import pyeer
from pyeer.eer_info import get_eer_stats

ROOT = Path(__file__).resolve().parents[3]
BIN = os.environ.get("BIOMATCH_BIN", str(ROOT / "target" / "debug" / "biomatch"))
EXAMPLES = Path(pyeer.__file__).parent / "example_files" / "non_hist"
EXPERIMENTS = sorted(p.name[: -len("_true.txt")] for p in EXAMPLES.glob("*_true.txt"))


def test_examples_are_present():
    assert len(EXPERIMENTS) >= 3, EXPERIMENTS


@pytest.mark.parametrize("exp", EXPERIMENTS)
def test_biomatch_equals_pyeer(exp):
    gen, imp = EXAMPLES / f"{exp}_true.txt", EXAMPLES / f"{exp}_false.txt"
    ref = get_eer_stats(np.loadtxt(gen), np.loadtxt(imp))
    out = subprocess.run([BIN, "bench", "accuracy", "--genuine", str(gen), "--impostor", str(imp)],
                         check=True, capture_output=True, text=True).stdout
    got = json.loads(out)["verification"]
    pairs = {
        "eer": ref.eer, "eer_low": ref.eer_low, "eer_high": ref.eer_high,
        "fmr100": ref.fmr100, "fmr1000": ref.fmr1000, "zero_fmr": ref.fmr0, "zero_fnmr": ref.fnmr0,
        "eer_threshold": ref.eer_th, "d_prime": ref.decidability,
    }
    for key, want in pairs.items():
        assert abs(got[key] - float(want)) <= 1e-6, f"{exp} {key}: biomatch {got[key]} pyeer {want}"
