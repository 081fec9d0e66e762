#!/usr/bin/env bash
# Brings a fresh Debian 12 machine to a state where penne builds, its tests run and the
# local demo stack starts. Idempotent: when everything is present it prints nothing and
# exits 0. Boost comes only from the versioned 1.81 packages (the unversioned
# libboost-*-dev packages pull 1.74 and conflict).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config ccache git clang-format
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libmongoc-dev libbson-dev libhiredis-dev
  libzstd-dev zstd zlib1g-dev libssl-dev libsnappy-dev libicu-dev
  libtomlplusplus-dev libcli11-dev libspdlog-dev libfmt-dev libpugixml-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  redis-server python3 prometheus curl dnsmasq-base
  ceph-mon ceph-osd radosgw ceph-common
  python3-pymongo node-mongodb avro-bin python3-yaml docker-compose
)
# Node.js and npm: keep whatever node is already installed (e.g. a NodeSource nodejs, which
# provides npm itself and conflicts with Debian's npm package); otherwise use Debian's.
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The Debian redis-server package starts a system instance; tests start their own.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet redis-server 2>/dev/null; then
    "${sudo_cmd[@]}" systemctl stop redis-server || true
  fi
fi

# npm packages of the test suite, each pinned by its lockfile: the mongodb 7.x driver that
# judges mongosim, and the independent readers of our Parquet/Avro output and S3 objects.
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
while IFS= read -r lock; do
  node_dir="$(dirname "$lock")"
  if [ ! -d "$node_dir/node_modules" ]; then
    (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
done < <(find "$repo_root/tests" -name package-lock.json -not -path '*/node_modules/*' | sort)
