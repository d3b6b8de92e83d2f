"""Benchmark 1: 10,000 personalised ~2 KB messages (subject, text and HTML, five merge fields and a
loop) from a DataFrame, journal on, pacing off, to a counting sink on loopback, at concurrency 1, 4
and 16. Whole-process messages per second and peak memory; against Postfix's smtp-sink too, with
smtp-source at the same concurrency as the protocol's limit on this machine (the two take turns,
three times by default; the medians are compared).

    python bench/throughput.py [--messages 10000] [--concurrency 1 4 16] [--repeat 3]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time

from _common import Sink, have, run_mailnb, table


def smtp_source(port: int, n: int, sessions: int) -> float:
    t = time.perf_counter()
    subprocess.run(["smtp-source", "-d", "-s", str(sessions), "-m", str(n), "-l", "2000",
                    "-f", "news@example.org", "-t", "person@example.com",
                    f"127.0.0.1:{port}"], check=True, timeout=600, capture_output=True)
    return n / (time.perf_counter() - t)


def measure(kind: str, port: int, conc: int, n: int, repeat: int) -> dict:
    """mailnb, and smtp-source as the peer, taking turns ``repeat`` times against one sink (the
    machine is shared: a turn each evens out what the neighbours do); the medians and their
    ratio, and the lowest and highest ratio of a pair."""
    ours, peer = [], []
    for _ in range(repeat):
        r = run_mailnb(n, port, conc)
        ours.append(r["msgs_per_s"])
        if kind == "smtp-sink" and have("smtp-source"):
            peer.append(smtp_source(port, n, conc))
    row = {"sink": kind, "concurrency": conc, "sent": r["sent"],
           "msgs_per_s": round(statistics.median(ours)), "peak_mb": round(r["peak_mb"])}
    if peer:
        pairs = [o / p for o, p in zip(ours, peer)]
        row.update(smtp_source_per_s=round(statistics.median(peer)),
                   ratio=round(row["msgs_per_s"] / statistics.median(peer), 3),
                   ratios=f"{min(pairs):.3f}-{max(pairs):.3f}")
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, nargs="*", default=[1, 4, 16])
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    rows = []
    sinks = ["aiosmtpd"] + (["smtp-sink"] if have("smtp-sink") else [])
    for kind in sinks:
        for conc in a.concurrency:
            sink = Sink(kind)
            try:
                rows.append(measure(kind, sink.port, conc, a.messages, a.repeat))
            finally:
                sink.close()
    print(json.dumps({"benchmark": "throughput", "messages": a.messages, "results": rows}))
    print(table(rows, ["sink", "concurrency", "sent", "msgs_per_s", "peak_mb",
                       "smtp_source_per_s", "ratio", "ratios"]))


if __name__ == "__main__":
    main()
