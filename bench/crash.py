"""Benchmark 5: the crash window. A 5,000-message campaign at concurrency 4 through a sink that
waits 10 ms before every reply, killed with SIGKILL 100 times at random points of its sending
(each kill a random 0-0.5 s after that run's first message reached the sink), resumed each time,
then finished. Every message the sink takes is logged before it answers, so the journal can be
checked against what really arrived:

- duplicates: addresses the sink took more than once (must be 0);
- silent losses: addresses the journal calls sent that the sink never took, or that end neither
  sent nor unknown (must be 0);
- unknown: left in doubt by the kills, against the kills that landed mid-send (target: at most
  1.5 a kill), and how many of them the sink really took.

    python bench/crash.py [--kills 100] [--messages 5000] [--seed 1]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path

from _common import ROOT, Sink, table

CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, {bench!r})
    import mailnb
    from _common import TEMPLATE, frame
    n, port, journal = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    c = mailnb.Campaign("crash", mailnb.Audience(frame(n)), mailnb.Template(**TEMPLATE),
                        from_addr="news@example.org", from_name="News")
    mailnb.send(c, mailnb.Relay("127.0.0.1", port, security="none", timeout=60),
                journal=journal, concurrency=4, progress=None)
""")


def taken(log: Path) -> Counter:
    return Counter(log.read_text().split()) if log.exists() else Counter()


def one_run(n: int, port: int, journal: Path, log: Path, kill_after: float | None) -> dict:
    """A run, killed ``kill_after`` seconds after its first message reached the sink (None: let
    it finish)."""
    before = sum(taken(log).values())
    proc = subprocess.Popen([sys.executable, "-c", CHILD.format(bench=str(Path(__file__).parent)),
                             str(n), str(port), str(journal)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.time() + 600
    if kill_after is None:
        proc.wait(600)
        return {"killed": False, "mid_send": False}
    while proc.poll() is None and sum(taken(log).values()) == before and time.time() < deadline:
        time.sleep(0.005)
    time.sleep(kill_after)
    finished = proc.poll() is not None
    if not finished:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    return {"killed": not finished, "mid_send": not finished and
            sum(taken(log).values()) > before}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--delay", type=float, default=0.010)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    d = Path(tempfile.mkdtemp(prefix="mailnb-crash-"))
    journal, log = d / "journal.sqlite", d / "taken.log"
    sink = Sink("aiosmtpd", delay=a.delay, every=True, log=str(log))
    runs = []
    try:
        from mailnb.journal.sqlite import SQLiteJournal
        SQLiteJournal(journal).close()
        for _ in range(a.kills):
            runs.append(one_run(a.messages, sink.port, journal, log, rng.uniform(0, 0.5)))
        one_run(a.messages, sink.port, journal, log, None)
    finally:
        sink.close()
    with sqlite3.connect(journal) as db:
        status = dict(db.execute("SELECT address, status FROM recipients"))
    got = taken(log)
    unknown = [k for k, s in status.items() if s == "unknown"]
    mid = sum(r["mid_send"] for r in runs)
    res = {
        "messages": a.messages, "kills": sum(r["killed"] for r in runs), "kills_mid_send": mid,
        "sent": sum(s == "sent" for s in status.values()), "unknown": len(unknown),
        "unknown_the_sink_took": sum(got[k] > 0 for k in unknown),
        "unknown_per_kill": round(len(unknown) / max(mid, 1), 2),
        "duplicates": sum(c > 1 for c in got.values()),
        "silent_losses": sum((s == "sent" and not got[k]) or s not in ("sent", "unknown")
                             for k, s in status.items()),
    }
    print(json.dumps({"benchmark": "crash", "reply_delay_s": a.delay, "seed": a.seed, **res}))
    print(table([res], list(res)))


if __name__ == "__main__":
    main()
