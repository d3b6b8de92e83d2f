"""Replies through a real Dovecot: requests to stop (in three languages) unsubscribe and the next
send skips them; an out-of-office is an auto-reply, not an answer; answers and a calendar
acceptance mark their recipient as responded, and a reminder with "not responded" goes only to the
others, threaded to the original."""
from __future__ import annotations

import email
import subprocess
import sys
import uuid

import pandas as pd
import pytest
from imapclient import IMAPClient

import mailnb
from mailnb import Profile
from mailnb.inbound.replies import STOP_PHRASES, is_stop, read_reply

PEOPLE = ["ann", "bob", "cat", "dan", "eve", "fay", "gus", "hal"]


def reply(sender: str, text: str, answers: str | None, subject: str = "Re: Your session",
          headers: str = "", ctype: str = "text/plain; charset=utf-8") -> bytes:
    thread = f"In-Reply-To: {answers}\r\nReferences: {answers}\r\n" if answers else ""
    return (f"From: {sender}\r\nTo: study@example.org\r\nSubject: {subject}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@example.com>\r\n{thread}{headers}"
            f"MIME-Version: 1.0\r\nContent-Type: {ctype}\r\nContent-Transfer-Encoding: 8bit\r\n"
            f"\r\n{text}\r\n").encode()


CALENDAR = """--C\r
Content-Type: text/plain; charset=utf-8\r
\r
Fay Smith has accepted this invitation.\r
--C\r
Content-Type: text/calendar; charset=utf-8; method=REPLY\r
\r
BEGIN:VCALENDAR\r
METHOD:REPLY\r
BEGIN:VEVENT\r
UID:session-7@example.org\r
ATTENDEE;PARTSTAT=ACCEPTED:mailto:fay@example.com\r
END:VEVENT\r
END:VCALENDAR\r
--C--"""


def fill(dovecot, folder: str, messages: list[bytes]) -> None:
    import ssl
    with IMAPClient("127.0.0.1", port=dovecot.ports["imap"], ssl=False) as c:
        c.starttls(ssl.create_default_context(cafile=dovecot.cafile))
        c.login(dovecot.user, dovecot.password)
        c.create_folder(folder)
        for raw in messages:
            c.append(folder, raw)


def job(smtp, tmp_path, campaign: str, **kw) -> mailnb.Job:
    people = pd.DataFrame({"email": [f"{p}@example.com" for p in PEOPLE],
                           "first_name": [p.title() for p in PEOPLE]})
    return mailnb.Job(campaign=campaign, recipients=people, profile="study",
                      template=mailnb.Template("Your session", text="Dear {{ first_name }}, see "
                                               "you on Monday."), progress=False, **kw)


def test_replies_unsubscribe_count_as_responded_and_steer_the_reminder(
        dovecot, smtp, tmp_path, config_dir, monkeypatch):
    folder = f"R{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("MAILNB_IMAP_PASSWORD", dovecot.password)
    Profile(name="study", host="127.0.0.1", port=smtp.port, security="none", requires_auth=False,
            from_addr="study@example.org", imap_host="127.0.0.1", imap_port=dovecot.ports["imaps"],
            imap_username=dovecot.user, imap_cafile=dovecot.cafile, replies_folder=folder,
            journal=str(tmp_path / "j.sqlite")).save()
    job(smtp, tmp_path, "invite", new_journal=True).send()
    sent = {m.rcpt_tos[0].split("@")[0]: email.message_from_bytes(m.data)["Message-ID"]
            for m in smtp.recorder.messages}
    assert sorted(sent) == sorted(PEOPLE)
    fill(dovecot, folder, [
        reply("Ann <ann@example.com>", "STOP\r\n\r\nOn Mon, Study <study@example.org> wrote:\r\n"
              "> Dear Ann, see you on Monday.", sent["ann"]),
        reply("bob@example.com", "Bitte austragen.\r\n\r\nGruß, Bob", sent["bob"],
              subject="AW: Your session"),
        reply("cat@example.com", "配信停止をお願いします。", sent["cat"]),
        reply("dan@example.com", "I am away until 1 December.", sent["dan"],
              subject="Automatic reply: Your session", headers="Auto-Submitted: auto-replied\r\n"),
        reply("eve@example.com", "Yes, Monday works. Will there be a stop for lunch?",
              sent["eve"]),
        reply("fay@example.com", CALENDAR, None, subject="Accepted: Session 7",
              ctype='multipart/alternative; boundary="C"'),
        reply("gus@example.com", "Please don't stop sending these!", sent["gus"]),
        reply("zed@example.net", "Who is this?", None, subject="Hello"),
    ])
    env = {"PATH": "/usr/bin:/bin", "MAILNB_IMAP_PASSWORD": dovecot.password,
           "MAILNB_CONFIG_DIR": str(config_dir), "HOME": str(tmp_path)}
    cmd = [sys.executable, "-m", "mailnb.cli", "replies", "--profile", "study"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ("mailnb: replies: 8 read (0 seen before), 0 bounce(s) (0 hard, 0 soft), "
                        "0 complaint(s), 1 auto-reply(ies), 6 reply(ies) (3 unsubscribe(s)), "
                        "1 unmatched, 0 address(es) newly suppressed\n"), r.stdout
    j = mailnb.SQLiteJournal(tmp_path / "j.sqlite")
    unsub = pd.read_sql_query("SELECT address, source FROM unsubscribes", j.db)
    assert sorted(unsub["address"]) == ["ann@example.com", "bob@example.com", "cat@example.com"]
    assert set(unsub["source"]) == {"reply"}
    responded = j.responded("invite")
    assert sorted(responded["address"]) == ["eve@example.com", "fay@example.com",
                                            "gus@example.com"]
    kept = j.bounces()                          # every reply kept for audit, none a bounce
    assert len(kept) == 8 and "bounce" not in set(kept["kind"])
    assert j.suppressed().empty
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "0 read (0 seen before)" in again.stdout
    # the reminder: only those who neither answered nor asked to stop, threaded to the original
    smtp.recorder.messages.clear()
    job(smtp, tmp_path, "invite-reminder", follow_up="invite",
        follow_up_filter="not responded").send()
    got = {m.rcpt_tos[0].split("@")[0]: email.message_from_bytes(m.data)
           for m in smtp.recorder.messages}
    assert sorted(got) == ["dan", "hal"]
    assert all(got[p]["In-Reply-To"] == sent[p] for p in got)
    # a new campaign skips the three who asked to stop
    smtp.recorder.messages.clear()
    autumn = job(smtp, tmp_path, "autumn")
    assert sorted(autumn.audience.excluded["address"]) == ["ann@example.com", "bob@example.com",
                                                          "cat@example.com"]
    autumn.send()
    assert sorted(m.rcpt_tos[0].split("@")[0] for m in smtp.recorder.messages) == \
        ["dan", "eve", "fay", "gus", "hal"]


def test_not_responded_needs_the_campaign_followed_up(tmp_path):
    with pytest.raises(mailnb.ConfigError) as info:
        _ = mailnb.Job(campaign="c", recipients=pd.DataFrame({"email": ["a@example.com"]}),
                       follow_up_filter="not responded", journal=str(tmp_path / "j.sqlite"),
                       new_journal=True).table
    assert "follow_up='earlier-campaign'" in str(info.value)


@pytest.mark.parametrize("lang", sorted(STOP_PHRASES))
def test_every_stop_phrase_alone_is_a_request(lang):
    for phrase in STOP_PHRASES[lang]:
        assert is_stop(phrase.upper() if phrase.isascii() else phrase), (lang, phrase)
        assert is_stop(f"{phrase}\n\nAnn"), (lang, phrase)         # a name below changes nothing


@pytest.mark.parametrize("text", [
    "I'll stop by on Monday",                                   # "stop" inside a sentence
    "Please don't stop sending these, they help",               # a negation
    "Thanks! Can I bring a friend? We could stop at the cafe before, or remove the second "
    "slot and unsubscribe the other one from the list",        # a letter, not a request
    "Yes, Monday works",
])
def test_answers_are_not_requests(text):
    assert not is_stop(text)


def test_a_personal_re_is_not_an_auto_reply_and_a_calendar_reply_is_an_answer():
    from mailnb.inbound.reports import is_auto_reply, is_report
    msg = email.message_from_bytes(reply("a@example.com", "Thanks", "<x@y>"))
    assert not is_auto_reply(msg) and not is_report(msg)
    cal = read_reply(reply("fay@example.com", CALENDAR, None, subject="Accepted: Session 7",
                           ctype='multipart/alternative; boundary="C"'))
    assert (cal.kind, cal.partstat) == ("calendar", "ACCEPTED")


def test_the_replies_mailbox_may_be_another_account(dovecot, smtp, tmp_path, config_dir,
                                                    monkeypatch):
    """``replies_username``: the Reply-To mailbox is its own login on the same server; without
    a ``replies_folder`` there is nothing to read, and the error says which setting to give."""
    monkeypatch.setenv("MAILNB_IMAP_PASSWORD", dovecot.password)
    folder = f"O{uuid.uuid4().hex[:8]}"
    base = dict(name="other", host="127.0.0.1", port=smtp.port, security="none",
                requires_auth=False, from_addr="study@example.org", imap_host="127.0.0.1",
                imap_port=dovecot.ports["imaps"], imap_username=dovecot.user,
                imap_cafile=dovecot.cafile, journal=str(tmp_path / "j.sqlite"))
    Profile(**base).save()
    env = {"PATH": "/usr/bin:/bin", "MAILNB_IMAP_PASSWORD": dovecot.password,
           "MAILNB_CONFIG_DIR": str(config_dir), "HOME": str(tmp_path)}
    cmd = [sys.executable, "-m", "mailnb.cli", "replies", "--profile", "other"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "--replies-folder INBOX" in r.stderr and "--folder Replies" in r.stderr
    dovecot.deliver(reply("ann@example.com", "Unsubscribe", None, subject="Hello"), folder,
                    user=dovecot.second_user)
    Profile(**base, replies_folder=folder, replies_username=dovecot.second_user).save()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "1 reply(ies) (1 unsubscribe(s))" in r.stdout, r.stdout + r.stderr
    Profile(**base, replies_folder=folder).save()       # the bounce account has no such folder
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and f"no folder {folder!r}" in r.stderr, r.stderr


def test_forgetting_a_person_erases_their_replies(dovecot, journal, tmp_path, monkeypatch):
    from mailnb.inbound.bounces import process_replies
    from mailnb.journal.privacy import forget
    monkeypatch.setenv("MAILNB_IMAP_PASSWORD", dovecot.password)
    folder = f"F{uuid.uuid4().hex[:8]}"
    fill(dovecot, folder, [reply("ann@example.com", "Remove me please", None, subject="Hi"),
                           reply("bob@example.com", "A question about my slot", None)])
    prof = Profile(name="f", imap_host="127.0.0.1", imap_port=dovecot.ports["imaps"],
                   imap_username=dovecot.user, imap_cafile=dovecot.cafile, replies_folder=folder)
    found = process_replies(prof, journal=journal)
    assert sorted(found["recipient"]) == ["ann@example.com", "bob@example.com"]
    forget(["Ann@Example.com"], journal)
    kept = journal.bounces()
    assert list(kept["recipient"]) == ["bob@example.com"]
    assert b"ann@example.com" not in (tmp_path / "journal.sqlite").read_bytes()
