"""CHUNKING (RFC 3030): a relay that offers it gets each message as one ``BDAT <size> LAST``
chunk, exact bytes with no dot-stuffing; a relay that does not gets DATA. Through a real Postfix
(its smtpd offers CHUNKING since 3.0) that relays to a loopback MX, and Postfix's own log says
which commands it was given."""

from __future__ import annotations

import email
import re
import time
import uuid
from collections import Counter

import pytest
from conftest import people
from mailservers import Postfix
from smtp_servers import Recorder, start_smtp

import mailnb

# lines a DATA transfer must dot-stuff (RFC 5321 4.5.2) and a BDAT transfer must not touch
BODY = ".starts with a dot\n.\n..two dots\nend for {{ first_name }}\n"


def commands(postfix: Postfix, seconds: float = 10) -> Counter[str]:
    """Commands Postfix's smtpd was given, summed over connections from its "disconnect" lines
    ("ehlo=1 mail=5 rcpt=4/5 bdat=3/4 quit=1": the count after the slash is all, before it the
    accepted ones). Waits for the QUIT of mailnb's connection to be logged."""
    deadline = time.time() + seconds
    while True:
        lines = [line for line in postfix.log().splitlines()
                 if "smtpd[" in line and " disconnect from " in line and " quit=" in line]
        if lines or time.time() > deadline:
            break
        time.sleep(0.1)
    seen: Counter[str] = Counter()
    for line in lines:
        for name, ok, total in re.findall(r" (\w+)=(\d+)(?:/(\d+))?", line):
            seen[name] += int(total or ok)
            seen[name + "_ok"] += int(ok)
    return seen


def relayed(mx, n: int, seconds: float = 30):
    deadline = time.time() + seconds          # Postfix passes the mail on from its queue
    while len(mx.recorder.messages) < n and time.time() < deadline:
        time.sleep(0.1)
    return {m.rcpt_tos[0]: m.data for m in mx.recorder.messages}


def plain(df, name: str) -> mailnb.Campaign:
    tmpl = mailnb.Template("Hello {{ first_name }}", text=BODY)
    return mailnb.Campaign(name, mailnb.Audience(df, allow_test_domains=True), tmpl,
                           from_addr="news@example.org")


@pytest.mark.parametrize("chunking", [True, False])
def test_each_message_arrives_byte_exact_by_bdat_or_data(tmp_path, chunking):
    """The same campaign through Postfix with and without CHUNKING offered: BDAT when offered
    (one per message, no DATA), DATA when not, and in both cases the MX behind Postfix gets the
    very bytes mailnb sent (its backup copy), lines starting with a dot included."""
    mx = start_smtp("plain", recorder=Recorder())
    postfix = Postfix(None, mx.port, extra="" if chunking else
                      "smtpd_discard_ehlo_keywords = chunking").start()
    try:
        tag = uuid.uuid4().hex[:6]
        addresses = [f"p{i}-{tag}@remote.test" for i in range(4)]
        res = mailnb.send(plain(people(addresses=addresses), f"chunk-{tag}"),
                          mailnb.Relay("127.0.0.1", postfix.port, security="none"),
                          journal=tmp_path / "j.sqlite", new_journal=True, progress=None,
                          backup=str(tmp_path / "sent" / "{recipient}.eml"))
        assert list(res["status"]) == ["sent"] * 4, res[["status", "reply"]]
        got = relayed(mx, 4)
        for address in addresses:
            sent = next((tmp_path / "sent").glob(f"{address.split('@')[0]}*.eml")).read_bytes()
            assert b"\r\n.starts with a dot\r\n.\r\n..two dots\r\n" in sent
            assert got[address].endswith(sent)          # Postfix adds only its Received: line
            assert got[address][:-len(sent)].startswith(b"Received: ")
        used = commands(postfix)
        if chunking:
            assert used["bdat_ok"] == 4 and used["data"] == 0, used
        else:
            assert used["data_ok"] == 4 and used["bdat"] == 0, used
    finally:
        postfix.stop()
        mx.stop()


def test_refusals_at_rcpt_and_at_the_chunk_keep_the_next_messages_exact(tmp_path):
    """On one pipelined connection: a message over Postfix's size limit is refused at its BDAT
    chunk (552) and a recipient at RCPT (554); each is failed with Postfix's own reply, the
    messages after each are sent once, and nobody is sent twice."""
    mx = start_smtp("plain", recorder=Recorder())
    postfix = Postfix(None, mx.port, extra="""
message_size_limit = 20000
smtpd_error_sleep_time = 0
smtpd_recipient_restrictions = check_recipient_access inline:{ {refused@remote.test=REJECT no such person} }, permit_mynetworks, reject
""").start()
    try:
        tag = uuid.uuid4().hex[:6]
        addresses = [f"a-{tag}@remote.test", f"big-{tag}@remote.test", "refused@remote.test",
                     f"b-{tag}@remote.test", f"c-{tag}@remote.test"]
        df = people(addresses=addresses)
        df["first_name"] = ["A", "B" * 40_000, "R", "C", "D"]       # B's message is too big
        res = mailnb.send(plain(df, f"refuse-{tag}"),
                          mailnb.Relay("127.0.0.1", postfix.port, security="none"),
                          journal=tmp_path / "j.sqlite", new_journal=True, progress=None,
                          retries=0)
        out = res.set_index("address")
        assert list(out["status"]) == ["sent", "failed", "failed", "sent", "sent"], out
        assert out.loc[addresses[1], "code"] == 552
        assert "size limit" in out.loc[addresses[1], "reply"]
        assert out.loc[addresses[2], "code"] == 554
        assert "no such person" in out.loc[addresses[2], "reply"]
        got = relayed(mx, 3)
        assert sorted(got) == sorted(addresses[i] for i in (0, 3, 4))
        taken = Counter(r for m in mx.recorder.messages for r in m.rcpt_tos)
        assert max(taken.values()) == 1                      # nobody twice
        for address, name in zip(addresses[3:], "CD"):
            assert f"end for {name}\r\n".encode() in got[address]
        used = commands(postfix)
        assert used["bdat"] == 4 and used["bdat_ok"] == 3 and used["data"] == 0, used
    finally:
        postfix.stop()
        mx.stop()


@pytest.mark.parametrize("pipelining", [True, False])
def test_a_relay_that_keeps_a_refused_transaction_open(tmp_path, pipelining):
    """A server that wants RSET after a refused message (552 at the end of data) would answer the
    next MAIL with 503. Without PIPELINING mailnb sends RSET after the refusal, as smtplib does.
    With PIPELINING the next envelope already went out with that end of data: its MAIL gets 503,
    and its RCPT and DATA join the old transaction. That 503 is not the next recipient's refusal:
    mailnb drops the connection (mid-DATA only that is clean) and sends the next message on a new
    one. Either way each later message goes once, to its own recipient only."""
    smtp = start_smtp("plain", recorder=Recorder(pipelining=pipelining))
    tag = uuid.uuid4().hex[:6]
    addresses = [f"a-{tag}@example.com", f"sticky-{tag}@example.com", f"b-{tag}@example.com",
                 f"c-{tag}@example.com"]
    c = mailnb.Campaign(f"sticky-{tag}", mailnb.Audience(people(addresses=addresses)),
                        mailnb.Template("Hi", text=BODY), from_addr="news@example.org")
    try:
        res = mailnb.send(c, mailnb.Relay("127.0.0.1", smtp.port, security="none"),
                          journal=tmp_path / "j.sqlite", new_journal=True, progress=None,
                          retries=0)
        rec = smtp.recorder
    finally:
        smtp.stop()
    assert list(res["status"]) == ["sent", "failed", "sent", "sent"], res[["status", "reply"]]
    assert res["code"].iloc[1] == 552
    assert [m.rcpt_tos for m in rec.messages] == [[a] for a in addresses if "sticky" not in a]
    for m in rec.messages:                                  # no message ran into another
        parsed = email.message_from_bytes(m.data)
        assert m.rcpt_tos[0] in parsed["To"] and len(parsed.get_all("To")) == 1
    assert rec.connections == (2 if pipelining else 1)

