"""Every setting has an observable effect in every door, shown by one table.

``EFFECTS`` names, for every Job setting and every profile key, the test that shows what it does
over real servers; a setting without a row fails ``test_every_setting_has_a_row``. The doors are
held to the same names: the CLI's flags and the notebook's parameters are the Job's settings, and
a profile key reaches the Job unless a setting given explicitly overrides it."""
import ast
import dataclasses
import email
import inspect
import json
import re
import subprocess
import sys
from email import policy
from pathlib import Path

import nbformat
import pandas as pd
import papermill
import pytest
from conftest import people

import mailnb
from mailnb import Job, Profile
from mailnb.cli import build_parser

ROOT = Path(__file__).parent.parent
HERE = "test_settings_table.py::test_job_setting_reaches_the_send"

EFFECTS = {
    # the campaign's inputs
    "campaign": "test_sender.py::test_resume_sends_only_new_rows",
    "recipients": "test_pipeline.py::test_results_list_every_input_row_with_the_reason",
    "sample": "test_first_hour.py::test_a_forgotten_flag_never_sends_the_sample",
    "template": "test_notebooks.py::test_campaign_twice_sends_once_and_leaks_no_password",
    "profile": "test_pipeline.py::test_alternate_from_from_profile_notebook_parameter_and_cli",
    "email_column": HERE,
    "encoding": "test_first_hour.py::test_recipient_files_say_what_is_wrong_with_them", "unsubscribes": HERE, "suppressions": HERE, "transactional": HERE,
    "follow_up": "test_sender.py::test_follow_up_is_threaded_and_only_to_those_reached",
    "follow_up_filter": HERE, "attachment_column": HERE,
    "data": "test_report_messages.py::test_report_data_from_the_command_line_and_a_notebook",
    "empty": "test_report_messages.py::test_report_data_from_the_command_line_and_a_notebook",
    "blocklist": "test_pipeline.py::test_blocklist_key_column_and_pickup_from_the_profile",
    "key_column": "test_pipeline.py::test_blocklist_key_column_and_pickup_from_the_profile",
    "exclusion_policy": "test_recipients.py::test_campaign_exclusion_policy",
    # the message
    "from_addr": HERE, "from_name": HERE, "reply_to": HERE, "footer": HERE,
    "alternate_from": "test_pipeline.py::test_alternate_from_from_profile_notebook_parameter_and_cli",
    "alt_from_addr": "test_pipeline.py::test_alternate_from_from_profile_notebook_parameter_and_cli",
    "alt_from_name": "test_pipeline.py::test_alternate_from_from_profile_notebook_parameter_and_cli",
    "email_format": "test_pipeline.py::test_email_format",
    "bounce_address": "test_mailbox.py::test_separate_bounce_mailbox_through_postfix",
    "verp": "test_mailbox.py::test_separate_bounce_mailbox_through_postfix",
    "unsubscribe_mailto": "test_compliance.py::test_list_unsubscribe_on_every_bulk_message_and_only_there",
    "unsubscribe_url": "test_compliance.py::test_list_unsubscribe_on_every_bulk_message_and_only_there",
    "dkim_selector": "test_compliance.py::test_dkim_signatures_verify_against_the_published_key",
    "dkim_domain": "test_compliance.py::test_dkim_signatures_verify_against_the_published_key",
    "dkim_key_file": "test_compliance.py::test_dkim_signatures_verify_against_the_published_key",
    # the relay
    "name": "test_settings.py::test_profile_env_selects_default",
    "provider": "test_settings.py::test_presets",
    "host": HERE, "port": "test_pipeline.py::test_requires_login_without_username_and_ports",
    "security": "test_sender.py::test_tls_and_auth_deliver_byte_identical",
    "requires_auth": "test_pipeline.py::test_requires_login_without_username_and_ports",
    "username": "test_sender.py::test_tls_and_auth_deliver_byte_identical",
    "helo": HERE, "timeout": "test_sender.py::test_faults_end_in_documented_states",
    "verify": "test_sender.py::test_unverified_certificate_is_a_tls_error",
    "cafile": "test_sender.py::test_tls_and_auth_deliver_byte_identical",
    "pickup": "test_pipeline.py::test_blocklist_key_column_and_pickup_from_the_profile",
    "pop_before_smtp": "test_mailbox.py::test_pop_before_smtp",
    "auth": "test_oauth.py::test_device_code_sign_in_then_silent_refresh",
    "transport": "test_transports_more.py::test_graph_sends_each_message_once_and_honours_retry_after",
    "graph_url": "test_transports_more.py::test_graph_sends_each_message_once_and_honours_retry_after",
    "oauth_provider": "test_oauth.py::test_device_code_sign_in_then_silent_refresh",
    "oauth_client_id": "test_oauth.py::test_device_code_sign_in_then_silent_refresh",
    "oauth_tenant": "test_oauth.py::test_device_code_sign_in_then_silent_refresh",
    "oauth_authority": "test_oauth.py::test_device_code_sign_in_then_silent_refresh",
    # pacing
    "rate": "test_sender.py::test_pacing_follows_schedule",
    "daily_cap": "test_pipeline.py::test_daily_cap_says_when_it_allows_more_and_wait_keeps_going",
    "block_size": HERE, "block_pause": HERE, "limit": HERE,
    "concurrency": "test_sender.py::test_concurrency_sends_each_once",
    "window": "test_pipeline.py::test_send_window",
    "wait": "test_pipeline.py::test_daily_cap_says_when_it_allows_more_and_wait_keeps_going",
    "retries": HERE,
    # the journal and the run
    "journal": "test_pipeline.py::test_a_mistyped_journal_path_is_refused_and_nothing_is_sent",
    "new_journal": "test_pipeline.py::test_a_mistyped_journal_path_is_refused_and_nothing_is_sent",
    "dry_run": HERE, "reset": HERE, "requeue_errors": HERE, "resend_unknown": HERE,
    "backup": HERE,
    "test_to": "test_pipeline.py::test_test_send_goes_to_me_exactly_as_it_will_go_out_and_is_not_journaled",
    "test_rows": "test_pipeline.py::test_test_send_goes_to_me_exactly_as_it_will_go_out_and_is_not_journaled",
    "results": "test_pipeline.py::test_results_list_every_input_row_with_the_reason",
    "progress": HERE,
    # the bounce mailbox
    "imap_host": "test_notebooks.py::test_cli_bounces",
    "imap_port": "test_notebooks.py::test_cli_bounces",
    "imap_security": "test_widgets.py::test_bounce_form_lists_folders_from_dovecot",
    "imap_username": "test_notebooks.py::test_cli_bounces",
    "imap_cafile": "test_notebooks.py::test_cli_bounces",
    "protocol": "test_settings_table.py::test_profile_protocol_pop3_reads_the_bounces",
    "bounce_folder": "test_notebooks.py::test_cli_bounces",
    "bounce_threshold": "test_mailbox.py::test_soft_bounces_reach_the_threshold_and_a_success_resets",
    "processed_folder": "test_mailbox.py::test_move_to_processed_folder_and_pop3",
    "replies_folder": "test_replies.py::test_replies_unsubscribe_count_as_responded_and_steer_"
                      "the_reminder",
    "replies_username": "test_replies.py::test_the_replies_mailbox_may_be_another_account",
    "retention": "test_privacy.py::test_purge_removes_old_detail_and_keeps_counts_and_suppressions",
}


def all_settings():
    return {f.name for f in dataclasses.fields(Job)} | {f.name for f in dataclasses.fields(Profile)}


def readme_rows():
    text = (ROOT / "README.md").read_text()
    return set(re.findall(r"^\| `([a-z_]+)` \|", text, re.M))


def test_every_setting_has_a_row():
    missing = all_settings() - set(EFFECTS)
    assert not missing, f"settings with no effect test in EFFECTS: {sorted(missing)}"
    assert not set(EFFECTS) - all_settings(), "EFFECTS names a setting that no longer exists"
    for setting, ref in EFFECTS.items():
        module, _, name = ref.partition("::")
        source = (Path(__file__).parent / module).read_text()
        assert re.search(rf"^def {name}\(", source, re.M), f"{setting}: no test {ref}"
    assert not all_settings() - readme_rows(), \
        f"settings missing from the README's table: {sorted(all_settings() - readme_rows())}"
    from mailnb.job import settings_table
    assert settings_table() in (ROOT / "README.md").read_text(), \
        "the README's table is not the generated one: paste mailnb.job.settings_table()"


def test_cli_flags_are_the_job_settings():
    send = build_parser()._subparsers._group_actions[0].choices["send"]
    dests = {a.dest for a in send._actions if a.dest != "help"}
    assert dests == {f.name for f in dataclasses.fields(Job)}
    samples = {"int": "7", "int | None": "7"}
    for f in dataclasses.fields(Job):
        action = next(a for a in send._actions if a.dest == f.name)
        argv = [action.option_strings[0]]
        if action.nargs != 0:
            argv.append(samples.get(str(f.type), "x@example.org"))
        ns = send.parse_args(argv)
        value = getattr(ns, f.name)
        assert value is not None, f.name
        job = Job(campaign="c", **{f.name: value}) if f.name != "campaign" else Job(campaign=value)
        assert getattr(job, f.name) == value


def test_notebook_parameters_are_the_job_settings():
    nb = json.loads((ROOT / "notebooks" / "campaign.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    names = {t.id for node in ast.parse("".join(cell["source"])).body
             for t in getattr(node, "targets", [])}
    assert names == {f.name for f in dataclasses.fields(Job)}


def test_every_door_is_made_from_the_registry():
    """One declaration a setting: the notebook's parameter cell is the registry's, word for word;
    the Job's, the profile's and send()'s fields are its doors' settings with its help; the
    command line groups its flags by the registry's groups."""
    from mailnb.config.options import SendOptions
    from mailnb.config.registry import GROUPS, SETTINGS, parameter_cell
    nb = json.loads((ROOT / "notebooks" / "campaign.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    assert "".join(cell["source"]) == parameter_cell()
    from papermill.translators import PythonTranslator  # papermill reads every parameter
    read = PythonTranslator.inspect(nbformat.v4.new_code_cell("".join(cell["source"])))
    assert [p.name for p in read] == [s.name for s in SETTINGS if "job" in s.doors]
    for cls, door in ((Job, "job"), (Profile, "profile"), (SendOptions, "send")):
        made = {f.name: f.metadata["help"] for f in dataclasses.fields(cls) if f.metadata}
        assert made == {s.name: s.help for s in SETTINGS if door in s.doors}, cls
    send = build_parser()._subparsers._group_actions[0].choices["send"]
    titles = {g.title: {a.dest for a in g._group_actions} for g in send._action_groups}
    for s in SETTINGS:
        if "job" in s.doors:
            assert s.name in titles[GROUPS[s.group]], s.name


SAMPLES = {"int": 7, "str": "x", "bool": True, "float": 12.5}


def test_profile_keys_reach_the_job_and_an_explicit_setting_wins():
    shared = [f for f in dataclasses.fields(Profile) if f.name in
              {j.name for j in dataclasses.fields(Job)}]
    assert len(shared) >= 25
    for f in shared:
        kind = str(f.type)
        value = SAMPLES[kind] if kind != "str" else f"from-profile-{f.name}"
        other = {"int": 9, "bool": False, "float": 3.0}.get(kind, f"explicit-{f.name}")
        prof = Profile(**{f.name: value})
        assert getattr(Job(campaign="c", profile=prof).settings, f.name) == value, f.name
        job = Job(campaign="c", profile=prof, **{f.name: other})
        assert getattr(job.settings, f.name) == other, f.name
    opts = Job(campaign="c", profile=Profile(rate="60/h", limit=5, wait=True, retries=1,
                                             window="09:00-17:00"), limit=0, dry_run=True,
               journal=":memory:", new_journal=True).send_options()
    assert (opts["rate"], opts["limit"], opts["wait"], opts["retries"], opts["window"]) == \
        ("60/h", 0, True, 1, "09:00-17:00")


# -- effects over real SMTP, for the settings no other test shows -------------------------------------
def _inputs(tmp_path):
    df = people(4)
    df["file"] = ""
    (tmp_path / "a.txt").write_text("attached")
    df.loc[1, "file"] = str(tmp_path / "a.txt")
    df.to_csv(tmp_path / "p.csv", index=False)
    (tmp_path / "unsub.csv").write_text("email\nuser1@example.com\n")
    (tmp_path / "sup.csv").write_text("email\nuser2@example.com\n")
    tpl = tmp_path / "tpl"
    tpl.mkdir()
    (tpl / "subject.txt").write_text("Hi {{ first_name }}")
    (tpl / "body.txt").write_text("Slot {{ slot }}")


def msgs(server):
    return {m.rcpt_tos[0]: email.message_from_bytes(m.data, policy=policy.default)
            for m in server.recorder.messages}


CASES = {
    "email_column": (dict(recipients="mail.csv", email_column="mail"),
                     lambda s, r, t: len(s.recorder.messages) == 4),
    "unsubscribes": (dict(unsubscribes="unsub.csv"),
                     lambda s, r, t: r.loc[1, "reason"] == "unsubscribed"
                     and "user1@example.com" not in msgs(s)),
    "suppressions": (dict(suppressions="sup.csv"),
                     lambda s, r, t: r.loc[2, "reason"] == "suppressed"),
    "transactional": (dict(unsubscribes="unsub.csv", transactional=True),
                      lambda s, r, t: "user1@example.com" in msgs(s)
                      and msgs(s)["user1@example.com"]["List-Unsubscribe"] is None),
    "follow_up_filter": (dict(follow_up_filter="first_name != 'Name0'"),
                         lambda s, r, t: 0 not in r.index and len(s.recorder.messages) == 3),
    "attachment_column": (dict(attachment_column="file"),
                          lambda s, r, t: [p.get_filename() for p in
                                           msgs(s)["user1@example.com"].iter_attachments()]
                          == ["a.txt"]),
    "from_addr": (dict(from_addr="other@example.org"),
                  lambda s, r, t: {m.mail_from for m in s.recorder.messages}
                  == {"other@example.org"}),
    "from_name": (dict(from_name="The Lab"),
                  lambda s, r, t: msgs(s)["user0@example.com"]["From"]
                  == "The Lab <news@example.org>"),
    "reply_to": (dict(reply_to="help@example.org"),
                 lambda s, r, t: msgs(s)["user0@example.com"]["Reply-To"] == "help@example.org"),
    "footer": (dict(profile=Profile(footer="-- the lab, room 7", requires_auth=False)),
               lambda s, r, t: "the lab, room 7" in msgs(s)["user3@example.com"].get_content()),
    "host": (dict(), lambda s, r, t: len(s.recorder.messages) == 4),
    "helo": (dict(helo="mailer.example.org"),
             lambda s, r, t: {m.helo for m in s.recorder.messages} == {"mailer.example.org"}),
    "block_size": (dict(block_size=2, block_pause="0.6s"),
                   lambda s, r, t: _gap(s, 1, 2) >= 0.55),
    "block_pause": (dict(block_size=3, block_pause="0.8s"),
                    lambda s, r, t: _gap(s, 2, 3) >= 0.75),
    "limit": (dict(limit=3), lambda s, r, t: (r["status"] == "sent").sum() == 3),
    "retries": (dict(recipients="grey.csv", retries=0),
                lambda s, r, t: (r["status"] == "deferred").sum() == 1),
    "dry_run": (dict(dry_run=True), lambda s, r, t: s.recorder.messages == []
                and set(r["status"]) == {"would send"}),
    "reset": (dict(reset=True, _first=True), lambda s, r, t: len(s.recorder.messages) == 8),
    "requeue_errors": (dict(recipients="grey.csv", retries=0, requeue_errors=True),
                       lambda s, r, t: mailnb.history("e", str(t / "j.sqlite"))
                       .set_index("address").loc["grey0@example.com", "status"] == "pending"),
    "resend_unknown": (dict(resend_unknown=True, _unknown=True),
                       lambda s, r, t: len(s.recorder.messages) == 5),
    "backup": (dict(backup="{dir}/sent/{{campaign}}"),
               lambda s, r, t: len(list((t / "sent" / "e").glob("*.eml"))) == 4),
    "progress": (dict(progress="text"), lambda s, r, t: True),
}


def _gap(server, a, b):
    times = sorted(m.at for m in server.recorder.messages)
    return times[b] - times[a]


@pytest.mark.parametrize("setting", sorted(CASES))
def test_job_setting_reaches_the_send(setting, smtp, tmp_path, capsys):
    _inputs(tmp_path)
    pd.read_csv(tmp_path / "p.csv").rename(columns={"email": "mail"}).to_csv(
        tmp_path / "mail.csv", index=False)
    people(addresses=["grey0@example.com", "ok@example.com"]).to_csv(tmp_path / "grey.csv",
                                                                      index=False)
    settings, check = CASES[setting]
    settings = dict(settings)
    first, unknown = settings.pop("_first", False), settings.pop("_unknown", False)
    for k in ("recipients", "unsubscribes", "suppressions"):
        if k in settings:
            settings[k] = str(tmp_path / settings[k])
    if "backup" in settings:
        settings["backup"] = settings["backup"].format(dir=tmp_path)
    settings.setdefault("recipients", str(tmp_path / "p.csv"))
    base = dict(campaign="e", template=str(tmp_path / "tpl"), host="127.0.0.1", port=smtp.port,
                security="none", from_addr="news@example.org", journal=str(tmp_path / "j.sqlite"),
                new_journal=True, progress=False)
    if first or unknown:
        Job(**{**base, "recipients": settings["recipients"]}).send()
    if unknown:
        mailnb.SQLiteJournal(tmp_path / "j.sqlite").db.execute(
            "UPDATE recipients SET status = 'unknown' WHERE address = 'user3@example.com'")
    result = Job(**{**base, **settings}).send()
    if setting == "progress":
        shown = capsys.readouterr()
        assert "done: 4/4 | sent 4" in shown.out + shown.err
    assert check(smtp, result, tmp_path), (setting, result[["address", "status", "reason"]])


def test_profile_protocol_pop3_reads_the_bounces(dovecot, tmp_path, config_dir, monkeypatch):
    raw = (b"From: MAILER-DAEMON@mx.example.org\nSubject: Undelivered\nMIME-Version: 1.0\n"
           b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n\n--B\n"
           b"Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.org\n\n"
           b"Final-Recipient: rfc822; pop-gone@example.com\nAction: failed\nStatus: 5.1.1\n\n--B--\n")
    dovecot.deliver(raw, "INBOX")
    monkeypatch.setenv("MAILNB_IMAP_PASSWORD", dovecot.password)
    prof = Profile(name="pop", protocol="pop3", imap_host="127.0.0.1",
                   imap_port=dovecot.ports["pop3s"], imap_username=dovecot.user,
                   imap_cafile=dovecot.cafile, journal=str(tmp_path / "j.sqlite"))
    from mailnb.inbound.bounces import process_bounces
    found = process_bounces(prof)
    assert "pop-gone@example.com" in set(found["recipient"])


def test_notebook_and_cli_leave_the_same_journal_rows(smtp, tmp_path, config_dir):
    _inputs(tmp_path)
    common = dict(recipients=str(tmp_path / "p.csv"), template=str(tmp_path / "tpl"),
                  campaign="same", unsubscribes=str(tmp_path / "unsub.csv"), limit=3)
    Profile(name="same", host="127.0.0.1", port=smtp.port, security="none", requires_auth=False,
            from_addr="news@example.org").save()
    papermill.execute_notebook(str(ROOT / "notebooks" / "campaign.ipynb"),
                               str(tmp_path / "out.ipynb"), cwd=str(tmp_path), progress_bar=False,
                               parameters={**common, "profile": "same", "dry_run": False,
                                           "journal": str(tmp_path / "nb.sqlite"),
                                           "new_journal": True}, kernel_name="python3")
    args = [f"--{k.replace('_', '-')}={v}" for k, v in common.items()]
    r = subprocess.run([sys.executable, "-m", "mailnb.cli", "send", "--profile", "same", *args,
                        "--journal", str(tmp_path / "cli.sqlite"), "--new-journal"],
                       capture_output=True, text=True, timeout=120,
                       env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                            "MAILNB_CONFIG_DIR": str(config_dir)})
    assert r.returncode == 0, r.stderr
    cols = ["campaign", "key", "address", "row", "status", "attempts", "code", "account"]
    nb = mailnb.history("same", str(tmp_path / "nb.sqlite"))[cols]
    cl = mailnb.history("same", str(tmp_path / "cli.sqlite"))[cols]
    assert len(nb) == 3 and nb.equals(cl)
    assert len(smtp.recorder.messages) == 6
    assert inspect.isfunction(mailnb.Job.send)
