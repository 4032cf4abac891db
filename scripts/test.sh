#!/usr/bin/env bash
# Runs every test of the project:
#   1. the Rust workspace: unit and property tests beside the code, and the
#      black-box tests that start the real `biomatch` server on loopback;
#   2. the Python tests: grpcio interop (stubs generated from proto/) and
#      metric conformance against pyeer.
# Needs only the Rust toolchain and python3; Python packages go into .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${BIOMATCH_VENV:-.venv}
if ! "$venv/bin/python" -c "import grpc_tools, pytest, pyeer.eer_info, schemathesis" 2>/dev/null; then
  echo "== setting up $venv for the Python interop and metric-conformance tests"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r api/tests/interop/requirements.txt
fi

echo "== cargo test"
cargo test --workspace --locked

echo "== Python: grpcio interop, pyeer conformance"
cargo build --locked -p biomatch-api --bin biomatch
BIOMATCH_BIN=target/debug/biomatch "$venv/bin/python" -m pytest -q api/tests/interop
