#!/usr/bin/env bash
# One command, end to end on an embedded local stack: installs what is missing, builds
# penne, starts mongosim (the in-repo MongoDB replica-set simulator) and a throw-away Ceph
# RADOS Gateway (a real S3), runs penne against them, drives a change workload through the
# MongoDB C driver, stops penne gracefully, downloads the bucket and checks independently
# that every event landed exactly once.
#   OPS=50000 COLLS=10 scripts/demo.sh      # size of the workload
#   DEMO_DIR=/tmp/demo scripts/demo.sh      # keep the output somewhere known
#   DEST=local scripts/demo.sh              # write to a local directory instead of S3
set -euo pipefail
cd "$(dirname "$0")/.."

OPS="${OPS:-20000}"
COLLS="${COLLS:-5}"
DEST="${DEST:-s3}"

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
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ "$DEST" = s3 ] && tests/support/rgw/rgw.sh stop "$work/rgw" >/dev/null 2>&1 || true
}
trap cleanup EXIT

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

$(if [ "$DEST" = s3 ]; then printf '[destination]\ntype = "s3"\n\n[s3]\nbucket = "%s"\n' "$bucket"
  else printf '[destination]\ntype = "local"\npath = "%s"\n' "$work/out"; fi)

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

# Brings the bucket's objects into $work/out with `penne s3 get` (a no-op for DEST=local).
fetch_bucket() {
  [ "$DEST" = s3 ] || return 0
  "$bin/app/penne" s3 ls "s3://$bucket/cdc/" | awk '{print $3}' | while read -r key; do
    [ -f "$work/out/$key" ] && continue
    mkdir -p "$(dirname "$work/out/$key")"
    "$bin/app/penne" s3 get "s3://$bucket/$key" "$work/out/$key" >/dev/null
  done
}

echo "==> waiting until penne has written all $events change events"
for _ in $(seq 120); do
  fetch_bucket
  "$bin/bench/e2e/penne-loadgen" verify --dir "$work/out" --expect-events "$events" >/dev/null 2>&1 && break
  sleep 1
done

echo "==> stopping penne (SIGTERM: seal, write, checkpoint)"
kill -TERM "$penne_pid"
wait "$penne_pid" || { echo "penne exited with an error"; exit 1; }

echo "==> checking the output independently"
fetch_bucket
"$bin/bench/e2e/penne-loadgen" verify --dir "$work/out" --expect-events "$events"
echo
if [ "$DEST" = s3 ]; then
  echo "bucket:   s3://$bucket at $RGW_ENDPOINT ($("$bin/app/penne" s3 ls "s3://$bucket/cdc/" | wc -l) objects), e.g."
  "$bin/app/penne" s3 ls "s3://$bucket/cdc/" | head -3 | sed 's/^/    /'
  echo "          (downloaded to $work/out)"
else
  echo "objects:  $(find "$work/out" -type f | wc -l) under $work/out, e.g."
  find "$work/out" -type f | sort | head -3 | sed 's/^/    /'
fi
echo "state:    $work/state"
echo "penne:    $(grep -o 'summary: .*' "$work/penne.log" | tail -1)"
