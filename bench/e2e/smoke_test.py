#!/usr/bin/env python3
"""A smoke run of the end-to-end bench: tiny sizes, the report's structure only (no figure is
judged here: performance lives in bench/RESULTS.md, not in assertions). It keeps
`bench/e2e/run.sh` working as the README and RESULTS.md describe it.

usage: smoke_test.py BUILD_DIR   (with mongosim, penne and penne-source-bench built there)
"""
import json
import os
import subprocess
import sys


def main():
    build = sys.argv[1]
    here = os.path.dirname(os.path.abspath(__file__))
    argv = [os.path.join(here, "run.sh"), "--build", build, "--quick", "--only",
            "ceiling,throughput", "--jsonl-only", "--penne-runs", "2", "--ceiling-runs", "1",
            "--events", "20000"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        sys.exit(f"run.sh failed ({out.returncode}):\n{out.stderr[-3000:]}")
    report = json.loads(out.stdout.strip().splitlines()[-1])
    problems = []
    if report.get("errors"):
        problems.append(f"phases failed: {report['errors']}")
    for key in ("ceiling_ns_per_event", "ceiling_mean_ns_per_event", "cpu_ns_per_event",
                "events_per_s", "ratio", "ratio_paired", "ratio_paired_fastest",
                "compress_in_place_ratio"):
        value = report.get(key)
        if not isinstance(value, (int, float)) or value <= 0:
            problems.append(f"{key} is {value!r}, not a positive number")
    drain = report.get("throughput", {}).get("jsonl+zstd/local/1", {})
    if drain.get("events") != 20000 or drain.get("objects", 0) < 1:
        problems.append(f"the drain did not write the 20,000 events: {drain}")
    if not drain.get("compress_ns_per_event"):
        problems.append("the drain reported no compression CPU (penne_compress_cpu_seconds_total)")
    # Two drains: three ceiling processes bracket them, one pair each.
    for key in ("ratio_pairs", "compress_pairs"):
        if len(report.get(key, [])) != 2:
            problems.append(f"{key} has {len(report.get(key, []))} pairs, not 2")
    if problems:
        sys.exit("bench report:\n  " + "\n  ".join(problems) + "\n" + json.dumps(report)[:3000])
    print("bench report complete:", {k: report[k] for k in ("ratio_paired", "cpu_ns_per_event")})


if __name__ == "__main__":
    main()
