#!/usr/bin/env bash
# Load benchmark of movq-server on loopback with wrk (Debian package), bounded in time.
#   Benchmarks/server_load.sh [SECONDS_PER_RUN]      (default 10)
# Prints, side by side in one run: images/s and p50/p99 latency of
# /v1/images/generations (n = 1, demo prior, 8 steps) at concurrency 1, 4, 16, 64
# with batching on (--max-batch 8 --batch-window-ms 10) and off (--max-batch 1);
# then an overload run (queue depth 4, concurrency 64) counting statuses (only
# 200 and 429 are expected), and two replicas behind nginx with one killed
# mid-run (only 200s expected beyond nginx's retry).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-10}"
BIN=.build/release/movq-server
# MOVQ_SKIP_BUILD=1 uses the binary as built (e.g. by the test build's flags).
[ -n "${MOVQ_SKIP_BUILD:-}" ] || swift build -c release --product movq-server >&2
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

cat > "$WORK/gen.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"class": 3, "n": 1, "seed": 1, "steps": 8}'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  io.write(string.format("requests %d errors(connect %d, read %d, write %d, timeout %d) p50 %.1f ms p99 %.1f ms\n",
    summary.requests, summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
LUA
# Status counts: wrk's own "Non-2xx or 3xx responses" line, and the server's log lines.

serve() {  # port, extra options...
  local port=$1; shift
  "$BIN" --port "$port" --threads 2 "$@" 2>"$WORK/server-$port.log" &
  for _ in $(seq 1 100); do curl -sf "localhost:$port/healthz" >/dev/null && return 0; sleep 0.1; done
  echo "server on $port did not start" >&2; cat "$WORK/server-$port.log" >&2; return 1
}

echo "## throughput and latency (${SECS}s per run, 2 compute threads)"
serve 18180 --max-batch 8 --batch-window-ms 10 --queue-depth 256
serve 18181 --max-batch 1 --queue-depth 256
for c in 1 4 16 64; do
  for mode in on off; do
    port=18180; [ $mode = off ] && port=18181
    out=$(wrk -t1 -c$c -d${SECS}s --timeout 60s -s "$WORK/gen.lua" "http://127.0.0.1:$port/v1/images/generations" | grep -E "Non-2xx|^requests" | tr '\n' ' ')
    reqs=$(echo "$out" | awk '{print $2}')
    echo "concurrency $c batching $mode: $(awk -v r=$reqs -v s=$SECS 'BEGIN {printf "%.1f images/s", r / s}') $out"
  done
done
kill %1 %2 2>/dev/null || true; wait 2>/dev/null || true

echo "## overload: queue depth 4, concurrency 64"
serve 18182 --max-batch 8 --batch-window-ms 10 --queue-depth 4
wrk -t1 -c64 -d${SECS}s --timeout 60s -s "$WORK/gen.lua" "http://127.0.0.1:18182/v1/images/generations" | grep -E "Non-2xx|^requests"
echo "(Non-2xx here are 429s; the server log counts them by status)"
grep -c 'status=429' "$WORK/server-18182.log" | sed 's/^/429 answers logged: /'
grep -c 'status=200' "$WORK/server-18182.log" | sed 's/^/200 answers logged: /'
grep -vc 'status=200\|status=429\|listening\|serving' "$WORK/server-18182.log" | sed 's/^/other log lines: /' || true
kill %1 2>/dev/null || true; wait 2>/dev/null || true

echo "## schemathesis against Docs/openapi.yaml (property-based API fuzzing)"
serve 18186 --max-batch 8 --batch-window-ms 5 --max-body-bytes 1048576 --api-key bench-key
curl -sf localhost:18186/healthz >/dev/null
PY=$(Tools/setup_venv.sh)
"$(dirname "$PY")/schemathesis" --config-file Benchmarks/schemathesis.toml run Docs/openapi.yaml --url http://127.0.0.1:18186 -n "${MOVQ_SCHEMATHESIS_EXAMPLES:-100}" \
  -H "Authorization: Bearer bench-key" --request-timeout 60 2>&1 | tail -25 || true
kill %1 2>/dev/null || true; wait 2>/dev/null || true

echo "## two replicas behind nginx, one killed mid-run"
serve 18183 --max-batch 8 --batch-window-ms 10
serve 18184 --max-batch 8 --batch-window-ms 10
cat > "$WORK/nginx.conf" <<NGINX
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  upstream movq { server 127.0.0.1:18183 max_fails=1 fail_timeout=5s; server 127.0.0.1:18184 max_fails=1 fail_timeout=5s; }
  server {
    listen 127.0.0.1:18185;
    location / { proxy_pass http://movq; proxy_next_upstream error timeout http_502 non_idempotent; proxy_read_timeout 60s; }
  }
}
NGINX
nginx -c "$WORK/nginx.conf" -p "$WORK"
sleep 0.5
( sleep $((SECS / 2)); kill "$(pgrep -f -- '--port 18184' | head -1)" ) &
wrk -t1 -c16 -d${SECS}s --timeout 60s -s "$WORK/gen.lua" "http://127.0.0.1:18185/v1/images/generations" | grep -E "Non-2xx|^requests" || true
echo "(no Non-2xx line: every request answered 200)"
nginx -c "$WORK/nginx.conf" -p "$WORK" -s stop

SOAK="${MOVQ_SOAK_SECONDS:-600}"
echo "## soak: ${SOAK}s at concurrency 16 (generations and decodes), resident memory sampled every 30 s"
serve 18187 --max-batch 8 --batch-window-ms 10 --queue-depth 64
PID=$(pgrep -f -- '--port 18187' | head -1)
# A [1, 8, 8, 8] float32 latent for the demo decoder (.npy version 1.0, written by hand).
python3 - "$WORK/latent.npy" <<'PY'
import array, struct, sys
header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 8, 8, 8), }"
header += " " * (63 - (10 + len(header)) % 64) + "\n"
data = array.array("f", [((i * 37) % 17) / 17 - 0.5 for i in range(512)]).tobytes()
open(sys.argv[1], "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data)
PY
cat > "$WORK/decode.lua" <<LUA
wrk.method = "POST"
local f = io.open("$WORK/latent.npy", "rb"); wrk.body = f:read("*all"); f:close()
wrk.headers["Content-Type"] = "application/octet-stream"
LUA
( for i in $(seq 0 30 "$SOAK"); do
    echo "t=${i}s rss=$(awk '/VmRSS/ {print $2}' /proc/$PID/status) kB"; sleep 30
  done ) &
SAMPLER=$!
wrk -t1 -c8 -d${SOAK}s --timeout 60s -s "$WORK/gen.lua" "http://127.0.0.1:18187/v1/images/generations" > "$WORK/soak-gen.txt" &
GEN=$!
wrk -t1 -c8 -d${SOAK}s --timeout 60s -s "$WORK/decode.lua" "http://127.0.0.1:18187/v1/decode" | grep -E "Non-2xx|requests in|Socket errors" | sed 's/^/decodes: /'
wait $GEN
grep -E "Non-2xx|^requests|Socket errors" "$WORK/soak-gen.txt" | sed 's/^/generations: /'
kill $SAMPLER 2>/dev/null || true
echo "statuses logged: $(grep -o 'status=[0-9]*' "$WORK/server-18187.log" | sort | uniq -c | tr '\n' ' ')"
