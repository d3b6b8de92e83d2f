"""Benchmark 2: the throughput campaign (1,000 messages) to a sink that waits 25 ms before every
reply, like a relay across the internet, at concurrency 1, 4 and 16. Messages per second.

    python bench/latency.py [--messages 1000] [--delay 0.025]
"""
from __future__ import annotations

import argparse
import json

from _common import Sink, run_mailnb, table


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--delay", type=float, default=0.025)
    ap.add_argument("--concurrency", type=int, nargs="*", default=[1, 4, 16])
    a = ap.parse_args()
    rows = []
    for pipelining in (True, False):
        for conc in a.concurrency:
            sink = Sink("aiosmtpd", delay=a.delay, pipelining=pipelining)
            try:
                r = run_mailnb(a.messages, sink.port, conc)
            finally:
                sink.close()
            rows.append({"relay": "pipelining" if pipelining else "no pipelining",
                         "concurrency": conc, "sent": r["sent"],
                         "msgs_per_s": round(r["msgs_per_s"], 1),
                         "send_only_per_s": round(r["sent"] / r["send_s"], 1)})
    print(json.dumps({"benchmark": "latency", "messages": a.messages, "reply_delay_s": a.delay,
                      "results": rows}))
    print(table(rows, ["relay", "concurrency", "sent", "msgs_per_s", "send_only_per_s"]))


if __name__ == "__main__":
    main()
