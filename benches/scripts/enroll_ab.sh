#!/usr/bin/env bash
# Same-run A/B of batch-enrollment throughput between two builds of the
# server: for each round, each build enrolls each source into a fresh data
# directory (one server per run, `biomatch job start`, records per second
# until SUCCEEDED). Inputs as for enroll_throughput.sh (/tmp/enr).
# Usage: benches/scripts/enroll_ab.sh BASE_BIN NEW_BIN [rounds] [work-dir]
set -euo pipefail
base=$1
new=$2
rounds=${3:-3}
work=${4:-/tmp/enrab}
addr=127.0.0.1:50072
export BIOMATCH_SERVER=http://$addr
server=""
stop() { [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null; server=""; }
trap stop EXIT
one() { # round, bin, name, job-start arguments... (runs in this shell, so that stop sees the server)
  local round=$1 bin=$2 name=$3
  shift 3
  stop
  rm -rf "$work/data"
  mkdir -p "$work"
  BIOMATCH_GRPC_ANONYMOUS=true "$bin" serve --data-dir "$work/data" --grpc-addr "$addr" \
    --http-addr 127.0.0.1:18072 >"$work/server.log" 2>&1 &
  server=$!
  sleep 2
  local rps
  rps=$("$bin" job start "$@" --job-id "$name" 2>"$work/client.log" | tail -1 |
    sed -n 's/.*"records_per_second":\([0-9.]*\).*/\1/p') || { cat "$work/client.log"; exit 1; }
  echo "round $round $bin $name $rps"
  stop
}
for r in $(seq "$rounds"); do
  for bin in "$base" "$new"; do
    one "$r" "$bin" npy512 /tmp/enr/faces.npy --modality face --labels /tmp/enr/faces.txt --batch-size 8192
    one "$r" "$bin" ndjson512 /tmp/enr/faces.ndjson --batch-size 8192
    one "$r" "$bin" iso /tmp/enr/fingerprints --format iso-dir --batch-size 4096
  done
done
