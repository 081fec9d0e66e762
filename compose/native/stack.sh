#!/usr/bin/env bash
# The steps of compose/process-compose.yml (the docker-compose stack as native processes):
# each subcommand is one process of that file, so the YAML carries no shell. Run from any
# directory; paths are resolved from the repository root.
#
#   stack.sh build          release build of penne, mongosim and penne-loadgen
#   stack.sh mongosim       mongosim (MongoDB replica-set simulator) on 127.0.0.1:27117
#   stack.sh redis          redis-server with AOF on 127.0.0.1:6479
#   stack.sh s3-start       a throw-away Ceph RGW (tests/support/rgw/rgw.sh) + bucket "penne"
#   stack.sh s3-ready       exit 0 once s3-start has finished
#   stack.sh s3-stop        stops the gateway and its cluster
#   stack.sh penne          penne run -c compose/native/penne.toml against all of the above
#   stack.sh loadgen        penne-loadgen write into database "demo" (LOADGEN_RATE ops/s)
#   stack.sh prometheus     Prometheus on 127.0.0.1:9090 scraping penne on 127.0.0.1:9464
#
# State lives in PENNE_STACK_DIR (default /tmp/penne-stack): Redis's AOF, the gateway's
# cluster, Prometheus's TSDB. The S3 keys below are for this throw-away gateway only.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
stack="${PENNE_STACK_DIR:-/tmp/penne-stack}"
bin="$root/build/release"
access_key=penne-stack-access
secret_key=penne-stack-secret-0123456789
mkdir -p "$stack"

# The gateway's endpoint and keys, as the standard AWS variables penne reads.
s3_env() {
  [ -f "$stack/rgw/env" ] || { echo "stack.sh: the S3 gateway is not running ($stack/rgw/env)" >&2; exit 1; }
  # shellcheck disable=SC1091
  . "$stack/rgw/env"
  export AWS_ACCESS_KEY_ID="$RGW_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$RGW_SECRET_KEY"
  export AWS_REGION="$RGW_REGION" AWS_ENDPOINT_URL="$RGW_ENDPOINT" AWS_EC2_METADATA_DISABLED=true
}

case "${1:-}" in
  build)
    cd "$root"
    scripts/install-deps.sh
    cmake --preset release >/dev/null
    exec cmake --build --preset release --target penne mongosim penne-loadgen
    ;;
  mongosim)
    exec "$bin/tests/mongosim/mongosim" --port 27117
    ;;
  redis)
    mkdir -p "$stack/redis"
    exec redis-server --port 6479 --bind 127.0.0.1 --dir "$stack/redis" \
      --appendonly yes --appendfsync everysec --save ''
    ;;
  s3-start)
    rm -f "$stack/s3-ready"
    "$root/tests/support/rgw/rgw.sh" stop "$stack/rgw" >/dev/null 2>&1 || true
    rm -rf "$stack/rgw"
    "$root/tests/support/rgw/rgw.sh" start "$stack/rgw" "$access_key" "$secret_key"
    s3_env
    "$bin/app/penne" s3 mb s3://penne
    touch "$stack/s3-ready"
    ;;
  s3-ready)
    exec test -f "$stack/s3-ready"
    ;;
  s3-stop)
    rm -f "$stack/s3-ready"
    exec "$root/tests/support/rgw/rgw.sh" stop "$stack/rgw"
    ;;
  penne)
    s3_env
    exec "$bin/app/penne" run -c "$root/compose/native/penne.toml"
    ;;
  loadgen)
    exec "$bin/bench/e2e/penne-loadgen" write \
      --uri "mongodb://127.0.0.1:27117/?directConnection=true" --db demo --collections 5 \
      --ops "${LOADGEN_OPS:-10000000}" --rate "${LOADGEN_RATE:-500}"
    ;;
  prometheus)
    mkdir -p "$stack/prometheus"
    exec prometheus --config.file="$root/compose/native/prometheus.yml" \
      --storage.tsdb.path="$stack/prometheus" --web.listen-address=127.0.0.1:9090
    ;;
  *)
    sed -n '2,16p' "${BASH_SOURCE[0]}" >&2
    exit 2
    ;;
esac
