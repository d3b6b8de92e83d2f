"""Shared pieces of the benchmarks: the campaign, the sinks, and a child process that runs mailnb so
the figures are whole-process (start-up, rendering, journal, SMTP) with its own peak memory."""
from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TEMPLATE = {
    "subject": "Your {{ plan }} summary for {{ month }}, {{ first_name }}",
    "text": textwrap.dedent("""\
        Dear {{ first_name }} {{ last_name }},

        here is your {{ plan }} summary for {{ month }}. Your account number is {{ account }}.
        {% for item in items %}
          - {{ item }}: included in your plan and ready to use whenever you need it.
        {% endfor %}
        If anything looks wrong, reply to this message and we will sort it out within a day.
        We keep this short on purpose: the details are in your account, and nothing here needs
        an action from you unless something above surprises you.

        Thank you for being with us,
        the support team
        """),
    "html": textwrap.dedent("""\
        <html><body>
        <p>Dear {{ first_name }} {{ last_name }},</p>
        <p>here is your <b>{{ plan }}</b> summary for {{ month }}. Your account number is
        <code>{{ account }}</code>.</p>
        <ul>{% for item in items %}<li>{{ item }}: included in your plan and ready to use.</li>{% endfor %}</ul>
        <p>If anything looks wrong, reply to this message and we will sort it out within a day.
        We keep this short on purpose: the details are in your account, and nothing here needs an
        action from you unless something above surprises you.</p>
        <p>Thank you for being with us,<br>the support team</p>
        </body></html>
        """),
}


def frame(n: int):
    import pandas as pd
    return pd.DataFrame({
        "email": [f"person{i}@example.com" for i in range(n)],
        "first_name": [f"First{i}" for i in range(n)],
        "last_name": [f"Last{i}" for i in range(n)],
        "plan": ["gold" if i % 3 else "silver" for i in range(n)],
        "month": ["November"] * n,
        "account": [f"AC-{i:08d}" for i in range(n)],
        "items": [["storage", "backups", "support", "reports"]] * n,
    })


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class Sink:
    """A counting SMTP sink in its own process: Postfix's smtp-sink, or aiosmtpd (with an optional
    delay before every reply, like a relay across the internet)."""

    def __init__(self, kind: str = "aiosmtpd", delay: float = 0.0,
                 pipelining: bool = True, every: bool = False, log: str | None = None) -> None:
        self.kind, self.delay = kind, delay
        self.port = free_port()
        if kind == "smtp-sink":
            cmd = ["smtp-sink", *(["-u", "nobody"] if os.geteuid() == 0 else []),
                   f"127.0.0.1:{self.port}", "256"]
        else:
            cmd = [sys.executable, str(Path(__file__).with_name("_sink.py")), str(self.port),
                   str(delay), *([] if pipelining else ["--no-pipelining"]),
                   *(["--every"] if every else []), *(["--log", log] if log else [])]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


CHILD = textwrap.dedent("""
    import json, resource, sys, time
    t0 = time.perf_counter()
    import mailnb
    sys.path.insert(0, {bench!r})
    from _common import TEMPLATE, frame
    n, port, conc, journal, delay = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
    df = frame(n)
    c = mailnb.Campaign("bench", mailnb.Audience(df), mailnb.Template(**TEMPLATE),
                        from_addr="news@example.org", from_name="News")
    t1 = time.perf_counter()
    r = mailnb.send(c, mailnb.Relay("127.0.0.1", port, security="none", timeout=60),
                    journal=journal, new_journal=True, concurrency=conc, progress=None,
                    retries=0)
    t2 = time.perf_counter()
    print(json.dumps({{"sent": int((r["status"] == "sent").sum()), "total_s": t2 - t0,
                       "send_s": t2 - t1,
                       "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
""")


#: code for a child process: ``top[0]`` is kept at the most memory this process and its children
#: (the preflight's workers) held together, as proportional set size (a page shared by several
#: processes counted once), sampled every 0.25 s; ``tree()`` is the figure now
SAMPLER = textwrap.dedent("""
    def pss(pid):            # proportional set size: shared pages split between their sharers
        try:
            for line in open(f"/proc/{pid}/smaps_rollup"):
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def tree():
        me, kids = os.getpid(), []
        for d in os.listdir("/proc"):
            try:
                stat = open(f"/proc/{d}/stat").read() if d.isdigit() else ""
                if stat and int(stat.rsplit(")", 1)[1].split()[1]) == me:
                    kids.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
        return pss(me) + sum(pss(k) for k in kids)

    top = [0.0]
    def sample():
        while True:
            top[0] = max(top[0], tree())
            time.sleep(0.25)
    threading.Thread(target=sample, daemon=True).start()
""")


def run_mailnb(n: int, port: int, concurrency: int, delay: float = 0.0) -> dict:
    d = tempfile.mkdtemp(prefix="mailnb-bench-")
    try:
        out = subprocess.run([sys.executable, "-c", CHILD.format(bench=str(Path(__file__).parent)),
                              str(n), str(port), str(concurrency), f"{d}/journal.sqlite",
                              str(delay)], capture_output=True, text=True, timeout=1800,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        if out.returncode:
            raise RuntimeError(out.stderr[-3000:])
        res = json.loads(out.stdout.strip().splitlines()[-1])
        res["msgs_per_s"] = res["sent"] / res["total_s"]
        return res
    finally:
        shutil.rmtree(d, ignore_errors=True)


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


def table(rows: list[dict], cols: list[str]) -> str:
    widths = {c: max(len(c), *(len(f"{r.get(c, '')}") for r in rows)) for c in cols}
    line = "  ".join(c.ljust(widths[c]) for c in cols)
    out = [line, "  ".join("-" * widths[c] for c in cols)]
    out += ["  ".join(f"{r.get(c, '')}".ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join(out)


_ = resource
