#!/usr/bin/env python3
"""examples/redact_fields end to end: mongosim → the example (penne embedded, a filter that
drops deletes and redacts fields) → a local directory. Inserts, updates and deletes
documents carrying an `email`; every insert and update appears once in the objects, no
delete appears, and no email address survives anywhere in the output.

    redact_fields_test.py <penne_example_redact_fields> <mongosim>
"""
import glob
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import pymongo

example, mongosim = sys.argv[1], sys.argv[2]
work = tempfile.mkdtemp(prefix="penne-example-")
out = os.path.join(work, "out")


def fail(msg):
    print("FAIL:", msg, file=sys.stderr)
    sys.exit(1)


def wait_for(pred, seconds, what):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.1)
    fail("timed out waiting for " + what)


sim = subprocess.Popen([mongosim, "--port", "0"], stdout=subprocess.PIPE, text=True)
procs = [sim]
try:
    line = sim.stdout.readline()
    m = re.search(r"listening on [0-9.]+:(\d+)", line)
    if not m:
        fail("mongosim did not start: " + line)
    uri = "mongodb://127.0.0.1:%s/?directConnection=true" % m.group(1)

    log = open(os.path.join(work, "example.log"), "w")
    ex = subprocess.Popen([example, uri, "app", out, "email"], stderr=log, stdout=log)
    procs.append(ex)
    # The state directory gets the scope's starting position once the stream is open;
    # events written before that would not be seen (a first start begins at "now").
    wait_for(lambda: glob.glob(os.path.join(out + "-state", "*")), 30, "the first checkpoint")

    coll = pymongo.MongoClient(uri)["app"]["users"]
    for i in range(20):
        coll.insert_one({"_id": i, "name": "user%d" % i, "email": "user%d@example.com" % i})
    for i in range(5):
        coll.update_one({"_id": i}, {"$set": {"email": "new%d@example.com" % i}})
    for i in range(15, 20):
        coll.delete_one({"_id": i})

    def events():
        found = []
        for path in glob.glob(os.path.join(out, "**", "*.jsonl*"), recursive=True):
            data = subprocess.run(["zstd", "-dcq", path] if path.endswith(".zst") else
                                  ["cat", path], capture_output=True, check=True).stdout
            found += [json.loads(l) for l in data.decode().splitlines() if l.strip()]
        return found

    # Batches seal by age (10 s by default): allow for it.
    wait_for(lambda: len(events()) >= 25, 60, "25 events in the output")
    ex.send_signal(signal.SIGTERM)
    if ex.wait(timeout=60) != 0:
        fail("the example exited with %d; log:\n%s" % (ex.returncode,
                                                       open(log.name).read()))
    got = events()
    ops = sorted(e["operationType"] for e in got)
    if ops != ["insert"] * 20 + ["update"] * 5:
        fail("expected 20 inserts and 5 updates, got %s" % ops)
    ids = sorted((e["operationType"], json.dumps(e["documentKey"])) for e in got)
    if len(set(ids)) != len(ids):
        fail("an event appears twice")
    text = "\n".join(json.dumps(e) for e in got)
    if "@example.com" in text:
        fail("an email address was not redacted")
    if text.count("<redacted>") != 25:
        fail("expected 25 redacted fields, found %d" % text.count("<redacted>"))
    print("ok: 20 inserts and 5 updates redacted, 5 deletes dropped")
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
