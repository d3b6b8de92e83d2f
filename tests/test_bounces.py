"""Bounce parsing and classification (pure), on hand-made reports and on the shared real corpus."""
import os
import re

import pytest
from sisimai_eval import CORPUS, evaluate, labels

from mailnb import Template, build_message
from mailnb.inbound.bounces import classify, find_status, is_hard, parse

DSN = b"""From: MAILER-DAEMON@mx.example.org (Mail Delivery System)
To: news@example.org
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

<gone@example.com>: host mx.example.com said: 550 5.1.1 <gone@example.com>: Recipient
    address rejected: User unknown in local recipient table (in reply to RCPT TO command)

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org

Final-Recipient: rfc822; gone@example.com
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <gone@example.com>: Recipient address rejected: User
    unknown in local recipient table

Final-Recipient: rfc822; full@example.com
Action: delayed
Status: 4.2.2
Diagnostic-Code: smtp; 452 4.2.2 Mailbox full

--B
Content-Type: message/rfc822

%ORIGINAL%
--B--
"""


def original():
    r = Template("Hi", text="x").render({})
    raw, mid = build_message(r, from_addr="news@example.org", to_addr="gone@example.com",
                             campaign="spring")
    return raw, mid


def test_dsn_recipients_reasons_and_the_original():
    raw, mid = original()
    found = parse(DSN.replace(b"%ORIGINAL%", raw))
    assert [b.recipient for b in found] == ["gone@example.com", "full@example.com"]
    gone, full = found
    assert (gone.reason, gone.hard, gone.status, gone.reply_code) == ("userunknown", True,
                                                                      "5.1.1", 550)
    assert (full.reason, full.hard, full.action) == ("mailboxfull", False, "delayed")
    assert gone.message_id == mid and gone.campaign == "spring"
    assert "local recipient table" in gone.diagnostic


def test_crlf_and_lf_parse_alike():
    raw, _ = original()
    lf = DSN.replace(b"%ORIGINAL%", raw.replace(b"\r\n", b"\n"))
    crlf = lf.replace(b"\n", b"\r\n")
    assert [(b.recipient, b.reason) for b in parse(lf)] == \
        [(b.recipient, b.reason) for b in parse(crlf)]


def test_free_text_report_and_not_a_report():
    qmail = b"""From: MAILER-DAEMON@mx.example.org
Subject: failure notice

Hi. This is the qmail-send program at mx.example.org.
I'm afraid I wasn't able to deliver your message to the following addresses.

<who@example.net>:
192.0.2.1 does not like recipient.
Remote host said: 550 5.1.1 <who@example.net>... User Unknown
"""
    (b,) = parse(qmail)
    assert (b.recipient, b.reason, b.hard) == ("who@example.net", "userunknown", True)
    assert parse(b"From: friend@example.org\nSubject: lunch?\n\nsee you at noon\n") == []


def test_feedback_autoreply_and_delivered_are_not_bounces():
    arf = b"""From: feedback@example.net
Subject: complaint
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="F"

--F
Content-Type: text/plain

This is an abuse report.
--F
Content-Type: message/feedback-report

Feedback-Type: abuse
Original-Rcpt-To: angry@example.net
--F--
"""
    (b,) = parse(arf)
    assert (b.kind, b.recipient, b.hard) == ("feedback", "angry@example.net", False)
    away = b"From: Ann <ann@example.net>\nAuto-Submitted: auto-replied\nSubject: Out of office\n\n" \
           b"I am away until Monday.\n"
    (b,) = parse(away)
    assert (b.kind, b.recipient) == ("auto-reply", "ann@example.net")
    ok = DSN.replace(b"Action: failed", b"Action: delivered").replace(b"%ORIGINAL%", b"")
    assert parse(ok)[0].kind == "delivered"


@pytest.mark.parametrize("text,status,code,want", [
    ("550 5.1.1 <a@b.c>: Recipient address rejected: User unknown", "5.1.1", 550, "userunknown"),
    ("552 5.2.2 Mailbox full", None, 552, "mailboxfull"),
    ("Host or domain name not found. Name service error for name=x type=A", "5.4.4", None,
     "hostunknown"),
    ("554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
     None, 554, "blocked"),
    ("550 5.7.26 This message does not pass authentication checks (SPF and DKIM both do not "
     "pass)", None, 550, "authfailure"),
    ("552 5.3.4 Message size exceeds fixed limit", None, 552, "mesgtoobig"),
    ("connect to mx.example.org[192.0.2.1]:25: Connection timed out", "4.4.1", None, "expired"),
    ("554 5.7.1 <x@example.org>: Relay access denied", None, 554, "norelaying"),
    ("550 5.7.1 Message rejected as spam by Content Filtering", None, 550, "spamdetected"),
    ("421 4.7.0 Too many concurrent SMTP connections", None, 421, "toomanyconn"),
    ("550 Unknown user a@example.org (in reply to end of DATA command)", None, 550, "filtered"),
    ("550 5.1.6 recipient no longer on server", "5.1.6", 550, "hasmoved"),
])
def test_classify_table(text, status, code, want):
    assert classify(text, status or find_status(text), code) == want


def _report(human: str, fields: str = "", subject: str = "Undelivered Mail") -> bytes:
    """A delivery report: a human-readable part, and a delivery-status part when ``fields``."""
    status = f"--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.org\n\n" \
        f"{fields}\n" if fields else ""
    return (f"From: MAILER-DAEMON@mx.example.org\nTo: news@example.org\nSubject: {subject}\n"
            f"MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; "
            f"boundary=\"B\"\n\n--B\nContent-Type: text/plain\n\n{human}\n{status}--B--\n").encode()


@pytest.mark.parametrize("command,status,hard", [
    ("(in reply to RCPT TO\n    command)", "5.0.0", True),   # refused at RCPT, wrapped over lines
    ("(in reply to end of DATA command)", "5.0.0", False),   # accepted at RCPT: a filter's answer
    ("", "5.0.0", False),                                    # nothing confirms the words
    ("(in reply to end of DATA command)", "5.1.1", True),    # the status code settles it
    ("", "5.2.1", False),                                    # "mailbox disabled"
])
def test_user_unknown_is_hard_only_when_something_confirms_it(command, status, hard):
    raw = _report(f"<a@example.com>: host mx.example.com said: 550 <a@example.com>: User "
                  f"unknown {command}",
                  f"Final-Recipient: rfc822; a@example.com\nAction: failed\nStatus: {status}\n"
                  f"Diagnostic-Code: smtp; 550 <a@example.com>: User unknown")
    (b,) = parse(raw)
    assert (b.recipient, b.hard) == ("a@example.com", hard)
    assert b.reason == ("userunknown" if hard else "filtered")


def test_sendmail_transcript_gives_each_recipient_its_own_answer():
    human = """   ----- Transcript of session follows -----
While talking to mx.example.org:
>>> MAIL From:<news@example.org>
<<< 501 <news@example.org>... no access from mail server [192.0.2.55] which is an open relay.
554 <kim@example.org>... Remote protocol error
550 example.org (smtp)... 550 Host unknown
554 <lee@example.org>... 550 Host unknown (Authoritative answer from name server)
While talking to mx.example.edu:
>>> RCPT To:<max@example.edu>
<<< 550 <max@example.edu>... User unknown
550 <max@example.edu>... User unknown
While talking to mx.example.net:
>>> DATA
<<< 550 Unknown user ann@example.net
554 <ann@example.net>... Service unavailable
"""
    got = {b.recipient: (b.reason, b.hard) for b in parse(_report(human))}
    assert got == {"kim@example.org": ("blocked", False),       # MAIL FROM refused: us, not kim
                   "lee@example.org": ("hostunknown", True),
                   "max@example.edu": ("userunknown", True),    # refused at RCPT TO
                   "ann@example.net": ("filtered", False)}      # refused after DATA


def test_providers_that_check_the_mailbox_after_data_are_believed():
    raw = _report("""... while talking to mta6.am0.yahoodns.net.:
>>> DATA
<<< 554 delivery error: dd This user doesn't have a yahoo.com account (gone@yahoo.com) [0]
554 5.0.0 Service unavailable""", "Final-Recipient: rfc822; gone@yahoo.com\nAction: failed\n"
        "Status: 5.0.0\nDiagnostic-Code: smtp; 554 delivery error: dd This user doesn't have a "
        "yahoo.com account (gone@yahoo.com) [0]")
    (b,) = parse(raw)
    assert (b.reason, b.hard) == ("userunknown", True)


def test_recipient_fields_run_together_and_a_broken_boundary():
    fields = ("Final-Recipient: rfc822; full@example.jp\nAction: failed\nStatus: 5.2.2\n"
              "Diagnostic-Code: smtp; 550 5.2.2 <full@example.jp>... Mailbox Full\n"
              "Final-Recipient: rfc822; gone@example.jp\nAction: failed\nStatus: 5.1.1\n"
              "Diagnostic-Code: smtp; 550 5.1.1 <gone@example.jp>... User Unknown")
    got = [(b.recipient, b.reason) for b in parse(_report("Delivery failed.", fields))]
    assert got == [("full@example.jp", "mailboxfull"), ("gone@example.jp", "userunknown")]
    broken = b"""From: post_master@vtext.example.com
To: news@example.org
Subject: Delivery failure
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="O"

--O
Content-Type: multipart/alternative;
boundary="I"

--I
Content-Type: text/plain

Error: Invalid user address
Error message below:
550 5.1.1 Requested action not taken: no such user here
Message details:
  MAIL FROM: news@example.org
  RCPT TO: gone@vtext.example.com
--I--
--O--
"""
    (b,) = parse(broken)
    assert (b.recipient, b.reason, b.hard) == ("gone@vtext.example.com", "userunknown", True)


def test_help_desks_message_ids_and_envelope_senders_are_not_recipients():
    human = """This is the mail system at host mx.example.org.
For further assistance, please contact <support@example.org>.

<gone@example.jp>: host mx.example.jp[192.0.2.22] said: 550 5.1.1 <gone@example.jp>: User
    unknown (in reply to RCPT TO command)

Transcript: In: MAIL FROM:<bounce+x@news.example.org> Out: 250 2.1.0 Ok

-- Message headers follow --
"""
    raw = _report(human).replace(b"multipart/report; report-type=delivery-status", b"multipart/mixed")
    raw = raw.replace(b"--B--", b"Message-Id: <20260101.1234@news.example.org>\n--B--")
    assert [b.recipient for b in parse(raw)] == ["gone@example.jp"]


@pytest.mark.parametrize("text,status,reason,hard", [
    ("DNS Error: 123 DNS type 'mx' lookup of example.jp responded with code NXDOMAIN Domain "
     "name not found: example.jp", "4.0.0", "networkerror", False),   # Gmail retries it
    ("DNS Error: DNS type 'mx' lookup of example.org responded with code NOERROR The domain "
     "example.org doesn't receive email according to the administrator: returned Null MX",
     "5.0.0", "notaccept", True),
    ("No MX found for domain example.net", None, "notaccept", True),
    ("No MX found for domain example.net", "4.0.0", "notaccept", False),
    ("5.1.0 - Unknown address error 550-'5.7.1 <x@bounces.example.com>... Access denied'",
     "5.0.0", "blocked", False),                     # SES's summary quotes the real answer
    ("SMTP error from remote mail server after end of data: 553 sender.example.com does not "
     "exist", None, "hostunknown", True),
    ("551 not our customer <a@example.net>", None, "hasmoved", True),
    ("550 5.2.0 Mail rejete. Mail rejected. ofr_506 [506]", None, "spamdetected", False),
    ("550 5.5.0 Adresse destinataire invalide. Invalid recipient. LPN007_416 (in reply to end "
     "of DATA command)", None, "userunknown", True),     # La Poste checks mailboxes after DATA
])
def test_more_classifications(text, status, reason, hard):
    got = classify(text, status or find_status(text), None)
    assert (got, is_hard(got, status or find_status(text), None)) == (reason, hard)


def test_hard_means_the_address_is_bad():
    assert is_hard("userunknown", "5.1.1", 550) and is_hard("hostunknown", None, None)
    assert is_hard("notaccept", "5.1.10", 556) and not is_hard("notaccept", "4.3.2", 421)
    assert not is_hard("mailboxfull", "5.2.2", 552)


def _corpus_or_skip():
    if not (CORPUS / "labels.tsv").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"the shared bounce corpus is missing at {CORPUS}")
        pytest.skip(f"no shared bounce corpus at {CORPUS} (it is beside the project in CI)")


def test_no_sample_crashes_lf_or_crlf():
    _corpus_or_skip()
    for f in sorted((CORPUS / "samples").glob("*.eml")):
        raw = f.read_bytes()
        for variant in (raw, raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")):
            for b in parse(variant):
                assert b.kind in ("bounce", "feedback", "auto-reply", "delivered")


def test_agreement_with_the_labelled_corpus(capsys):
    _corpus_or_skip()
    assert len(labels()) >= 400
    for crlf in (False, True):
        r = evaluate(crlf=crlf)
        with capsys.disabled():
            print(f"\nsisimai corpus ({'CRLF' if crlf else 'LF'}): {r['labels']} labelled "
                  f"recipients, found {r['found']:.1%}, hard/soft agreement {r['hard']:.1%}, "
                  f"reason agreement {r['reason']:.1%}, non-bounces right {r['non_bounce_ok']}")
        assert r["found"] >= 0.97
        assert r["reason"] >= 0.92
        ok, total = map(int, r["non_bounce_ok"].split("/"))
        assert ok == total                       # no complaint, auto-reply or success as a bounce
        assert r["hard"] >= 0.9795                # 485 of 495: 98.0% to one decimal


def test_the_rules_generalise_across_families(capsys):
    """Each family of the corpus judged with the rules that only its own samples use switched
    off: issue 18 asks for 97% hard/soft and 85% reason here, so that general rules carry the
    result. Also printed: the same with every alternative of a rule's pattern counted as a rule
    of its own, so that grouping wordings cannot stand in for rules that generalise."""
    _corpus_or_skip()
    from sisimai_eval import generalisation, print_generalisation
    g = generalisation()
    with capsys.disabled():
        print()
        print_generalisation(g)
    assert g["hard"] >= 0.9795 and g["reason"] >= 0.92
    assert g["held_out_hard"] >= 0.97 and g["held_out_reason"] >= 0.85
    from sisimai_eval import each_alternative_a_rule
    with each_alternative_a_rule():
        split = generalisation()
    with capsys.disabled():
        print(f"each alternative a rule of its own: hard/soft {split['held_out_hard']:.1%}, "
              f"reason {split['held_out_reason']:.1%}")
    assert split["held_out_hard"] >= 0.97 and split["held_out_reason"] >= 0.835


def test_every_rule_names_its_source_and_no_everyday_word_decides_alone():
    from mailnb.inbound.bounce_rules import REASON_TIER, RULES, TERMS
    from mailnb.inbound.classify import REASONS
    for rule in RULES:
        assert rule.reason in REASONS or rule.reason == "recipient", rule
        assert rule.reason in REASON_TIER, rule
        assert re.match(r"(RFC \d+|.*https?://|.*\(\d{3}|\w[\w ().-]+[:(])", rule.source), rule
        if rule.provider:
            assert "http" in rule.source or "RFC" in rule.source or "(8)" in rule.source, rule
        single = not re.search(r" |\\s|\.\{", rule.pattern)
        assert not single or rule.pattern in TERMS, f"one word decides {rule.reason}: {rule}"
    for word in ("helo", "policy", "poor", "deferred", "blocked", "expired", "re: "):
        assert all(r.pattern != word for r in RULES), word


def test_specificity_not_list_order_decides():
    """The longer, more specific wording wins whichever rule comes first; a cause beats how it
    ended; a provider's own wording beats a generic phrase of the same kind."""
    assert classify("Sent to too many recipients this hour, try later") == "speeding"
    assert classify("Too many recipients") == "toomanyconn"
    assert classify("550 Virus Detected; Content Rejected") == "virusdetected"
    assert classify("Mailbox full. Delivery time expired, giving up") == "mailboxfull"
    assert classify("Name service error for name=example.org type=MX: Host not found, try "
                    "again") == "networkerror"
    assert classify("554 5.7.9 Message not accepted for policy reasons") == "policyviolation"
    assert classify("550 5.7.26 Unauthenticated email: it fails to pass SPF checks; to protect "
                    "our users from spam ...", "5.7.26") == "authfailure"


def test_a_success_report_is_never_a_bounce():
    """Action: deliverable with Status 2.1.5 was counted as a soft bounce (reason onhold)."""
    template = ("From: MAILER-DAEMON@mx.example.org\nTo: news@example.org\nSubject: Delivery "
                "Status Notification\nMIME-Version: 1.0\nContent-Type: multipart/report; "
                "report-type=delivery-status; boundary=\"B\"\n\n--B\nContent-Type: "
                "message/delivery-status\n\nReporting-MTA: dns; mx.example.org\n\n"
                "Final-Recipient: rfc822; ok@example.com\nAction: {action}\nStatus: {status}\n"
                "\n--B--\n")
    for action, status in (("deliverable", "2.1.5"), ("delivered", "2.0.0"),
                           ("relayed", "2.0.0"), ("failed", "2.0.0")):
        (b,) = parse(template.format(action=action, status=status).encode())
        assert (b.kind, b.hard, b.reason) == ("delivered", False, "delivered"), (action, status)
    (b,) = parse(template.format(action="failed", status="5.1.1").encode())
    assert b.kind == "bounce" and b.hard
