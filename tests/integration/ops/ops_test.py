#!/usr/bin/python3
"""Operations assets (compose/, Dockerfile) checked against real tools and a running penne.

Run by ctest (tests/integration/ops/CMakeLists.txt) with Debian's /usr/bin/python3, which has
PyYAML (python3-yaml) and PyMongo (python3-pymongo):

  ops_test.py assets   promtool check rules/config and `promtool test rules`; the compose
                       files parse, name their services, and mount files that exist;
                       `docker-compose config` accepts docker-compose.yml; the process-compose
                       graph is sound; both penne.toml pass `penne check-config`; the
                       Dockerfile's packages match scripts/install-deps.sh and cover every
                       shared library penne and penne-loadgen load.
  ops_test.py live     mongosim -> penne -> a flaky S3 stand-in, checkpoints in a real
                       redis-server, scraped by a real Prometheus evaluating alerts.yml:
                       every metric the Grafana dashboard names is one penne exported in this
                       run, every dashboard query and alert rule evaluates in Prometheus, and
                       histogram_quantile over the upload buckets returns a number.

Environment: PENNE_BUILD_DIR (the build tree with app/penne and tests/mongosim/mongosim),
PENNE_SOURCE_DIR (the repository), PENNE_KEEP_TEST_DIRS=1 keeps the temporary directory.
"""

import hashlib
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

SOURCE = os.environ.get("PENNE_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BUILD = os.environ.get("PENNE_BUILD_DIR") or os.path.join(SOURCE, "build", "debug")
COMPOSE = os.path.join(SOURCE, "compose")
PENNE = os.path.join(BUILD, "app", "penne")
MONGOSIM = os.path.join(BUILD, "tests", "mongosim", "mongosim")
LOADGEN = os.path.join(BUILD, "bench", "e2e", "penne-loadgen")

# The services each stack must run (issue 8): the same roles, native stand-ins in process-compose.
DOCKER_SERVICES = {"mongo", "mongo-init", "redis", "minio", "minio-init", "penne", "loadgen",
                   "prometheus", "grafana"}
NATIVE_PROCESSES = {"build", "mongosim", "redis", "s3", "penne", "loadgen", "prometheus"}
# Packages every debian:12-slim image has (Essential or required by apt itself).
BASE_IMAGE_PACKAGES = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g"}

METRIC_RE = re.compile(r"\b((?:penne|rigatoni)_[A-Za-z0-9_]+)\b")
# Grafana's variables, as a user of the dashboard with "All" selected would send them.
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m",
                "$job": ".+", "$instance": ".+"}


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def run(argv, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=kw.pop("timeout", 120), **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dashboard_targets(dash):
    """(panel title, expression) of every query in the dashboard, template variables included."""
    out = []

    def walk(panels):
        for p in panels:
            if p.get("type") == "row":
                walk(p.get("panels", []))
                continue
            for t in p.get("targets", []):
                out.append((p.get("title", "?"), t.get("expr", "")))
    walk(dash.get("panels", []))
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v.get("query")
            out.append(("variable " + v["name"], q.get("query") if isinstance(q, dict) else q))
    return out


def grafana_to_promql(expr):
    for k in sorted(GRAFANA_VARS, key=len, reverse=True):
        expr = expr.replace(k, GRAFANA_VARS[k])
    return expr


# ------------------------------------------------------------------------------------------
class assets(unittest.TestCase):
    """Static checks: the files are what the tools that consume them accept."""

    def test_promtool_checks_the_rules_and_both_prometheus_configs(self):
        for argv in (["promtool", "check", "rules", "prometheus/alerts.yml"],
                     ["promtool", "check", "config", "prometheus/prometheus.yml"],
                     ["promtool", "check", "config", "native/prometheus.yml"]):
            r = run(argv, cwd=COMPOSE)
            self.assertEqual(r.returncode, 0, " ".join(argv) + "\n" + r.stdout)
            self.assertIn("SUCCESS", r.stdout)
        rules = load_yaml(os.path.join(COMPOSE, "prometheus", "alerts.yml"))
        names = {r["alert"] for g in rules["groups"] for r in g["rules"]}
        self.assertTrue({"PenneDown", "PenneNotReady", "PenneLagHigh", "PenneUploadErrorRate",
                         "PenneLeaseFlapping"} <= names, names)

    def test_alert_rules_fire_on_the_series_they_are_meant_for(self):
        here = os.path.dirname(os.path.abspath(__file__))
        with tempfile.TemporaryDirectory() as tmp:
            # promtool resolves rule_files relative to the test file: copy both side by side.
            shutil.copy(os.path.join(COMPOSE, "prometheus", "alerts.yml"), tmp)
            shutil.copy(os.path.join(here, "alerts_test.yml"), tmp)
            r = run(["promtool", "test", "rules", "alerts_test.yml"], cwd=tmp)
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertIn("SUCCESS", r.stdout)

    def test_docker_compose_names_the_services_and_mounts_files_that_exist(self):
        path = os.path.join(COMPOSE, "docker-compose.yml")
        doc = load_yaml(path)
        services = doc["services"]
        self.assertEqual(set(services), DOCKER_SERVICES)
        self.assertEqual(services["mongo"]["image"].split(":")[0], "mongo")
        self.assertTrue(services["mongo"]["image"].split(":")[1].startswith("7"))
        self.assertIn("--replSet", services["mongo"]["command"])
        self.assertIn("--appendonly", services["redis"]["command"])
        self.assertIn("yes", services["redis"]["command"])
        self.assertIn("mc mb", " ".join(services["minio-init"]["command"]))
        # penne built from the repository's Dockerfile, loadgen from the same image.
        build = services["penne"]["build"]
        self.assertTrue(os.path.isfile(os.path.join(COMPOSE, build["context"], build["dockerfile"])))
        self.assertEqual(services["loadgen"]["image"], services["penne"]["image"])
        self.assertEqual(services["loadgen"]["entrypoint"], ["penne-loadgen"])
        self.assertEqual(services["penne"]["command"], ["run", "-c", "/etc/penne/penne.toml"])
        self.assertEqual(services["penne"]["depends_on"]["mongo-init"]["condition"],
                         "service_completed_successfully")
        # Every bind mount's source exists in the repository.
        mounts = 0
        for name, svc in services.items():
            for v in svc.get("volumes", []):
                src = v.split(":")[0]
                if not src.startswith("."):
                    self.assertIn(src, doc.get("volumes", {}), f"{name}: named volume {src}")
                    continue
                mounts += 1
                self.assertTrue(os.path.exists(os.path.join(COMPOSE, src)), f"{name} mounts {src}")
        self.assertGreaterEqual(mounts, 7)
        # Prometheus scrapes penne where the compose network has it.
        prom = load_yaml(os.path.join(COMPOSE, "prometheus", "prometheus.yml"))
        targets = [t for sc in prom["scrape_configs"] if sc["job_name"] == "penne"
                   for s in sc["static_configs"] for t in s["targets"]]
        self.assertEqual(targets, ["penne:9464"])

    def test_docker_compose_config_accepts_the_file(self):
        exe = shutil.which("docker-compose")
        self.assertIsNotNone(exe, "docker-compose (apt docker-compose) is not installed")
        r = run([exe, "-f", os.path.join(COMPOSE, "docker-compose.yml"), "config", "-q"])
        self.assertEqual(r.returncode, 0, r.stdout)
        r = run([exe, "-f", os.path.join(COMPOSE, "docker-compose.yml"), "config", "--services"])
        self.assertEqual(set(r.stdout.split()), DOCKER_SERVICES, r.stdout)

    def test_grafana_provisioning_points_at_the_dashboard(self):
        prov = os.path.join(COMPOSE, "grafana", "provisioning")
        ds = load_yaml(os.path.join(prov, "datasources", "prometheus.yml"))
        self.assertEqual(ds["apiVersion"], 1)
        (source,) = ds["datasources"]
        self.assertEqual(source["type"], "prometheus")
        self.assertEqual(source["url"], "http://prometheus:9090")
        dp = load_yaml(os.path.join(prov, "dashboards", "penne.yml"))
        (provider,) = dp["providers"]
        self.assertEqual(provider["type"], "file")
        # The provider's path is where docker-compose.yml mounts grafana/dashboards.
        grafana = load_yaml(os.path.join(COMPOSE, "docker-compose.yml"))["services"]["grafana"]
        mounts = dict(v.split(":")[:2] for v in grafana["volumes"] if v.startswith("."))
        self.assertEqual(mounts["./grafana/dashboards"], provider["options"]["path"])
        dash = json.loads(read(os.path.join(COMPOSE, "grafana", "dashboards", "penne.json")))
        self.assertTrue(dash["uid"] and dash["title"])
        ids = []
        for p in dash["panels"]:
            ids.append(p["id"])
            for key in ("x", "y", "w", "h"):
                self.assertIsInstance(p["gridPos"][key], int, p["title"])
            self.assertLessEqual(p["gridPos"]["x"] + p["gridPos"]["w"], 24, p["title"])
            if p["type"] != "row":
                self.assertTrue(p["targets"], p["title"] + " has no query")
                for t in p["targets"]:
                    self.assertEqual(t["datasource"]["uid"], "${datasource}", p["title"])
        self.assertEqual(len(ids), len(set(ids)), "panel ids repeat")
        # The panels the issue asks for, by what they query.
        exprs = " ".join(e for _, e in dashboard_targets(dash))
        for needed in ("penne_events_written_total", "penne_lag_seconds",
                       "histogram_quantile(0.99, sum by (le) (rate(penne_upload_duration_seconds_bucket",
                       "penne_upload_retries_total", "penne_upload_errors_total",
                       "penne_buffered_bytes", "penne_lease_held", "penne_pipeline_status"):
            self.assertIn(needed, exprs)

    def test_process_compose_runs_the_same_stack_natively(self):
        doc = load_yaml(os.path.join(COMPOSE, "process-compose.yml"))
        procs = doc["processes"]
        self.assertEqual(set(procs), NATIVE_PROCESSES)
        stack = os.path.join(COMPOSE, "native", "stack.sh")
        self.assertTrue(os.access(stack, os.X_OK))
        usage = read(stack)
        commands = []
        for name, p in procs.items():
            commands.append(p["command"])
            if "shutdown" in p and "command" in p["shutdown"]:
                commands.append(p["shutdown"]["command"])
            probe = p.get("readiness_probe", {})
            if "exec" in probe:
                commands.append(probe["exec"]["command"])
            for dep, cond in p.get("depends_on", {}).items():
                self.assertIn(dep, procs, f"{name} depends on unknown {dep}")
                self.assertIn(cond["condition"], {"process_started", "process_healthy",
                                                  "process_completed_successfully"})
                if cond["condition"] == "process_healthy":
                    self.assertIn("readiness_probe", procs[dep], f"{dep} has no probe")
        # No cycle: a topological order exists.
        done, pending = set(), set(procs)
        while pending:
            ready = {n for n in pending if set(procs[n].get("depends_on", {})) <= done}
            self.assertTrue(ready, f"dependency cycle among {pending}")
            done |= ready
            pending -= ready
        # Every stack.sh subcommand used exists in the script, and files it reads exist.
        for c in commands:
            if c.startswith("compose/native/stack.sh "):
                sub = c.split()[1]
                self.assertRegex(usage, r"\n  " + re.escape(sub) + r"\)\n", c)
        for rel in ("compose/native/penne.toml", "compose/native/prometheus.yml",
                    "tests/support/rgw/rgw.sh", "scripts/install-deps.sh"):
            self.assertTrue(os.path.exists(os.path.join(SOURCE, rel)), rel)
        r = run(["bash", "-n", stack])
        self.assertEqual(r.returncode, 0, r.stdout)

    def test_penne_check_config_accepts_both_configurations(self):
        env = dict(os.environ, AWS_ACCESS_KEY_ID="check", AWS_SECRET_ACCESS_KEY="check-secret",
                   AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
        env.pop("PENNE_MONGODB_URI", None)
        env.pop("PENNE_REDIS_URL", None)
        for cfg in ("compose/penne.toml", "compose/native/penne.toml"):
            r = run([PENNE, "check-config", "-c", os.path.join(SOURCE, cfg)], env=env)
            self.assertEqual(r.returncode, 0, cfg + "\n" + r.stdout)
            self.assertNotIn("check-secret", r.stdout)
        docker = read(os.path.join(COMPOSE, "penne.toml"))
        self.assertIn('address = "0.0.0.0"', docker)  # scraped from the prometheus container

    def test_dockerfile_packages_follow_install_deps_and_cover_the_binaries(self):
        text = read(os.path.join(SOURCE, "Dockerfile"))
        stages = re.split(r"^FROM ", text, flags=re.M)[1:]
        self.assertEqual(len(stages), 2, "a build stage and a runtime stage")
        self.assertTrue(stages[0].startswith("debian:12 AS build"))
        self.assertTrue(stages[1].startswith("debian:12-slim"))

        def apt_packages(stage):
            m = re.search(r"apt-get install -y --no-install-recommends \\\n(.*?)\n &&", stage, re.S)
            self.assertIsNotNone(m)
            return set(m.group(1).replace("\\", " ").split())
        build_pkgs, runtime_pkgs = apt_packages(stages[0]), apt_packages(stages[1])
        deps = read(os.path.join(SOURCE, "scripts", "install-deps.sh"))
        listed = set(re.search(r"packages=\((.*?)\n\)", deps, re.S).group(1).split())
        self.assertLessEqual(build_pkgs, listed, "Dockerfile build packages not in install-deps.sh")
        self.assertIn('"run", "-c", "/etc/penne/penne.toml"', stages[1])
        self.assertIn("--target penne penne-loadgen", stages[0])

        # Every shared library the binaries load comes from a runtime package, one of their
        # dependencies, or the base image.
        r = run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
                 "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances",
                 *sorted(runtime_pkgs)])
        self.assertEqual(r.returncode, 0, r.stdout)
        provided = set(runtime_pkgs) | BASE_IMAGE_PACKAGES
        for line in r.stdout.splitlines():
            line = line.strip()
            if line.startswith("Depends:") or line.startswith("PreDepends:"):
                line = line.split(":", 1)[1].strip()
            provided.add(line.strip("<>").split(":")[0])
        for binary in (PENNE, LOADGEN):
            if not os.path.exists(binary):
                self.assertNotEqual(binary, PENNE, "penne is not built")
                continue  # penne-loadgen: only in builds with PENNE_BUILD_BENCH
            r = run(["ldd", binary])
            self.assertEqual(r.returncode, 0, r.stdout)
            if re.search(r"lib(a|ub|t|l|hwa)san\.so", r.stdout):
                # A sanitizer build (PRESET=asan) links its runtime and more of Boost; the
                # image is built with the release preset, whose libraries are checked here.
                continue
            for lib in re.findall(r"=> (/\S+)", r.stdout):
                real = os.path.realpath(lib)
                q = run(["dpkg", "-S", real])
                if q.returncode != 0:  # usrmerge: /lib/... is owned as /usr/lib/... or back
                    alt = real[4:] if real.startswith("/usr/") else "/usr" + real
                    q = run(["dpkg", "-S", alt])
                self.assertEqual(q.returncode, 0, f"no package owns {real}")
                pkg = q.stdout.split(":")[0]
                self.assertIn(pkg, provided, f"{os.path.basename(binary)} loads {lib} from "
                              f"{pkg}, which the runtime stage does not install")

    def test_dockerignore_keeps_build_trees_out_of_the_context(self):
        ignored = read(os.path.join(SOURCE, ".dockerignore")).split()
        for pattern in ("build/", ".git", "**/node_modules/"):
            self.assertIn(pattern, ignored)


# ------------------------------------------------------------------------------------------
class flaky_s3:
    """An S3 stand-in for error injection (not a judge of signing: Ceph RGW is that): one
    bucket, PutObject/HeadBucket/DeleteObject, and `fail(n)` makes the next n object uploads
    answer 503 SlowDown, as an overloaded S3 does."""

    def __init__(self, bucket):
        self.bucket = bucket
        self.objects = {}
        self.failures_left = 0
        self.failed = 0
        self.lock = threading.Lock()
        outer = self

        class handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def send(self, status, body=b"", headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def path_parts(self):
                path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
                bucket, _, key = path.lstrip("/").partition("/")
                return bucket, key

            def no_bucket(self):
                self.send(404, b"<Error><Code>NoSuchBucket</Code></Error>",
                          [("Content-Type", "application/xml")])

            def do_HEAD(self):
                bucket, _ = self.path_parts()
                if bucket != outer.bucket:
                    return self.no_bucket()
                self.send(200)

            def do_PUT(self):
                bucket, key = self.path_parts()
                n = int(self.headers.get("Content-Length", "0") or "0")
                body = self.rfile.read(n) if n else b""
                if bucket != outer.bucket:
                    return self.no_bucket()
                with outer.lock:
                    fail = outer.failures_left > 0 and ".penne-write-check" not in key
                    if fail:
                        outer.failures_left -= 1
                        outer.failed += 1
                    else:
                        outer.objects[key] = body
                if fail:
                    return self.send(503, b"<Error><Code>SlowDown</Code><Message>Please reduce "
                                     b"your request rate.</Message></Error>",
                                     [("Content-Type", "application/xml")])
                self.send(200, b"", [("ETag", '"%s"' % hashlib.md5(body).hexdigest())])

            def do_DELETE(self):
                bucket, key = self.path_parts()
                with outer.lock:
                    outer.objects.pop(key, None)
                self.send(204)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def fail(self, n):
        with self.lock:
            self.failures_left = n

    def count(self):
        with self.lock:
            return len([k for k in self.objects if ".penne-write-check" not in k]), self.failed

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class child:
    """A process whose output goes to a log file; killed (with its group) at close()."""

    def __init__(self, argv, log, env=None):
        self.log_path = log
        self.out = open(log, "wb")
        self.proc = subprocess.Popen(argv, stdout=self.out, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)

    def log(self):
        return read(self.log_path) if os.path.exists(self.log_path) else ""

    def wait_for(self, needle, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if needle in self.log():
                return True
            if self.proc.poll() is not None:
                return needle in self.log()
            time.sleep(0.05)
        return False

    def send_signal(self, sig):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def close(self, sig=signal.SIGKILL, timeout=30):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGCONT)
                os.kill(self.proc.pid, sig)
                self.proc.wait(timeout)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.out.close()
        return self.proc.returncode


def http_get(port, path, timeout=5):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def exposition_families(text):
    """{family name: type} from the # TYPE lines of a Prometheus text exposition."""
    fams = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            fams[name] = kind
    return fams


class live(unittest.TestCase):
    """A real stack: mongosim, redis-server, penne (S3 destination on a flaky stand-in) and a
    Prometheus that scrapes penne and evaluates compose/prometheus/alerts.yml."""

    @classmethod
    def setUpClass(cls):
        import pymongo  # python3-pymongo (Debian's /usr/bin/python3)
        cls.procs = []
        cls.dir = tempfile.mkdtemp(prefix="penne-ops-")
        d = cls.dir
        try:
            cls.s3 = flaky_s3("penne-ops")
            cls.mongo_port = free_port()
            cls.mongosim = cls.start([MONGOSIM, "--port", str(cls.mongo_port)], "mongosim.log")
            assert cls.mongosim.wait_for("mongosim listening on", 10), cls.mongosim.log()
            cls.redis_port = free_port()
            os.mkdir(os.path.join(d, "redis"))
            cls.redis = cls.start(["redis-server", "--port", str(cls.redis_port), "--bind",
                                   "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
                                   os.path.join(d, "redis")], "redis.log")
            assert cls.redis.wait_for("Ready to accept connections", 10), cls.redis.log()
            with open(os.path.join(d, "penne.toml"), "w") as f:
                f.write(f"""
[mongodb]
uri = "mongodb://127.0.0.1:{cls.mongo_port}/?directConnection=true"
max_await_ms = 200
connect_timeout_ms = 2000
[[watch]]
level = "database"
database = "shop"
[batch]
max_events = 50
max_age_ms = 200
[output]
prefix = "cdc"
[destination]
type = "s3"
[s3]
bucket = "penne-ops"
endpoint = "http://127.0.0.1:{cls.s3.port}"
region = "us-east-1"
max_retries = 1
request_timeout_ms = 2000
[state]
type = "redis"
url = "redis://127.0.0.1:{cls.redis_port}/0"
command_timeout_ms = 300
connect_timeout_ms = 1000
[pipeline]
checkpoint_interval_ms = 100
[retry]
initial_delay_ms = 50
max_delay_ms = 200
[log]
level = "info"
progress_interval_ms = 0
[metrics]
port = 0
not_ready_after_ms = 1000
""")
            env = dict(os.environ, AWS_ACCESS_KEY_ID="ops-test", AWS_SECRET_ACCESS_KEY="ops-test-secret",
                       AWS_EC2_METADATA_DISABLED="true")
            cls.penne = cls.start([PENNE, "run", "-c", os.path.join(d, "penne.toml")], "penne.log", env)
            line = "ops server listening on 127.0.0.1:"
            assert cls.penne.wait_for(line, 30), cls.penne.log()
            log = cls.penne.log()
            cls.ops_port = int(re.match(r"\d+", log[log.index(line) + len(line):]).group(0))

            cls.prom_port = free_port()
            with open(os.path.join(d, "prometheus.yml"), "w") as f:
                f.write(f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - {os.path.join(COMPOSE, "prometheus", "alerts.yml")}
scrape_configs:
  - job_name: penne
    static_configs:
      - targets: ["127.0.0.1:{cls.ops_port}"]
""")
            cls.prometheus = cls.start(
                ["prometheus", "--config.file=" + os.path.join(d, "prometheus.yml"),
                 "--storage.tsdb.path=" + os.path.join(d, "tsdb"),
                 f"--web.listen-address=127.0.0.1:{cls.prom_port}"], "prometheus.log")
            assert cls.prometheus.wait_for("Server is ready to receive web requests", 30), \
                cls.prometheus.log()
            # Targets reach the scrape loop up to 5 s after start (discovery is throttled):
            # the workload starts once penne has been scraped, so its changes are recorded.
            cls.wait_until("the first scrape", lambda: '"value"' in http_get(
                cls.prom_port, "/api/v1/query?query=" + urllib.parse.quote('up{job="penne"}'))[1], 30)

            cls.client = pymongo.MongoClient(
                f"mongodb://127.0.0.1:{cls.mongo_port}/?directConnection=true",
                serverSelectionTimeoutMS=5000)
            cls.exposition = cls.drive_workload()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def start(cls, argv, log, env=None):
        c = child(argv, os.path.join(cls.dir, log), env)
        cls.procs.append(c)
        return c

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "client", None):
            cls.client.close()
        for c in reversed(cls.procs):
            c.close(signal.SIGTERM if c is getattr(cls, "penne", None) else signal.SIGKILL)
        if getattr(cls, "s3", None):
            cls.s3.close()
        if os.environ.get("PENNE_KEEP_TEST_DIRS"):
            print("kept", cls.dir, file=sys.stderr)
        else:
            shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def wait_until(cls, what, pred, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            v = pred()
            if v:
                return v
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}\n--- penne log:\n{cls.penne.log()[-4000:]}")

    @classmethod
    def insert(cls, coll, first, n):
        cls.client.shop[coll].insert_many([{"_id": first + i, "n": first + i, "pad": "x" * 300}
                                           for i in range(n)])

    @classmethod
    def drive_workload(cls):
        """Inserts across several scrapes, with an S3 overload, a change-stream error and a
        Redis stall in between, so that every family penne has shows up; returns the last
        scrape."""
        cls.wait_until("/ready", lambda: http_get(cls.ops_port, "/ready")[0] == 200, 30)
        n = 0
        for coll in ("c0", "c1", "c2"):
            cls.insert(coll, n, 100)
            n += 100
        cls.wait_until("first objects", lambda: cls.s3.count()[0] >= 6, 30)
        # S3 overloaded: the next uploads answer 503 SlowDown (retried, never dropped).
        cls.s3.fail(3)
        cls.insert("c0", n, 100)
        n += 100
        cls.wait_until("503 answers", lambda: cls.s3.count()[1] >= 3, 30)
        # A resumable change-stream error on the next getMore.
        cls.client.admin.command({"configureFailPoint": "failCommand", "mode": {"times": 1},
                                  "data": {"failCommands": ["getMore"], "errorCode": 91,
                                           "errorLabels": ["ResumableChangeStreamError"]}})
        cls.insert("c1", n, 100)
        n += 100
        cls.wait_until("a resume", lambda: "penne_stream_resumes_total{" in
                       http_get(cls.ops_port, "/metrics")[1], 30)
        # Redis stalls longer than state.command_timeout_ms while checkpoints are due.
        cls.redis.send_signal(signal.SIGSTOP)
        time.sleep(1.5)
        cls.redis.send_signal(signal.SIGCONT)
        for i in range(8):  # keep uploads flowing across Prometheus's 1 s scrapes
            cls.insert("c%d" % (i % 3), n, 60)
            n += 60
            time.sleep(0.5)
        cls.total = n
        cls.wait_until("every event written", lambda: cls.events_written() == n, 60)
        status, text = http_get(cls.ops_port, "/metrics")
        assert status == 200, status
        return text

    @classmethod
    def events_written(cls):
        status, text = http_get(cls.ops_port, "/metrics")
        if status != 200:
            return -1
        total = 0
        for line in text.splitlines():
            if line.startswith("penne_events_written_total{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def prom_query(self, expr):
        url = f"/api/v1/query?query={urllib.parse.quote(expr)}"
        status, body = http_get(self.prom_port, url, timeout=10)
        return status, json.loads(body) if body else {}

    def test_dashboard_names_only_metrics_penne_exported(self):
        fams = exposition_families(self.exposition)
        self.assertIn("penne_upload_duration_seconds", fams)
        dash = json.loads(read(os.path.join(COMPOSE, "grafana", "dashboards", "penne.json")))
        missing = []
        used = set()
        for title, expr in dashboard_targets(dash):
            names = METRIC_RE.findall(expr)
            self.assertTrue(names or re.search(r"\bup\b", expr), f"{title}: no metric in {expr}")
            for name in names:
                used.add(name)
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                ok = fams.get(name) in ("counter", "gauge", "untyped") or (
                    base != name and fams.get(base) == "histogram")
                if not ok:
                    missing.append(f"{title}: {name}")
        self.assertEqual(missing, [], "the dashboard queries metrics penne did not export:\n"
                         + "\n".join(missing) + "\nexported: " + " ".join(sorted(fams)))
        self.assertGreaterEqual(len(used), 20)

    def test_the_workload_reached_the_error_paths_it_meant_to(self):
        fams = exposition_families(self.exposition)
        for name in ("penne_upload_retries_total", "penne_upload_errors_total",
                     "penne_stream_resumes_total", "penne_state_store_errors_total"):
            self.assertIn(name, fams)
        self.assertIn('penne_upload_errors_total{scope="shop",type="', self.exposition)
        objects, failed = self.s3.count()
        self.assertGreaterEqual(failed, 3)
        self.assertEqual(self.events_written(), self.total)

    def test_prometheus_scrapes_penne_and_computes_upload_quantiles(self):
        expr = "histogram_quantile(0.99, sum by (le) (rate(penne_upload_duration_seconds_bucket[1m])))"
        result = {}

        def answered():
            status, doc = self.prom_query(expr)
            self.assertEqual(status, 200, doc)
            self.assertEqual(doc["status"], "success")
            res = doc["data"]["result"]
            if res and not math.isnan(float(res[0]["value"][1])):
                result["value"] = float(res[0]["value"][1])
                return True
            return False
        self.wait_until(expr, answered, 30)
        # Upload latency is positive and within the histogram's finite buckets (≤ 120 s).
        self.assertGreater(result["value"], 0)
        self.assertLessEqual(result["value"], 120)
        status, doc = self.prom_query('up{job="penne"}')
        self.assertEqual([r["value"][1] for r in doc["data"]["result"]], ["1"])
        # Prometheus's next scrape agrees with penne's own count of the workload.
        def total_scraped():
            res = self.prom_query("sum(penne_events_written_total)")[1]["data"]["result"]
            return res and float(res[0]["value"][1]) == float(self.total)
        self.wait_until("the scraped event count", total_scraped, 10)

    def test_every_dashboard_query_evaluates_in_prometheus(self):
        dash = json.loads(read(os.path.join(COMPOSE, "grafana", "dashboards", "penne.json")))
        empty = []
        for title, expr in dashboard_targets(dash):
            if expr.startswith("label_values("):
                # Grafana's variable function: the metric selector inside it must match.
                sel = re.match(r"label_values\((.*), (\w+)\)$", expr)
                self.assertIsNotNone(sel, expr)
                promql = grafana_to_promql(sel.group(1))
            else:
                promql = grafana_to_promql(expr)
            status, doc = self.prom_query(promql)
            self.assertEqual(status, 200, f"{title}: {promql}: {doc}")
            self.assertEqual(doc.get("status"), "success", f"{title}: {promql}: {doc}")
            if not doc["data"]["result"]:
                empty.append(promql)
        # The workload reached every path the dashboard shows: no panel is left empty.
        self.assertEqual(empty, [], "queries without data:\n" + "\n".join(empty))

    def test_alert_rules_load_and_evaluate_without_errors(self):
        def evaluated():
            status, body = http_get(self.prom_port, "/api/v1/rules")
            rules = [r for g in json.loads(body)["data"]["groups"] for r in g["rules"]]
            return rules if rules and all(r.get("lastEvaluation", "").startswith("2") and
                                          not r["lastEvaluation"].startswith("0001")
                                          for r in rules) else None
        rules = self.wait_until("rule evaluation", evaluated, 30)
        self.assertEqual(len(rules), 6)
        for r in rules:
            self.assertEqual(r["health"], "ok", f"{r['name']}: {r.get('lastError')}")
        # The pipeline is up and running: nothing that means "down" or "failed" fires.
        firing = {r["name"] for r in rules for a in r.get("alerts", []) if a["state"] == "firing"}
        self.assertFalse(firing & {"PenneDown", "PennePipelineFailed"}, firing)


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else ""
    suites = {"assets": assets, "live": live}
    if which not in suites:
        print("usage: ops_test.py assets|live [unittest args]", file=sys.stderr)
        sys.exit(2)
    result = unittest.TextTestRunner(verbosity=2).run(
        unittest.TestLoader().loadTestsFromTestCase(suites[which]))
    print(f"{result.testsRun - len(result.failures) - len(result.errors)} passed, "
          f"{len(result.failures) + len(result.errors)} failed")
    sys.exit(0 if result.wasSuccessful() else 1)
