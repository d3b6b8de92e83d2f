"""The sender over real SMTP sockets on loopback: security modes, faults, journal, pacing, resume."""
import asyncio
import email
import os
import signal
import threading
import time
from email import policy

import pandas as pd
import pytest
from conftest import PASSWORD, USER, campaign, people
from smtp_servers import RawServer, Recorder

import mailnb
from mailnb import AuthenticationError, ConfigError, PreflightError, Relay, RelayError, TLSError


def plain(server, **kw):
    return Relay("127.0.0.1", server.port, security="none", timeout=kw.pop("timeout", 5), **kw)


def test_plain_send_and_result_frame(smtp, journal):
    df = people(5)
    df.index = [f"p{i}" for i in range(5)]
    res = mailnb.send(campaign(df), plain(smtp), journal=journal, progress=None)
    assert list(res.index) == list(df.index)                  # joins back to the user's frame
    assert list(res.columns) == ["address", "status", "reason", "code", "reply", "attempts",
                                 "message_id",
                                 "sent_at", "this_run"]
    assert (res["status"] == "sent").all() and (res["code"] == 250).all()
    assert res["this_run"].all() and res["sent_at"].notna().all()
    got = smtp.recorder.addresses()
    assert got == {f"user{i}@example.com": 1 for i in range(5)}
    msgs = {m.rcpt_tos[0]: email.message_from_bytes(m.data, policy=policy.default)
            for m in smtp.recorder.messages}
    m = msgs["user3@example.com"]
    assert m["Subject"] == "Hello Name3" and m["To"] == "Name3 <user3@example.com>"
    assert m["Message-ID"] == res.loc["p3", "message_id"]
    assert "your slot is 12:00." in m.get_body(("plain",)).get_content()
    assert smtp.recorder.messages[0].mail_from == "news@example.org"


@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_tls_and_auth_deliver_byte_identical(mode, smtp_factory, certs, journal, tmp_path,
                                              monkeypatch):
    server = smtp_factory(mode, auth={USER: PASSWORD})
    monkeypatch.setenv("MAILNB_SMTP_PASSWORD", PASSWORD)
    relay = Relay("127.0.0.1", server.port, security=mode, username=USER, cafile=certs["ca"],
                  timeout=10)
    res = mailnb.send(campaign(people(4)), relay, journal=journal, progress=None,
                      backup=str(tmp_path / "backup" / "{campaign}" / "{recipient}.eml"))
    assert (res["status"] == "sent").all()
    assert all(m.tls and m.auth_user == USER for m in server.recorder.messages)
    for m in server.recorder.messages:
        saved = (tmp_path / "backup" / "test" / f"{m.rcpt_tos[0]}.eml").read_bytes()
        assert saved == m.data                     # what left is exactly what arrived
    # the password is nowhere in the journal file
    journal.db.execute("PRAGMA wal_checkpoint(FULL)")
    for f in tmp_path.glob("journal.sqlite*"):
        assert PASSWORD.encode() not in f.read_bytes()


def test_wrong_password_stops_before_sending(smtp_factory, certs, journal, monkeypatch):
    server = smtp_factory("starttls", auth={USER: PASSWORD})
    monkeypatch.setenv("MAILNB_SMTP_PASSWORD", "wrong-" + PASSWORD)
    relay = Relay("127.0.0.1", server.port, username=USER, cafile=certs["ca"], timeout=10)
    with pytest.raises(AuthenticationError) as info:
        mailnb.send(campaign(people(3)), relay, journal=journal, progress=None)
    assert "535" in str(info.value) and "wrong-" not in str(info.value)
    assert PASSWORD not in repr(info.value)
    assert server.recorder.messages == []
    assert set(journal.history("test")["status"]) == {"pending"}


def test_unverified_certificate_is_a_tls_error(smtp_factory, journal, monkeypatch):
    server = smtp_factory("tls", auth={USER: PASSWORD})
    monkeypatch.setenv("MAILNB_SMTP_PASSWORD", PASSWORD)
    relay = Relay("127.0.0.1", server.port, security="tls", username=USER, timeout=10)
    with pytest.raises(TLSError, match="cafile"):
        mailnb.send(campaign(people(2)), relay, journal=journal, progress=None)
    assert server.recorder.messages == []


def test_missing_password_says_how_to_set_one(smtp_factory, certs, journal):
    server = smtp_factory("starttls", auth={USER: PASSWORD})
    relay = Relay("127.0.0.1", server.port, username=USER, cafile=certs["ca"])
    with pytest.raises(mailnb.SecretMissingError, match="MAILNB_SMTP_PASSWORD"):
        mailnb.send(campaign(people(2)), relay, journal=journal, progress=None)


def test_faults_end_in_documented_states(journal):
    rec = Recorder(grey_times=1, slow_seconds=2.5)
    from smtp_servers import start_smtp
    server = start_smtp("plain", recorder=rec)
    try:
        addrs = ["ok1@example.com", "unknown1@example.com", "grey1@example.com",
                 "big1@example.com", "drop1@example.com", "slow1@example.com",
                 "tempdata1@example.com", "busy1@example.com", "ok2@example.com"]
        t0 = time.time()
        res = mailnb.send(campaign(people(addresses=addrs)), plain(server, timeout=1),
                          journal=journal, retries=2, backoff=0.05, progress=None)
        assert time.time() - t0 < 30
    finally:
        server.stop()
    status = dict(zip(res["address"], res["status"]))
    assert status == {
        "ok1@example.com": "sent", "ok2@example.com": "sent",
        "unknown1@example.com": "failed",           # 550: failed at once
        "grey1@example.com": "sent",                # 451 once, then accepted on retry
        "big1@example.com": "failed",               # 552 at DATA
        "drop1@example.com": "sent",                # dropped mid-DATA, reopened, retried
        "slow1@example.com": "deferred",            # past the timeout every time
        "tempdata1@example.com": "deferred",        # 451 at DATA every time
        "busy1@example.com": "deferred",            # 421: retried, then deferred
    }
    by = res.set_index("address")
    assert by.loc["unknown1@example.com", "code"] == 550
    assert "User unknown" in by.loc["unknown1@example.com", "reply"]
    assert by.loc["unknown1@example.com", "attempts"] == 1
    assert by.loc["grey1@example.com", "attempts"] == 2
    assert by.loc["tempdata1@example.com", "attempts"] == 3       # 1 + 2 retries
    assert by.loc["big1@example.com", "code"] == 552
    summary = res.attrs["summary"]
    assert summary["sent"] + summary["failed"] + summary["deferred"] == len(addrs)
    assert (summary["sent"], summary["failed"], summary["deferred"]) == (4, 2, 3)
    got = rec.addresses()
    assert got["drop1@example.com"] == 1 and got["grey1@example.com"] == 1
    assert "unknown1@example.com" not in got
    # a re-run tries the deferred ones again, and only those
    rec.messages.clear()
    server = start_smtp("plain", recorder=Recorder())
    try:
        res2 = mailnb.send(campaign(people(addresses=addrs)), plain(server, timeout=5),
                           journal=journal, retries=0, progress=None)
    finally:
        server.stop()
    tried = {a for a in server.recorder.tries if "@" in a and not a.startswith("DATA ")}
    assert tried == {"slow1@example.com", "tempdata1@example.com", "busy1@example.com"}
    assert set(server.recorder.addresses()) == {"slow1@example.com"}
    assert res2.set_index("address").loc["busy1@example.com", "status"] == "deferred"


def test_421_at_connect_sends_nothing(journal):
    raw = RawServer()
    try:
        with pytest.raises(RelayError, match="421.*Nothing was sent"):
            mailnb.send(campaign(people(3)), Relay("127.0.0.1", raw.port, security="none"),
                        journal=journal, retries=1, backoff=0.05, progress=None)
        assert raw.connections == 2
    finally:
        raw.stop()
    assert set(journal.history("test")["status"]) == {"pending"}


def test_connection_refused_is_a_clear_error(journal):
    from smtp_servers import free_port
    with pytest.raises(RelayError, match=r"cannot talk to 127.0.0.1:\d+"):
        mailnb.send(campaign(people(2)), Relay("127.0.0.1", free_port(), security="none"),
                    journal=journal, retries=0, progress=None)


def test_resume_sends_only_new_rows(smtp, journal):
    df = people(6)
    mailnb.send(campaign(df.iloc[:4]), plain(smtp), journal=journal, progress=None)
    again = mailnb.send(campaign(df.iloc[:4]), plain(smtp), journal=journal, progress=None)
    assert not again["this_run"].any() and len(smtp.recorder.messages) == 4
    more = mailnb.send(campaign(df), plain(smtp), journal=journal, progress=None)
    assert list(more["this_run"]) == [False] * 4 + [True] * 2
    assert smtp.recorder.addresses() == {f"user{i}@example.com": 1 for i in range(6)}


def test_key_column_identifies_people(smtp, journal):
    df = people(3)
    df["pid"] = ["P1", "P2", "P3"]
    mailnb.send(campaign(df, key="pid"), plain(smtp), journal=journal, progress=None)
    df.loc[1, "email"] = "new-address@example.com"            # P2 changed address: same person
    res = mailnb.send(campaign(df, key="pid"), plain(smtp), journal=journal, progress=None)
    assert not res["this_run"].any() and len(smtp.recorder.messages) == 3


def test_limit_per_run_then_resume(smtp, journal):
    c = campaign(people(7))
    r1 = mailnb.send(c, plain(smtp), journal=journal, limit=3, progress=None)
    assert (r1["status"] == "sent").sum() == 3 and (r1["status"] == "pending").sum() == 4
    assert "limit reached" in r1.attrs["summary"]["stopped"]
    r2 = mailnb.send(c, plain(smtp), journal=journal, limit=3, progress=None)
    r3 = mailnb.send(c, plain(smtp), journal=journal, limit=3, progress=None)
    assert (r3["status"] == "sent").all() and r3["this_run"].sum() == 1 and r2["this_run"].sum() == 3
    assert smtp.recorder.addresses() == {f"user{i}@example.com": 1 for i in range(7)}


def test_daily_cap_holds_across_runs_and_campaigns(smtp, journal):
    relay = plain(smtp)
    a = campaign(people(addresses=[f"a{i}@example.com" for i in range(40)]), name="A")
    b = campaign(people(addresses=[f"b{i}@example.com" for i in range(40)]), name="B")
    ra = mailnb.send(a, relay, journal=journal, daily_cap=50, concurrency=4, progress=None)
    rb = mailnb.send(b, relay, journal=journal, daily_cap=50, concurrency=4, progress=None)
    assert (ra["status"] == "sent").sum() == 40
    assert (rb["status"] == "sent").sum() == 10
    assert "daily cap" in rb.attrs["summary"]["stopped"]
    assert len(smtp.recorder.messages) == 50
    rb2 = mailnb.send(b, relay, journal=journal, daily_cap=50, progress=None)
    assert rb2["this_run"].sum() == 0 and len(smtp.recorder.messages) == 50


def test_failures_give_back_the_daily_cap(smtp, journal):
    addrs = ["unknown1@example.com", "unknown2@example.com"] + [f"u{i}@example.com" for i in range(5)]
    res = mailnb.send(campaign(people(addresses=addrs)), plain(smtp), journal=journal,
                      daily_cap=3, progress=None)
    assert (res["status"] == "sent").sum() == 3 and (res["status"] == "failed").sum() == 2


def test_concurrency_sends_each_once(smtp, journal):
    res = mailnb.send(campaign(people(60)), plain(smtp), journal=journal, concurrency=8,
                      progress=None)
    assert (res["status"] == "sent").all()
    assert set(smtp.recorder.addresses().values()) == {1} and len(smtp.recorder.messages) == 60


def test_pacing_follows_schedule(smtp, journal):
    n = 40
    res = mailnb.send(campaign(people(n)), plain(smtp), journal=journal, rate="1200/min",
                      block=(15, "0.6s"), concurrency=2, progress=None)
    assert (res["status"] == "sent").all()
    times = sorted(m.at for m in smtp.recorder.messages)
    expected = mailnb.Pacing.build(rate="1200/min", block=(15, 0.6)).offsets(n)
    observed = [t - times[0] for t in times]
    for k, (obs, exp) in enumerate(zip(observed, expected)):
        assert obs >= exp - 0.03, f"message {k} left {exp - obs:.3f}s ahead of the schedule"
        assert obs <= exp + 0.35, f"message {k} left {obs - exp:.3f}s behind the schedule"


def test_dry_run_sends_and_journals_nothing(smtp, journal):
    res = mailnb.send(campaign(people(5)), plain(smtp), journal=journal, dry_run=True,
                      rate="60/min", limit=4, progress=None)
    assert list(res["status"]) == ["would send"] * 4 + ["later run"]
    gaps = res["planned_at"].diff().dropna().dt.total_seconds()
    assert gaps.iloc[:3].round(3).tolist() == [1.0, 1.0, 1.0]
    assert smtp.recorder.messages == []
    assert journal.history("test").empty


def test_preflight_error_sends_nothing(smtp, journal):
    df = people(4)
    df.loc[2, "first_name"] = None
    df.loc[3, "slot"] = "9:00\r\nBcc: x@example.org"
    c = campaign(df)
    c.template = mailnb.Template("Hi {{ first_name }} at {{ slot }}", text="x")
    with pytest.raises(PreflightError) as info:
        mailnb.send(c, plain(smtp), journal=journal, progress=None)
    assert list(info.value.problems["row"]) == [2, 3]
    assert "row 2" in str(info.value) and "nothing was sent" in str(info.value)
    assert smtp.recorder.messages == [] and journal.history("test").empty


def test_reset_and_requeue_errors(smtp, journal):
    addrs = ["unknown1@example.com", "a@example.com"]
    c = campaign(people(addresses=addrs))
    r = mailnb.send(c, plain(smtp), journal=journal, requeue_errors=True, progress=None)
    assert list(r["status"]) == ["pending", "sent"]          # the failure is unsent again
    mailnb.send(c, plain(smtp), journal=journal, progress=None)
    assert smtp.recorder.addresses() == {"a@example.com": 1}
    r = mailnb.send(c, plain(smtp), journal=journal, reset=True, progress=None)
    assert smtp.recorder.addresses() == {"a@example.com": 2}    # explicitly asked to resend
    ev = journal.events("test")
    assert (ev["status"] == "sent").sum() == 2                  # the audit trail keeps both


def test_pickup_writes_eml_files(tmp_path, journal):
    res = mailnb.send(campaign(people(3)), mailnb.Pickup(tmp_path / "out"), journal=journal,
                      progress=None)
    files = sorted((tmp_path / "out").glob("*.eml"))
    assert len(files) == 3 and (res["status"] == "sent").all()
    msg = email.message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert msg["Subject"].startswith("Hello Name")


def test_send_from_inside_a_running_event_loop(smtp, journal):
    async def notebook_cell():
        # a notebook's cell runs while the kernel's loop is running: send() must still work
        return mailnb.send(campaign(people(2)), plain(smtp), journal=journal, progress=None)
    res = asyncio.run(notebook_cell())
    assert (res["status"] == "sent").all()


def test_send_async(smtp, journal):
    res = asyncio.run(mailnb.send_async(campaign(people(2)), plain(smtp), journal=journal,
                                        progress=None))
    assert (res["status"] == "sent").all()


def test_interrupt_stops_cleanly(smtp, journal):
    c = campaign(people(200))
    timer = threading.Timer(0.6, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        mailnb.send(c, plain(smtp), journal=journal, rate="20/s", concurrency=2, progress=None)
    h = journal.history("test")
    sent = int((h["status"] == "sent").sum())
    # send() returned only after the run recorded its end (not while it was still sending)
    assert journal.runs()["ended_at"].notna().all()
    assert 3 <= sent <= 40 and (h["status"] == "sending").sum() == 0
    assert sent == len(smtp.recorder.messages)
    assert int((h["status"] == "pending").sum()) == 200 - sent


def test_relay_settings_checked_before_connecting():
    with pytest.raises(ConfigError, match="not a valid host"):
        Relay("smtp..example.org").validate()
    with pytest.raises(ConfigError, match="out of range"):
        Relay("smtp.example.org", 70000).validate()
    with pytest.raises(ConfigError, match="465 is for implicit TLS"):
        Relay("smtp.example.org", 465, security="starttls").validate()
    with pytest.raises(ConfigError, match="port 587 starts in plain text"):
        Relay("smtp.example.org", 587, security="tls").validate()
    with pytest.warns(UserWarning, match="verification is off"):
        Relay("smtp.example.org", verify=False).validate()
    assert Relay("smtp.example.org", security="tls").port == 465
    r = Relay("smtp.example.org", username="u", password="hunter2")
    assert "hunter2" not in repr(r) and "hunter2" not in repr(r.password)


def test_check_relay_reports_each_step(smtp_factory, certs, monkeypatch):
    server = smtp_factory("starttls", auth={USER: PASSWORD})
    monkeypatch.setenv("MAILNB_SMTP_PASSWORD", PASSWORD)
    good = mailnb.check_relay(Relay("127.0.0.1", server.port, username=USER, cafile=certs["ca"]))
    assert good.ok, repr(good)
    assert [s for s, _, _ in good.steps] == ["settings", "connect", "EHLO", "STARTTLS", "AUTH", "QUIT"]
    monkeypatch.setenv("MAILNB_SMTP_PASSWORD", "bad" + PASSWORD)
    bad = mailnb.check_relay(Relay("127.0.0.1", server.port, username=USER, cafile=certs["ca"]))
    assert not bad.ok and bad.steps[-1][0] == "AUTH" and "535" in bad.steps[-1][2]
    assert PASSWORD not in repr(bad) and PASSWORD not in bad._repr_html_()
    assert server.recorder.messages == []
    frame = good.to_frame()
    assert list(frame.columns) == ["step", "ok", "detail"] and frame["ok"].all()


def test_backup_placeholders(tmp_path):
    from mailnb.transports.pickup import Backup
    b = Backup(str(tmp_path / "{campaign}" / "{date}"))
    p = b.path_for(campaign="Spring / 2026", subject="Hi: you?", recipient="a@example.com",
                   when=time.mktime((2026, 3, 1, 12, 0, 0, 0, 0, -1)))
    assert p == tmp_path / "Spring_2026" / "2026-03-01" / "2026-03-01-120000-a@example.com.eml"
    with pytest.raises(ConfigError, match="unknown placeholder"):
        Backup("{nope}/x.eml").check()


def test_history_is_a_dataframe(smtp, journal):
    mailnb.send(campaign(people(2)), plain(smtp), journal=journal, progress=None)
    h = mailnb.history("test", journal=journal)
    assert isinstance(h, pd.DataFrame) and list(h["row"]) == [0, 1]
    assert str(h["sent_at"].dtype).startswith("datetime64")


def test_follow_up_is_threaded_and_only_to_those_reached(smtp, journal):
    df = people(4)
    first = campaign(df.iloc[:3], name="invite")
    r1 = mailnb.send(first, plain(smtp), journal=journal, progress=None)
    mids = dict(zip(r1["address"], r1["message_id"]))
    reminder = campaign(df, name="invite-reminder", follow_up="invite")
    reminder.template = mailnb.Template("Re: Hello {{ first_name }}", text="A reminder")
    r2 = mailnb.send(reminder, plain(smtp), journal=journal, progress=None)
    assert list(r2["status"]) == ["sent"] * 3 + ["excluded"]        # user3 never got the first
    assert r2.loc[3, "reason"] == "never got 'invite'"
    got = [m for m in smtp.recorder.messages if b"A reminder" in m.data]
    assert len(got) == 3
    for m in got:
        msg = email.message_from_bytes(m.data, policy=policy.default)
        assert msg["In-Reply-To"] == mids[m.rcpt_tos[0]] == msg["References"]
    with pytest.raises(ConfigError, match="no sent messages"):
        mailnb.send(campaign(df, name="r2", follow_up="never-sent"), plain(smtp), journal=journal,
                    progress=None)


def test_helo_name_is_used(smtp, journal):
    mailnb.send(campaign(people(1)), plain(smtp, helo="mailer.example.org"), journal=journal,
                progress=None)
    assert smtp.recorder.messages[0].helo == "mailer.example.org"


def test_progress_line_estimates_the_end_from_the_speed_so_far():
    from mailnb.sending.progress import Stats
    s = Stats(total=100, sent=25, started=time.time() - 10)
    end = s.expected_end()
    assert 25 <= end - time.time() <= 35              # 75 more at 2.5 a second
    assert "ETA" in s.line() and "sent 25" in s.line()
    paced = Stats(total=100, sent=25, started=time.time() - 10, eta=time.time() + 600)
    assert paced.expected_end() >= time.time() + 590  # the schedule is later: it wins


def test_lines_starting_with_a_dot_arrive_intact(smtp, journal):
    c = campaign(people(1))
    c.template = mailnb.Template("Dots", text=".hidden\n..two\nmiddle . dot\n.")
    mailnb.send(c, plain(smtp), journal=journal, progress=None)
    msg = email.message_from_bytes(smtp.recorder.messages[0].data, policy=policy.default)
    assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n").startswith(
        ".hidden\n..two\nmiddle . dot\n.")
