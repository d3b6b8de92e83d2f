"""Benchmark 3: the preflight (validate the audience, render every row, check sizes and headers) of
100,000 and 1,000,000 rows: seconds and peak memory, each in a fresh process, on every core
(rows rendered in forked workers, :mod:`mailnb.util.fanout`) and, as the peer in the same run, in one
process. ``peak_mb`` is the main process's peak (the DataFrame included); ``worker_peak_mb`` the
largest worker's, most of it pages shared with the main process (forked, copy-on-write);
``all_pss_mb`` the most the main process and its workers held together (proportional set size,
sampled every 0.25 s: each shared page counted once).

    python bench/preflight.py [--rows 100000 1000000]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from _common import ROOT, SAMPLER, table


def cores() -> int:
    return len(os.sched_getaffinity(0))


CHILD = textwrap.dedent("""
    import json, os, resource, sys, threading, time
    sys.path.insert(0, {bench!r})
    {sampler}
    import mailnb
    from mailnb.util import fanout
    from _common import TEMPLATE, frame
    n, fanout.WORKERS = int(sys.argv[1]), int(sys.argv[2])
    df = frame(n)
    t0 = time.perf_counter()
    aud = mailnb.Audience(df)
    t1 = time.perf_counter()
    problems = mailnb.Template(**TEMPLATE).preflight(aud)
    t2 = time.perf_counter()
    print(json.dumps({{"rows": n, "workers": fanout.WORKERS, "problems": len(problems),
                       "audience_s": t1 - t0, "render_s": t2 - t1, "total_s": t2 - t0,
                       "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                       "worker_peak_mb":
                           resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                       "all_pss_mb": max(top[0], tree())}}))
""")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="*", default=[100_000, 1_000_000])
    a = ap.parse_args()
    rows = []
    for n in a.rows:
        for workers in (cores(), 1):
            rows.append(_child(n, workers))
        rows[-2]["speedup"] = round(rows[-1]["total_s"] / rows[-2]["total_s"], 2)
    print(json.dumps({"benchmark": "preflight", "cores": cores(), "results": rows}))
    print(table(rows, ["rows", "workers", "problems", "audience_s", "render_s", "total_s",
                       "speedup", "peak_mb", "worker_peak_mb", "all_pss_mb"]))


def _child(n: int, workers: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD.format(bench=str(Path(__file__).parent), sampler=SAMPLER),
                          str(n), str(workers)], capture_output=True, text=True, timeout=3600,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()}


if __name__ == "__main__":
    main()
