"""A sending process killed with SIGKILL at a random point; the next run completes the campaign and
no address gets the message twice, except those in flight at the kill (marked 'unknown')."""
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pandas as pd
from smtp_servers import Recorder, start_smtp

import mailnb

SCRIPT = textwrap.dedent("""
    import sys, pandas as pd, mailnb
    port, csv, journal, concurrency = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    df = pd.read_csv(csv)
    t = mailnb.Template("Hello {{ first_name }}", text="Dear {{ first_name }}")
    c = mailnb.Campaign("crash", mailnb.Audience(df), t, from_addr="news@example.org")
    mailnb.send(c, mailnb.Relay("127.0.0.1", int(port), security="none", timeout=5),
                journal=journal, new_journal=True, concurrency=concurrency, rate="250/s",
                progress=None)
""")


def run_killed(smtp, tmp_path, concurrency, seed):
    rng = random.Random(seed)
    n = 500
    df = pd.DataFrame({"email": [f"p{i}@example.com" for i in range(n)],
                       "first_name": [f"P{i}" for i in range(n)]})
    csv = tmp_path / "people.csv"
    df.to_csv(csv, index=False)
    journal = tmp_path / "journal.sqlite"
    kill_at = rng.randint(20, n - 50)
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(smtp.port), str(csv), str(journal),
                             str(concurrency)], stdout=subprocess.DEVNULL)
    deadline = time.time() + 60
    while len(smtp.recorder.messages) < kill_at and time.time() < deadline and proc.poll() is None:
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    received_before = len(smtp.recorder.messages)
    assert 0 < received_before < n, f"the kill (seed {seed}) did not land mid-campaign"

    # the second run, in this process, completes the campaign
    t = mailnb.Template("Hello {{ first_name }}", text="Dear {{ first_name }}")
    c = mailnb.Campaign("crash", mailnb.Audience(df), t, from_addr="news@example.org")
    res = mailnb.send(c, mailnb.Relay("127.0.0.1", smtp.port, security="none"), journal=journal,
                      concurrency=concurrency, progress=None)
    counts = smtp.recorder.addresses()
    status = dict(zip(res["address"], res["status"]))
    unknown = [a for a, s in status.items() if s == "unknown"]
    assert len(unknown) <= concurrency, (seed, unknown)
    assert set(status.values()) <= {"sent", "unknown"}
    for address, s in status.items():
        if s == "sent":
            assert counts[address] == 1, (seed, address, counts[address])
        else:
            assert counts[address] <= 1
    assert sum(counts.values()) == len(smtp.recorder.messages)
    return received_before, unknown


def test_sigkill_then_resume_sequential(smtp, tmp_path):
    run_killed(smtp, tmp_path, 1, seed=int(time.time()))


def test_sigkill_then_resume_parallel(smtp, tmp_path):
    run_killed(smtp, tmp_path, 4, seed=int(time.time()) + 1)


HELD = textwrap.dedent("""
    import sys, pandas as pd, mailnb
    port, csv, journal = sys.argv[1], sys.argv[2], sys.argv[3]
    t = mailnb.Template("Hello {{ first_name }}", text="Dear {{ first_name }}")
    c = mailnb.Campaign("window", mailnb.Audience(pd.read_csv(csv)), t, from_addr="news@example.org")
    mailnb.send(c, mailnb.Relay("127.0.0.1", int(port), security="none", timeout=60),
                journal=journal, new_journal=True, concurrency=2, progress=None)
""")


def test_a_crash_leaves_unknown_only_what_was_handed_to_the_relay(tmp_path):
    """One connection waits at RCPT (the message's content never left), the other for the reply
    to a message whose end of data the server has, with the next message's envelope pipelined
    behind it. Killed there, only the second is 'unknown' (before, every message a connection
    had begun was); the others are sent by the next run, each once."""
    server = start_smtp("plain", recorder=Recorder(slow_seconds=60))
    try:
        people = ["stallrcpt0", "hold0", "a1", "a2", "a3", "a4"]
        df = pd.DataFrame({"email": [f"{p}@example.com" for p in people],
                           "first_name": people})
        csv, journal = tmp_path / "people.csv", tmp_path / "journal.sqlite"
        df.to_csv(csv, index=False)
        rec = server.recorder
        proc = subprocess.Popen([sys.executable, "-c", HELD, str(server.port), str(csv),
                                 str(journal)], stdout=subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None and not (
                rec.tries["stallrcpt0@example.com"] and rec.addresses()["hold0@example.com"]):
            time.sleep(0.01)
        time.sleep(0.3)        # a1's envelope follows hold0's end of data
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert rec.addresses() == {"hold0@example.com": 1}
        with sqlite3.connect(journal) as db:
            before = dict(db.execute("SELECT address, status FROM recipients"))
        assert before == {"stallrcpt0@example.com": "pending", "hold0@example.com": "sending",
                          "a1@example.com": "pending", "a2@example.com": "pending",
                          "a3@example.com": "pending", "a4@example.com": "pending"}

        t = mailnb.Template("Hello {{ first_name }}", text="Dear {{ first_name }}")
        c = mailnb.Campaign("window", mailnb.Audience(df), t, from_addr="news@example.org")
        res = mailnb.send(c, mailnb.Relay("127.0.0.1", server.port, security="none"),
                          journal=journal, concurrency=2, progress=None)
        status = dict(zip(res["address"], res["status"]))
        assert status.pop("hold0@example.com") == "unknown"
        assert set(status.values()) == {"sent"}
        assert rec.addresses() == {f"{p}@example.com": 1 for p in people}
    finally:
        server.stop()
