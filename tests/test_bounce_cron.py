"""`mailnb bounces` as cron runs it, against a real Dovecot: interrupted runs lose no suppression,
a report seen twice counts once, a report that names nobody is kept for review, and every run
ends with one summary line and exit 0."""
from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
import uuid

import pytest
from conftest import dsn
from imapclient import IMAPClient

from mailnb import Profile
from mailnb.inbound.bounces import content_id, process_bounces

ORDINARY = """From: someone@example.net
To: news@example.org
Subject: About the newsletter {n}
Message-ID: <plain-{n}@example.net>

Just a note, number {n}.
"""
NOBODY = """From: postmaster@mx.example.org
To: news@example.org
Subject: Delivery problem
Message-ID: <nobody-{n}@mx.example.org>

Something went wrong with a message you sent. No further details are available.
"""


def report(n: int, rcpt: str, hard: bool) -> bytes:
    """Report number n (its own Message-ID), with CRLF line ends as IMAP APPEND takes them."""
    kind = {} if hard else dict(status="4.2.2", diag="452 4.2.2 Mailbox full", action="delayed")
    return dsn(rcpt, message_id=f"<r{n}@mx.example.org>", **kind).replace(b"\n", b"\r\n")


def mailbox_messages(n: int = 300) -> list[bytes]:
    """Hard bounces, soft bounces (three each for some addresses, so the threshold matters),
    ordinary mail and reports that name nobody, shuffled with a fixed seed."""
    rng = random.Random(7)
    out: list[bytes] = []
    for i in range(n):
        pick = i % 10
        if pick < 4:
            out.append(report(i, f"gone{i}@example.com", hard=True))
        elif pick < 8:
            out.append(report(i, f"full{i % 40}@example.com", hard=False))
        elif pick == 8:
            out.append(ORDINARY.format(n=i).replace("\n", "\r\n").encode())
        else:
            out.append(NOBODY.format(n=i).replace("\n", "\r\n").encode())
    rng.shuffle(out)
    return out


def fill(dovecot, folder: str, messages: list[bytes]) -> None:
    with IMAPClient("127.0.0.1", port=dovecot.ports["imap"], ssl=False) as c:
        c.starttls(__import__("ssl").create_default_context(cafile=dovecot.cafile))
        c.login(dovecot.user, dovecot.password)
        c.create_folder(folder)
        for raw in messages:
            c.append(folder, raw)


def profile(dovecot, tmp_path, folder: str, name: str) -> Profile:
    p = Profile(name=name, host="smtp.example.org", requires_auth=False, imap_host="127.0.0.1",
                imap_port=dovecot.ports["imaps"], imap_username=dovecot.user,
                imap_cafile=dovecot.cafile, bounce_folder=folder,
                journal=str(tmp_path / f"{name}.sqlite"))
    p.save()
    return p


def cli(tmp_path, config_dir, dovecot, name: str) -> list:
    env = {"PATH": "/usr/bin:/bin", "MAILNB_IMAP_PASSWORD": dovecot.password,
           "MAILNB_CONFIG_DIR": str(config_dir), "HOME": str(tmp_path)}
    return [[sys.executable, "-m", "mailnb.cli", "bounces", "--profile", name], env]


def stored(path) -> int:
    """How many reports the journal holds (0 before it exists)."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT count(DISTINCT source_id) FROM bounces").fetchone()[0]
    except sqlite3.Error:
        return 0


def outcome(path) -> tuple[set, int, int]:
    with sqlite3.connect(path) as db:
        suppressed = {k for (k,) in db.execute("SELECT key FROM suppressions")}
        bounces = db.execute("SELECT count(*) FROM bounces").fetchone()[0]
        sources = db.execute("SELECT count(DISTINCT source_id) FROM bounces").fetchone()[0]
    return suppressed, bounces, sources


@pytest.mark.timeout(300)
def test_sigkilled_runs_end_with_the_suppressions_of_one_uninterrupted_run(
        dovecot, tmp_path, config_dir, monkeypatch):
    monkeypatch.setenv("MAILNB_IMAP_PASSWORD", dovecot.password)
    messages = mailbox_messages()
    calm, stormy = f"C{uuid.uuid4().hex[:8]}", f"S{uuid.uuid4().hex[:8]}"
    fill(dovecot, calm, messages)
    fill(dovecot, stormy, messages)
    # one uninterrupted run
    found = process_bounces(profile(dovecot, tmp_path, calm, "calm"))
    expected, n_bounces, n_sources = outcome(tmp_path / "calm.sqlite")
    assert len(expected) == 120 + 16          # every hard bounce, and the 16 with 7 soft each
    assert found.attrs["counts"]["newly_suppressed"] == len(expected)
    # the same mailbox, runs killed at random moments, then one that finishes
    profile(dovecot, tmp_path, stormy, "stormy")
    cmd, env = cli(tmp_path, config_dir, dovecot, "stormy")
    rng, kills, journal = random.Random(11), 0, tmp_path / "stormy.sqlite"
    for _ in range(6):          # each run is killed once the journal holds a random count more
        before = stored(journal)
        target = before + rng.randint(1, 60)
        run = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while run.poll() is None and stored(journal) < target and time.monotonic() < deadline:
            time.sleep(0.005)
        if run.poll() is not None:
            break
        run.send_signal(signal.SIGKILL)
        run.wait(10)
        kills += 1
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert kills >= 3
    assert outcome(tmp_path / "stormy.sqlite") == (expected, n_bounces, n_sources)
    assert done.stdout.startswith("mailnb: bounces: ") and done.stdout.count("\n") == 1


def test_a_report_seen_twice_counts_once_and_a_nameless_one_is_kept(
        dovecot, tmp_path, config_dir):
    folder = f"D{uuid.uuid4().hex[:8]}"
    twice = report(1, "gone@example.com", hard=True)
    nameless = NOBODY.format(n=1).replace("\n", "\r\n").encode()
    fill(dovecot, folder, [twice, nameless, twice])      # the same bytes under a new UID
    profile(dovecot, tmp_path, folder, "dup")
    cmd, env = cli(tmp_path, config_dir, dovecot, "dup")
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert ("3 read (1 seen before), 1 bounce(s) (1 hard, 0 soft), 0 complaint(s), "
            "0 auto-reply(ies), 0 reply(ies) (0 unsubscribe(s)), 1 unmatched, 1 address(es) newly "
            "suppressed") in r.stdout
    with sqlite3.connect(tmp_path / "dup.sqlite") as db:
        rows = db.execute("SELECT recipient, source_id FROM bounces ORDER BY recipient").fetchall()
    assert rows == [(None, content_id(nameless)), ("gone@example.com", content_id(twice))]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "0 read" in r.stdout        # all flagged: nothing new


CASES = [  # protocol, security, the Dovecot port it is pointed at, what the error advises
    ("imap", "starttls", "imaps", "imap_security='tls'"),
    ("imap", "tls", "imap", "imap_security='starttls'"),
    ("imap", "tls", "pop3s", "protocol='pop3'"),
    ("imap", "starttls", "pop3", "protocol='pop3'"),
    ("pop3", "tls", "imaps", "protocol='imap'"),
    ("pop3", "starttls", "imap", "protocol='imap'"),
    ("pop3", "starttls", "pop3s", "imap_security='tls'"),
    ("pop3", "tls", "pop3", "imap_security='starttls'"),
]


@pytest.mark.parametrize("protocol,security,port,advice", CASES)
def test_a_setting_that_does_not_fit_the_port_fails_within_5_s(dovecot, protocol, security, port,
                                                               advice):
    from mailnb import ConfigError
    from mailnb.inbound.mailbox import Mailbox, Session
    mb = Mailbox("127.0.0.1", dovecot.user, port=dovecot.ports[port], security=security,
                 protocol=protocol, password=dovecot.password, cafile=dovecot.cafile)
    start = time.monotonic()
    with pytest.raises(ConfigError) as info:
        with Session(mb):
            pass
    assert time.monotonic() - start < 5
    assert advice in str(info.value) and "\n" not in str(info.value)


def test_the_cli_says_the_mismatch_in_one_line_in_its_own_flags(dovecot, tmp_path, config_dir):
    p = profile(dovecot, tmp_path, "INBOX", "wrongport")
    p.imap_security = "starttls"                       # the implicit-TLS port
    p.save()
    cmd, env = cli(tmp_path, config_dir, dovecot, "wrongport")
    start = time.monotonic()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert time.monotonic() - start < 5 + 3         # + the interpreter's start
    assert r.returncode == 1 and r.stdout == "", (r.stdout, r.stderr)
    assert r.stderr.count("\n") == 1 and "--imap-security tls" in r.stderr, r.stderr
    p.imap_security, p.protocol = "tls", "pop3"           # POP3 against the IMAPS port
    p.save()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "is an IMAP server" in r.stderr and "--protocol imap" in r.stderr


@pytest.mark.timeout(300)
def test_dovecot_stopped_mid_run_then_a_rerun_ends_as_an_uninterrupted_run(
        tmp_path, config_dir, dovecot, monkeypatch):
    """A server restart mid-run: the run ends with a one-line error and exit 1, what it stored
    stays, and the run after the restart ends with exactly the suppressions of one calm run."""
    from mailservers import Dovecot
    monkeypatch.setenv("MAILNB_IMAP_PASSWORD", dovecot.password)
    messages = mailbox_messages()
    calm = f"C{uuid.uuid4().hex[:8]}"
    fill(dovecot, calm, messages)
    process_bounces(profile(dovecot, tmp_path, calm, "calm"))
    expected = outcome(tmp_path / "calm.sqlite")
    own = Dovecot(password=dovecot.password).start()
    try:
        fill(own, "Bounces", messages)
        p = profile(own, tmp_path, "Bounces", "restarted")
        cmd, env = cli(tmp_path, config_dir, own, "restarted")
        journal = tmp_path / "restarted.sqlite"
        run = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        deadline = time.monotonic() + 60
        while run.poll() is None and stored(journal) < 40 and time.monotonic() < deadline:
            time.sleep(0.005)
        own.halt(crash=True)          # a graceful stop lets the sessions finish first
        out, err = run.communicate(timeout=60)
        assert run.returncode == 1 and out == "", (out, err)
        assert err.startswith("mailnb: ") and err.count("\n") == 1 and "Traceback" not in err, err
        assert f"{p.imap_host}:{p.imap_port}" in err and "run again" in err, err
        assert 40 <= stored(journal) < 300
        own.run()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert outcome(journal) == expected
    finally:
        own.stop()
