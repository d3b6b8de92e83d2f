"""The bounce mailbox on a real Dovecot (IMAPS, STARTTLS, POP3S), suppression, and the whole loop
through a real Postfix that bounces mail into Dovecot."""
import time
import uuid

import pytest
from conftest import dsn, people
from smtp_servers import Recorder, start_smtp

import mailnb
from mailnb import AuthenticationError, Template, TLSError
from mailnb.inbound.bounces import apply_threshold, process_bounces
from mailnb.inbound.mailbox import Mailbox, list_folders


@pytest.fixture
def folder(dovecot):
    """A fresh folder per test."""
    return f"B{uuid.uuid4().hex[:8]}"


def box(dovecot, folder, **kw):
    return Mailbox("127.0.0.1", dovecot.user, port=kw.pop("port", dovecot.ports["imaps"]),
                   security=kw.pop("security", "tls"), folder=folder, password=dovecot.password,
                   cafile=dovecot.cafile, **kw)


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_list_folders_both_tls_modes(dovecot, folder, security):
    dovecot.deliver(dsn("a@example.com"), folder)
    port = dovecot.ports["imaps" if security == "tls" else "imap"]
    assert folder in list_folders(box(dovecot, folder, port=port, security=security))


def test_wrong_password_and_unverified_cert(dovecot, folder):
    with pytest.raises(AuthenticationError) as info:
        list_folders(Mailbox("127.0.0.1", dovecot.user, port=dovecot.ports["imaps"],
                             password="nope-secret", cafile=dovecot.cafile))
    assert "nope-secret" not in str(info.value)
    with pytest.raises(TLSError):
        list_folders(Mailbox("127.0.0.1", dovecot.user, port=dovecot.ports["imaps"],
                             password=dovecot.password))


def test_process_once_and_only_once(dovecot, folder, journal):
    for i in range(3):
        dovecot.deliver(dsn(f"gone{i}@example.com"), folder)
    dovecot.deliver(b"From: friend@example.org\nSubject: hello\n\nnot a bounce\n", folder)
    found = process_bounces(None, mailbox=box(dovecot, folder), journal=journal)
    bounced = found[found["kind"] == "bounce"]
    assert sorted(bounced["recipient"]) == [f"gone{i}@example.com" for i in range(3)]
    assert len(bounced) == 3 and bounced["hard"].all() and bounced["suppressed"].all()
    # the friend's mail answers nothing mailnb sent: kept for review, with its sender
    assert found[found["kind"] == "unmatched"]["recipient"].tolist() == ["friend@example.org"]
    again = process_bounces(None, mailbox=box(dovecot, folder), journal=journal)
    assert again.empty                                     # flagged: never counted twice
    assert len(journal.bounces()) == 4
    sup = journal.suppressed()
    assert set(sup["address"]) == {f"gone{i}@example.com" for i in range(3)}
    assert sup["reason"].str.contains("hard bounce: userunknown").all()


def test_a_crash_between_storing_and_flagging_does_not_double_count(dovecot, folder, journal):
    dovecot.deliver(dsn("x@example.com", "4.2.2", "452 4.2.2 Mailbox full"), folder)
    from mailnb.inbound.bounces import parse
    from mailnb.inbound.mailbox import Session
    with Session(box(dovecot, folder)) as s:
        (item,) = list(s.fetch())
        journal.record_bounces(item.source_id, parse(item.raw))   # stored, then "crash"
    found = process_bounces(None, mailbox=box(dovecot, folder), journal=journal)
    assert found.empty and len(journal.bounces()) == 1


def test_move_to_processed_folder_and_pop3(dovecot, folder, journal):
    dovecot.deliver(dsn("moved@example.com"), folder)
    done = folder + "-done"
    process_bounces(None, mailbox=box(dovecot, folder, processed_folder=done), journal=journal)
    import ssl

    from imapclient import IMAPClient
    with IMAPClient("127.0.0.1", dovecot.ports["imaps"],
                    ssl_context=ssl.create_default_context(cafile=dovecot.cafile)) as c:
        c.login(dovecot.user, dovecot.password)
        assert c.select_folder(folder)[b"EXISTS"] == 0
        assert c.select_folder(done)[b"EXISTS"] == 1
    # POP3 reads INBOX; the journal remembers what it has seen
    dovecot.deliver(dsn(f"pop-{folder}@example.com"), "INBOX")
    pop = box(dovecot, "INBOX", protocol="pop3", port=dovecot.ports["pop3s"])
    first = process_bounces(None, mailbox=pop, journal=journal)
    assert f"pop-{folder}@example.com" in set(first["recipient"])
    second = process_bounces(None, mailbox=pop, journal=journal)
    assert f"pop-{folder}@example.com" not in set(second["recipient"])


def test_soft_bounces_reach_the_threshold_and_a_success_resets(journal):
    from mailnb.inbound.bounces import Bounce
    soft = Bounce("full@example.com", "4.2.2", 452, "mailbox full", "mailboxfull", False)
    for i in range(2):
        journal.record_bounces(f"s{i}", [soft])
    assert apply_threshold(journal, ["full@example.com"], threshold=3) == set()
    journal.record_bounces("s2", [soft])
    assert apply_threshold(journal, ["full@example.com"], threshold=3) == {"full@example.com"}
    # another address: two soft bounces, then a delivery report, then one more: not suppressed
    other = Bounce("busy@example.com", "4.2.2", 452, "full", "mailboxfull", False)
    ok = Bounce("busy@example.com", "2.0.0", 250, "delivered", "delivered", False,
                kind="delivered")
    journal.record_bounces("o1", [other])
    journal.record_bounces("o2", [other])
    time.sleep(0.01)
    journal.record_bounces("o3", [ok])
    time.sleep(0.01)
    journal.record_bounces("o4", [other])
    assert apply_threshold(journal, ["busy@example.com"], threshold=3) == set()
    assert "busy@example.com" not in journal.suppressions()
    # complaints and auto-replies are never counted
    fb = Bounce("angry@example.com", None, None, "abuse", "feedback", False, kind="feedback")
    for i in range(5):
        journal.record_bounces(f"f{i}", [fb])
    assert apply_threshold(journal, ["angry@example.com"], threshold=1) == set()


def bounces_for(process, addresses, postfix, seconds=60):
    """Process the mailbox until reports for every one of ``addresses`` came in (bounded)."""
    import pandas as pd
    deadline, found, missing = time.time() + seconds, [], ""
    while time.time() < deadline:
        try:
            found.append(process())
        except mailnb.ConfigError as err:   # the first report delivered creates the folder
            if "has no folder" not in str(err):
                raise
            missing = f" ({err})"
        if addresses <= {r for f in found for r in f["recipient"].dropna()}:
            return pd.concat(found)
        time.sleep(0.5)
    pytest.fail(f"no bounces in time{missing}; postfix log:\n{postfix.log()[-3000:]}")


def test_end_to_end_through_postfix(dovecot, journal, tmp_path):
    """A campaign through a real Postfix: one unknown local user (dovecot-lda says no such user)
    and one remote address a loopback MX refuses with 550. Both bounce into Dovecot's Bounces
    folder; process_bounces matches them to the campaign; the next send skips them."""
    from mailservers import Postfix
    mx = start_smtp("plain", recorder=Recorder())
    postfix = Postfix(dovecot, mx.port).start()
    try:
        tag = uuid.uuid4().hex[:6]
        addresses = [dovecot.user, f"nobody-{tag}@example.test", f"unknown-{tag}@remote.test",
                     f"ok-{tag}@remote.test"]
        df = people(addresses=addresses)
        aud = mailnb.Audience(df, allow_test_domains=True)
        tmpl = Template("Hello {{ first_name }}", text="Dear {{ first_name }}")
        c = mailnb.Campaign(f"e2e-{tag}", aud, tmpl, from_addr=dovecot.user)
        relay = mailnb.Relay("127.0.0.1", postfix.port, security="none")
        res = mailnb.send(c, relay, journal=journal, progress=None)
        assert (res["status"] == "sent").all()
        mb = box(dovecot, "Bounces")
        allb = bounces_for(lambda: process_bounces(None, mailbox=mb, journal=journal),
                           {addresses[1], addresses[2]}, postfix)
        mine = allb[allb["recipient"].isin(addresses)]
        assert set(mine["campaign"]) == {c.name}              # matched by the quoted headers
        assert mine["hard"].all() and set(mine["reason"]) == {"userunknown"}, \
            mine[["recipient", "reason", "status", "diagnostic"]].to_dict("records")
        remote = mine[mine["recipient"] == addresses[2]].iloc[0]
        assert "550" in remote["diagnostic"]
        h = journal.history(c.name).set_index("address")
        assert h.loc[addresses[1], "status"] == "bounced"
        # the next send skips the suppressed addresses
        df2 = people(addresses=addresses)
        aud2 = mailnb.Audience(df2, allow_test_domains=True, suppressions=journal.suppressions())
        assert set(aud2.excluded["address"]) == {addresses[1], addresses[2]}
        assert set(aud2.excluded["reason"]) == {"suppressed"}
        c2 = mailnb.Campaign(f"e2e2-{tag}", mailnb.Audience(df2, allow_test_domains=True), tmpl,
                             from_addr=dovecot.user)
        res2 = mailnb.send(c2, relay, journal=journal, progress=None)
        st = dict(zip(res2["address"], res2["status"]))
        assert st[addresses[1]] == "skipped" and st[addresses[2]] == "skipped"
        assert st[addresses[3]] == "sent"
    finally:
        postfix.stop()
        mx.stop()


def test_pop_before_smtp(dovecot, smtp, journal):
    from conftest import campaign
    pop = Mailbox("127.0.0.1", dovecot.user, port=dovecot.ports["pop3s"], protocol="pop3",
                  password=dovecot.password, cafile=dovecot.cafile)
    logins = lambda: dovecot.log().count("pop3-login: Info: Login: user=<")  # noqa: E731
    before = logins()
    relay = mailnb.Relay("127.0.0.1", smtp.port, security="none", pop_before_smtp=pop)
    res = mailnb.send(campaign(people(2)), relay, journal=journal, progress=None)
    assert (res["status"] == "sent").all()
    deadline = time.time() + 5
    while logins() < before + 1 and time.time() < deadline:
        time.sleep(0.05)
    assert logins() == before + 1
    bad = mailnb.Relay("127.0.0.1", smtp.port, security="none",
                       pop_before_smtp=Mailbox("127.0.0.1", dovecot.user,
                                               port=dovecot.ports["pop3s"], protocol="pop3",
                                               password="wrong-pop", cafile=dovecot.cafile))
    with pytest.raises(AuthenticationError) as info:
        mailnb.send(campaign(people(3), name="pop2"), bad, journal=journal, progress=None)
    assert "wrong-pop" not in str(info.value) and len(smtp.recorder.messages) == 2


@pytest.mark.parametrize("verp", [False, True])
def test_separate_bounce_mailbox_through_postfix(dovecot, tmp_path, config_dir, monkeypatch, verp):
    """From news@example.org, bounce address = the Dovecot mailbox (with VERP: bounce+<id>@):
    Postfix bounces part of the campaign to the bounce address, the reports land in that mailbox,
    mailnb bounces (the profile's mailbox) records them, and the next send skips those addresses."""
    from mailservers import Postfix
    mx = start_smtp("plain", recorder=Recorder())
    postfix = Postfix(dovecot, mx.port).start()
    monkeypatch.setenv("MAILNB_IMAP_PASSWORD", dovecot.password)
    try:
        tag = uuid.uuid4().hex[:6]
        addresses = [f"nobody-{tag}@example.test", f"unknown-{tag}@remote.test",
                     f"ok-{tag}@remote.test"]
        (tmp_path / "tpl").mkdir()
        (tmp_path / "tpl" / "subject.txt").write_text("Hello {{ first_name }}")
        (tmp_path / "tpl" / "body.txt").write_text("Dear {{ first_name }}")
        folder = "Bounces"
        mailnb.Profile(name="news", host="127.0.0.1", port=postfix.port, security="none",
                       requires_auth=False, from_addr="news@example.org",
                       bounce_address=dovecot.user, verp=verp, imap_host="127.0.0.1",
                       imap_port=dovecot.ports["imaps"], imap_username=dovecot.user,
                       imap_cafile=dovecot.cafile, bounce_folder=folder,
                       journal=str(tmp_path / "j.sqlite")).save()
        aud = mailnb.Audience(people(addresses=addresses), allow_test_domains=True)
        common = dict(profile="news", recipients=aud, template=str(tmp_path / "tpl"),
                      progress=False)
        res = mailnb.Job(campaign=f"news-{tag}", new_journal=True, **common).send()
        assert (res["status"] == "sent").all()
        prof = mailnb.Profile.load("news")
        mine = bounces_for(lambda: process_bounces(prof), set(addresses[:2]), postfix)
        mine = mine[mine["recipient"].isin(addresses)]
        assert set(mine["recipient"]) == set(addresses[:2])
        assert set(mine["campaign"]) == {f"news-{tag}"} and mine["hard"].all()
        if verp:   # each report came to the message's own bounce address
            assert set(mine["message_id"]) == set(res.set_index("address").loc[
                addresses[:2], "message_id"])
        again = mailnb.Job(campaign=f"news2-{tag}", **common)
        reasons = dict(zip(again.audience.excluded["address"], again.audience.excluded["reason"]))
        assert reasons == {addresses[0]: "suppressed", addresses[1]: "suppressed"}
        res2 = again.send()
        assert res2.set_index("address").loc[addresses[2], "status"] == "sent"
        deadline = time.time() + 30          # Postfix passes it on from its queue
        while [m.rcpt_tos for m in mx.recorder.messages].count([addresses[2]]) < 2 \
                and time.time() < deadline:
            time.sleep(0.2)
        assert [m.rcpt_tos for m in mx.recorder.messages].count([addresses[2]]) == 2
    finally:
        postfix.stop()
        mx.stop()


def test_verp_matches_a_report_whose_text_names_nobody(dovecot, folder, journal, smtp):
    df = people(addresses=["gone@example.com", "here@example.com"])
    tmpl = Template("Hello {{ first_name }}", text="Dear {{ first_name }}")
    c = mailnb.Campaign("verp-only", mailnb.Audience(df), tmpl, from_addr="news@example.org",
                        bounce_address="bounces@example.org", verp=True)
    res = mailnb.send(c, mailnb.Relay("127.0.0.1", smtp.port, security="none"), journal=journal,
                      progress=None)
    sent_from = {m.rcpt_tos[0]: m.mail_from for m in smtp.recorder.messages}
    report = (f"Delivered-To: {sent_from['gone@example.com']}\nFrom: postmaster@example.com\n"
              "To: bounces@example.org\nSubject: Delivery failure\n\n"
              "Sorry, your message could not be delivered.\n").encode()
    dovecot.deliver(report, folder)
    found = process_bounces(None, mailbox=box(dovecot, folder), journal=journal)
    row = found[found["kind"] == "bounce"].iloc[0]
    assert row["recipient"] == "gone@example.com" and row["campaign"] == "verp-only"
    assert row["message_id"] == res.loc[0, "message_id"]
    assert journal.history("verp-only").set_index("address").loc["gone@example.com",
                                                                  "status"] == "bounced"
