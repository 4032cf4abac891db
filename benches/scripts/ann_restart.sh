#!/usr/bin/env bash
# Restart of a large indexed gallery: seconds from starting `biomatch serve`
# until the first Identify is answered, and the server's resident memory
# right then. The gallery is filled and optimised beforehand by
# `gallery_load` (see BENCHMARKS.md). With root, each run starts from a cold
# page cache (`echo 3 > /proc/sys/vm/drop_caches`); otherwise warm. Resident
# memory is reported in all and its anonymous part (the rest is mapped file
# pages: segments and graphs, which the kernel can drop and re-read).
#
# usage: benches/scripts/ann_restart.sh DATA_DIR PROBE.json [RUNS] [MODALITY]
set -euo pipefail
cd "$(dirname "$0")/../.."
data=$1 probe=$2 runs=${3:-3} modality=${4:-face}
bin=target/release/biomatch
[ -x "$bin" ] || cargo build --release --locked -p biomatch-api --bin biomatch
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for run in $(seq "$runs"); do
  cache=warm
  if sync && (echo 3 > /proc/sys/vm/drop_caches) 2>/dev/null; then cache=cold; fi
  rm -f "$tmp/port"
  t0=$(date +%s.%N)
  BIOMATCH_GRPC_ANONYMOUS=true BIOMATCH_LOG=warn BIOMATCH_ANN_AUTO_OPTIMIZE=false \
    "$bin" serve --data-dir "$data" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
    --port-file "$tmp/port" >/dev/null 2>"$tmp/log" &
  pid=$!
  until [ -s "$tmp/port" ]; do
    kill -0 "$pid" 2>/dev/null || { cat "$tmp/log"; exit 1; }
    sleep 0.005
  done
  until "$bin" identify --server "http://$(cat "$tmp/port")" --modality "$modality" --search ann \
      --input "$probe" >"$tmp/answer" 2>/dev/null; do
    sleep 0.005
  done
  t1=$(date +%s.%N)
  rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  anon_kib=$(awk '/RssAnon/ {print $2}' "/proc/$pid/status")
  kill "$pid"; wait "$pid" || true
  printf '{"run": %d, "page_cache": "%s", "first_answer_s": %.3f, "rss_mib": %.1f, "anon_mib": %.1f, "top1": %s}\n' \
    "$run" "$cache" "$(echo "$t1 - $t0" | bc -l)" "$(echo "$rss_kib / 1024" | bc -l)" "$(echo "$anon_kib / 1024" | bc -l)" \
    "$(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["candidates"][0]["record_id"]))' "$tmp/answer")"
done
