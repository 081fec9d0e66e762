#!/usr/bin/env bash
# One command, end to end on an embedded local stack: installs what is missing, builds
# penne, starts mongosim (the in-repo MongoDB replica-set simulator), redis-server (penne's
# checkpoints, write-ahead manifest and leases), a throw-away Ceph RADOS Gateway (a real S3)
# and Prometheus (scraping penne), all on free loopback ports with their data in one
# directory; runs penne against them, drives a change workload through the MongoDB C driver
# while printing live progress (from penne's /metrics and /ready), stops penne gracefully,
# downloads the bucket and checks independently that every event landed exactly once, then
# prints a summary (with a PromQL answer from the Prometheus). Ctrl-C stops everything.
#   OPS=50000 COLLS=10 RATE=5000 scripts/demo.sh   # size and pace (ops/s, 0: unthrottled)
#   DEMO_DIR=/tmp/demo scripts/demo.sh             # keep the output somewhere known
#   DEST=local scripts/demo.sh                     # write to a local directory instead of S3
#   PENNE_BUILD_DIR=build/x scripts/demo.sh        # use (and update) an existing build tree
set -euo pipefail
cd "$(dirname "$0")/.."

OPS="${OPS:-20000}"
COLLS="${COLLS:-5}"
RATE="${RATE:-2000}"
DEST="${DEST:-s3}"

echo "==> installing dependencies (apt, only what is missing)"
scripts/install-deps.sh
if [ -n "${PENNE_BUILD_DIR:-}" ]; then
  bin="$PENNE_BUILD_DIR"
  echo "==> building penne, mongosim and penne-loadgen in $bin"
  cmake --build "$bin" --target penne mongosim penne-loadgen
else
  bin=build/release
  echo "==> building penne, mongosim and penne-loadgen (release)"
  cmake --preset release >/dev/null
  cmake --build --preset release --target penne mongosim penne-loadgen
fi

work="${DEMO_DIR:-$(mktemp -d /tmp/penne-demo-XXXXXX)}"
mkdir -p "$work"
# A reused directory: nothing of the last run may be mistaken for this one's (logs are polled).
rm -rf "$work/out" "$work/state" "$work/redis" "$work/prometheus" "$work"/*.log
# The stack's processes run in their own sessions (setsid), so that Ctrl-C reaches only this
# script, which then stops them in order (penne gracefully, with SIGTERM).
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$DEST" = s3 ]; then tests/support/rgw/rgw.sh stop "$work/rgw" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
trap 'echo; echo "==> interrupted: stopping the stack"; exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# wait_until N command args…: runs the command every 0.1 s, at most N times, until it succeeds.
wait_until() {
  local i tries=$1
  shift
  for ((i = 0; i < tries; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

if [ "$DEST" = s3 ]; then
  echo "==> starting a Ceph RADOS Gateway (S3) in $work/rgw"
  tests/support/rgw/rgw.sh stop "$work/rgw" >/dev/null 2>&1 || true
  rm -rf "$work/rgw"
  RGW_OWNER_PID=$$ tests/support/rgw/rgw.sh start "$work/rgw" demoaccesskey demosecretkey0123456789 \
    | tee "$work/rgw.log"
  # shellcheck disable=SC1091
  . "$work/rgw/env"
  # The standard AWS variables are all penne (and its `penne s3` tools) need.
  export AWS_ACCESS_KEY_ID="$RGW_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$RGW_SECRET_KEY"
  export AWS_REGION="$RGW_REGION" AWS_ENDPOINT_URL="$RGW_ENDPOINT" AWS_EC2_METADATA_DISABLED=true
  bucket=penne-demo
  "$bin/app/penne" s3 mb "s3://$bucket"
fi

echo "==> starting mongosim"
setsid "$bin/tests/mongosim/mongosim" --port 0 >"$work/mongosim.log" 2>&1 &
pids+=($!)
wait_until 100 grep -q "mongosim listening on" "$work/mongosim.log" || true
addr=$(grep -o "listening on [0-9.:]*" "$work/mongosim.log" | awk '{print $3}')
[ -n "$addr" ] || { echo "mongosim did not start:"; cat "$work/mongosim.log"; exit 1; }
uri="mongodb://$addr/?directConnection=true"
echo "    mongosim at $uri"

echo "==> starting redis-server"
redis_port=$(free_port)
mkdir -p "$work/redis"
setsid redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work/redis" --save '' \
  --appendonly no >"$work/redis.log" 2>&1 &
pids+=($!)
redis_up() { [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ]; }
wait_until 100 redis_up \
  || { echo "redis-server did not start:"; cat "$work/redis.log"; exit 1; }
echo "    redis at redis://127.0.0.1:$redis_port"

metrics_port=$(free_port)
cat >"$work/penne.toml" <<TOML
[mongodb]
uri = "$uri"
max_await_ms = 500

[[watch]]
level = "database"
database = "demo"

[batch]
max_events = 2000
max_age_ms = 1000

[output]
format = "jsonl"
compression = "zstd"
key_layout = "date_hour"
prefix = "cdc"

$(if [ "$DEST" = s3 ]; then printf '[destination]\ntype = "s3"\n\n[s3]\nbucket = "%s"\n' "$bucket"
  else printf '[destination]\ntype = "local"\npath = "%s"\n' "$work/out"; fi)

[state]
type = "redis"
url = "redis://127.0.0.1:$redis_port"
key_prefix = "demo"

[lease]
ttl_ms = 10000

[metrics]
port = $metrics_port

[log]
progress_interval_ms = 1000
TOML

echo "==> starting Prometheus (scraping penne every second)"
prom_port=$(free_port)
cat >"$work/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: penne
    static_configs:
      - targets: ["127.0.0.1:$metrics_port"]
YAML
setsid prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prometheus" \
  --web.listen-address="127.0.0.1:$prom_port" >"$work/prometheus.log" 2>&1 &
pids+=($!)
prom="http://127.0.0.1:$prom_port"
wait_until 300 curl -sf "$prom/-/ready" \
  || { echo "Prometheus did not start:"; tail -20 "$work/prometheus.log"; exit 1; }
echo "    Prometheus at $prom"

echo "==> starting penne (config $work/penne.toml, log $work/penne.log)"
setsid "$bin/app/penne" run -c "$work/penne.toml" >"$work/penne.log" 2>&1 &
penne_pid=$!
pids+=("$penne_pid")
wait_until 300 grep -q "change stream open" "$work/penne.log" \
  || { echo "penne did not start:"; tail -20 "$work/penne.log"; exit 1; }
grep -o "penne [^ ]* starting: .*" "$work/penne.log" | sed -n 1p | sed 's/^/    /' || true
ops="http://127.0.0.1:$metrics_port"
echo "    /metrics /ready /status at $ops"

# One scrape of penne's /metrics, summed per family: "written objects bytes lag".
scrape() {
  curl -sf "$ops/metrics" | awk '
    /^penne_events_written_total/ { w += $NF }
    /^penne_objects_written_total/ { o += $NF }
    /^penne_bytes_written_total/ { b += $NF }
    /^penne_lag_seconds/ { if (!seen || $NF > l) l = $NF; seen = 1 }
    END { printf "%d %d %d %s\n", w, o, b, seen ? l : "-" }'
}
human() { numfmt --to=iec-i --suffix=B "$1" 2>/dev/null || echo "$1 B"; }

echo "==> writing $OPS operations into $COLLS collections through the MongoDB C driver" \
  "($( [ "$RATE" = 0 ] && echo "as fast as possible" || echo "$RATE ops/s"))"
setsid "$bin/bench/e2e/penne-loadgen" write --uri "$uri" --db demo --collections "$COLLS" --ops "$OPS" \
  --rate "$RATE" >"$work/loadgen.log" 2>&1 &
loadgen_pid=$!
pids+=("$loadgen_pid")

# Live progress, one line a second, until the load is done and penne has written it all.
start=$(date +%s)
prev=0
stalled=0
events=""
row() { printf "    %5s | %8s | %-26s | %6s | %7s | %9s | %s\n" "$@"; }
row time produced "written by penne (rate)" lag objects bytes /ready
while :; do
  sleep 1
  if [ -z "$events" ] && ! kill -0 "$loadgen_pid" 2>/dev/null; then
    wait "$loadgen_pid" || { echo "penne-loadgen failed:"; cat "$work/loadgen.log"; exit 1; }
    events=$(grep -o "events=[0-9]*" "$work/loadgen.log" | cut -d= -f2)
  fi
  produced=$(grep -o "^loadgen: [0-9]*/" "$work/loadgen.log" | tail -1 | tr -dc 0-9 || true)
  read -r written objects bytes lag < <(scrape || echo "0 0 0 -")
  ready=$(curl -s -o /dev/null -w '%{http_code}' "$ops/ready" || true)
  [ "$ready" = 200 ] && ready="ready" || ready="not ready ($ready)"
  [ "$lag" = - ] || lag=$(printf "%.1fs" "$lag")
  row "$(($(date +%s) - start))s" "${events:-${produced:-0}}" \
    "$(printf "%8d events (%6d/s)" "$written" $((written - prev)))" "$lag" "$objects" \
    "$(human "$bytes")" "$ready"
  [ "$written" = "$prev" ] && stalled=$((stalled + 1)) || stalled=0
  prev=$written
  if [ -n "$events" ] && [ "$written" -ge "$events" ]; then break; fi
  if [ -n "$events" ] && [ "$stalled" -ge 30 ]; then
    echo "    penne has written nothing for 30 s ($written of $events events); checking what it wrote"
    break
  fi
done
grep "achieved" "$work/loadgen.log" | sed 's/^/    /'

# Two more scrapes so that Prometheus has seen the last uploads.
sleep 2.5
promql() {
  curl -sf "$prom/api/v1/query" --data-urlencode "query=$1" | python3 -c '
import json, sys
r = json.load(sys.stdin)["data"]["result"]
print(r[0]["value"][1] if r else "NaN")'
}
p99_query='histogram_quantile(0.99, sum by (le) (increase(penne_upload_duration_seconds_bucket[10m])))'
p99=$(promql "$p99_query" || echo NaN)
if [ "$p99" = NaN ]; then
  # A short run: increase() needs two samples of a series; the buckets' totals since penne
  # started give the same answer for a single run.
  p99_query='histogram_quantile(0.99, sum by (le) (penne_upload_duration_seconds_bucket))'
  p99=$(promql "$p99_query" || echo NaN)
fi
prom_written=$(promql 'sum(penne_events_written_total)' || echo NaN)

echo "==> stopping penne (SIGTERM: seal, write, checkpoint)"
kill -TERM "$penne_pid"
wait "$penne_pid" || { echo "penne exited with an error; its log: $work/penne.log"; exit 1; }

# Brings the bucket's objects into $work/out with `penne s3 get` (a no-op for DEST=local).
fetch_bucket() {
  [ "$DEST" = s3 ] || return 0
  "$bin/app/penne" s3 ls "s3://$bucket/cdc/" | awk '{print $3}' | while read -r key; do
    [ -f "$work/out/$key" ] && continue
    mkdir -p "$(dirname "$work/out/$key")"
    "$bin/app/penne" s3 get "s3://$bucket/$key" "$work/out/$key" >/dev/null
  done
}

echo "==> checking the output independently (download, decode, count)"
fetch_bucket
verified=ok
"$bin/bench/e2e/penne-loadgen" verify --dir "$work/out" --expect-events "$events" 2>"$work/verify.err" \
  | tee "$work/verify.log" | sed 's/^/    /' || verified=failed
grep -q "verify: OK" "$work/verify.log" || verified=failed
found=$(grep -o "objects, [0-9]* events" "$work/verify.log" | tr -dc 0-9 || true)

echo
echo "==> summary"
if [ "$verified" = ok ]; then
  echo "  events:   $events produced by penne-loadgen, ${found:-0} found in the output, each exactly once"
else
  echo "  events:   $events produced by penne-loadgen, ${found:-0} found: CHECK FAILED (see above)"
fi
if [ "$DEST" = s3 ]; then
  echo "  objects:  $objects objects, $(human "$bytes") in s3://$bucket at $RGW_ENDPOINT, e.g."
  "$bin/app/penne" s3 ls "s3://$bucket/cdc/" | sed -n 1,3p | sed 's/^/              /'
  echo "            (downloaded to $work/out)"
else
  echo "  objects:  $objects objects, $(human "$bytes") under $work/out, e.g."
  find "$work/out" -type f | sort | sed -n 1,3p | sed 's/^/              /'
fi
if [ "$p99" != NaN ]; then
  echo "  uploads:  p99 latency $(python3 -c "print(f'{float(\"$p99\") * 1000:.0f}')") ms, from Prometheus:"
else
  echo "  uploads:  p99 latency unknown (Prometheus had too few samples):"
fi
echo "              $p99_query"
echo "            Prometheus counted $prom_written events written (sum(penne_events_written_total))"
echo "  state:    redis://127.0.0.1:$redis_port, key prefix demo (checkpoints, manifest, leases)"
echo "  penne:    $(grep -o 'summary: .*' "$work/penne.log" | tail -1)"
echo "  files:    $work (penne.toml, penne.log, prometheus.yml, loadgen.log)"
[ "$verified" = ok ]
