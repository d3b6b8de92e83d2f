"""One error, phrased for the door in use: Python arguments in the API and notebooks, flags on the
command line; one line and exit 1 on the command line (no traceback unless --debug). And a journal
that cannot be written (a full disk, a read-only file system) says which file and why, losing no
outcome: those run the command inside a private mount namespace with a small tmpfs."""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import mailnb
from mailnb.errors import ConfigError, alt, arg, phrase

CLI = [sys.executable, "-m", "mailnb.cli"]


def run_cli(args: list[str], tmp_path: Path, **kw) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MAILNB_CONFIG_DIR":
           str(tmp_path / "config"), "MAILNB_UNSUBSCRIBE_SECRET": "s" * 32}
    return subprocess.run(CLI + args, env=env, capture_output=True, text=True, timeout=90, **kw)


def write_campaign(tmp_path: Path, n: int = 3, header: str = "email,first_name") -> tuple[str, str]:
    csv = tmp_path / "people.csv"
    csv.write_text(header + "\n" + "".join(f"p{i}@example.org,P{i}\n" for i in range(n)))
    tpl = tmp_path / "tpl"
    tpl.mkdir(exist_ok=True)
    (tpl / "subject.txt").write_text("Hi {{ first_name }}")
    (tpl / "body.txt").write_text("Dear {{ first_name }}\n")
    return str(csv), str(tpl)


def send_args(tmp_path: Path, port: int, *extra: str, new: bool = True) -> list[str]:
    csv, tpl = write_campaign(tmp_path) if not (tmp_path / "people.csv").exists() else \
        (str(tmp_path / "people.csv"), str(tmp_path / "tpl"))
    return ["send", "--recipients", csv, "--template", tpl, "--campaign", "c", "--from",
            "news@example.org", "--host", "127.0.0.1", "--port", str(port),
            "--journal", str(tmp_path / "j.sqlite"), *(["--new-journal"] if new else []), *extra]


def test_one_message_two_phrasings():
    err = ConfigError(f"use {arg('security', 'none')} or {arg('resend_unknown')} "
                      f"({alt('err.problems', 'below')}, {arg('daily_cap', 500)}, "
                      f"{arg('from_addr', 'a b')})")
    assert str(err) == ("use security='none' or resend_unknown=True (err.problems, "
                        "daily_cap=500, from_addr='a b')")
    assert err.phrased("cli") == ("use --security none or --resend-unknown (below, "
                                  "--daily-cap 500, --from 'a b')")
    assert phrase("plain text") == "plain text"


def test_starttls_missing_is_phrased_for_each_door(tmp_path, smtp):
    relay = mailnb.Relay("127.0.0.1", smtp.port, security="starttls", username=None, timeout=5)
    with pytest.raises(mailnb.TLSError) as info:
        mailnb.send(_campaign(), relay, journal=mailnb.SQLiteJournal(tmp_path / "py.sqlite"),
                    progress=None)
    assert "security='tls'" in str(info.value) and "--security" not in str(info.value)
    assert "--security none" in info.value.phrased("cli")
    r = run_cli(send_args(tmp_path, smtp.port, "--security", "starttls"), tmp_path)
    assert r.returncode == 1, r.stderr
    line = [ln for ln in r.stderr.splitlines() if ln.startswith("mailnb: error:")]
    assert len(line) == 1 and "--security tls" in line[0] and "--security none" in line[0]
    assert "security='" not in r.stderr and "Traceback" not in r.stderr
    assert smtp.recorder.messages == []


def _campaign():
    from conftest import campaign, people
    return campaign(people(2))


def test_missing_column_and_preflight_are_phrased_for_each_door(tmp_path, smtp):
    csv, tpl = write_campaign(tmp_path, header="mail,first_name")
    with pytest.raises(mailnb.RecipientError, match=r"email_column='COLUMN'"):
        _ = mailnb.Job(campaign="c", recipients=csv, template=tpl, host="127.0.0.1",
                       journal=str(tmp_path / "a.sqlite"), new_journal=True).audience
    r = run_cli(send_args(tmp_path, smtp.port, "--security", "none"), tmp_path)
    assert r.returncode == 1 and "--email-column COLUMN" in r.stderr, r.stderr
    assert "email_column=" not in r.stderr and "Traceback" not in r.stderr
    # a template that names a column nobody has: Python points at err.problems, the CLI does not
    (Path(tpl) / "body.txt").write_text("{{ slot }}")
    job = mailnb.Job(campaign="c", recipients=csv, template=tpl, email_column="mail",
                     host="127.0.0.1", port=smtp.port, security="none",
                     from_addr="news@example.org", journal=str(tmp_path / "p.sqlite"),
                     new_journal=True, progress=False)
    with pytest.raises(mailnb.PreflightError, match="err.problems has them all"):
        job.send()
    r = run_cli(send_args(tmp_path, smtp.port, "--security", "none", "--email-column", "mail"),
                tmp_path)
    assert r.returncode == 1 and "all of them below" in r.stderr and "{{ slot }}" in r.stderr
    assert "err.problems" not in r.stderr
    assert smtp.recorder.messages == []


def test_certificate_failure_names_the_cafile_flag(tmp_path, smtp_factory):
    server = smtp_factory("tls")
    r = run_cli(send_args(tmp_path, server.port, "--security", "tls"), tmp_path)
    assert r.returncode == 1 and "--cafile ca.pem" in r.stderr, r.stderr
    assert "cafile=" not in r.stderr and "Traceback" not in r.stderr
    relay = mailnb.Relay("127.0.0.1", server.port, security="tls", username=None, timeout=5)
    with pytest.raises(mailnb.TLSError, match=r"cafile='ca.pem'"):
        mailnb.send(_campaign(), relay, journal=mailnb.SQLiteJournal(tmp_path / "py.sqlite"),
                    progress=None)


def test_unknown_outcomes_and_warnings_name_flags_on_the_command_line(tmp_path, smtp):
    args = send_args(tmp_path, smtp.port, "--security", "none")
    j = mailnb.SQLiteJournal(tmp_path / "j.sqlite")       # a run that died mid-send
    run = j.start_run("c", account="x")
    j.add_recipients("c", [("p0@example.org", "p0@example.org", "{}")])
    assert j.claim("c", "p0@example.org", run, ("pending",))
    j.end_run(run, {})
    j.close()
    r = run_cli([a for a in args if a != "--new-journal"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "--resend-unknown" in r.stdout and "resend_unknown=True" not in r.stdout
    assert "mailnb history c --status unknown" in r.stdout and "status='unknown'" not in r.stdout
    assert sorted(m.rcpt_tos[0] for m in smtp.recorder.messages) == ["p1@example.org",
                                                                     "p2@example.org"]
    other = [str(tmp_path / "w.sqlite") if a.endswith("j.sqlite") else a for a in args]
    r = run_cli(other + ["--rate", "1/day", "--dry-run"], tmp_path)
    warning = [ln for ln in r.stderr.splitlines() if ln.startswith("mailnb: warning:")]
    assert any("--daily-cap 100" in ln for ln in warning), r.stderr
    assert "UserWarning" not in r.stderr and "daily_cap=" not in r.stderr


def test_debug_shows_the_traceback(tmp_path):
    bad = ["send", "--campaign", "c", "--host", "127.0.0.1", "--from", "a@example.org",
           "--block-size", "5", "--dry-run",
           "--journal", str(tmp_path / "j.sqlite"), "--new-journal"]
    r = run_cli(bad, tmp_path)
    assert r.returncode == 1 and "--block-pause 2min" in r.stderr and "Traceback" not in r.stderr
    r = run_cli(["--debug", *bad], tmp_path)
    assert r.returncode == 1 and "Traceback" in r.stderr and "ConfigError" in r.stderr
    r = run_cli(["send", "--no-such-flag"], tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr


# -- a journal that cannot be written -----------------------------------------------------------
def in_small_disk(tmp_path: Path, size: str, fill: int, commands: str) -> subprocess.CompletedProcess:
    """Run shell ``commands`` with a tmpfs of ``size`` at $DISK (``fill`` bytes taken), in a
    mount namespace of its own, then copy the journal out to $OUT."""
    if not shutil.which("unshare"):
        pytest.fail("the disk tests need unshare (util-linux)")
    disk, out = tmp_path / "disk", tmp_path / "out"
    disk.mkdir()
    out.mkdir()
    script = (f"set -u\nmount -t tmpfs -o size={size},mode=0700 tmpfs {disk} || exit 90\n"
              f"DISK={disk}; OUT={out}\n"
              f"head -c {fill} /dev/zero > $DISK/filler\n{commands}\nrc=$?\n"
              f"cp $DISK/j.sqlite* $OUT/ 2>/dev/null\nexit $rc\n")
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path),
           "MAILNB_CONFIG_DIR": str(tmp_path / "config"), "MAILNB_UNSUBSCRIBE_SECRET": "s" * 32}
    done = subprocess.run(["unshare", "--map-root-user", "--mount", "bash", "-c", script],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 90, f"cannot mount a tmpfs here: {done.stderr}"
    return done


def states(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT status, count(*) FROM recipients GROUP BY status"))


def _send(tmp_path: Path, port: int, journal: str, new: bool = True) -> str:
    csv, tpl = str(tmp_path / "people.csv"), str(tmp_path / "tpl")
    return (f"{sys.executable} -m mailnb.cli send --recipients {csv} --template {tpl} "
            f"--campaign c --from news@example.org --host 127.0.0.1 --port {port} "
            f"--security none --journal {journal} {'--new-journal' if new else ''}")


def test_a_disk_that_fills_mid_send_loses_no_outcome(tmp_path, smtp):
    write_campaign(tmp_path, n=300)
    done = in_small_disk(tmp_path, "1m", 400_000, _send(tmp_path, smtp.port, "$DISK/j.sqlite"))
    err = done.stderr
    assert done.returncode == 1, err
    assert "mailnb: error: the disk holding the journal" in err and "is full" in err, err
    assert "j.sqlite" in err and "Traceback" not in err
    delivered = [m.rcpt_tos[0] for m in smtp.recorder.messages]
    assert 0 < len(delivered) < 300
    assert f"This run sent {len(delivered)} message(s), each outcome recorded" in err
    saved = tmp_path / "out" / "j.sqlite"
    # nobody in doubt: rows this run still held (claimed, never handed to the relay) are pending
    # again for the next run, like a dead run's
    left = states(saved)
    assert left.pop("sent") == len(delivered) and set(left) <= {"pending", "claimed"}, left
    assert sum(left.values()) == 300 - len(delivered)
    # with room again (the journal moved to a roomy disk) the run resumes: each address once
    roomy = tmp_path / "roomy"
    roomy.mkdir()
    for f in (tmp_path / "out").iterdir():
        shutil.copy(f, roomy / f.name)
    r = subprocess.run(_send(tmp_path, smtp.port, str(roomy / "j.sqlite"), new=False).split(),
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "MAILNB_CONFIG_DIR": str(tmp_path / "config")})
    assert r.returncode == 0, r.stderr
    delivered = [m.rcpt_tos[0] for m in smtp.recorder.messages]
    assert len(delivered) == len(set(delivered)) == 300


def test_a_full_disk_at_start_and_a_read_only_journal_say_so(tmp_path, smtp):
    write_campaign(tmp_path, n=5)
    done = in_small_disk(tmp_path, "256k", 262_144, _send(tmp_path, smtp.port, "$DISK/j.sqlite"))
    assert done.returncode == 1
    assert "is full" in done.stderr and "permissions" not in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and smtp.recorder.messages == []
    # a journal whose file system went read-only after the first two messages
    first = _send(tmp_path, smtp.port, "$DISK/j.sqlite") + " --limit 2"
    again = _send(tmp_path, smtp.port, "$DISK/j.sqlite", new=False)
    shutil.rmtree(tmp_path / "disk")
    shutil.rmtree(tmp_path / "out")
    done = in_small_disk(tmp_path, "4m", 0, f"{first} >/dev/null || exit 3\n"
                         "mount -o remount,ro $DISK\n" + again)
    assert done.returncode == 1, done.stderr
    err = [ln for ln in done.stderr.splitlines() if ln.startswith("mailnb: error:")]
    assert len(err) == 1 and "read-only" in err[0] and "j.sqlite" in err[0], done.stderr
    assert "--journal other.sqlite" in err[0] and "Traceback" not in done.stderr
    assert len(smtp.recorder.messages) == 2
    assert states(tmp_path / "out" / "j.sqlite") == {"sent": 2, "pending": 3}


def test_mailnb_alone_lists_its_commands(tmp_path):
    """`mailnb` with no command shows every command with what it does (issue 29), exit 0."""
    r = run_cli([], tmp_path)
    assert r.returncode == 0 and "Traceback" not in r.stderr and r.stderr == ""
    for command, does in (("send", "send a campaign"), ("history", "who got what, when"),
                          ("demo", "run the sample campaign"), ("check", "check the relay")):
        assert any(line.split()[:1] == [command] and does in line
                   for line in r.stdout.splitlines()), command

