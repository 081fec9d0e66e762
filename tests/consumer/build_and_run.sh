#!/usr/bin/env bash
# Builds tests/consumer/project one way and runs it against a mongosim started here.
#   build_and_run.sh package      <project> <build dir> <generator> <install prefix> <penne build>
#   build_and_run.sh subdirectory <project> <build dir> <generator> <penne sources> <penne build>
set -euo pipefail
mode=$1 project=$2 build=$3 generator=$4 where=$5 penne_build=$6

case "$mode" in
package)
    args=(-DCMAKE_PREFIX_PATH="$where" -DCMAKE_BUILD_TYPE=Debug) ;;
subdirectory)
    # No build type: no debug information and no optimisation, the quickest build.
    args=(-DPENNE_CONSUMER_SUBDIRECTORY="$where") ;;
*)
    echo "unknown mode $mode" >&2; exit 2 ;;
esac

cmake -S "$project" -B "$build" -G "$generator" "${args[@]}"
cmake --build "$build" -j2

mongosim="$penne_build/tests/mongosim/mongosim"
work=$(mktemp -d)
trap 'kill "${sim_pid:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
"$mongosim" --port 0 >"$work/mongosim.out" 2>&1 &
sim_pid=$!
port=""
for _ in $(seq 100); do
    port=$(grep -o 'listening on [0-9.]*:[0-9]*' "$work/mongosim.out" | head -1 | sed 's/.*://') || true
    [ -n "$port" ] && break
    sleep 0.1
done
if [ -z "$port" ]; then
    echo "mongosim did not start:" >&2; cat "$work/mongosim.out" >&2; exit 1
fi
"$build/penne_consumer" "mongodb://127.0.0.1:$port/?directConnection=true" "$work/out"
