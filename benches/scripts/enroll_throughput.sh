#!/usr/bin/env bash
# Batch-enrollment throughput: one fresh release server per source, each job
# started with `biomatch job start` and followed until it reports SUCCEEDED
# (every record fsynced). Inputs come from the enroll_inputs bin:
#   target/release/enroll_inputs --out /tmp/enr --embeddings 200000 --fingerprints 20000
#   target/release/enroll_inputs --out /tmp/enr128 --embeddings 400000 --dim 128 --fingerprints 0
# Usage: benches/scripts/enroll_throughput.sh [work-dir]   (default /tmp/enrbench)
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-/tmp/enrbench}
bin=target/release/biomatch
addr=127.0.0.1:50071
export BIOMATCH_SERVER=http://$addr
mkdir -p "$work"
server=""
stop() { [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null; server=""; }
trap stop EXIT
run() { # name, job-start arguments...
  local name=$1
  shift
  stop
  rm -rf "$work/data"
  # A throwaway local server: matching calls without credentials.
  BIOMATCH_GRPC_ANONYMOUS=true "$bin" serve --data-dir "$work/data" --grpc-addr "$addr" \
    --http-addr 127.0.0.1:18071 >"$work/$name.server.log" 2>&1 &
  server=$!
  sleep 2
  "$bin" job start "$@" --job-id "$name" 2>"$work/$name.client.log" | tail -1 >"$work/$name.json" || { cat "$work/$name.client.log"; exit 1; }
  echo "$name $(cat "$work/$name.json") disk=$(du -sh "$work/data" | cut -f1)"
}
run npy512 /tmp/enr/faces.npy --modality face --labels /tmp/enr/faces.txt --batch-size 8192
run ndjson512 /tmp/enr/faces.ndjson --batch-size 8192
run npy128 /tmp/enr128/faces.npy --modality voice --labels /tmp/enr128/faces.txt --batch-size 8192
run ndjson128 /tmp/enr128/faces.ndjson --batch-size 8192
run iso /tmp/enr/fingerprints --format iso-dir --batch-size 4096
