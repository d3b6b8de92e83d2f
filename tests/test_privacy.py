"""Participants' data stays private: every file and folder a campaign run writes is the user's
alone (0600 / 0700) under the usual umask 022, through every door."""
import os
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import papermill
import pytest
from conftest import people

import mailnb
from mailnb import Profile

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "campaign.ipynb"


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def shared(root):
    """Every path under ``root`` that others could read or enter."""
    out = []
    for p in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(p.lstat().st_mode)
        want = 0o700 if p.is_dir() else 0o600
        if mode & 0o077 or (p.is_file() and mode != want):
            out.append(f"{p.relative_to(root)}: {oct(mode)}")
    return out


def inputs(tmp_path):
    people(4).to_csv(tmp_path / "p.csv", index=False)
    tpl = tmp_path / "tpl"
    tpl.mkdir()
    (tpl / "subject.txt").write_text("Hi {{ first_name }}")
    (tpl / "body.txt").write_text("Slot {{ slot }}")


def test_the_cli_writes_only_private_files(smtp, tmp_path, config_dir, umask_022):
    inputs(tmp_path)
    out = tmp_path / "out"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MAILNB_CONFIG_DIR": str(out / "cfg")}
    base = [sys.executable, "-m", "mailnb.cli", "send", "--recipients", str(tmp_path / "p.csv"),
            "--template", str(tmp_path / "tpl"), "--from", "news@example.org", "--new-journal"]
    for extra in (["--host", "127.0.0.1", "--port", str(smtp.port), "--security", "none",
                   "--campaign", "a", "--journal", str(out / "data" / "j.sqlite"),
                   "--backup", str(out / "sent" / "{campaign}"), "--results",
                   str(out / "r.csv")],
                  ["--pickup", str(out / "outbox"), "--campaign", "b",
                   "--journal", str(out / "data" / "j2.sqlite")]):
        r = subprocess.run(base + extra, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
    assert len(list((out / "sent" / "a").glob("*.eml"))) == 4
    assert len(list((out / "outbox").glob("*.eml"))) == 4
    assert (out / "data" / "j.sqlite-wal").exists() or (out / "data" / "j.sqlite").exists()
    assert shared(out) == []


def test_the_notebook_under_papermill_writes_only_private_files(smtp, tmp_path, config_dir,
                                                                  umask_022):
    inputs(tmp_path)
    data = tmp_path / "data"
    Profile(name="p", host="127.0.0.1", port=smtp.port, security="none", requires_auth=False,
            from_addr="news@example.org", journal=str(data / "j.sqlite"),
            backup=str(data / "sent" / "{campaign}")).save()
    papermill.execute_notebook(
        str(NOTEBOOK), str(tmp_path / "run.ipynb"), cwd=str(tmp_path), progress_bar=False,
        kernel_name="python3", parameters={"profile": "p", "campaign": "nb", "dry_run": False,
                                           "new_journal": True, "recipients":
                                           str(tmp_path / "p.csv"), "template":
                                           str(tmp_path / "tpl"),
                                           "results": str(data / "results.csv")})
    assert len(list((data / "sent" / "nb").glob("*.eml"))) == 4
    assert (data / "results.csv").is_file()
    assert shared(data) == [] and shared(config_dir) == []


def test_the_demo_writes_only_private_files(tmp_path, umask_022):
    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "mailnb.cli", "demo", "--output", str(out)],
                       capture_output=True, text=True, timeout=300,
                       env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out / "campaign-output.ipynb").is_file()
    assert len(list((out / "captured").glob("*.eml"))) == 8
    assert shared(out) == []


def test_an_existing_journal_others_can_read_is_warned_about(tmp_path):
    path = tmp_path / "j.sqlite"
    mailnb.SQLiteJournal(path).close()
    os.chmod(path, 0o644)
    with pytest.warns(UserWarning, match=r"other users .* chmod 600 .*j\.sqlite"):
        mailnb.SQLiteJournal(path).close()
    os.chmod(path, 0o600)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mailnb.SQLiteJournal(path).close()
    shared_folder = tmp_path / "outbox"
    shared_folder.mkdir(mode=0o755)
    os.chmod(shared_folder, 0o755)
    with pytest.warns(UserWarning, match=r"chmod 700 .*outbox"):
        mailnb.send(mailnb.Campaign("w", mailnb.Audience(people(1)), mailnb.Template("s", text="t"),
                                    from_addr="news@example.org"), mailnb.Pickup(shared_folder),
                    journal=mailnb.SQLiteJournal(tmp_path / "j2.sqlite"), progress=None)


def campaign_with_everything(smtp, tmp_path, dovecot=None):
    """A campaign with backups and a pickup copy, a bounce, an unsubscribe and a suppression of
    ``gone@example.com`` in one journal."""
    from mailnb.inbound.bounces import Bounce
    journal = mailnb.SQLiteJournal(tmp_path / "j.sqlite")
    df = people(addresses=["gone@example.com", "stay@example.com", "also@example.com"])
    tmpl = mailnb.Template("Hello {{ first_name }}", text="Dear {{ first_name }}")
    c = mailnb.Campaign("study", mailnb.Audience(df), tmpl, from_addr="news@example.org")
    res = mailnb.send(c, mailnb.Relay("127.0.0.1", smtp.port, security="none"), journal=journal,
                      progress=None, backup=str(tmp_path / "sent" / "{campaign}"))
    mailnb.send(mailnb.Campaign("copy", mailnb.Audience(df), tmpl, from_addr="news@example.org"),
                mailnb.Pickup(tmp_path / "outbox"), journal=journal, progress=None)
    mid = res.loc[0, "message_id"]
    journal.record_bounces("report-1", [Bounce("gone@example.com", "4.2.2", 452, "mailbox full",
                                               "mailboxfull", False, message_id=mid)])
    journal.unsubscribe("gone@example.com", "study", "reply")
    journal.suppress("gone@example.com", "hard bounce", "bounces")
    return journal, df, tmpl


def test_forget_leaves_no_byte_and_the_next_send_excludes_the_person(smtp, tmp_path, config_dir):
    from mailnb.journal.privacy import export, forget
    journal, df, tmpl = campaign_with_everything(smtp, tmp_path)
    before = export("GONE@example.com", journal)
    assert {r["campaign"] for r in before["campaigns"]} == {"study", "copy"}
    assert len(before["bounces"]) == 1 and len(before["unsubscribes"]) == 1
    assert len(before["suppressions"]) == 1 and len(before["events"]) >= 2
    assert not before["erased"]
    counts = forget(["gone@example.com"], journal,
                    folders=[tmp_path / "sent", tmp_path / "outbox"])
    assert counts["recipients"] == 2 and counts["bounces"] == 1 and counts["message files"] == 2
    journal.close()
    files = [*tmp_path.glob("j.sqlite*"), *(tmp_path / "sent").rglob("*.eml"),
             *(tmp_path / "outbox").rglob("*.eml")]
    assert len(files) >= 5                      # the journal, and the others' messages remain
    for f in files:
        assert b"gone@example.com" not in f.read_bytes().lower(), f
    journal = mailnb.SQLiteJournal(tmp_path / "j.sqlite")
    after = export("gone@example.com", journal)
    assert after["erased"] and not any(after[k] for k in ("campaigns", "events", "bounces",
                                                          "suppressions", "unsubscribes"))
    # the next send of the same audience, through a Job and through send(), excludes them
    job = mailnb.Job(campaign="study-2", recipients=df, template=tmpl, host="127.0.0.1",
                     port=smtp.port, security="none", from_addr="news@example.org",
                     journal=str(tmp_path / "j.sqlite"), progress=False)
    assert dict(zip(job.audience.excluded["address"], job.audience.excluded["reason"])) == \
        {"gone@example.com": "forgotten"}
    res = job.send()
    res2 = mailnb.send(mailnb.Campaign("study-3", mailnb.Audience(df), tmpl,
                                       from_addr="news@example.org"),
                       mailnb.Relay("127.0.0.1", smtp.port, security="none"), journal=journal,
                       progress=None)
    for r in (res, res2):
        assert r.loc[0, "status"] == "excluded" and r.loc[0, "reason"] == "forgotten"
    assert [m.rcpt_tos for m in smtp.recorder.messages].count(["gone@example.com"]) == 1
    journal.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for f in tmp_path.glob("j.sqlite*"):
        assert b"gone@example.com" not in f.read_bytes().lower()


def test_forget_and_export_from_the_command_line(smtp, tmp_path, config_dir):
    import json
    journal, _, _ = campaign_with_everything(smtp, tmp_path)
    journal.close()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MAILNB_CONFIG_DIR": str(config_dir),
           "MAILNB_UNSUBSCRIBE_SECRET": os.environ["MAILNB_UNSUBSCRIBE_SECRET"]}
    cli = [sys.executable, "-m", "mailnb.cli"]
    j = ["--journal", str(tmp_path / "j.sqlite")]
    r = subprocess.run(cli + ["export", "gone@example.com", "--json", *j], env=env,
                       capture_output=True, text=True, timeout=60)
    held = json.loads(r.stdout)
    assert len(held["campaigns"]) == 2 and held["bounces"][0]["reason"] == "mailboxfull"
    (tmp_path / "erase.csv").write_text("email\ngone@example.com\n")
    r = subprocess.run(cli + ["forget", "--file", str(tmp_path / "erase.csv"), *j, "--folder",
                              str(tmp_path / "sent"), "--folder", str(tmp_path / "outbox")],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "2 recipients" in r.stdout and "2 message files" in r.stdout
    r = subprocess.run(cli + ["export", "gone@example.com", *j], env=env, capture_output=True,
                       text=True, timeout=60)
    assert "(erased on request)" in r.stdout and "campaigns: 0" in r.stdout


def test_purge_removes_old_detail_and_keeps_counts_and_suppressions(smtp, tmp_path, config_dir):
    import time as _time
    journal, _, _ = campaign_with_everything(smtp, tmp_path)
    old = _time.time() - 400 * 86400
    journal.db.execute("UPDATE runs SET ended_at = ?, heartbeat = ? WHERE campaign = 'study'",
                       (old, old))
    for f in (tmp_path / "sent").rglob("*.eml"):
        os.utime(f, (old, old))
    journal.close()
    Profile(name="kept", host="127.0.0.1", requires_auth=False, retention="365d",
            journal=str(tmp_path / "j.sqlite"),
            backup=str(tmp_path / "sent" / "{campaign}")).save()
    r = subprocess.run([sys.executable, "-m", "mailnb.cli", "purge", "--profile", "kept"],
                       env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                            "MAILNB_CONFIG_DIR": str(config_dir)},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "older than 365d" in r.stdout and "3 recipients" in r.stdout
    assert "3 message files" in r.stdout
    journal = mailnb.SQLiteJournal(tmp_path / "j.sqlite")
    assert journal.history("study").empty and journal.events("study").empty
    assert len(journal.history("copy")) == 3                 # the recent campaign is kept
    counts = journal.campaign_counts()
    assert dict(zip(counts["status"], counts["n"])) == {"sent": 2, "bounced": 1} and \
        set(counts["campaign"]) == {"study"}
    assert "gone@example.com" in set(journal.suppressed()["address"])
    assert list((tmp_path / "sent").rglob("*.eml")) == []
