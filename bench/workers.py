"""Benchmark: one campaign sent by 1, 2 and 4 worker processes sharing a PostgreSQL journal,
against one process with the SQLite journal, all to the same sink in the same run. The sink waits
``--delay`` before each reply, like a relay across a network, so that more workers (each with
``--concurrency`` connections) can help. Prints msg/s and each row's ratio to the SQLite process.
Needs root (it starts a private PostgreSQL as the 'postgres' user, as the tests do).

    python bench/workers.py [--messages 2000] [--concurrency 4] [--delay 0.01]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from _common import ROOT, Sink, table

sys.path.insert(0, str(ROOT / "tests"))

CHILD = textwrap.dedent("""
    import json, sys
    import mailnb
    sys.path.insert(0, {bench!r})
    from _common import TEMPLATE, frame
    n, port, conc, journal = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    c = mailnb.Campaign("bench", mailnb.Audience(frame(n)), mailnb.Template(**TEMPLATE),
                        from_addr="news@example.org", from_name="News")
    r = mailnb.send(c, mailnb.Relay("127.0.0.1", port, security="none", timeout=60),
                    journal=journal, new_journal=True, concurrency=conc, progress=None, retries=0)
    print(json.dumps({{"this_run": int(r["this_run"].sum()) if "this_run" in r else -1}}))
""")


def run_workers(n: int, workers: int, port: int, conc: int, journal: str, env: dict) -> float:
    """Seconds from starting ``workers`` processes on one campaign until the last one ends."""
    code = CHILD.format(bench=str(Path(__file__).parent))
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", code, str(n), str(port), str(conc), journal],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(workers)]
    for p in procs:
        out, err = p.communicate(timeout=1800)
        if p.returncode:
            raise RuntimeError(err[-3000:])
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--delay", type=float, default=0.01)
    a = ap.parse_args()
    from mailservers import PostgreSQL
    pg = PostgreSQL().start()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PGPASSWORD": pg.password}
    env.pop("MAILNB_JOURNAL", None)
    rows, tmp = [], tempfile.mkdtemp(prefix="mailnb-bench-")
    try:
        plans = [("sqlite", 1, f"{tmp}/journal.sqlite")] + [
            ("postgresql", w, pg.new_database(f"bench{w}")) for w in (1, 2, 4)]
        for backend, workers, journal in plans:
            sink = Sink("aiosmtpd", delay=a.delay)
            try:
                seconds = run_workers(a.messages, workers, sink.port, a.concurrency, journal, env)
            finally:
                sink.close()
            rows.append({"journal": backend, "workers": workers,
                         "connections": workers * a.concurrency,
                         "msgs_per_s": round(a.messages / seconds, 1)})
    finally:
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    base = rows[0]["msgs_per_s"]
    for r in rows:
        r["vs_sqlite"] = round(r["msgs_per_s"] / base, 2)
    print(json.dumps({"benchmark": "workers", "messages": a.messages, "reply_delay_s": a.delay,
                      "results": rows}))
    print(table(rows, ["journal", "workers", "connections", "msgs_per_s", "vs_sqlite"]))


if __name__ == "__main__":
    main()
