"""One campaign, several workers: the PostgreSQL journal (a real server, initdb'd by the fixture)
has the SQLite journal's interface and meaning; claims, the daily cap and the pace are shared by
every process that sends the campaign; schema versions on both backends."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import papermill
import pytest

import mailnb
from mailnb.journal import SQLiteJournal, open_journal
from mailnb.journal.base import Cap
from mailnb.journal.schema import SCHEMA, SCHEMA_VERSION

NOTEBOOKS = Path(mailnb.__file__).parent / "notebooks"


@pytest.fixture(params=["sqlite", "postgresql"])
def any_journal(request, tmp_path):
    if request.param == "sqlite":
        j = SQLiteJournal(tmp_path / "j.sqlite")
    else:
        j = open_journal(request.getfixturevalue("pg_url"))
    yield j
    j.close()


def test_both_backends_keep_the_same_record(any_journal):
    j = any_journal
    assert j.schema_version() == SCHEMA_VERSION
    assert j.add_recipients("c", [(f"k{i}", f"p{i}@example.com", str(i)) for i in range(4)]) == 4
    assert j.add_recipients("c", [("k0", "p0@example.com", "0")]) == 0
    run = j.start_run("c", account="acct")
    assert j.claim("c", "k0", run, ("pending",)) and not j.claim("c", "k0", run, ("pending",))
    j.record("c", "k0", run, "sent", code=250, reply="ok", message_id="<m0@x>", account="acct")
    assert j.claim("c", "k1", run, ("pending",), to="claimed")
    other = j.start_run("c", account="acct")
    assert not j.claim("c", "k1", other, ("claimed",))       # held by the first run only
    assert j.claim("c", "k1", run, ("claimed",))
    assert j.claim("c", "k2", run, ("pending",), to="claimed")
    assert j.states("c") == {"k0": "sent", "k1": "sending", "k2": "claimed", "k3": "pending"}
    j.end_run(run, {})                                      # it ended without answers
    assert j.recover("c", other) == 1                       # k1 was in flight: unknown
    assert j.states("c") == {"k0": "sent", "k1": "unknown", "k2": "pending", "k3": "pending"}
    assert j.sent_since("acct", 0) == 1 and j.in_cap("acct") == 1
    h = j.history("c")
    assert list(h["key"]) == ["k0", "k1", "k2", "k3"] and h["sent_at"].notna().sum() == 1
    assert j.find_message("m0")["key"] == "k0"
    assert j.unsubscribe("p3@example.com") and not j.unsubscribe("P3@example.com")
    assert j.suppress("p2@example.com", "hard bounce") and len(j.suppressed()) == 1
    assert set(j.events("c")["status"]) == {"sent", "unknown"}


def test_the_daily_cap_counts_every_worker(any_journal):
    j = any_journal
    j.add_recipients("c", [(f"k{i}", f"p{i}@example.com", str(i)) for i in range(5)])
    a, b = j.start_run("c", account="acct"), j.start_run("c", account="acct")
    cap = Cap("acct", 3)
    assert j.claim("c", "k0", a, ("pending",), cap=cap)
    assert j.claim("c", "k1", b, ("pending",), cap=cap)
    j.record("c", "k0", a, "sent", account="acct")
    assert j.claim("c", "k2", b, ("pending",), cap=cap)      # 1 sent + 2 in flight = 3
    assert not j.claim("c", "k3", a, ("pending",), cap=cap)
    j.record("c", "k1", b, "failed", code=550, account="acct")  # a failure frees its place
    assert j.claim("c", "k3", a, ("pending",), cap=cap)


def test_send_slots_come_from_one_schedule(any_journal):
    j = any_journal
    slots = [j.reserve_slot("acct", 0.5) for _ in range(4)]
    assert [round(b - a, 6) for a, b in zip(slots, slots[1:])] == [0.5, 0.5, 0.5]
    blocks = [j.reserve_slot("blk", 0.0, 2, 60.0) for _ in range(5)]
    assert blocks[2] - blocks[1] >= 60 and blocks[4] - blocks[3] >= 60
    assert blocks[1] - blocks[0] < 1


def test_runs_hold_rows_in_batches_without_sharing_one(any_journal):
    j = any_journal
    j.add_recipients("c", [(f"k{i}", f"p{i}@example.com", str(i)) for i in range(6)])
    a, b = j.start_run("c", account="acct"), j.start_run("c", account="acct")
    new = ("pending", "deferred", "unknown", "claimed")
    assert j.hold("c", ["k0", "k1", "k2", "k3"], a, new) == ["k0", "k1", "k2", "k3"]
    assert sorted(j.hold("c", ["k2", "k3", "k4", "k5"], b, new)) == ["k4", "k5"]
    assert j.hold("c", ["k0"], a, new) == ["k0"]             # its own held row: still its own
    assert j.claim("c", "k0", a, ("claimed",)) and not j.claim("c", "k4", a, ("claimed",))
    assert j.release("c", b) == 2
    assert j.states("c") == {"k0": "sending", "k1": "claimed", "k2": "claimed",
                             "k3": "claimed", "k4": "pending", "k5": "pending"}


def test_a_run_that_stops_beating_loses_its_rows_when_its_lease_runs_out(any_journal):
    j = any_journal
    j.lease = 4.0
    j.add_recipients("c", [(f"k{i}", f"p{i}@example.com", str(i)) for i in range(3)])
    frozen, alive = j.start_run("c", account="acct"), j.start_run("c", account="acct")
    assert j.runs("c")["lease"].tolist() == [4.0, 4.0]
    j.hold("c", ["k0", "k1"], frozen, ("pending",))
    assert j.claim("c", "k0", frozen, ("claimed",))
    assert j.others_hold("c", alive) == 4.0 and j.others_hold("c", frozen) is None
    j.db.execute("UPDATE runs SET heartbeat = ? WHERE id = ?", (time.time() - 3, frozen))
    assert j.recover("c", alive) == 0 and j.states("c")["k1"] == "claimed"   # 3 s of its 4
    j.db.execute("UPDATE runs SET heartbeat = ? WHERE id = ?", (time.time() - 5, frozen))
    assert j.recover("c", alive) == 1                        # the lease ran out: crash rules
    assert j.states("c") == {"k0": "unknown", "k1": "pending", "k2": "pending"}
    assert j.others_hold("c", alive) is None


def test_postgresql_skips_rows_another_worker_is_locking(pg_url):
    import psycopg
    j = open_journal(pg_url + "?lease=30s")
    assert j.lease == 30.0
    j.add_recipients("c", [(f"k{i}", f"p{i}@example.com", str(i)) for i in range(3)])
    run = j.start_run("c", account="acct")
    with psycopg.connect(pg_url) as other:       # another worker, in the middle of its claim
        other.execute("SELECT key FROM recipients WHERE key = 'k1' FOR UPDATE")
        started = time.monotonic()
        assert j.hold("c", ["k0", "k1", "k2"], run, ("pending",)) == ["k0", "k2"]
        assert time.monotonic() - started < 2                # skipped, not waited for
    assert j.hold("c", ["k1"], run, ("pending",)) == ["k1"]
    j.close()
    with pytest.raises(mailnb.JournalError, match="lease=30s or lease=2min"):
        open_journal(pg_url + "?lease=soon")


def test_every_worker_sees_one_record_that_can_be_exported_erased_and_expired(
        any_journal, tmp_path):
    """Suppressions and unsubscribes written through one connection are what another worker's
    connection reads; the privacy functions work on either backend."""
    from mailnb.journal.privacy import export, forget, forgotten, purge
    j = any_journal
    where = j.url if hasattr(j, "url") else str(j.path)
    other = open_journal(where)         # a second worker
    j.add_recipients("old", [("k0", "Ann@Example.com", "0"), ("k1", "bob@example.com", "1")])
    run = j.start_run("old", account="acct")
    j.claim("old", "k0", run, ("pending",))
    j.record("old", "k0", run, "sent", code=250, message_id="<m@x>", account="acct")
    j.end_run(run, {})
    j.suppress("bob@example.com", "hard bounce")
    j.unsubscribe("carol@example.com")
    assert "bob@example.com" in other.suppressions() and "carol@example.com" in \
        other.unsubscribes()
    assert export("ann@example.com", where)["campaigns"][0]["status"] == "sent"
    counts = forget(["ANN@example.com"], where)
    assert counts["recipients"] == 1 and counts["events"] == 1
    assert export("ann@example.com", j)["erased"] and not export("ann@example.com", j)["events"]
    assert forgotten(j).match("ann@example.com") and len(forgotten(where)) == 1
    j.db.execute("UPDATE runs SET ended_at = 1000, heartbeat = 1000")
    assert purge(where, older_than="1d")["recipients"] == 1      # bob's row; counts stay
    assert j.states("old") == {} and len(j.suppressed()) == 1
    other.close()


def test_the_password_comes_from_pgpass_or_the_keyring_and_the_url_from_the_environment(
        postgres, pg_url, tmp_path, monkeypatch):
    """libpq's password file and the keyring (service mailnb-postgresql) stand in for
    PGPASSWORD; MAILNB_JOURNAL names the journal for every door that takes none."""
    import keyring
    from keyring.backend import KeyringBackend

    from mailnb.journal.postgres import KEYRING_SERVICE, PostgresJournal
    monkeypatch.delenv("PGPASSWORD")
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"127.0.0.1:{postgres.port}:*:mailnb:{postgres.password}\n")
    pgpass.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    monkeypatch.setenv("MAILNB_JOURNAL", pg_url)
    j = open_journal(None)
    assert isinstance(j, PostgresJournal) and j.schema_version() == SCHEMA_VERSION
    j.close()
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))

    class Memory(KeyringBackend):             # a keyring that keeps its secrets in memory
        priority = 1
        store: dict = {}

        def get_password(self, service, user):
            return self.store.get((service, user))

        def set_password(self, service, user, password):
            self.store[(service, user)] = password

        def delete_password(self, service, user):
            self.store.pop((service, user), None)

    before = keyring.get_keyring()
    keyring.set_keyring(Memory())
    try:
        with pytest.raises(mailnb.JournalError, match="password"):
            open_journal(pg_url)
        database = pg_url.rsplit("/", 1)[1]
        keyring.set_password(KEYRING_SERVICE, f"mailnb@127.0.0.1:{postgres.port}/{database}",
                             postgres.password)
        j = open_journal(pg_url)
        assert j.states("nothing") == {} and postgres.password not in repr(j) + j.location
        j.close()
    finally:
        keyring.set_keyring(before)


def test_an_older_sqlite_journal_is_migrated(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(SCHEMA)           # a journal from before schema versions were kept
    db.execute("INSERT INTO recipients (campaign, key, address, added_at, updated_at) "
               "VALUES ('c', 'k', 'a@example.com', 0, 0)")
    db.commit()
    db.close()
    path.chmod(0o600)
    j = SQLiteJournal(path)
    assert j.schema_version() == SCHEMA_VERSION and j.states("c") == {"k": "pending"}
    assert j.reserve_slot("acct", 1.0) > 0
    j.close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO schema_version VALUES (99)")
    db.commit()
    db.close()
    with pytest.raises(mailnb.JournalError, match="newer mailnb"):
        SQLiteJournal(path)


def test_a_wrong_postgresql_url_is_one_clear_error(postgres, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "not-the-password")
    with pytest.raises(mailnb.JournalError) as err:
        open_journal(postgres.url())
    text = str(err.value)
    assert "PostgreSQL journal" in text and "PGPASSWORD" in text
    assert "not-the-password" not in text
    from smtp_servers import free_port
    started = time.time()
    with pytest.raises(mailnb.JournalError, match="refused"):    # nothing listens there
        open_journal(f"postgresql://mailnb@127.0.0.1:{free_port()}/mailnb")
    assert time.time() - started < 5


# -- several processes, one campaign ---------------------------------------------------------------
N, RATE = 3000, 3000 / 60           # 3,000 rows at 3000/min


@pytest.fixture
def env(tmp_path, config_dir):
    """What a worker process sees: the test's config and home, no default journal."""
    out = {**os.environ, "MAILNB_CONFIG_DIR": str(config_dir), "HOME": str(tmp_path)}
    out.pop("MAILNB_JOURNAL", None)
    return out


def _files(tmp_path: Path) -> tuple[Path, Path]:
    pd.DataFrame({"email": [f"w{i}@example.com" for i in range(N)],
                  "first_name": [f"W{i}" for i in range(N)]}).to_csv(tmp_path / "p.csv",
                                                                      index=False)
    tpl = tmp_path / "tpl"
    tpl.mkdir()
    (tpl / "subject.txt").write_text("Hello {{ first_name }}")
    (tpl / "body.txt").write_text("Dear {{ first_name }}, one message each.")
    return tmp_path / "p.csv", tpl


def _workers(n, smtp, pg_url, csv, tpl, env, campaign, *extra):
    cmd = [sys.executable, "-m", "mailnb.cli", "send", "--recipients", str(csv), "--template",
           str(tpl), "--campaign", campaign, "--from", "team@example.org", "--host", "127.0.0.1",
           "--port", str(smtp.port), "--security", "none", "--journal", pg_url, *extra]
    return [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(n)]


def _wait_for(smtp, count, seconds=60):
    deadline = time.time() + seconds
    while len(smtp.recorder.messages) < count and time.time() < deadline:
        time.sleep(0.01)
    assert len(smtp.recorder.messages) >= count, "the workers did not get going"


def test_four_processes_and_a_notebook_send_each_address_once(smtp, pg_url, tmp_path, env):
    csv, tpl = _files(tmp_path)
    started = time.time()
    procs = _workers(4, smtp, pg_url, csv, tpl, env, "shared", "--rate", "3000/min",
                     "--concurrency", "2")
    papermill.execute_notebook(
        str(NOTEBOOKS / "campaign.ipynb"), str(tmp_path / "out.ipynb"), cwd=str(tmp_path),
        progress_bar=False, kernel_name="python3",
        parameters=dict(campaign="shared", recipients=str(csv), template=str(tpl),
                        from_addr="team@example.org", host="127.0.0.1", port=smtp.port,
                        security="none", journal=pg_url, rate="3000/min", concurrency=2,
                        dry_run=False, progress=False))
    outs = [p.communicate(timeout=300) for p in procs]
    elapsed = time.time() - started
    assert all(p.returncode == 0 for p in procs), [e[-1500:] for _, e in outs]
    counts = smtp.recorder.addresses()
    assert len(counts) == N and set(counts.values()) == {1}, "an address was sent twice"
    j = open_journal(pg_url)
    states = pd.Series(j.states("shared")).value_counts().to_dict()
    sent = j.events("shared").query("status == 'sent'")["at"]
    j.close()
    assert states == {"sent": N} and len(sent) == N
    pace = (N - 1) / (sent.max() - sent.min()).total_seconds()
    print(f"\n5 workers, {N} messages: {pace:.1f} msg/s against a rate of {RATE:.0f}/s "
          f"({pace / RATE:.2f} of it), {elapsed:.0f} s in all")
    assert pace <= RATE * 1.05, "the workers together went faster than the campaign's rate"
    assert pace >= RATE * 0.8, "the shared schedule held the workers back"


def test_journal_copy_between_backends_keeps_every_row(smtp, pg_url, tmp_path, env):
    from conftest import campaign, people
    first = tmp_path / "first.sqlite"
    mailnb.send(campaign(people(6), name="moved"), mailnb.Relay("127.0.0.1", smtp.port,
                                                                 security="none"),
                journal=first, new_journal=True, progress=None)
    j = SQLiteJournal(first)
    j.suppress("user1@example.com", "hard bounce")
    before = j.history("moved")
    j.close()
    back = tmp_path / "back.sqlite"
    for src, dst in ((str(first), pg_url), (pg_url, str(back))):
        r = subprocess.run([sys.executable, "-m", "mailnb.cli", "journal", "copy", "--from", src,
                            "--to", dst], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert "every table's count matches" in r.stdout
    again = subprocess.run([sys.executable, "-m", "mailnb.cli", "journal", "copy", "--from",
                            str(first), "--to", pg_url], env=env, capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 1 and "already holds campaigns" in again.stderr
    assert "Traceback" not in again.stderr
    missing = subprocess.run([sys.executable, "-m", "mailnb.cli", "journal", "copy", "--from",
                              str(tmp_path / "typo.sqlite"), "--to", str(tmp_path / "x.sqlite")],
                             env=env, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and "does not exist: check its path" in missing.stderr
    assert not (tmp_path / "x.sqlite").exists()
    after = open_journal(str(back))
    pd.testing.assert_frame_equal(after.history("moved"), before)
    assert len(after.suppressed()) == 1
    after.close()
    # and the copy resumes: nobody is sent twice from the shared journal
    res = mailnb.send(campaign(people(6), name="moved"), mailnb.Relay("127.0.0.1", smtp.port,
                                                                       security="none"),
                      journal=pg_url, progress=None)
    assert len(smtp.recorder.messages) == 6 and (res["status"] == "sent").all()


def test_two_workers_share_one_daily_cap(smtp, pg_url, tmp_path, env):
    csv, tpl = _files(tmp_path)
    procs = _workers(2, smtp, pg_url, csv, tpl, env, "capped", "--daily-cap", "100",
                     "--concurrency", "4")
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-1500:] for _, e in outs]
    counts = smtp.recorder.addresses()
    assert len(smtp.recorder.messages) == 100 and set(counts.values()) == {1}
    j = open_journal(pg_url)
    states = pd.Series(j.states("capped")).value_counts().to_dict()
    j.close()
    assert states == {"sent": 100, "pending": N - 100}
    assert all("daily cap" in out for out, _ in outs), [o[-500:] for o, _ in outs]



def _sent_once_each(smtp, pg_url, campaign):
    """What the sink received by address (each at most once), and the journal's states."""
    counts = smtp.recorder.addresses()
    assert max(counts.values()) == 1, "an address was sent twice"
    j = open_journal(pg_url)
    states = j.states(campaign)
    j.close()
    return counts, states, pd.Series(states).value_counts().to_dict()


def test_a_worker_killed_mid_send_is_finished_by_the_others(smtp, pg_url, tmp_path, env):
    csv, tpl = _files(tmp_path)
    procs = _workers(4, smtp, pg_url, csv, tpl, env, "killed", "--rate", "12000/min",
                     "--concurrency", "2")
    _wait_for(smtp, 600)
    os.kill(procs[0].pid, signal.SIGKILL)
    outs = [p.communicate(timeout=300) for p in procs[1:]]
    procs[0].wait(10)
    assert all(p.returncode == 0 for p in procs[1:]), [e[-1500:] for _, e in outs]
    counts, states, by_state = _sent_once_each(smtp, pg_url, "killed")
    unknown = [k for k, st in states.items() if st == "unknown"]
    print(f"\nkilled 1 of 4 workers after {600}+ messages: {by_state}; "
          f"{sum(counts.get(k, 0) for k in unknown)} of the {len(unknown)} unknown reached the sink")
    assert set(by_state) <= {"sent", "unknown"}, by_state      # nobody left behind
    assert len(unknown) <= 2                                   # the dead worker's connections
    assert all(counts.get(k) == 1 for k, st in states.items() if st == "sent")


def _sent_by_others(pg_url, pid, keys):
    """How many of ``keys`` a run other than the worker ``pid``'s sent."""
    import psycopg
    with psycopg.connect(pg_url, autocommit=True) as db:
        (n,) = db.execute("SELECT count(DISTINCT e.key) FROM events e JOIN runs u ON e.run_id = "
                          "u.id WHERE e.status = 'sent' AND u.pid != %s AND e.key = ANY(%s)",
                          (pid, keys)).fetchone()
    return n


def _freeze_holding(pid, pg_url, tries=200):
    """SIGSTOP the worker ``pid`` at a moment it holds rows; the rows (key, status)."""
    import psycopg
    with psycopg.connect(pg_url, autocommit=True) as db:
        for _ in range(tries):
            os.kill(pid, signal.SIGSTOP)
            held = db.execute("SELECT key, status FROM recipients r JOIN runs u ON r.run_id = u.id "
                              "WHERE u.pid = %s AND r.status IN ('claimed', 'sending')",
                              (pid,)).fetchall()
            if held:
                return held
            os.kill(pid, signal.SIGCONT)
            time.sleep(0.01)
    raise AssertionError(f"worker {pid} never held a row when looked at")


def test_a_frozen_worker_s_rows_are_taken_over_when_its_lease_runs_out(smtp, pg_url, tmp_path,
                                                                      env):
    """SIGSTOP looks, to the others, like a machine that vanished: its process still exists, so
    only its lease tells. They finish its rows once the lease runs out; woken, it sends none of
    them again."""
    csv, tpl = _files(tmp_path)
    lease = 8.0
    procs = _workers(3, smtp, f"{pg_url}?lease={lease:g}s", csv, tpl, env, "frozen", "--rate",
                     "6000/min", "--concurrency", "2")
    _wait_for(smtp, N - 400, seconds=120)   # near the end: the others get there in its lease
    held = _freeze_holding(procs[0].pid, pg_url)
    frozen_at = time.time()
    try:
        outs = [p.communicate(timeout=300) for p in procs[1:]]
        finished = time.time()
    finally:
        os.kill(procs[0].pid, signal.SIGCONT)
    out0, err0 = procs[0].communicate(timeout=120)
    assert all(p.returncode == 0 for p in procs), [e[-1500:] for _, e in outs] + [err0[-1500:]]
    counts, states, by_state = _sent_once_each(smtp, pg_url, "frozen")
    print(f"\nfroze 1 of 3 workers holding {len(held)} row(s); the others ended "
          f"{finished - frozen_at:.1f} s later "
          f"(lease {lease:g} s): {by_state}")
    assert set(by_state) <= {"sent", "unknown"} and by_state.get("unknown", 0) <= 2, by_state
    assert finished - frozen_at >= lease / 2, "they did not wait for the frozen one's lease"
    ends = [err.rsplit("done: ", 1)[-1].split(" ", 1)[0].split("/") for _, err in outs]
    assert all(done == total for done, total in ends), ends      # each of its rows counted once
    taken_over = _sent_by_others(pg_url, procs[0].pid, [k for k, st in held if st == "claimed"])
    assert taken_over == sum(st == "claimed" for _, st in held), (taken_over, held)


def test_postgresql_stopped_for_five_seconds_pauses_the_workers(smtp, postgres, pg_url, tmp_path,
                                                                env):
    csv, tpl = _files(tmp_path)
    procs = _workers(2, smtp, pg_url, csv, tpl, env, "restart", "--rate", "6000/min",
                     "--concurrency", "2")
    _wait_for(smtp, 300)
    postgres.halt()
    halted = len(smtp.recorder.messages)
    time.sleep(5)
    during = len(smtp.recorder.messages) - halted
    postgres.run()
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-1500:] for _, e in outs]
    counts = smtp.recorder.addresses()
    assert len(counts) == N and max(counts.values()) == 1
    j = open_journal(pg_url)
    by_state = pd.Series(j.states("restart")).value_counts().to_dict()
    j.close()
    print(f"\nPostgreSQL down 5 s: {during} message(s) went out meanwhile (in flight); "
          f"end: {by_state}")
    assert by_state == {"sent": N} and during <= 4
