"""The three notebooks executed by papermill with a real kernel, against real servers on loopback."""
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest
from conftest import PASSWORD, USER, people

from mailnb import Profile

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"


def run(name, out, **params):
    papermill.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(out), parameters=params,
                               cwd=str(out.parent), progress_bar=False, kernel_name="python3")
    nb = nbformat.read(str(out), as_version=4)
    text = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream":
                text.append(o["text"])
            elif "data" in o:
                text.append(str(o["data"].get("text/plain", "")))
    return "\n".join(text)


@pytest.mark.parametrize("name", ["campaign", "setup", "bounces"])
def test_committed_without_outputs(name):
    nb = nbformat.read(str(NOTEBOOKS / f"{name}.ipynb"), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert any("parameters" in c.metadata.get("tags", []) for c in code)


def test_campaign_twice_sends_once_and_leaks_no_password(smtp_factory, certs, tmp_path,
                                                         config_dir, monkeypatch):
    server = smtp_factory("starttls", auth={USER: PASSWORD})
    monkeypatch.setenv("MAILNB_SMTP_PASSWORD", PASSWORD)
    journal = tmp_path / "journal.sqlite"
    Profile(name="nb", host="127.0.0.1", port=server.port, security="starttls", username=USER,
            cafile=certs["ca"], from_addr="team@example.org", from_name="Team",
            journal=str(journal)).save()
    df = people(6)
    df.loc[5, "email"] = "broken@"
    df.to_csv(tmp_path / "people.csv", index=False)
    tpl = tmp_path / "tpl"
    tpl.mkdir()
    (tpl / "subject.txt").write_text("Hi {{ first_name }}")
    (tpl / "body.txt").write_text("Your slot: {{ slot }}")
    params = dict(profile="nb", recipients=str(tmp_path / "people.csv"), template=str(tpl),
                  campaign="nb-test", dry_run=False, new_journal=True)
    out1 = run("campaign", tmp_path / "run1.ipynb", **params)
    assert "SUMMARY campaign=nb-test dry_run=False sent=5 excluded=1" in out1
    assert "done: 5/5 | sent 5, failed 0, deferred 0" in out1      # the progress display's end
    assert len(server.recorder.messages) == 5
    out2 = run("campaign", tmp_path / "run2.ipynb", **params)
    assert "5 done before" in out2 and "0 sent" in out2
    assert len(server.recorder.messages) == 5                 # the re-run sent nothing
    assert (tmp_path / "results-nb-test.csv").is_file()
    # the password is in none of what the runs left behind
    from mailnb import SQLiteJournal
    with SQLiteJournal(journal) as j:
        j.db.execute("PRAGMA wal_checkpoint(FULL)")
    files = [tmp_path / "run1.ipynb", tmp_path / "run2.ipynb", config_dir / "profiles" / "nb.toml",
             tmp_path / "results-nb-test.csv", *tmp_path.glob("journal.sqlite*")]
    for f in files:
        assert PASSWORD.encode() not in f.read_bytes(), f


def test_campaign_dry_run_by_default(smtp, tmp_path, config_dir):
    Profile(name="dry", host="127.0.0.1", port=smtp.port, security="none", requires_auth=False,
            from_addr="team@example.org", journal=str(tmp_path / "j.sqlite")).save()
    out = run("campaign", tmp_path / "dry.ipynb", profile="dry", campaign="dry-test",
              new_journal=True)
    assert "DRY RUN" in out and "would_send=8" in out
    assert smtp.recorder.messages == []


def test_setup_notebook_saves_a_profile_from_parameters(tmp_path, config_dir):
    out = run("setup", tmp_path / "setup.ipynb", profile="made", provider="gmail",
              username="me@gmail.com", from_addr="me@gmail.com",
              oauth_client_id="1234-abc.apps.googleusercontent.com", save=True)
    p = Profile.load("made")
    assert (p.host, p.port, p.daily_cap) == ("smtp.gmail.com", 587, 500)
    assert (p.auth, p.oauth_provider) == ("oauth2", "google")
    assert "profile 'made'" in out
    out_pw = run("setup", tmp_path / "setup2.ipynb", profile="made-pw", provider="gmail",
                 username="me@gmail.com", from_addr="me@gmail.com", auth="password", save=True)
    assert Profile.load("made-pw").auth == "password" and "profile 'made-pw'" in out_pw


def test_cli_send_and_check(smtp_factory, certs, tmp_path, config_dir):
    server = smtp_factory("starttls", auth={USER: PASSWORD})
    people(3).to_csv(tmp_path / "p.csv", index=False)
    tpl = tmp_path / "tpl"
    tpl.mkdir()
    (tpl / "subject.txt").write_text("Hi {{ first_name }}")
    (tpl / "body.txt").write_text("x")
    env = {"PATH": "/usr/bin:/bin", "MAILNB_SMTP_PASSWORD": PASSWORD,
           "MAILNB_CONFIG_DIR": str(config_dir), "HOME": str(tmp_path)}
    base = [sys.executable, "-m", "mailnb.cli"]
    relay = ["--host", "127.0.0.1", "--port", str(server.port), "--username", USER,
             "--cafile", certs["ca"]]
    check = subprocess.run(base + ["check"] + relay, env=env, capture_output=True, text=True,
                           timeout=60)
    assert check.returncode == 0 and "AUTH" in check.stdout and PASSWORD not in check.stdout
    send = [*base, "send", "--recipients", str(tmp_path / "p.csv"), "--template", str(tpl),
            "--campaign", "cli", "--from", "team@example.org", "--journal",
            str(tmp_path / "j.sqlite"), "--new-journal", "--results", str(tmp_path / "r.csv"),
            *relay]
    r = subprocess.run(send + ["--dry-run"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "DRY RUN" in r.stdout and server.recorder.messages == []
    r = subprocess.run(send, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "3 sent" in r.stdout and len(server.recorder.messages) == 3
    r = subprocess.run(send, env=env, capture_output=True, text=True, timeout=60)
    assert "0 sent" in r.stdout and len(server.recorder.messages) == 3
    assert (tmp_path / "r.csv").is_file()
    other = [a if a != "cli" else "cli-2" for a in send]
    bad = subprocess.run(other, env={**env, "MAILNB_SMTP_PASSWORD": "wrong-pw"},
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "refused the login" in bad.stderr
    assert "wrong-pw" not in bad.stderr + bad.stdout and len(server.recorder.messages) == 3
    no_from = subprocess.run([*base, "send", "--recipients", str(tmp_path / "p.csv"),
                              "--template", str(tpl), "--campaign", "x", *relay], env=env,
                             capture_output=True, text=True, timeout=60)
    assert no_from.returncode != 0


def test_demo_end_to_end(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mailnb.cli", "demo", "--output", str(tmp_path)],
                       capture_output=True, text=True, timeout=300,
                       env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "sent this run:      8" in r.stdout
    assert "duplicate" in r.stdout and "unsubscribed" in r.stdout and "invalid" in r.stdout
    assert len(list((tmp_path / "captured").glob("*.eml"))) == 8
    again = subprocess.run([sys.executable, "-m", "mailnb.cli", "demo", "--output", str(tmp_path)],
                           capture_output=True, text=True, timeout=300,
                           env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert "sent this run:      0" in again.stdout
    assert len(list((tmp_path / "captured").glob("*.eml"))) == 8


def test_bounces_notebook(dovecot, tmp_path, config_dir, monkeypatch):
    folder = "NbBounces"
    raw = (b"From: MAILER-DAEMON@mx.example.org\nSubject: Undelivered Mail\nMIME-Version: 1.0\n"
           b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n\n--B\n"
           b"Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.org\n\n"
           b"Final-Recipient: rfc822; gone@example.com\nAction: failed\nStatus: 5.1.1\n"
           b"Diagnostic-Code: smtp; 550 5.1.1 User unknown\n\n--B--\n")
    dovecot.deliver(raw, folder)
    dovecot.deliver(b"From: ann@example.com\nSubject: Re: Your session\n\nSTOP\n", "NbReplies")
    monkeypatch.setenv("MAILNB_IMAP_PASSWORD", dovecot.password)
    Profile(name="bx", host="smtp.example.org", requires_auth=False, imap_host="127.0.0.1",
            imap_port=dovecot.ports["imaps"], imap_username=dovecot.user,
            imap_cafile=dovecot.cafile, bounce_folder=folder, replies_folder="NbReplies",
            journal=str(tmp_path / "j.sqlite")).save()
    out = run("bounces", tmp_path / "bounces.ipynb", profile="bx")
    assert "SUMMARY bounces=1 hard=1 suppressed=1" in out
    assert "SUMMARY replies: 1 read (0 seen before)" in out and "(1 unsubscribe(s))" in out
    out2 = run("bounces", tmp_path / "bounces2.ipynb", profile="bx")
    assert "SUMMARY bounces=0" in out2 and "SUMMARY replies: 0 read" in out2
    for f in (tmp_path / "bounces.ipynb", tmp_path / "bounces2.ipynb",
              config_dir / "profiles" / "bx.toml"):
        assert dovecot.password.encode() not in f.read_bytes()


def test_cli_bounces(dovecot, tmp_path, config_dir):
    raw = (b"From: MAILER-DAEMON@mx.example.org\nSubject: Undelivered Mail\nMIME-Version: 1.0\n"
           b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n\n--B\n"
           b"Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.org\n\n"
           b"Final-Recipient: rfc822; cli-gone@example.com\nAction: failed\nStatus: 5.1.1\n\n--B--\n")
    dovecot.deliver(raw, "CliBounces")
    Profile(name="cb", host="smtp.example.org", requires_auth=False, imap_host="127.0.0.1",
            imap_port=dovecot.ports["imaps"], imap_username=dovecot.user,
            imap_cafile=dovecot.cafile, bounce_folder="CliBounces",
            journal=str(tmp_path / "j.sqlite")).save()
    env = {"PATH": "/usr/bin:/bin", "MAILNB_IMAP_PASSWORD": dovecot.password,
           "MAILNB_CONFIG_DIR": str(config_dir), "HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "mailnb.cli", "bounces", "--profile", "cb",
                        "--results", str(tmp_path / "b.csv")], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert ("mailnb: bounces: 1 read (0 seen before), 1 bounce(s) (1 hard, 0 soft), 0 "
            "complaint(s), 0 auto-reply(ies), 0 reply(ies) (0 unsubscribe(s)), 0 unmatched, 1 "
            "address(es) newly suppressed"
            in r.stdout), r.stdout
    assert dovecot.password not in r.stdout + r.stderr


def test_the_package_carries_the_one_copy_of_each_notebook(tmp_path):
    """mailnb/notebooks is a link to notebooks/: the wheel carries those very files."""
    import zipfile
    root = NOTEBOOKS.parent
    assert (root / "mailnb" / "notebooks").resolve() == NOTEBOOKS.resolve()
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(root), "--no-deps", "-q", "-w",
                    str(tmp_path)], check=True, timeout=300, capture_output=True, cwd=tmp_path)
    wheel = next(tmp_path.glob("mailnb-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        for name in ("campaign", "setup", "bounces"):
            assert z.read(f"mailnb/notebooks/{name}.ipynb") == \
                (NOTEBOOKS / f"{name}.ipynb").read_bytes()


def test_campaign_notebook_sends_a_test_first(smtp, tmp_path, config_dir):
    Profile(name="t", host="127.0.0.1", port=smtp.port, security="none", requires_auth=False,
            from_addr="team@example.org", journal=str(tmp_path / "j.sqlite")).save()
    out = run("campaign", tmp_path / "test.ipynb", profile="t", campaign="nb-test-first",
              dry_run=False, sample=True, new_journal=True, test_to="me@example.org", test_rows=2)
    assert [m.rcpt_tos for m in smtp.recorder.messages] == [["me@example.org"]] * 2
    assert all(b"Subject: [TEST] " in m.data for m in smtp.recorder.messages)
    assert "[TEST]" in out and "SUMMARY" not in out          # the campaign itself is not sent
    from mailnb import history
    assert history("nb-test-first", str(tmp_path / "j.sqlite")).empty
