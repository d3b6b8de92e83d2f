"""Benchmark 1: 10,000 personalised ~2 KB messages (subject, text and HTML, five merge fields and a
loop) from a DataFrame, journal on, pacing off, to a counting sink on loopback, at concurrency 1, 4
and 16. Whole-process messages per second and peak memory; against Postfix's smtp-sink too, with
smtp-source at the same concurrency as the protocol's limit on this machine.

    python bench/throughput.py [--messages 10000]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import time

from _common import Sink, have, run_mailnb, table


def smtp_source(port: int, n: int, sessions: int) -> float:
    t = time.perf_counter()
    subprocess.run(["smtp-source", "-d", "-s", str(sessions), "-m", str(n), "-l", "2000",
                    "-f", "news@example.org", "-t", "person@example.com",
                    f"127.0.0.1:{port}"], check=True, timeout=600, capture_output=True)
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, nargs="*", default=[1, 4, 16])
    a = ap.parse_args()
    rows = []
    sinks = ["aiosmtpd"] + (["smtp-sink"] if have("smtp-sink") else [])
    for kind in sinks:
        for conc in a.concurrency:
            sink = Sink(kind)
            try:
                r = run_mailnb(a.messages, sink.port, conc)
                row = {"sink": kind, "concurrency": conc, "sent": r["sent"],
                       "msgs_per_s": round(r["msgs_per_s"]), "peak_mb": round(r["peak_mb"])}
                if kind == "smtp-sink" and have("smtp-source"):
                    row["smtp_source_per_s"] = round(smtp_source(sink.port, a.messages, conc))
                    row["ratio"] = round(row["msgs_per_s"] / row["smtp_source_per_s"], 3)
                rows.append(row)
            finally:
                sink.close()
    print(json.dumps({"benchmark": "throughput", "messages": a.messages, "results": rows}))
    print(table(rows, ["sink", "concurrency", "sent", "msgs_per_s", "peak_mb",
                       "smtp_source_per_s", "ratio"]))


if __name__ == "__main__":
    main()
