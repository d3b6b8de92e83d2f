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
