"""The first hour (part of issue 14): recipient files that say what is wrong with them, naming the
file; a Latin-1 CSV as Excel saves it; every unknown merge field reported at once, with the
template line and the CSV line."""
import subprocess
import sys

import pytest

import mailnb
from mailnb import PreflightError, RecipientError
from mailnb.audience.recipients import csv_lines, read_table


def test_recipient_files_say_what_is_wrong_with_them(tmp_path, smtp, config_dir):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(RecipientError, match=r"empty\.csv is empty"):
        read_table(empty)
    header = tmp_path / "header.csv"
    header.write_text("email,first_name\n")
    with pytest.raises(RecipientError, match=r"header\.csv has a header but no rows"):
        read_table(header)
    latin = tmp_path / "excel.csv"                      # what Excel on Windows saves
    latin.write_bytes("email,first_name\nrene@example.com,René\njoel@example.com,Joël\n"
                      .encode("cp1252"))
    df = read_table(latin)
    assert list(df["first_name"]) == ["René", "Joël"]
    with pytest.raises(RecipientError, match=r"excel\.csv: not readable as utf-8.*encoding='latin-1'"):
        read_table(latin, encoding="utf-8")
    assert list(read_table(latin, encoding="cp1252")["first_name"]) == ["René", "Joël"]
    import zipfile
    with zipfile.ZipFile(tmp_path / "x.xlsx", "w") as z:      # what pandas recognises as .xlsx
        z.writestr("xl/workbook.xml", "<workbook/>")
    with pytest.raises(RecipientError, match=r"pip install 'mailnb\[excel\]'"):
        read_table(tmp_path / "x.xlsx")
    # the CLI door: a clear line, no traceback, and --encoding reaches the reader
    tpl = tmp_path / "tpl"
    tpl.mkdir()
    (tpl / "subject.txt").write_text("Hi {{ first_name }}")
    (tpl / "body.txt").write_text("x")
    cli = [sys.executable, "-m", "mailnb.cli", "send", "--template", str(tpl), "--campaign", "c",
           "--from", "news@example.org", "--host", "127.0.0.1", "--port", str(smtp.port),
           "--security", "none", "--journal", str(tmp_path / "j.sqlite"), "--new-journal"]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MAILNB_CONFIG_DIR": str(config_dir)}
    r = subprocess.run(cli + ["--recipients", str(empty)], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1 and "empty.csv is empty" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(cli + ["--recipients", str(latin), "--encoding", "cp1252"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert sorted(m.rcpt_tos[0] for m in smtp.recorder.messages) == ["joel@example.com",
                                                                     "rene@example.com"]
    import email
    from email import policy
    subjects = {str(email.message_from_bytes(m.data, policy=policy.default)["Subject"])
                for m in smtp.recorder.messages}
    assert subjects == {"Hi René", "Hi Joël"}           # the names came through the encoding


def test_every_unknown_merge_field_at_once_with_template_and_csv_lines(tmp_path, smtp):
    csv = tmp_path / "people.csv"
    csv.write_text('email,first_name,note\n\na@example.com,Ann,"two\nlines"\n'
                   'b@example.com,,x\nc@example.com,Cat,y\n')
    df = read_table(csv)
    assert csv_lines(df) == {0: 3, 1: 5, 2: 6}          # a blank line and a quoted line break
    tmpl = mailnb.Template("Hello {{ frist_name }}",
                           text="Dear {{ first_name }},\nyour slot is {{ slot }}.\n"
                                "{% if nick is defined %}{{ nick }}{% endif %}")
    problems = tmpl.preflight(mailnb.Audience(df))
    errors = problems["error"].tolist()
    assert len(errors) == 2                             # both unknown fields, each once
    assert "template subject, line 1: {{ frist_name }}" in errors[0]
    assert "did you mean {{ first_name }}" in errors[0]
    assert "template text, line 2: {{ slot }}" in errors[1]
    job = mailnb.Job(campaign="lines", recipients=str(csv), template=mailnb.Template(
        "Hello {{ first_name }}", text="x"), host="127.0.0.1", port=smtp.port, security="none",
        from_addr="news@example.org", journal=str(tmp_path / "j.sqlite"), new_journal=True,
        progress=False)
    shown = job.preflight()
    assert shown.loc[shown["severity"] == "error", ["row", "line"]].values.tolist() == [[1, 5]]
    with pytest.raises(PreflightError, match="row 1 is line 5") as info:
        job.send()
    assert info.value.problems["line"].dropna().tolist() == [5]
    assert smtp.recorder.messages == []


def test_a_relay_that_wants_a_login_says_so(journal):
    from aiosmtpd.controller import Controller
    from conftest import campaign, people
    from smtp_servers import Recorder, authenticator, free_port
    port = free_port()
    ctl = Controller(Recorder(), hostname="127.0.0.1", port=port, auth_required=True,
                     auth_require_tls=False, authenticator=authenticator({"u": "p"}))
    ctl.start()
    try:
        with pytest.raises(mailnb.AuthenticationError) as info:
            mailnb.send(campaign(people(2)), mailnb.Relay("127.0.0.1", port, security="none",
                                                          timeout=5), journal=journal,
                        progress=None)
        text = str(info.value)
        assert "wants a login" in text and "username='" in text and "From address" not in text
        assert "--username you@example.org" in info.value.phrased("cli")
        assert set(journal.history("test")["status"]) == {"pending"}
    finally:
        ctl.stop()


def test_a_rate_below_one_an_hour_is_questioned():
    with pytest.warns(UserWarning, match="daily_cap"):
        mailnb.Pacing.build(rate="1/day")
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mailnb.Pacing.build(rate="2/h")


# -- issue 29: a forgotten flag never sends the wrong mail --------------------------------------------
def _send_cli(tmp_path, config_dir, *args):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MAILNB_CONFIG_DIR": str(config_dir)}
    return subprocess.run([sys.executable, "-m", "mailnb.cli", "send", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_a_forgotten_flag_never_sends_the_sample(tmp_path, smtp, config_dir):
    """A send through a relay the user named, with no recipients or no template, is an error that
    names the missing flag (the argument in Python); nothing is sent, nothing journaled. The
    bundled sample goes out only when asked for (--sample / sample=True)."""
    tpl = tmp_path / "mine"
    tpl.mkdir()
    (tpl / "subject.txt").write_text("Our real news, {{ first_name }}")
    (tpl / "body.txt").write_text("x")
    relay = ["--campaign", "X", "--from", "news@example.org", "--host", "127.0.0.1", "--port",
             str(smtp.port), "--security", "none", "--journal", str(tmp_path / "j.sqlite"),
             "--new-journal"]
    r = _send_cli(tmp_path, config_dir, *relay, "--template", str(tpl))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "no recipients given" in r.stderr and "--recipients people.csv" in r.stderr
    assert "--sample" in r.stderr and "--template" not in r.stderr
    (tmp_path / "x.csv").write_text("email,first_name\nada@example.org,Ada\n")
    r = _send_cli(tmp_path, config_dir, *relay, "--recipients", str(tmp_path / "x.csv"))
    assert r.returncode == 1 and "no template given" in r.stderr and "--template invite/" in r.stderr
    r = _send_cli(tmp_path, config_dir, *relay)
    assert "no recipients and no template given" in r.stderr
    assert smtp.recorder.messages == [] and not (tmp_path / "j.sqlite").exists()
    job = mailnb.Job(campaign="X", template=str(tpl), from_addr="news@example.org",
                     host="127.0.0.1", port=smtp.port, security="none",
                     journal=str(tmp_path / "p.sqlite"), new_journal=True, progress=False)
    with pytest.raises(mailnb.ConfigError, match=r"recipients='people\.csv'.*sample=True"):
        job.send()
    assert smtp.recorder.messages == []
    r = _send_cli(tmp_path, config_dir, *relay, "--sample")
    assert r.returncode == 0, r.stderr
    assert "the bundled sample participants" in r.stdout and len(smtp.recorder.messages) == 8


def test_a_dry_run_needs_no_relay_or_profile(tmp_path, config_dir):
    """No profile saved, no relay named: a dry run still plans (on the sample when nothing is
    given), in Python, on the command line and in the campaign notebook as it opens."""
    result = mailnb.Job(campaign="try", dry_run=True, journal=str(tmp_path / "a.sqlite"),
                        new_journal=True, progress=False).send()
    assert result.attrs["summary"]["dry_run"] and (result["status"] == "would send").sum() == 8
    r = _send_cli(tmp_path, config_dir, "--campaign", "try", "--dry-run", "--journal",
                  str(tmp_path / "b.sqlite"), "--new-journal")
    assert r.returncode == 0, r.stderr
    assert "DRY RUN" in r.stdout and "no relay (a dry run needs none)" in r.stdout
    assert "a send needs one: --profile work or --host smtp.example.org" in r.stdout
    assert "\x1e" not in r.stdout                           # every fix phrased for the door
    assert not (tmp_path / "b.sqlite").exists()            # a dry run writes no journal
    from pathlib import Path

    import papermill
    notebook = Path(__file__).parent.parent / "notebooks" / "campaign.ipynb"
    papermill.execute_notebook(str(notebook), str(tmp_path / "out.ipynb"), cwd=str(tmp_path),
                               progress_bar=False, kernel_name="python3",
                               parameters={"journal": str(tmp_path / "c.sqlite"),
                                           "new_journal": True})
    assert "DRY RUN" in (tmp_path / "out.ipynb").read_text()


def test_the_command_line_lists_who_is_left_out_and_why(tmp_path, config_dir):
    """The excluded rows are listed, not only counted: row, address and reason, the first 20,
    then how to get them all (issue 29)."""
    rows = ["email,first_name", "ok@example.org,Ok", "not-an-address,Bad", "ok@example.org,Again"]
    rows += [f"x{i}@invalid,X" for i in range(25)]
    (tmp_path / "p.csv").write_text("\n".join(rows) + "\n")
    tpl = tmp_path / "tpl"
    tpl.mkdir()
    (tpl / "subject.txt").write_text("Hi {{ first_name }}")
    (tpl / "body.txt").write_text("x")
    r = _send_cli(tmp_path, config_dir, "--campaign", "c", "--dry-run", "--recipients",
                  str(tmp_path / "p.csv"), "--template", str(tpl))
    assert r.returncode == 0, r.stderr
    listed = [ln for ln in r.stdout.splitlines() if "excluded row" in ln]
    assert len(listed) == 20
    assert "excluded row 1: not-an-address: invalid" in listed[0]
    assert "excluded row 2: ok@example.org: duplicate" in listed[1]
    assert "... and 7 more; --results FILE lists every row" in r.stdout

