"""Benchmark 4: a paced send of 600 messages at "36000/h" (10 a second), and one in blocks of 50
with a 5 s pause, to a sink on loopback. Reports the largest deviation of the cumulative count of
messages received from the schedule, in messages: ahead (must be 0) and behind.

    python bench/pacing.py [--messages 600]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import TEMPLATE, frame, free_port, table

import mailnb


class Times:
    def __init__(self) -> None:
        self.at: list[float] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.at.append(time.monotonic())
        return "250 OK"


def deviation(times: list[float], pacing: mailnb.Pacing) -> tuple[int, int]:
    """(most ahead, most behind) in messages, sampling the schedule at every arrival."""
    start = times[0]
    offsets = pacing.offsets(len(times))
    ahead = behind = 0
    for k, t in enumerate(times):
        due = sum(1 for o in offsets if o <= t - start + 1e-3)   # messages due by now
        ahead = max(ahead, (k + 1) - due)
        behind = max(behind, due - (k + 1))
    return ahead, behind


def run(n: int, **pacing_kw) -> dict:
    from aiosmtpd.controller import Controller
    handler = Times()
    port = free_port()
    ctl = Controller(handler, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        c = mailnb.Campaign("pace", mailnb.Audience(frame(n)), mailnb.Template(**TEMPLATE),
                            from_addr="news@example.org")
        with tempfile.TemporaryDirectory() as d:
            mailnb.send(c, mailnb.Relay("127.0.0.1", port, security="none"),
                        journal=f"{d}/j.sqlite", new_journal=True, progress=None,
                        **pacing_kw)
    finally:
        ctl.stop()
    pacing = mailnb.Pacing.build(**{k: v for k, v in pacing_kw.items() if k in ("rate", "block")})
    ahead, behind = deviation(sorted(handler.at), pacing)
    return {"messages": len(handler.at), "ahead_max": ahead, "behind_max": behind,
            "seconds": round(max(handler.at) - min(handler.at), 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=600)
    a = ap.parse_args()
    rows = [{"case": "36000/h", **run(a.messages, rate="36000/h")},
            {"case": "36000/h, blocks of 50 + 5s", **run(a.messages, rate="36000/h",
                                                        block=(50, "5s"))}]
    print(json.dumps({"benchmark": "pacing", "results": rows}))
    print(table(rows, ["case", "messages", "ahead_max", "behind_max", "seconds"]))


if __name__ == "__main__":
    _ = asyncio
    main()
