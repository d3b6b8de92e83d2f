"""One campaign, every door: the Job entry point, the CLI and the notebook tell the same truth over
real SMTP on loopback (truthful outcomes, SIGTERM, test sends, caps and windows, the settings that
used to do nothing)."""
import email
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta
from email import policy

import pandas as pd
import pytest
from conftest import people
from smtp_servers import Recorder, start_smtp

import mailnb
from mailnb import ConfigError, Job, JournalError, Profile


@pytest.fixture
def inputs(tmp_path):
    """A recipients CSV with one invalid and one duplicate row, and a template folder."""
    df = people(5)
    df.loc[5] = ["broken@", "Broken", "9:00"]
    df.loc[6] = ["USER0@example.com", "Dup", "9:00"]
    df.to_csv(tmp_path / "people.csv", index=False)
    tpl = tmp_path / "tpl"
    tpl.mkdir()
    (tpl / "subject.txt").write_text("Hello {{ first_name }}")
    (tpl / "body.txt").write_text("Your slot: {{ slot }}")
    (tpl / "body.html").write_text("<p>Your slot: <b>{{ slot }}</b></p>")
    return tmp_path


def job(inputs, smtp, **kw):
    kw.setdefault("journal", str(inputs / "j.sqlite"))
    kw.setdefault("new_journal", True)
    return Job(campaign=kw.pop("campaign", "doors"), recipients=str(inputs / "people.csv"),
               template=str(inputs / "tpl"), host="127.0.0.1", port=smtp.port, security="none",
               from_addr="news@example.org", progress=False, **kw)


def cli(*args, env=None, timeout=120):
    base = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"),
            "MAILNB_CONFIG_DIR": os.environ.get("MAILNB_CONFIG_DIR", "/tmp/none")}
    return subprocess.run([sys.executable, "-m", "mailnb.cli", *args], env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


def cli_send(inputs, smtp, *extra, journal="j.sqlite"):
    return ["send", "--recipients", str(inputs / "people.csv"), "--template", str(inputs / "tpl"),
            "--campaign", "doors", "--from", "news@example.org", "--host", "127.0.0.1", "--port",
            str(smtp.port), "--security", "none", "--journal", str(inputs / journal), *extra]


def parsed(server):
    return [email.message_from_bytes(m.data, policy=policy.default)
            for m in server.recorder.messages]


# -- truthful outcomes ------------------------------------------------------------------------------
def test_a_mistyped_journal_path_is_refused_and_nothing_is_sent(inputs, smtp, config_dir):
    r = cli(*cli_send(inputs, smtp), env={"MAILNB_CONFIG_DIR": str(config_dir)})
    assert r.returncode == 1 and "does not exist" in r.stderr and "--new-journal" in r.stderr
    assert "Traceback" not in r.stderr
    assert smtp.recorder.messages == [] and not (inputs / "j.sqlite").exists()
    with pytest.raises(JournalError, match="new_journal=True"):
        job(inputs, smtp, new_journal=None).send()
    r = cli(*cli_send(inputs, smtp, "--new-journal"), env={"MAILNB_CONFIG_DIR": str(config_dir)})
    assert r.returncode == 0, r.stderr
    assert f"journal {inputs / 'j.sqlite'}" in r.stdout           # the plan line says where
    assert len(smtp.recorder.messages) == 5


def test_results_list_every_input_row_with_the_reason(inputs, smtp, config_dir):
    r = cli(*cli_send(inputs, smtp, "--new-journal", "--results", str(inputs / "r.csv")),
            env={"MAILNB_CONFIG_DIR": str(config_dir)})
    assert r.returncode == 0, r.stderr
    res = pd.read_csv(inputs / "r.csv", index_col=0)
    assert list(res.index) == list(range(7))                   # every row of the input, by index
    assert list(res["status"]) == ["sent"] * 5 + ["excluded"] * 2
    assert res.loc[5, "reason"].startswith("invalid") and res.loc[6, "reason"] == "duplicate"
    assert "complete: everyone is accounted for" in r.stdout
    out = job(inputs, smtp).send()                              # the API door: the same rows
    assert list(out["status"]) == list(res["status"]) and out.loc[6, "reason"] == "duplicate"


def test_unknowns_are_never_complete_and_history_lists_them(inputs, smtp, config_dir):
    j = job(inputs, smtp)
    j.send()
    with sqlite3.connect(inputs / "j.sqlite") as db:       # as a crash mid-send leaves them
        db.execute("UPDATE recipients SET status = 'unknown' WHERE address = 'user2@example.com'")
    r = cli(*cli_send(inputs, smtp), env={"MAILNB_CONFIG_DIR": str(config_dir)})
    assert "NOT complete" in r.stdout and "complete: everyone" not in r.stdout
    assert "1 recipient(s) are 'unknown'" in r.stdout and "--status unknown" in r.stdout
    h = cli("history", "doors", "--status", "unknown", "--journal", str(inputs / "j.sqlite"))
    assert h.returncode == 0 and "user2@example.com" in h.stdout and "user1@" not in h.stdout
    everyone = cli("history", "doors", "--journal", str(inputs / "j.sqlite"))
    assert everyone.stdout.count("sent") >= 4 and "user4@example.com" in everyone.stdout
    assert list(mailnb.history("doors", str(inputs / "j.sqlite"), status="unknown")["address"]) \
        == ["user2@example.com"]


def test_sigterm_finishes_in_flight_records_them_and_the_rerun_sends_the_rest_once(tmp_path,
                                                                                   config_dir):
    server = start_smtp("plain", recorder=Recorder(delay=0.05))
    try:
        n = 120
        people(n).to_csv(tmp_path / "p.csv", index=False)
        tpl = tmp_path / "tpl"
        tpl.mkdir()
        (tpl / "subject.txt").write_text("Hi {{ first_name }}")
        (tpl / "body.txt").write_text("x")
        args = ["send", "--recipients", str(tmp_path / "p.csv"), "--template", str(tpl),
                "--campaign", "term", "--from", "news@example.org", "--host", "127.0.0.1",
                "--port", str(server.port), "--security", "none", "--concurrency", "3",
                "--journal", str(tmp_path / "j.sqlite"), "--new-journal"]
        proc = subprocess.Popen([sys.executable, "-m", "mailnb.cli", *args], text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                                     "MAILNB_CONFIG_DIR": str(config_dir)})
        deadline = time.time() + 60
        while len(server.recorder.messages) < 20 and time.time() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 143, err
        assert "SIGTERM" in out + err and "Traceback" not in err
        got = len(server.recorder.messages)
        assert 20 <= got < n
        h = mailnb.history("term", str(tmp_path / "j.sqlite"))
        assert set(h["status"]) <= {"sent", "pending"}              # 0 unknown, 0 sending
        assert int((h["status"] == "sent").sum()) == got             # every arrival recorded
        r = cli(*[a for a in args if a != "--new-journal"], env={"MAILNB_CONFIG_DIR":
                                                                 str(config_dir)})
        assert r.returncode == 0, r.stderr
        counts = server.recorder.addresses()
        assert len(counts) == n and set(counts.values()) == {1}     # the rest, once each
    finally:
        server.stop()


# -- "send me a test first" ------------------------------------------------------------------------
def test_test_send_goes_to_me_exactly_as_it_will_go_out_and_is_not_journaled(inputs, smtp,
                                                                             config_dir):
    r = cli(*cli_send(inputs, smtp, "--new-journal", "--test-to", "me@example.org",
                      "--test-rows", "2"), env={"MAILNB_CONFIG_DIR": str(config_dir)})
    assert r.returncode == 0, r.stderr
    assert [m.rcpt_tos for m in smtp.recorder.messages] == [["me@example.org"]] * 2
    msgs = parsed(smtp)
    assert [m["Subject"] for m in msgs] == ["[TEST] Hello Name0", "[TEST] Hello Name1"]
    assert msgs[0]["To"] == "user0@example.com" and msgs[0]["List-Unsubscribe"]
    assert mailnb.history("doors", str(inputs / "j.sqlite")).empty
    out = job(inputs, smtp).send_test("me@example.org")                # the API door
    assert len(out) == 1 and out["status"].tolist() == ["sent"]


# -- long sends: the daily cap and the send window ----------------------------------------------------
def _spent_cap(journal_path, account, n, seconds_left):
    """``n`` messages sent for ``account`` just under 24 hours ago: the rolling window frees them
    in ``seconds_left`` seconds."""
    j = mailnb.SQLiteJournal(journal_path)
    at = time.time() - 86400 + seconds_left
    j.db.executemany("INSERT INTO events (at, campaign, key, status, account) VALUES "
                     "(?, 'earlier', ?, 'sent', ?)", [(at, f"k{i}", account) for i in range(n)])
    j.close()


def test_daily_cap_says_when_it_allows_more_and_wait_keeps_going(inputs, smtp):
    path = inputs / "j.sqlite"
    _spent_cap(path, "@127.0.0.1", 3, seconds_left=2.0)
    stopped = job(inputs, smtp, daily_cap=5, new_journal=None)
    res = stopped.send()
    assert (res["status"] == "sent").sum() == 2
    assert res.attrs["summary"]["stopped"] == "daily cap reached"
    t0 = time.time()
    res = job(inputs, smtp, daily_cap=5, wait=True, new_journal=None).send()
    assert (res["status"] == "sent").sum() == 5                    # 3 freed by the rolling day
    assert time.time() - t0 >= 1.5 and res.attrs["summary"]["complete"]
    assert len(smtp.recorder.messages) == 5


def test_daily_cap_message_names_what_remains(inputs, smtp, capsys):
    job(inputs, smtp, daily_cap=2).send()
    said = capsys.readouterr().out
    assert "the daily cap of 2 is reached; 3 remain" in said and "pass wait=True to keep going" in said


def test_send_window(inputs, smtp):
    now = datetime.now().astimezone()
    closed = f"{(now + timedelta(hours=2)):%H:%M}-{(now + timedelta(hours=3)):%H:%M}"
    res = job(inputs, smtp, window=closed).send()
    assert smtp.recorder.messages == [] and (res["status"] == "pending").sum() == 5
    assert "outside the send window" in res.attrs["summary"]["stopped"]
    opens = now + timedelta(seconds=2)
    soon = f"{opens:%H:%M:%S}-{(opens + timedelta(minutes=5)):%H:%M:%S}"
    res = job(inputs, smtp, window=soon, wait=True, new_journal=None).send()
    assert (res["status"] == "sent").sum() == 5
    assert min(m.at for m in smtp.recorder.messages) >= opens.replace(microsecond=0).timestamp()


# -- settings that used to have no effect ---------------------------------------------------------------
def test_bounce_address_is_the_envelope_sender_and_verp_makes_it_per_message(inputs, smtp):
    res = job(inputs, smtp, bounce_address="bounces@example.org").send()
    assert {m.mail_from for m in smtp.recorder.messages} == {"bounces@example.org"}
    assert all(m["From"] == "news@example.org" for m in parsed(smtp))
    smtp.recorder.messages.clear()
    res = job(inputs, smtp, campaign="verp", bounce_address="bounces@example.org",
              verp=True, new_journal=None).send()
    mids = dict(zip(res["address"], res["message_id"]))
    for m in smtp.recorder.messages:
        token = mids[m.rcpt_tos[0]].strip("<>").partition("@")[0]
        assert m.mail_from == f"bounces+{token}@example.org"


@pytest.mark.parametrize("fmt, types", [("text", ["text/plain"]), ("html", ["text/html"]),
                                        ("both", ["multipart/alternative"])])
def test_email_format(inputs, smtp, fmt, types, capsys):
    job(inputs, smtp, email_format=fmt).send()
    assert [m.get_content_type() for m in parsed(smtp)][:1] == types
    warned = "spam filters score such mail worse" in capsys.readouterr().out
    assert warned == (fmt == "html")


def test_alternate_from_from_profile_notebook_parameter_and_cli(inputs, smtp, config_dir):
    Profile(name="alt", host="127.0.0.1", port=smtp.port, security="none", requires_auth=False,
            from_addr="main@example.org", alt_from_addr="alt@example.org",
            alt_from_name="Alt Team", journal=str(inputs / "j.sqlite")).save()
    base = dict(recipients=str(inputs / "people.csv"), template=str(inputs / "tpl"),
                profile="alt", new_journal=True, progress=False)
    Job(campaign="a1", **base).send()
    Job(campaign="a2", alternate_from=True, **base).send()
    Job.from_parameters({"campaign": "a3", "alternate_from": True, **base}).send()
    r = cli("send", "--profile", "alt", "--campaign", "a4", "--alternate-from", "--recipients",
            base["recipients"], "--template", base["template"],
            env={"MAILNB_CONFIG_DIR": str(config_dir)})
    assert r.returncode == 0, r.stderr
    froms = [str(m["From"]) for m in parsed(smtp)]
    assert froms[:5] == ["main@example.org"] * 5
    assert set(froms[5:]) == {"Alt Team <alt@example.org>"} and len(froms) == 20
    # the alternate falls back to the main From when the profile has none
    p = Profile(from_addr="main@example.org")
    assert p.sender(alternate=True) == ("main@example.org", None)


def test_requires_login_without_username_and_ports(smtp, config_dir):
    before = smtp.recorder.connections, len(smtp.recorder.messages)
    prof = Profile(name="x", host="127.0.0.1", port=smtp.port, security="none",
                   requires_auth=True, from_addr="news@example.org")
    assert "username" in prof.problems()
    with pytest.raises(ConfigError, match="requires a login but has no username"):
        prof.relay()
    with pytest.raises(ConfigError, match="requires a login"):
        mailnb.send(mailnb.Campaign("x", mailnb.Audience(people(1)), mailnb.Template("s", text="t"),
                                    from_addr="news@example.org"), prof)
    assert (smtp.recorder.connections, len(smtp.recorder.messages)) == before
    assert Profile(host="smtp.example.org", security="tls", username="u").relay().port == 465
    assert Profile(host="smtp.example.org", security="none", username="u").relay().port == 25
    assert Profile(host="smtp.example.org", username="u").relay().port == 587
    assert "465 is for implicit TLS" in Profile(host="h.example.org", port=465, username="u",
                                                security="starttls").problems()["port"]


def test_audience_shown_already_excludes_the_journals_lists(inputs, smtp):
    path = inputs / "j.sqlite"
    j = mailnb.SQLiteJournal(path)
    j.suppress("user1@example.com", "hard bounce")
    j.unsubscribe("user3@example.com")
    j.close()
    jb = job(inputs, smtp, new_journal=None)
    reasons = dict(zip(jb.audience.excluded["address"], jb.audience.excluded["reason"]))
    assert reasons["user1@example.com"] == "suppressed"
    assert reasons["user3@example.com"] == "unsubscribed"
    assert len(jb.audience.sendable) == 3
    res = jb.send()
    assert (res["status"] == "sent").sum() == len(jb.audience.sendable) == \
        len(smtp.recorder.messages)


def test_blocklist_key_column_and_pickup_from_the_profile(inputs, smtp, config_dir):
    (inputs / "block.txt").write_text("# not these\n@blocked.example\nuser4@example.com\n")
    df = pd.read_csv(inputs / "people.csv")
    df["pid"] = [f"P{i}" for i in range(len(df))]
    df.loc[2, "email"] = "someone@blocked.example"
    df.to_csv(inputs / "people.csv", index=False)
    Profile(name="lists", host="127.0.0.1", port=smtp.port, security="none", requires_auth=False,
            from_addr="news@example.org", blocklist=str(inputs / "block.txt"), key_column="pid",
            pickup=str(inputs / "outbox"), journal=str(inputs / "j.sqlite")).save()
    res = Job(campaign="lists", profile="lists", recipients=str(inputs / "people.csv"),
              template=str(inputs / "tpl"), new_journal=True, progress=False).send()
    assert set(res.loc[res["status"] == "excluded", "reason"]) >= {"blocked"}
    assert len(list((inputs / "outbox").glob("*.eml"))) == 3 and smtp.recorder.messages == []
    assert set(mailnb.history("lists", str(inputs / "j.sqlite"))["key"]) == {"P0", "P1", "P3"}
