"""Benchmark 5: memory of a whole ``mailnb.send`` as the audience grows (issue 15, target 5).

For 100,000, 300,000 and 1,000,000 rows of the ~2 KB text+HTML campaign: the peak memory of the
process (the DataFrame included), the most it and the preflight's workers held together
(proportional set size), the seconds from the start of the process to the first message the sink
took, and the whole send. Each size runs in a fresh process, into an aiosmtpd sink (its own
process) that logs each recipient as it takes the message; the log is polled for the first one.
The ratio printed is bytes of peak memory a row beyond the smallest audience: flat memory is a
small, steady figure.

    python bench/memory.py [--rows 100000 300000 1000000] [--concurrency 4]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

from _common import ROOT, SAMPLER, Sink, table

CHILD = textwrap.dedent("""
    import json, os, resource, sys, threading, time
    sys.path.insert(0, {bench!r})
    {sampler}
    import mailnb
    from _common import TEMPLATE, frame
    n, port, conc, journal = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    df = frame(n)
    frame_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    c = mailnb.Campaign("bench", mailnb.Audience(df), mailnb.Template(**TEMPLATE),
                        from_addr="news@example.org", from_name="News")
    r = mailnb.send(c, mailnb.Relay("127.0.0.1", port, security="none", timeout=60),
                    journal=journal, new_journal=True, concurrency=conc, progress=None,
                    retries=0)
    print(json.dumps({{"sent": int((r["status"] == "sent").sum()), "frame_mb": frame_mb,
                       "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                       "all_pss_mb": max(top[0], tree())}}))
""")


def run(n: int, concurrency: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="mailnb-bench-") as d:
        log = f"{d}/taken.log"
        sink = Sink("aiosmtpd", log=log)
        first: list[float] = []
        t0 = time.time()
        try:
            child = subprocess.Popen(
                [sys.executable, "-c", CHILD.format(bench=str(Path(__file__).parent),
                                                    sampler=SAMPLER),
                 str(n), str(sink.port), str(concurrency), f"{d}/journal.sqlite"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)})
            watch = threading.Thread(target=_first_taken, args=(log, child, first), daemon=True)
            watch.start()
            out, err = child.communicate(timeout=7200)
            total = time.time() - t0
        finally:
            sink.close()
        if child.returncode:
            raise SystemExit(err[-3000:])
        r = json.loads(out.strip().splitlines()[-1])
        return {"rows": n, "sent": r["sent"], "frame_mb": round(r["frame_mb"]),
                "peak_mb": round(r["peak_mb"]), "all_pss_mb": round(r["all_pss_mb"]),
                "first_message_s": round(first[0] - t0, 1) if first else None,
                "total_s": round(total, 1)}


def _first_taken(log: str, child: subprocess.Popen, first: list[float]) -> None:
    """The moment the sink's log first has a line: the first message taken (to 20 ms)."""
    while child.poll() is None:
        if os.path.exists(log) and os.path.getsize(log):
            first.append(time.time())
            return
        time.sleep(0.02)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="*", default=[100_000, 300_000, 1_000_000])
    ap.add_argument("--concurrency", type=int, default=4)
    a = ap.parse_args()
    rows = [run(n, a.concurrency) for n in a.rows]
    base = rows[0]
    for r in rows[1:]:      # peak bytes a row beyond the smallest audience: flat is small
        r["bytes_per_row"] = round((r["peak_mb"] - base["peak_mb"]) * 2**20 /
                                   (r["rows"] - base["rows"]))
    print(json.dumps({"benchmark": "memory", "concurrency": a.concurrency, "results": rows}))
    print(table(rows, ["rows", "sent", "frame_mb", "peak_mb", "all_pss_mb", "first_message_s",
                       "total_s", "bytes_per_row"]))


if __name__ == "__main__":
    main()
