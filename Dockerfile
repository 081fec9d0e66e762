# penne and penne-loadgen in a Debian 12 image (used by compose/docker-compose.yml).
#
#   docker build -t penne:local .
#   docker run --rm -v "$PWD/penne.toml:/etc/penne/penne.toml:ro" -p 127.0.0.1:9464:9464 penne:local
#
# Stage 1 builds a release with the build packages of scripts/install-deps.sh (the same
# names; tests/integration/ops checks that they stay a subset of that list). Stage 2 holds
# only the two binaries and the shared libraries they load (the same test checks the list
# against the libraries the binary links). The daemon runs as an unprivileged user; its
# configuration is expected at /etc/penne/penne.toml and its operations endpoints on port
# 9464 (bind them to 0.0.0.0 with [metrics] address to scrape from another container).

FROM debian:12 AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config \
      libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev \
      libmongoc-dev libbson-dev libhiredis-dev \
      libzstd-dev zlib1g-dev libssl-dev libsnappy-dev libicu-dev \
      libtomlplusplus-dev libcli11-dev libspdlog-dev libfmt-dev libpugixml-dev \
      libgtest-dev libgmock-dev libbenchmark-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The release preset (-O2, as scripts/demo.sh builds). penne-loadgen lives in bench/e2e and
# reads output through tests/support, so tests and benchmarks stay configured; only the two
# targets are built. No test runs here.
RUN cmake --preset release -DPENNE_TEST_RGW=OFF \
 && cmake --build --preset release --target penne penne-loadgen \
 && install -D -m 0755 -s build/release/app/penne /out/penne \
 && install -D -m 0755 -s build/release/bench/e2e/penne-loadgen /out/penne-loadgen

FROM debian:12-slim
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates curl \
      libboost-json1.81.0 libboost-url1.81.0 libbson-1.0-0 libmongoc-1.0-0 libhiredis0.14 libfmt9 libspdlog1.10 \
      libpugixml1v5 libsnappy1v5 libssl3 libtomlplusplus3 libzstd1 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin penne
COPY --from=build /out/penne /out/penne-loadgen /usr/local/bin/
USER penne
EXPOSE 9464
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD curl -fsS http://127.0.0.1:9464/health || exit 1
ENTRYPOINT ["penne"]
CMD ["run", "-c", "/etc/penne/penne.toml"]
