#!/usr/bin/env bash
# What authentication and auditing cost on the gRPC path. One release server
# and one gallery; closed-loop Verify calls (cheap, so that per-call overhead
# shows) with no credentials (anonymous mode), with an API key (checked once,
# then from the key cache) and with a JWT access token (signature plus a
# session and a user lookup per call), interleaved over rounds so that drift
# on a shared machine hits all three alike. Every call, anonymous included,
# writes an audit entry. Prints one JSON line per run, then a summary.
#
#   cargo build --release -p biomatch-api && benches/scripts/auth_overhead.sh [rounds] [seconds]
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${BIOMATCH_BIN:-target/release/biomatch}
ROUNDS=${1:-3}
SECS=${2:-10}
D=$(mktemp -d)
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$D"' EXIT
export BIOMATCH_ADMIN_PASSWORD=bench-admin-password BIOMATCH_LOG=warn
"$B" admin bootstrap --data-dir "$D/d" --email bench@example.org >/dev/null
KEY=$("$B" admin api-key --data-dir "$D/d" --email bench@example.org --name bench --key-only \
  --scopes biometric:enroll,biometric:verify,biometric:identify)
BIOMATCH_GRPC_ANONYMOUS=true BIOMATCH_RATE_LIMIT_PER_MINUTE=0 "$B" serve --data-dir "$D/d" \
  --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 --port-file "$D/port" --http-port-file "$D/http" &
PID=$!
for _ in $(seq 1 600); do [ -s "$D/port" ] && break; sleep 0.1; done
GRPC="http://$(cat "$D/port")"
TOKEN=$(python3 - "$(cat "$D/http")" <<'PY'
import json, sys, urllib.request
req = urllib.request.Request(f"http://{sys.argv[1]}/api/v1/auth/login", method="POST",
    data=json.dumps({"email": "bench@example.org", "password": "bench-admin-password"}).encode(),
    headers={"content-type": "application/json"})
print(json.load(urllib.request.urlopen(req))["access_token"])
PY
)
"$B" bench load --server "$GRPC" --api-key "$KEY" --prefix auth --gallery 10000 --dim 512 \
  --duration 1 --mix verify=1 --no-progress >/dev/null
for round in $(seq 1 "$ROUNDS"); do
  for cred in none api_key jwt; do
    case $cred in
      none) args=() ;;
      api_key) args=(--api-key "$KEY") ;;
      jwt) args=(--api-key "$TOKEN") ;;
    esac
    "$B" bench load --server "$GRPC" "${args[@]}" --prefix auth --no-seed --gallery 10000 --dim 512 \
      --mix verify=1 --clients 8 --duration "$SECS" --no-progress \
      | python3 -c "import json,sys; r=json.load(sys.stdin); a=r['all']; print(json.dumps({'round': $round, 'credentials': '$cred', 'calls_per_s': round(r['throughput_per_second']), 'p50_ms': a['latency_ms']['p50'], 'p99_ms': a['latency_ms']['p99'], 'errors': a['errors']}))"
  done
done | tee "$D/runs.jsonl"
python3 - "$D/runs.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in runs:
    by.setdefault(r["credentials"], []).append(r["calls_per_s"])
base = statistics.median(by["none"])
for k, v in by.items():
    m = statistics.median(v)
    print(json.dumps({"credentials": k, "median_calls_per_s": m, "ratio_to_anonymous": round(m / base, 3)}))
PY
