"""Benchmark 3: the preflight (validate the audience, render every row, check sizes and headers) of
100,000 and 1,000,000 rows: seconds and peak memory, each in a fresh process.

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

from _common import ROOT, table

CHILD = textwrap.dedent("""
    import json, resource, sys, time
    sys.path.insert(0, {bench!r})
    import mailnb
    from _common import TEMPLATE, frame
    n = int(sys.argv[1])
    df = frame(n)
    t0 = time.perf_counter()
    aud = mailnb.Audience(df)
    t1 = time.perf_counter()
    problems = mailnb.Template(**TEMPLATE).preflight(aud)
    t2 = time.perf_counter()
    print(json.dumps({{"rows": n, "problems": len(problems), "audience_s": t1 - t0,
                       "render_s": t2 - t1, "total_s": t2 - t0,
                       "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
""")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="*", default=[100_000, 1_000_000])
    a = ap.parse_args()
    rows = []
    for n in a.rows:
        out = subprocess.run([sys.executable, "-c", CHILD.format(bench=str(Path(__file__).parent)),
                              str(n)], capture_output=True, text=True, timeout=3600,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        if out.returncode:
            raise SystemExit(out.stderr[-3000:])
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append({k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()})
    print(json.dumps({"benchmark": "preflight", "results": rows}))
    print(table(rows, ["rows", "problems", "audience_s", "render_s", "total_s", "peak_mb"]))


if __name__ == "__main__":
    main()
