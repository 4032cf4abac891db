#!/usr/bin/env python3
"""Score the iris conformance pairs with open-iris (the oracle).

usage:
  cargo run --release -p biomatch-benches --bin iris_pairs -- --n 10000 --seed 2026 > /tmp/pairs.jsonl
  python3 -m venv /tmp/iris-venv && /tmp/iris-venv/bin/pip install open-iris==1.11.2
  /tmp/iris-venv/bin/python benches/peers/iris_open_iris_oracle.py /tmp/pairs.jsonl \
      > benches/peers/iris_oracle_open_iris_1.11.2.csv

Writes `pair,config,distance,shift`; distances are Python repr() of the
float64, so they round-trip exactly. Configs:
  default  HammingDistanceMatcher() (rotation 15, normalise, half matching)
  no_half  hamming_distance(normalise=True, separate_half_matching=False)
  plain    hamming_distance(normalise=False, separate_half_matching=True)
  simple   SimpleHammingDistanceMatcher() (rotation 15, no normalisation)
The shift comes from the same utils functions the matchers' run() calls; the
script asserts that run() returns the same distance.
"""
import json
import sys

import iris
from iris.io.dataclasses import IrisTemplate
from iris.nodes.matcher.hamming_distance_matcher import HammingDistanceMatcher
from iris.nodes.matcher.simple_hamming_distance_matcher import SimpleHammingDistanceMatcher
from iris.nodes.matcher.utils import hamming_distance, simple_hamming_distance

assert iris.__version__ == "1.11.2", iris.__version__
default = HammingDistanceMatcher()
simple = SimpleHammingDistanceMatcher()
print("pair,config,distance,shift")
for i, line in enumerate(open(sys.argv[1])):
    pair = json.loads(line)
    p = IrisTemplate.deserialize(pair["probe"])
    g = IrisTemplate.deserialize(pair["gallery"])
    rows = {
        "default": hamming_distance(p, g, 15, True, 0.45, 0.00005, True),
        "no_half": hamming_distance(p, g, 15, True, 0.45, 0.00005, False),
        "plain": hamming_distance(p, g, 15, False, 0.45, 0.00005, True),
        "simple": simple_hamming_distance(p, g, 15, False, 0.45, 0.00005),
    }
    assert rows["default"][0] == default.run(p, g)
    assert rows["simple"][0] == simple.run(p, g)
    for name, (d, s) in rows.items():
        print(f"{i},{name},{float(d)!r},{int(s)}")
