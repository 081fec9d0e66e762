#!/usr/bin/python3
"""penne end-to-end benchmark: one command, one JSON report (issue #9).

    bench/e2e/run.sh [--quick] [--build build/bench] [--skip rgw,density,...] [--keep-dir]
                     [--jsonl-only] [--penne-runs N] [--ceiling-runs N] [--perf FILE]

Runs, in order, each phase with its own processes (mongosim, penne, a Ceph RGW from
tests/support/rgw/rgw.sh for the S3 phases), and prints ONE JSON object with every figure on
stdout as its last line (progress goes to stderr). A phase that cannot run (no RGW, a binary
missing) reports its figures as null and says why under "errors"; the others still run.

Phases (names for --skip):
  ceiling     mongosim --preload N drained by penne's own client (penne-source-bench): the
              simulator's serving rate and CPU, and the bare stages (walker + zstd + SHA-256,
              and each other format's encoder) timed on the same events: ceiling_ns_per_event.
  throughput  penne draining the same preloaded stream (state seeded to resume before the
              oldest event) into a local directory: events/s, MB/s of event BSON, and penne's
              own CPU (utime+stime of the penne process, /proc/<pid>/stat) per event; JSONL+zstd
              (ratio = cpu_ns_per_event / ceiling_ns_per_event; ratio_paired = the median of
              drain / ceiling_mean over the drains, each bracketed by ceiling processes run
              right before and right after it and set against their average, so a host that
              speeds up or slows down during the pair moves both sides alike; one drain is
              one pass, so it is set against the mean of the ceiling's timed runs, not
              against the fastest) and each other format; with pipeline.threads = 1 and 2
              (scaling).
  rgw         the same drain into Ceph RGW (S3), and the memory bound: the gateway stopped for
              --stall seconds under full load; penne's RSS is sampled against
              pipeline.max_buffered_bytes and the time to drain after the gateway returns.
  latency     a steady moderate write rate through penne-loadgen; per event, the object's
              mtime (the local destination's write) minus the event's wallTime (the
              simulator's commit time): p50/p99 next to batch.max_age_ms.
  density     10,000 collections under one database scope, and 1,000 collection scopes: RSS
              and CPU while idle and with a trickle of writes to every collection.
  scaling, memory  (only with --only) the threads = 1/2 runs of throughput and the memory
              bound of rgw, alone.

Numbers depend on the machine and on what else runs on it: the report records the load
average before and after each phase.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def stat_fields(path):
    """The fields of a /proc/.../stat file after the command name (which may hold spaces),
    so that [0] is the state, [7] minflt, [11] utime and [12] stime; None when it is gone."""
    try:
        with open(path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return fields if len(fields) > 12 else None
    except OSError:
        return None


def proc_cpu_s(pid):
    """utime+stime of a process in seconds (None when it is gone)."""
    f = stat_fields(f"/proc/{pid}/stat")
    return (int(f[11]) + int(f[12])) / CLK_TCK if f else None


def thread_cpu_s(pid):
    """{"main"|"others": {"user": s, "sys": s}}: the process's threads' CPU, the thread that
    runs the io_context (the main one) apart from the rest (file I/O pool, log writer)."""
    out = {"main": {"user": 0.0, "sys": 0.0}, "others": {"user": 0.0, "sys": 0.0}}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tids:
        f = stat_fields(f"/proc/{pid}/task/{tid}/stat")
        if not f:
            continue
        o = out["main" if int(tid) == pid else "others"]
        o["user"] += int(f[11]) / CLK_TCK
        o["sys"] += int(f[12]) / CLK_TCK
    return out


def proc_minflt(pid):
    """Minor page faults of a process so far (None when it is gone)."""
    f = stat_fields(f"/proc/{pid}/stat")
    return int(f[7]) if f else None


def proc_rss_mib(pid):
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE / (1024 * 1024)
    except (OSError, IndexError):
        return None


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def pin_to(cpus):
    """A preexec_fn that binds the child (and the threads it starts) to `cpus`; None: no-op."""
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


class Proc:
    """A child process with its output in a log file; stopped with SIGINT, then SIGKILL."""

    def __init__(self, name, argv, workdir, env=None, cpus=None):
        self.name = name
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.log = open(self.log_path, "w")
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                  preexec_fn=pin_to(cpus))
        self.pid = self.p.pid

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def wait_for(self, pattern, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = re.search(pattern, self.text())
            if m:
                return m
            if self.p.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.p.returncode}): {self.text()[-800:]}")
            time.sleep(0.1)
        raise RuntimeError(f"{self.name}: no '{pattern}' after {timeout} s: {self.text()[-800:]}")

    def stop(self, timeout=30):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


class Bench:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build)
        self.src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        self.bin = {
            "mongosim": os.path.join(self.build, "tests/mongosim/mongosim"),
            "penne": os.path.join(self.build, "app/penne"),
            "source": os.path.join(self.build, "bench/e2e/penne-source-bench"),
            "loadgen": os.path.join(self.build, "bench/e2e/penne-loadgen"),
        }
        # Another build's binary, e.g. to compare two penne builds against one simulator.
        for name in ("mongosim", "penne"):
            if getattr(args, name, None):
                self.bin[name] = os.path.abspath(getattr(args, name))
        self.work = tempfile.mkdtemp(prefix="penne-bench-")
        # The simulator stands in for a MongoDB on another machine: on a machine of two or
        # more CPUs it gets the last one to itself, and penne's one-thread drains and the
        # ceiling processes run on the others, so neither is charged for the other's cache
        # damage or time slices on a shared core. Drains with more threads than that stay
        # free (the scaling figure needs every core). --no-pin: everything free.
        n = os.cpu_count() or 1
        self.pin = not args.no_pin and n >= 2
        self.sim_cpus = {n - 1} if self.pin else None
        self.penne_cpus = set(range(n - 1)) if self.pin else None
        self.report = {"machine": self.machine(), "quick": args.quick, "errors": {}}
        self.report["machine"]["pinning"] = ({"simulator": sorted(self.sim_cpus),
                                              "penne_one_thread_and_ceiling":
                                                  sorted(self.penne_cpus)}
                                             if self.pin else None)
        self.quick = args.quick
        self.n = args.events or (200_000 if args.quick else 1_000_000)
        self.sim = None
        self.sim_port = None
        self.rgw_dir = None
        self.rgw_env = None

    # -- the machine ------------------------------------------------------------------------
    def machine(self):
        m = {"nproc": os.cpu_count(), "load_start": loadavg()}
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        m["cpu"] = line.split(":", 1)[1].strip()
                        break
            with open("/proc/meminfo") as f:
                m["mem_gib"] = round(int(f.readline().split()[1]) / 1024 / 1024, 1)
        except OSError:
            pass
        m["date_utc"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return m

    # -- mongosim ---------------------------------------------------------------------------
    def start_sim(self, preload=0, collections=4, name="mongosim"):
        argv = [self.bin["mongosim"], "--port", "0"]
        if preload:
            argv += ["--preload", str(preload), "--preload-collections", str(collections),
                     "--preload-db", "bench"]
        sim = Proc(name, argv, self.work, cpus=self.sim_cpus)
        m = sim.wait_for(r"listening on 127\.0\.0\.1:(\d+)", 600)
        return sim, int(m.group(1))

    # -- penne ------------------------------------------------------------------------------
    def penne_config(self, name, port, watch, fmt="jsonl", compression="zstd", dest="local",
                     threads=1, max_events=10_000, max_age_ms=1000, buffered="256MiB",
                     per_collection_labels=True, batch_size=0):
        d = os.path.join(self.work, name)
        os.makedirs(d, exist_ok=True)
        metrics_port = free_port()
        lines = [
            "[mongodb]",
            f'uri = "mongodb://127.0.0.1:{port}/?directConnection=true"',
            f"batch_size = {batch_size}",
            *(getattr(self.args, "mongodb_option", None) or []),
            watch,
            "[batch]",
            f"max_events = {max_events}",
            'max_bytes = "64MiB"',
            f"max_age_ms = {max_age_ms}",
            "[output]",
            f'format = "{fmt}"',
            f'compression = "{compression}"',
            "[destination]",
        ]
        if dest == "local":
            lines += ['type = "local"', f'path = "{d}/out"']
        else:
            lines += ['type = "s3"', "[s3]", 'bucket = "bench"',
                      f'endpoint = "{self.rgw_env["RGW_ENDPOINT"]}"', 'addressing = "path"',
                      f'region = "{self.rgw_env.get("RGW_REGION", "us-east-1")}"',
                      f'access_key_id = "{self.rgw_env["RGW_ACCESS_KEY"]}"',
                      f'secret_access_key = "{self.rgw_env["RGW_SECRET_KEY"]}"',
                      "max_retries = 100"]
        lines += [
            "[state]", 'type = "file"', f'path = "{d}/state"',
            "[pipeline]", f"threads = {threads}", f'max_buffered_bytes = "{buffered}"',
            "[metrics]", "enabled = true", f"port = {metrics_port}",
            f"per_collection_labels = {'true' if per_collection_labels else 'false'}",
            "[log]", 'level = "info"', "progress_interval_ms = 5000",
        ]
        path = os.path.join(d, "penne.toml")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return d, path, metrics_port

    @staticmethod
    def seed_state(state_dir, scope_id):
        """Makes the scope resume before the oldest event: a high-water token at Timestamp(1, 0)
        (mongosim's load mode documents it), in the file state store's format."""
        data = b"82000000010000000003"
        body = b"\x02_data\x00" + (len(data) + 1).to_bytes(4, "little") + data + b"\x00"
        doc = (len(body) + 5).to_bytes(4, "little") + body + b"\x00"
        os.makedirs(state_dir, exist_ok=True)
        stem = "".join(c if re.match(r"[a-z0-9_.-]", c) else "%%%02x" % ord(c) for c in scope_id)
        with open(os.path.join(state_dir, f"scope-{stem}.json"), "w") as f:
            json.dump({"format": "penne.scope_state", "version": 1, "scope": scope_id,
                       "watermark": doc.hex(), "entries": []}, f)

    @staticmethod
    def metrics(port):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return None
        out = {}
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name = re.split(r"[{ ]", line, 1)[0]
            try:
                out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
            except ValueError:
                pass
        return out

    def start_penne(self, name, config, threads=1):
        cpus = self.penne_cpus if self.penne_cpus and threads <= len(self.penne_cpus) else None
        return Proc(name, [self.bin["penne"], "run", "-c", config], self.work, cpus=cpus)

    def drain_with_penne(self, label, watch_db="bench", timeout=900, perf=None, **cfg):
        """penne drains the preloaded stream; returns throughput and CPU figures. With `perf`
        (a file name), `perf record -g` samples the penne process for the whole drain."""
        d, path, mport = self.penne_config(label, self.sim_port,
                                           f'[[watch]]\nlevel = "database"\ndatabase = "{watch_db}"',
                                           **cfg)
        self.seed_state(os.path.join(d, "state"), watch_db)
        t0 = time.time()
        p = self.start_penne(label, path, cfg.get("threads", 1))
        rec = None
        if perf:
            rec = subprocess.Popen(["perf", "record", *os.environ.get("PENNE_BENCH_PERF_ARGS", "-g").split(), "-o", perf, "-p", str(p.pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        done = None
        first = read_all = None
        rss_max = 0.0
        try:
            deadline = t0 + timeout
            while time.time() < deadline:
                m = self.metrics(mport)
                rss_max = max(rss_max, proc_rss_mib(p.pid) or 0)
                if p.p.poll() is not None:
                    raise RuntimeError(f"penne exited: {p.text()[-800:]}")
                if m:
                    got = m.get("penne_events_written_total", 0)
                    received = m.get("penne_events_received_total", 0)
                    if first is None and received > 0:
                        first = time.time()
                    if read_all is None and received >= self.n:
                        read_all = time.time()
                    if got >= self.n:
                        done = (time.time(), proc_cpu_s(p.pid), m, thread_cpu_s(p.pid),
                                proc_minflt(p.pid))
                        break
                time.sleep(0.1)
            if done is None:
                raise RuntimeError(f"{label}: not all {self.n} events written in {timeout} s")
        finally:
            if rec:
                rec.send_signal(signal.SIGINT)
                rec.wait(60)
            p.stop()
        t1, cpu, m, threads, faults = done
        # The rate is taken over the reading of the stream (first event received to the last
        # one, 0.1 s polls): the last partial batches then wait up to batch.max_age_ms, which
        # costs no CPU but would dilute a rate measured to the last durable object.
        secs = max(1e-3, (read_all or t1) - (first or t0))
        return {
            "events": self.n,
            "seconds_reading": round(secs, 2),
            "seconds_to_all_durable": round(t1 - t0, 2),
            "events_per_s": round(self.n / secs),
            "mb_per_s": round(m.get("penne_bytes_received_total", 0) / secs / 1e6, 1)
            if m.get("penne_bytes_received_total") else None,
            "cpu_s": round(cpu, 3),
            "cpu_ns_per_event": round(cpu * 1e9 / self.n),
            "rss_max_mib": round(rss_max, 1),
            # Where the CPU went: ns per event by thread (user / sys). Exited threads are
            # not listed by /proc, so the two may add up to a little less than the total.
            "cpu_ns_per_event_by_thread": {
                k: {u: round(v * 1e9 / self.n) for u, v in t.items()}
                for k, t in (threads or {}).items()},
            # Page faults (first touches of fresh memory, costly in a VM) per 1,000 events.
            "page_faults_per_1k_events": round((faults or 0) * 1000 / self.n, 1),
            # The compressor's share, in place (penne_compress_cpu_seconds_total): set
            # against the ceiling's compress stage, it shows what compressing costs inside
            # a drain rather than in a tight loop.
            "compress_ns_per_event": round(m.get("penne_compress_cpu_seconds_total", 0) * 1e9
                                           / self.n),
            "objects": int(m.get("penne_objects_written_total", 0)),
            "object_bytes": int(m.get("penne_bytes_written_total", 0)),
        }

    # -- phases -----------------------------------------------------------------------------
    def stage_timings(self, fmt, comp):
        """One penne-source-bench process: a drain with penne's client, then the stages."""
        uri = f"mongodb://127.0.0.1:{self.sim_port}/?directConnection=true"
        keep = "100000" if self.quick else "200000"
        out = subprocess.run([self.bin["source"], "--uri", uri, "--expect", str(self.n),
                              "--server-pid", str(self.sim.pid), "--ceiling", "--format", fmt,
                              "--compression", comp, "--keep", keep],
                             capture_output=True, text=True, timeout=900,
                             preexec_fn=pin_to(self.penne_cpus))
        r = json.loads(out.stdout.strip().splitlines()[-1])
        if "error" in r:
            raise RuntimeError(r["error"])
        return r

    def phase_ceiling(self):
        log(f"ceiling: mongosim --preload {self.n}")
        self.sim, self.sim_port = self.start_sim(self.n)
        runs = [("jsonl", "zstd")] if self.quick or self.args.jsonl_only else [
                                                        ("jsonl", "zstd"), ("jsonl", "gzip"),
                                                        ("csv", "zstd"), ("parquet", "zstd"),
                                                        ("avro", "zstd")]
        # --ceiling-runs N: jsonl+zstd's stages N times, each in a new process (the stage
        # timings of one process are the fastest of 3 repeats, but they differ between
        # processes by up to ±15 % on this machine); the run with the median ceiling counts.
        runs = [runs[0]] * max(1, self.args.ceiling_runs) + runs[1:]
        ceilings = {}
        jsonl_runs = []
        for i, (fmt, comp) in enumerate(runs):
            log(f"ceiling: drain with penne's client, stages for {fmt}+{comp}")
            r = self.stage_timings(fmt, comp)
            if i == 0:
                self.report["mongosim"] = {
                    "preloaded_events": self.n,
                    "drain_events_per_s": r["events_per_s"],
                    "mean_event_bytes": r["mean_event_bytes"],
                    "server_cpu_ns_per_event": r.get("server_cpu_ns_per_event"),
                    "server_events_per_cpu_s": r.get("server_events_per_cpu_s"),
                    "client_cpu_ns_per_event": r["client_cpu_ns_per_event"],
                }
                self.report["mean_event_bytes"] = r["mean_event_bytes"]
            if (fmt, comp) == ("jsonl", "zstd"):
                jsonl_runs.append(r["ceiling"])
                jsonl_runs.sort(key=lambda c: c["ceiling_ns_per_event"])
                ceilings["jsonl+zstd"] = jsonl_runs[(len(jsonl_runs) - 1) // 2]
            else:
                ceilings[f"{fmt}+{comp}"] = r["ceiling"]
        self.report["ceilings"] = ceilings
        if len(jsonl_runs) > 1:
            self.report["ceiling_ns_per_event_runs"] = [c["ceiling_ns_per_event"]
                                                        for c in jsonl_runs]
        c = ceilings["jsonl+zstd"]
        self.report["ceiling_ns_per_event"] = c["ceiling_ns_per_event"]
        self.report["ceiling_stages_ns"] = {"walker": c["encode_ns_per_event"],
                                            "zstd": c["compress_ns_per_event"],
                                            "sha256": c["sha256_ns_per_event"]}
        self.report["ceiling_mean_ns_per_event"] = c.get("ceiling_mean_ns_per_event")

    def phase_throughput(self):
        if self.sim is None:
            self.sim, self.sim_port = self.start_sim(self.n)
        runs = {}
        log("throughput: jsonl+zstd, local directory, 1 thread")
        bs = {"batch_size": self.args.batch_size} if self.args.batch_size else {}
        # Pairs: with the ceiling phase on, every drain runs between two ceiling processes
        # (one before the first drain, then one after each) and is set against their
        # average, so both sides of a pair see the same host: its speed drifts by ±10-20 %
        # within minutes here, and a drift during the pair moves the bracket with it.
        # ratio_paired is the median of the pairs' ratios.
        paired = bool(self.report.get("ceiling_ns_per_event"))
        pairs = []
        compress_pairs = []  # [in place, ceiling's compress mean] per drain
        brackets = []  # (mean, fastest, compress mean) of each ceiling process, in order

        def ceiling_process(where):
            log(f"throughput: ceiling process {where}")
            c = self.stage_timings("jsonl", "zstd")["ceiling"]
            brackets.append((c["ceiling_mean_ns_per_event"], c["ceiling_ns_per_event"],
                             c["compress_mean_ns_per_event"]))

        def drain(name):
            if paired and not brackets:
                ceiling_process(f"before {name}")
            d = self.drain_with_penne(name, **bs)
            if paired:
                ceiling_process(f"after {name}")
                mean, fastest, compress = (round((a + b) / 2, 1)
                                           for a, b in zip(brackets[-2], brackets[-1]))
                pairs.append([d["cpu_ns_per_event"], mean, fastest])
                compress_pairs.append([d["compress_ns_per_event"], compress])
            return d

        r = drain("tp-jsonl-zstd-local")
        # --penne-runs N: the drain N times, the run with the least CPU counts (the ceiling's
        # stages are the fastest of 3 the same way); every run's figure is in the report.
        cpu_runs = [r["cpu_ns_per_event"]]
        for i in range(1, self.args.penne_runs):
            log(f"throughput: jsonl+zstd, local directory, 1 thread, run {i + 1}")
            ri = drain(f"tp-jsonl-zstd-local-{i + 1}")
            cpu_runs.append(ri["cpu_ns_per_event"])
            if ri["cpu_ns_per_event"] < r["cpu_ns_per_event"]:
                r = ri
        if pairs:
            # [drain, ceiling mean, ceiling fastest] per pair (each the average of the two
            # ceiling processes around the drain); ratio_paired sets the drain against the
            # mean (one pass against one pass), ratio_paired_fastest against the fastest
            # timed runs (the stricter reading, biased against penne by the noise).
            def median(xs):
                xs = sorted(xs)
                return round(xs[(len(xs) - 1) // 2], 2)
            self.report["ratio_paired"] = median(d / m for d, m, _ in pairs)
            self.report["ratio_paired_fastest"] = median(d / f for d, _, f in pairs)
            self.report["ratio_pairs"] = pairs
            # The compressor in place against the same brackets' compress stage: how much of
            # the ratio is compression running slower inside a drain than in a tight loop.
            self.report["compress_pairs"] = compress_pairs
            self.report["compress_in_place_ratio"] = median(d / m for d, m in compress_pairs)
        r["cpu_ns_per_event_runs"] = cpu_runs
        runs["jsonl+zstd/local/1"] = r
        if self.args.perf:
            log(f"throughput: jsonl+zstd, 1 thread, under perf record -> {self.args.perf}")
            runs["jsonl+zstd/local/1/perf"] = self.drain_with_penne(
                "tp-jsonl-zstd-local-perf", perf=os.path.abspath(self.args.perf), **bs)
        self.report["events_per_s"] = r["events_per_s"]
        self.report["mb_per_s"] = r["mb_per_s"]
        self.report["cpu_ns_per_event"] = r["cpu_ns_per_event"]
        if self.report.get("ceiling_ns_per_event"):
            ceiling = self.report["ceiling_ns_per_event"]
            self.report["ratio"] = round(r["cpu_ns_per_event"] / ceiling, 2)
            if len(cpu_runs) > 1:
                # The medians of both sides: less flattering than the least-CPU drain.
                median = sorted(cpu_runs)[(len(cpu_runs) - 1) // 2]
                self.report["ratio_median"] = round(median / ceiling, 2)
        if self.args.jsonl_only:
            self.report["throughput"] = runs
            return
        log("throughput: jsonl+zstd, local directory, 2 threads")
        r2 = self.drain_with_penne("tp-jsonl-zstd-local-t2", threads=2)
        runs["jsonl+zstd/local/2"] = r2
        self.report["scaling"] = {
            "threads_1_events_per_s": r["events_per_s"],
            "threads_2_events_per_s": r2["events_per_s"],
            "threads_2_events_per_s_per_thread": round(r2["events_per_s"] / 2),
            "threads_2_cpu_ns_per_event": r2["cpu_ns_per_event"],
        }
        formats = [("csv", "zstd"), ("parquet", "zstd"), ("avro", "zstd")]
        if not self.quick:
            formats = [("jsonl", "gzip")] + formats
        for fmt, comp in formats:
            log(f"throughput: {fmt}+{comp}, local directory")
            runs[f"{fmt}+{comp}/local/1"] = self.drain_with_penne(f"tp-{fmt}-{comp}-local",
                                                                  fmt=fmt, compression=comp)
        self.report["throughput"] = runs

    def start_rgw(self):
        script = os.path.join(self.src, "tests/support/rgw/rgw.sh")
        self.rgw_dir = os.path.join(self.work, "rgw")
        env = dict(os.environ, RGW_OWNER_PID=str(os.getpid()))
        log("rgw: starting a Ceph cluster with a RADOS gateway (rgw.sh)")
        out = subprocess.run([script, "start", self.rgw_dir], capture_output=True, text=True,
                             timeout=600, env=env)
        if out.returncode != 0:
            raise RuntimeError("rgw.sh start failed: " + (out.stderr or out.stdout)[-600:])
        self.rgw_env = {}
        with open(os.path.join(self.rgw_dir, "env")) as f:
            for line in f:
                if "=" in line:
                    k, v = line.strip().split("=", 1)
                    self.rgw_env[k] = v.strip("'\"")
        # The bucket, created with penne's own client.
        d, path, _ = self.penne_config("rgw-mb", self.sim_port or 1, "[[watch]]\ndatabase = \"x\"",
                                       dest="s3")
        out = subprocess.run([self.bin["penne"], "s3", "-c", path, "mb", "s3://bench"],
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0 and "BucketAlreadyOwnedByYou" not in out.stdout + out.stderr:
            raise RuntimeError("penne s3 mb failed: " + (out.stderr or out.stdout)[-400:])

    def rgw_gateway(self, action):
        script = os.path.join(self.src, "tests/support/rgw/rgw.sh")
        subprocess.run([script, action, self.rgw_dir], capture_output=True, text=True,
                       timeout=300, check=True)

    def phase_rgw(self):
        if self.sim is None:
            self.sim, self.sim_port = self.start_sim(self.n)
        self.start_rgw()
        log("rgw: jsonl+zstd into RGW, 1 thread")
        r = self.drain_with_penne("tp-jsonl-zstd-rgw", dest="s3")
        self.report.setdefault("throughput", {})["jsonl+zstd/rgw/1"] = r
        self.report["rgw_events_per_s"] = r["events_per_s"]
        self.report["rgw_cpu_ns_per_event"] = r["cpu_ns_per_event"]
        self.memory_bound()

    def memory_bound(self):
        stall = self.args.stall or (15 if self.quick else 60)
        bound_mib = 64
        label = "membound-rgw"
        log(f"memory bound: gateway stopped for {stall} s under load, max_buffered_bytes "
            f"{bound_mib} MiB")
        d, path, mport = self.penne_config(label, self.sim_port,
                                           '[[watch]]\nlevel = "database"\ndatabase = "bench"',
                                           dest="s3", buffered=f"{bound_mib}MiB")
        self.seed_state(os.path.join(d, "state"), "bench")
        p = self.start_penne(label, path)
        res = {"max_buffered_mib": bound_mib, "stall_s": stall}
        try:
            # Let it run at full speed for a moment, then cut the gateway.
            deadline = time.time() + 120
            while time.time() < deadline:
                m = self.metrics(mport) or {}
                if m.get("penne_events_written_total", 0) > 0:
                    break
                time.sleep(0.1)
            res["rss_before_stall_mib"] = round(proc_rss_mib(p.pid), 1)
            self.rgw_gateway("stop-gateway")
            t_stop = time.time()
            w_stop = (self.metrics(mport) or {}).get("penne_events_written_total", 0)
            rss, buffered = [], []
            while time.time() - t_stop < stall:
                rss.append(proc_rss_mib(p.pid) or 0)
                m = self.metrics(mport) or {}
                buffered.append(m.get("penne_buffered_bytes", 0) / (1024 * 1024))
                time.sleep(0.5)
            w_stall = (self.metrics(mport) or {}).get("penne_events_written_total", 0)
            self.rgw_gateway("start-gateway")
            t_back = time.time()
            res["rss_max_during_stall_mib"] = round(max(rss), 1)
            res["buffered_max_during_stall_mib"] = round(max(buffered), 1)
            res["events_written_during_stall"] = int(w_stall - w_stop)
            done = None
            while time.time() - t_back < 600:
                m = self.metrics(mport) or {}
                if m.get("penne_events_written_total", 0) >= self.n:
                    done = time.time()
                    break
                rss.append(proc_rss_mib(p.pid) or 0)
                time.sleep(0.2)
            res["recovered"] = done is not None
            if done:
                res["drain_after_return_s"] = round(done - t_back, 1)
                res["events_per_s_after_return"] = round((self.n - w_stall) / (done - t_back))
            res["rss_max_mib"] = round(max(rss), 1)
        finally:
            p.stop()
        self.report["memory_bound"] = res
        self.report["rss_max_stalled_mib"] = res.get("rss_max_during_stall_mib")

    # Parts of the phases above, alone (--only scaling,memory): for tuning one of them.
    def phase_scaling(self):
        """threads = 1 and 2, jsonl+zstd into a local directory (also done by throughput)."""
        if self.sim is None:
            self.sim, self.sim_port = self.start_sim(self.n)
        runs = {}
        for t in (1, 2):
            log(f"scaling: jsonl+zstd, local directory, {t} thread(s)")
            runs[t] = self.drain_with_penne(f"sc-jsonl-zstd-local-t{t}", threads=t)
        self.report["scaling"] = {
            "threads_1_events_per_s": runs[1]["events_per_s"],
            "threads_1_cpu_ns_per_event": runs[1]["cpu_ns_per_event"],
            "threads_2_events_per_s": runs[2]["events_per_s"],
            "threads_2_events_per_s_per_thread": round(runs[2]["events_per_s"] / 2),
            "threads_2_cpu_ns_per_event": runs[2]["cpu_ns_per_event"],
        }

    def phase_memory(self):
        """The memory bound alone (also done by rgw): the gateway stopped under load."""
        if self.sim is None:
            self.sim, self.sim_port = self.start_sim(self.n)
        if self.rgw_env is None:
            self.start_rgw()
        self.memory_bound()

    def phase_latency(self):
        rate = 1000
        secs = 10 if self.quick else 30
        age = 1000
        log(f"latency: {rate} ops/s for {secs} s, batch.max_age_ms {age}")
        sim, port = self.start_sim(0, name="mongosim-latency")
        d, path, mport = self.penne_config("latency", port,
                                           '[[watch]]\nlevel = "database"\ndatabase = "lat"',
                                           max_events=1_000_000, max_age_ms=age)
        p = self.start_penne("penne-latency", path)
        try:
            deadline = time.time() + 60
            while time.time() < deadline and self.metrics(mport) is None:
                time.sleep(0.2)
            time.sleep(2)  # the stream opens at "now": let it open before the first write
            out = subprocess.run([self.bin["loadgen"], "write", "--uri",
                                  f"mongodb://127.0.0.1:{port}/?directConnection=true", "--db", "lat",
                                  "--collections", "4", "--ops", str(rate * secs), "--rate", str(rate),
                                  "--batch", "10"], capture_output=True, text=True, timeout=secs + 120)
            if out.returncode != 0:
                raise RuntimeError("loadgen: " + out.stdout[-400:] + out.stderr[-400:])
            want = rate * secs
            deadline = time.time() + 30
            while time.time() < deadline:
                m = self.metrics(mport) or {}
                if m.get("penne_events_written_total", 0) >= want:
                    break
                time.sleep(0.2)
        finally:
            p.stop()
            sim.stop()
        lat = []
        for root, _, files in os.walk(os.path.join(d, "out")):
            for fn in files:
                fp = os.path.join(root, fn)
                mtime_ms = os.stat(fp).st_mtime_ns / 1e6
                if fn.endswith(".zst"):
                    text = subprocess.run(["zstd", "-dc", fp], capture_output=True).stdout.decode()
                else:
                    with open(fp) as f:
                        text = f.read()
                for line in text.splitlines():
                    if not line.strip():
                        continue
                    ev = json.loads(line)
                    w = ev.get("wallTime", {}).get("$date")
                    if isinstance(w, dict):
                        wall_ms = int(w["$numberLong"])
                    else:
                        wall_ms = datetime.fromisoformat(w.replace("Z", "+00:00")).timestamp() * 1000
                    lat.append(mtime_ms - wall_ms)
        lat.sort()
        if not lat:
            raise RuntimeError("latency: no events in the output")
        q = lambda f: round(lat[min(len(lat) - 1, int(f * len(lat)))], 1)
        self.report["latency"] = {"rate_ops_per_s": rate, "seconds": secs, "events": len(lat),
                                  "batch_max_age_ms": age, "p50_ms": q(0.50), "p99_ms": q(0.99),
                                  "max_ms": round(lat[-1], 1),
                                  "measured": "object file mtime - event wallTime (commit)"}
        self.report["p50_ms"] = q(0.50)
        self.report["p99_ms"] = q(0.99)
        self.report["batch_max_age_ms"] = age

    def sample(self, pid, seconds):
        """RSS at the end and CPU used (ms per second) over `seconds`."""
        c0, t0 = proc_cpu_s(pid), time.time()
        time.sleep(seconds)
        c1, t1 = proc_cpu_s(pid), time.time()
        return round(proc_rss_mib(pid), 1), round((c1 - c0) * 1000 / (t1 - t0), 1)

    def density_case(self, label, colls, watch, db, per_labels):
        sim, port = self.start_sim(0, name=f"mongosim-{label}")
        age = 1000
        d, path, mport = self.penne_config(label, port, watch, max_age_ms=age,
                                           per_collection_labels=per_labels)
        p = self.start_penne(f"penne-{label}", path)
        res = {"collections": colls}
        uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
        window = 5 if self.quick else 15
        try:
            deadline = time.time() + 300
            while time.time() < deadline and self.metrics(mport) is None:
                time.sleep(0.2)
            time.sleep(2)
            res["rss_started_mib"], res["cpu_ms_per_s_started"] = self.sample(p.pid, window)
            # A trickle: one insert per write, round-robin over every collection, two rounds.
            # (loadgen numbers its documents from 0 in every run, so one run does it all.)
            # The first round makes every collection known to penne; the second is sampled.
            # Rounds of at least 4 s (10 s for 10,000 collections at 1,000 writes/s), so the
            # CPU sample spans many 10 ms clock ticks.
            rate = min(1000, max(1, colls // 4))
            round_s = colls / rate
            lg = subprocess.Popen([self.bin["loadgen"], "write", "--uri", uri, "--db", db,
                                   "--collections", str(colls), "--ops", str(2 * colls),
                                   "--batch", "1", "--rate", str(rate)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(round_s * 1.1)
            res["rss_trickle_mib"], res["cpu_ms_per_s_trickle"] = self.sample(p.pid,
                                                                               round_s * 0.7)
            res["trickle_ops_per_s"] = rate
            if lg.wait(timeout=round_s * 4 + 120) != 0:
                raise RuntimeError("loadgen: " + lg.stderr.read().decode()[-300:])
            deadline = time.time() + 120
            while time.time() < deadline:
                if (self.metrics(mport) or {}).get("penne_events_written_total", 0) >= 2 * colls:
                    break
                time.sleep(0.5)
            else:
                # penne could not keep up: say so, keep what was measured, and sample anyway.
                m = self.metrics(mport)
                written = ("/metrics did not answer" if m is None else
                           f"{int(m.get('penne_events_written_total', 0))} written")
                res["error"] = (f"the trickle's {2 * colls} events were not all written within "
                                f"120 s of its end ({written})")
                res["rss_backlog_mib"], res["cpu_ms_per_s_backlog"] = self.sample(p.pid, window)
                return res
            # Idle: every collection has been seen, every batch sealed by age and written.
            time.sleep(age / 1000 + 2)
            res["rss_idle_mib"], res["cpu_ms_per_s_idle"] = self.sample(p.pid, window)
        finally:
            p.stop()
            sim.stop()
        return res

    def phase_density(self):
        colls = 1000 if self.quick else 10_000
        log(f"density: {colls} collections under one database scope")
        r = self.density_case("density-db", colls,
                              '[[watch]]\nlevel = "database"\ndatabase = "dense"', "dense", False)
        self.report["density_database_scope"] = r
        if "error" in r:
            self.report["errors"]["density_database_scope"] = r["error"]
        key = "10k" if colls == 10_000 else f"{colls}"
        # The figure is named for 10,000 collections; --quick leaves it null.
        self.report.setdefault("rss_idle_10k_collections_mib", None)
        self.report[f"rss_idle_{key}_collections_mib"] = r.get("rss_idle_mib")
        self.report[f"rss_trickle_{key}_collections_mib"] = r.get("rss_trickle_mib")
        self.report[f"cpu_ms_per_s_idle_{key}_collections"] = r.get("cpu_ms_per_s_idle")
        scopes = 100 if self.quick else 1000
        log(f"density: {scopes} collection-level scopes")
        names = ", ".join(f'"coll{i}"' for i in range(scopes))
        r = self.density_case("density-scopes", scopes,
                              f'[[watch]]\nlevel = "collection"\ndatabase = "scoped"\n'
                              f"collections = [{names}]", "scoped", False)
        self.report["density_collection_scopes"] = r
        if "error" in r:
            self.report["errors"]["density_collection_scopes"] = r["error"]
        key = "1k" if scopes == 1000 else f"{scopes}"
        self.report[f"rss_idle_{key}_scopes_mib"] = r.get("rss_idle_mib")
        self.report[f"cpu_ms_per_s_idle_{key}_scopes"] = r.get("cpu_ms_per_s_idle")

    # -- driver -----------------------------------------------------------------------------
    def run(self):
        phases = ["ceiling", "throughput", "rgw", "latency", "density"]
        if self.args.only:
            phases = [p for p in self.args.only.split(",") if p]
        skip = set(filter(None, (self.args.skip or "").split(",")))
        missing = [p for p in self.bin.values() if not os.path.exists(p)]
        if missing:
            # The phases that need them fail and say so; the others still run.
            self.report["errors"]["binaries"] = "missing (build them first): " + ", ".join(missing)
        self.report["phase_load"] = {}
        try:
            for name in phases:
                if name in skip:
                    continue
                l0 = loadavg()
                t0 = time.time()
                try:
                    getattr(self, f"phase_{name}")()
                except Exception as e:  # one broken phase must not hide the others
                    log(f"{name} failed: {e}")
                    self.report["errors"][name] = str(e)[-600:]
                self.report["phase_load"][name] = {"load_before": l0, "load_after": loadavg(),
                                                   "seconds": round(time.time() - t0)}
        finally:
            if self.sim:
                self.sim.stop()
            if self.rgw_dir:
                subprocess.run([os.path.join(self.src, "tests/support/rgw/rgw.sh"), "stop",
                                self.rgw_dir], capture_output=True, timeout=120)
            if not self.args.keep_dir:
                shutil.rmtree(self.work, ignore_errors=True)
            else:
                self.report["work_dir"] = self.work
        self.report["machine"]["load_end"] = loadavg()
        targets = {}
        # The paired ratio when there is one: both sides measured on the same host state.
        ratio = self.report.get("ratio_paired", self.report.get("ratio"))
        if ratio is not None:
            targets["ratio_le_1.25"] = ratio <= 1.25
        if self.report.get("p99_ms") is not None:
            targets["p99_le_age_plus_50ms"] = (self.report["p99_ms"] <=
                                               self.report["batch_max_age_ms"] + 50)
        if self.report.get("rss_idle_10k_collections_mib") is not None:
            targets["rss_idle_10k_collections_lt_64mib"] = \
                self.report["rss_idle_10k_collections_mib"] < 64
        if self.report.get("mongosim", {}).get("server_events_per_cpu_s"):
            targets["mongosim_ge_300k_events_per_cpu_s"] = \
                self.report["mongosim"]["server_events_per_cpu_s"] >= 300_000
        self.report["targets_met"] = targets
        print(json.dumps(self.report))
        return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run of minutes")
    ap.add_argument("--build", default=None, help="build directory (default build/bench)")
    ap.add_argument("--events", type=int, default=0, help="preloaded events (default 1M, quick 200k)")
    ap.add_argument("--skip", default="", help="phases to skip: ceiling,throughput,rgw,latency,density")
    ap.add_argument("--only", default="",
                    help="run only these phases, in this order (also: scaling, memory)")
    ap.add_argument("--stall", type=int, default=0, help="seconds the gateway is stopped (60)")
    ap.add_argument("--keep-dir", action="store_true", help="keep the work directory and logs")
    ap.add_argument("--jsonl-only", action="store_true",
                    help="ceiling and throughput for jsonl+zstd on 1 thread only (no other "
                         "formats, no threads = 2): the ratio in minutes")
    ap.add_argument("--penne-runs", type=int, default=7,
                    help="drains of jsonl+zstd/1 thread; when the ceiling phase runs, each "
                         "is set against the ceiling processes run right before and after it "
                         "(ratio_paired is the median of the pairs); `ratio` takes the least "
                         "CPU per event (7)")
    ap.add_argument("--ceiling-runs", type=int, default=3,
                    help="jsonl+zstd stage timings, each in its own process; the median "
                         "ceiling counts (3)")
    ap.add_argument("--batch-size", type=int, default=0,
                    help="penne's [mongodb] batch_size in the jsonl+zstd/1 thread drains "
                         "(0: the server's default, up to 16 MiB per reply)")
    ap.add_argument("--mongodb-option", action="append", metavar="KEY=VALUE",
                    help="a line added to every penne's [mongodb] table, e.g. "
                         "'prefetch = false' (repeatable; for experiments)")
    ap.add_argument("--mongosim", default=None, help="mongosim binary (default: the build's)")
    ap.add_argument("--penne", default=None, help="penne binary (default: the build's)")
    ap.add_argument("--no-pin", action="store_true",
                    help="do not give the simulator a CPU of its own (see Bench.__init__)")
    ap.add_argument("--perf", default=None,
                    help="one more jsonl+zstd drain under `perf record -g`, written to this "
                         "file (not counted in the figures); PENNE_BENCH_PERF_ARGS replaces "
                         "-g, e.g. '--call-graph dwarf,8192 -F 300'")
    args = ap.parse_args()
    if args.build is None:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        args.build = os.path.join(root, "build", "bench")
    sys.exit(Bench(args).run())


if __name__ == "__main__":
    main()
