#!/usr/bin/env bash
# One command, end to end on an embedded local stack: installs what is missing, builds
# penne, starts mongosim (the in-repo MongoDB replica-set simulator), runs penne against
# it writing to a local directory, drives a change workload through the MongoDB C driver,
# stops penne gracefully and checks independently that every event landed exactly once.
#   OPS=50000 COLLS=10 scripts/demo.sh      # size of the workload
#   DEMO_DIR=/tmp/demo scripts/demo.sh      # keep the output somewhere known
set -euo pipefail
cd "$(dirname "$0")/.."

OPS="${OPS:-20000}"
COLLS="${COLLS:-5}"

echo "==> installing dependencies (apt, only what is missing)"
scripts/install-deps.sh
echo "==> building penne, mongosim and penne-loadgen (release)"
cmake --preset release >/dev/null
cmake --build --preset release --target penne mongosim penne-loadgen

bin=build/release
work="${DEMO_DIR:-$(mktemp -d /tmp/penne-demo-XXXXXX)}"
mkdir -p "$work"
rm -rf "$work/out" "$work/state"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

echo "==> starting mongosim"
"$bin/tests/mongosim/mongosim" --port 0 >"$work/mongosim.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  grep -q "mongosim listening on" "$work/mongosim.log" && break
  sleep 0.1
done
addr=$(grep -o "listening on [0-9.:]*" "$work/mongosim.log" | awk '{print $3}')
[ -n "$addr" ] || { echo "mongosim did not start:"; cat "$work/mongosim.log"; exit 1; }
uri="mongodb://$addr/?directConnection=true"
echo "    mongosim at $uri"

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

[destination]
type = "local"
path = "$work/out"

[state]
type = "file"
path = "$work/state"

[log]
progress_interval_ms = 1000
TOML

echo "==> starting penne (config $work/penne.toml)"
"$bin/app/penne" run -c "$work/penne.toml" 2> >(tee "$work/penne.log" >&2) &
penne_pid=$!
pids+=($penne_pid)
for _ in $(seq 200); do
  grep -q "change stream open" "$work/penne.log" 2>/dev/null && break
  sleep 0.1
done
grep -q "change stream open" "$work/penne.log" || { echo "penne did not start"; exit 1; }

echo "==> writing $OPS operations into $COLLS collections through the MongoDB C driver"
"$bin/bench/e2e/penne-loadgen" write --uri "$uri" --db demo --collections "$COLLS" --ops "$OPS" \
  | tee "$work/loadgen.log"
events=$(grep -o "events=[0-9]*" "$work/loadgen.log" | cut -d= -f2)

echo "==> waiting until penne has written all $events change events"
for _ in $(seq 120); do
  "$bin/bench/e2e/penne-loadgen" verify --dir "$work/out" --expect-events "$events" >/dev/null 2>&1 && break
  sleep 1
done

echo "==> stopping penne (SIGTERM: seal, write, checkpoint)"
kill -TERM "$penne_pid"
wait "$penne_pid" || { echo "penne exited with an error"; exit 1; }

echo "==> checking the output independently"
"$bin/bench/e2e/penne-loadgen" verify --dir "$work/out" --expect-events "$events"
echo
echo "objects:  $(find "$work/out" -type f | wc -l) under $work/out, e.g."
find "$work/out" -type f | sort | head -3 | sed 's/^/    /'
echo "state:    $work/state"
echo "penne:    $(grep -o 'summary: .*' "$work/penne.log" | tail -1)"
