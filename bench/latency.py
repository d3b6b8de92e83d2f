"""Benchmark 2: a relay across the internet. The campaign (5,000 messages) to a sink that waits
25 ms before every reply that ends a round trip and offers PIPELINING, at concurrency 16, whole
`mailnb send`-like process. With full pipelining a message costs one round trip, so 16 connections
carry at most 16 / 0.025 = 640 msg/s: the figure is the share of that limit. Peers in the same run:
plain aiosmtplib (16 reused connections, messages built beforehand, no journal) and mailmerge 2.3.0
(installed by this script into its own virtual environment; a sample of 100 messages, as it opens
a connection per message). The same mailnb run through a relay without PIPELINING for contrast.

    python bench/latency.py [--messages 5000] [--delay 0.025] [--concurrency 16]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from _common import TEMPLATE, Sink, frame, run_mailnb, table

MAILMERGE = "mailmerge==2.3.0"


def plain_aiosmtplib(n: int, port: int, conc: int) -> float:
    """msg/s of 16 aiosmtplib connections, each reused, sending pre-rendered messages."""
    import aiosmtplib
    import jinja2
    env = jinja2.Environment()
    subject, text = env.from_string(TEMPLATE["subject"]), env.from_string(TEMPLATE["text"])
    rows = frame(n).to_dict("records")
    msgs = [(r["email"], (f"From: news@example.org\r\nTo: {r['email']}\r\nSubject: "
                          f"{subject.render(**r)}\r\n\r\n{text.render(**r)}").encode())
            for r in rows]

    async def worker(queue: list) -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, use_tls=False)
        await smtp.connect()
        while queue:
            to, data = queue.pop()
            await smtp.sendmail("news@example.org", [to], data)
        await smtp.quit()

    async def main() -> None:
        await asyncio.gather(*(worker(msgs) for _ in range(conc)))

    t = time.perf_counter()
    asyncio.run(main())
    return n / (time.perf_counter() - t)


def mailmerge(n: int, port: int) -> float | None:
    """msg/s of mailmerge 2.3.0 (its own venv), whole process, ``n`` messages."""
    venv = Path(tempfile.gettempdir()) / "mailnb-bench-mailmerge"
    exe = venv / "bin" / "mailmerge"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        done = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", MAILMERGE],
                              capture_output=True, text=True)
        if done.returncode:
            print(f"mailmerge not installed: {done.stderr[-300:]}", file=sys.stderr)
            return None
    d = Path(tempfile.mkdtemp(prefix="mailnb-bench-mm-"))
    (d / "server.conf").write_text(textwrap.dedent(f"""\
        [smtp_server]
        host = 127.0.0.1
        port = {port}
        security = Never
        ratelimit = 0
        """))
    (d / "template.txt").write_text(
        "TO: {{email}}\nSUBJECT: Your {{plan}} summary for {{month}}, {{first_name}}\n"
        "FROM: News <news@example.org>\n\n" +
        TEMPLATE["text"].replace("in items %}", "in items.split(';') %}"))
    df = frame(n)
    df["items"] = df["items"].str.join(";")
    df.to_csv(d / "db.csv", index=False)
    t = time.perf_counter()
    subprocess.run([str(exe), "--no-dry-run", "--no-limit", "--template", str(d / "template.txt"),
                    "--database", str(d / "db.csv"), "--config", str(d / "server.conf"),
                    "--output-format", "raw"], check=True, capture_output=True, timeout=3600)
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--delay", type=float, default=0.025)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--mailmerge-messages", type=int, default=100)
    a = ap.parse_args()
    limit = a.concurrency / a.delay
    rows = []

    def add(who: str, per_s: float | None, n: int, note: str = "") -> None:
        if per_s is not None:
            rows.append({"who": who, "messages": n, "msgs_per_s": round(per_s, 1),
                         "share_of_limit": round(per_s / limit, 3), "note": note})

    for pipelining in (True, False):
        sink = Sink("aiosmtpd", delay=a.delay, pipelining=pipelining)
        try:
            r = run_mailnb(a.messages, sink.port, a.concurrency)
        finally:
            sink.close()
        add("mailnb send" + ("" if pipelining else " (relay without PIPELINING)"),
            r["msgs_per_s"], a.messages, f"send stage alone {r['sent'] / r['send_s']:.0f} msg/s")
    sink = Sink("aiosmtpd", delay=a.delay)
    try:
        add("plain aiosmtplib", plain_aiosmtplib(a.messages, sink.port, a.concurrency),
            a.messages, "no journal, no rendering in the timing")
        add(MAILMERGE, mailmerge(a.mailmerge_messages, sink.port), a.mailmerge_messages,
            "a connection per message")
    finally:
        sink.close()
    mailnb = rows[0]["msgs_per_s"]
    for row in rows:
        row["mailnb_is_x"] = round(mailnb / row["msgs_per_s"], 1)
    print(json.dumps({"benchmark": "latency", "reply_delay_s": a.delay,
                      "concurrency": a.concurrency, "limit_msgs_per_s": limit, "results": rows}))
    print(f"one-round-trip limit: {a.concurrency} connections / {a.delay * 1000:g} ms = "
          f"{limit:g} msg/s")
    print(table(rows, ["who", "messages", "msgs_per_s", "share_of_limit", "mailnb_is_x", "note"]))


if __name__ == "__main__":
    main()
