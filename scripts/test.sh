#!/usr/bin/env bash
# Installs what is missing, builds penne with its tests, and runs the whole suite
# (unit + integration against real peers started on free ports). Usage:
#   scripts/test.sh              # debug build in build/debug
#   PRESET=asan scripts/test.sh  # ASan + UBSan build in build/asan
#   CTEST_ARGS="-L unit" scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

preset="${PRESET:-debug}"
scripts/install-deps.sh

cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset"
# -j2: integration tests start their own servers on free ports and can run side by side.
ctest --preset "$preset" -j2 --timeout 600 ${CTEST_ARGS:-}
