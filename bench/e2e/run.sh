#!/usr/bin/env bash
# The end-to-end benchmark in one command (bench/e2e/run.py has the details):
#   bench/e2e/run.sh [--quick] [--build DIR] [--skip phase,...] [--keep-dir]
#                    [--jsonl-only] [--penne-runs N] [--ceiling-runs N] [--perf FILE]
# Build first (Release-like flags; the numbers of a Debug build mean nothing):
#   cmake -S . -B build/bench -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
#     -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g -DNDEBUG" -DPENNE_BUILD_BENCH=ON
#   cmake --build build/bench --target mongosim penne penne-source-bench penne-loadgen
# The last line on stdout is the JSON report; progress goes to stderr.
set -euo pipefail
exec /usr/bin/python3 "$(dirname "$0")/run.py" "$@"
