"""Compliance by default: one-click List-Unsubscribe with signed tokens, DKIM signatures that verify
against a key served by a loopback DNS server, sender-domain checks, and a strict Postfix."""
import email
from email import policy

import dkim
import pytest
from conftest import campaign, people
from dns_server import DNSServer

import mailnb
from mailnb.compose.signing import DKIMKey, generate_key
from mailnb.compose.unsubscribe import TokenError, Unsubscribe, make_token, verify_token
from mailnb.inbound.unsubscribes import from_hits
from mailnb.transports.dnscheck import check_sender

SECRET = b"test-secret-for-unsubscribe-tokens"


def plain(server):
    return mailnb.Relay("127.0.0.1", server.port, security="none", timeout=5)


def received(server):
    return {m.rcpt_tos[0]: email.message_from_bytes(m.data, policy=policy.default)
            for m in server.recorder.messages}


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    return generate_key("mnb1", "example.org", tmp_path_factory.mktemp("dkim") / "key.pem")


@pytest.fixture
def dns(key):
    name, value = key.public_record()
    server = DNSServer({
        ("example.org", "TXT"): ["v=spf1 ip4:127.0.0.1 -all"],
        (name, "TXT"): [value],
        ("_dmarc.example.org", "TXT"): ["v=DMARC1; p=quarantine; rua=mailto:d@example.org"],
        ("relay.example.org", "A"): ["127.0.0.1"],
    })
    yield server
    server.stop()


def test_tokens_cannot_be_forged():
    t = make_token(SECRET, "Ann@Example.com", "spring")
    assert verify_token(SECRET, t) == ("ann@example.com", "spring")
    payload, sig = t.split(".")
    other = make_token(SECRET, "bob@example.com", "spring").split(".")[0]
    for forged in (f"{other}.{sig}", f"{payload}.{sig[:-2]}AA", make_token(b"guess", "ann@example.com",
                                                                          "spring"), "garbage"):
        with pytest.raises(TokenError):
            verify_token(SECRET, forged)


def test_list_unsubscribe_on_every_bulk_message_and_only_there(smtp, journal):
    c = campaign(people(3))
    c.unsubscribe = Unsubscribe(mailto="leave@example.org", url="https://example.org/u?t={token}")
    c.template = mailnb.Template("Hi", text="Bye: {{ unsubscribe_url }}")
    mailnb.send(c, plain(smtp), journal=journal, progress=None)
    for address, msg in received(smtp).items():
        lu = msg["List-Unsubscribe"]
        assert lu.startswith("<mailto:leave@example.org?subject=unsubscribe%3A")
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        token = lu.split("https://example.org/u?t=")[1].rstrip(">")
        assert verify_token(SECRET, token) == (address, "test")
        assert f"https://example.org/u?t={token}" in msg.get_body(("plain",)).get_content()
    smtp.recorder.messages.clear()
    t = mailnb.Campaign("receipts", mailnb.Audience(people(2), transactional=True),
                        mailnb.Template("Your booking", text="Booked."), from_addr="b@example.org")
    mailnb.send(t, plain(smtp), journal=journal, progress=None)
    assert all("List-Unsubscribe" not in m for m in received(smtp).values())


def test_list_id_and_both_unsubscribe_links(smtp, journal):
    """RFC 2919 List-Id on every message (a receipt too); an https unsubscribe URL alone still
    gets the mailto: beside it, to the Reply-To address, as some mail programs use only that."""
    c = campaign(people(2), name="Spring survey 2026", reply_to="team@example.org")
    c.unsubscribe = Unsubscribe(url="https://example.org/u?t={token}")
    mailnb.send(c, plain(smtp), journal=journal, progress=None)
    for msg in received(smtp).values():
        assert msg["List-Id"] == '"Spring survey 2026" <spring-survey-2026.example.org>'
        links = [u.strip(" <>") for u in msg["List-Unsubscribe"].split(",")]
        assert links[0].startswith("mailto:team@example.org?subject=unsubscribe%3A")
        assert links[1].startswith("https://example.org/u?t=")
        assert links[0].rsplit("%3A", 1)[1] == links[1].rsplit("t=", 1)[1]     # one token
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    smtp.recorder.messages.clear()
    t = mailnb.Campaign("Bookings", mailnb.Audience(people(1), transactional=True),
                        mailnb.Template("Your booking", text="Booked."), from_addr="b@Example.org",
                        headers={"X-Tag": "t"})
    mailnb.send(t, plain(smtp), journal=journal, progress=None)
    (msg,) = received(smtp).values()
    assert msg["List-Id"] == '"Bookings" <bookings.example.org>'
    assert msg["List-Unsubscribe"] is None


def test_default_is_a_mailto_to_the_sender(smtp, journal):
    mailnb.send(campaign(people(1)), plain(smtp), journal=journal, progress=None)
    (msg,) = received(smtp).values()
    assert msg["List-Unsubscribe"].startswith("<mailto:news@example.org?subject=unsubscribe")
    assert msg["List-Unsubscribe-Post"] is None          # one-click needs an https URL


def test_unsubscribe_hits_are_honoured_by_the_next_send(smtp, journal, tmp_path):
    df = people(4)
    good = make_token(SECRET, "user1@example.com", "test")
    forged = make_token(b"not-the-secret", "user2@example.com", "test")
    import pandas as pd
    result = from_hits(pd.DataFrame({"token": [good, forged]}), journal, policy="campaign")
    assert list(result["result"]) == ["unsubscribed", "rejected: the unsubscribe token's "
                                                      "signature does not match"]
    res = mailnb.send(campaign(df), plain(smtp), journal=journal, progress=None)
    st = dict(zip(res["address"], res["status"]))
    assert st["user1@example.com"] == "skipped" and st["user2@example.com"] == "sent"
    # the audience's policy decides: "global" keeps user1 out of every campaign, "campaign" only
    # out of the one the request came from
    glob = mailnb.send(campaign(df, name="other"), plain(smtp), journal=journal, progress=None)
    assert dict(zip(glob["address"], glob["status"]))["user1@example.com"] == "skipped"
    per = campaign(df, name="third")
    per.audience = mailnb.Audience(df, campaign="third", exclusion_policy="campaign")
    res2 = mailnb.send(per, plain(smtp), journal=journal, progress=None)
    assert dict(zip(res2["address"], res2["status"]))["user1@example.com"] == "sent"
    aud = mailnb.Audience(df, campaign="test", unsubscribes=journal.unsubscribes(),
                          exclusion_policy="campaign")
    assert list(aud.excluded["address"]) == ["user1@example.com"]


def test_dkim_signatures_verify_against_the_published_key(smtp, journal, key, dns):
    c = campaign(people(3))
    c.dkim = key
    mailnb.send(c, plain(smtp), journal=journal, progress=None)
    assert len(smtp.recorder.messages) == 3
    for m in smtp.recorder.messages:
        assert m.data.startswith(b"DKIM-Signature:")
        assert dkim.verify(m.data, dnsfunc=dns.txt_lookup)
        sig = email.message_from_bytes(m.data)["DKIM-Signature"]
        tags = dict(t.strip().split("=", 1) for t in "".join(sig.split()).split(";") if t)
        assert tags["d"] == "example.org"
        signed = set(tags["h"].lower().split(":"))
        assert {"list-id", "list-unsubscribe", "from", "subject"} <= signed, signed
        tampered = m.data.replace(b"your slot is", b"your slot is NOT")
        assert not dkim.verify(tampered, dnsfunc=dns.txt_lookup)


def test_check_sender_pass_warn_fail(key, dns):
    ok = check_sender(from_addr="news@example.org", relay_host="relay.example.org", dkim=key,
                      nameserver=dns.address)
    assert ok.ok and list(ok.to_frame()["status"]) == ["pass", "pass", "pass"], repr(ok)
    dns.set("example.org", "TXT", ["v=spf1 ip4:192.0.2.0/24 -all"])
    dns.set("_dmarc.example.org", "TXT", ["v=DMARC1; p=none"])
    other = DKIMKey("mnb1", "example.org", generate_key("x", "example.org",
                                                        "/tmp/mailnb-other-key.pem").private_key)
    bad = check_sender(from_addr="news@example.org", relay_host="127.0.0.1", dkim=other,
                       nameserver=dns.address)
    f = bad.to_frame().set_index("check")
    assert f.loc["SPF", "status"] == "fail" and "ip4:127.0.0.1" in f.loc["SPF", "fix"]
    assert f.loc["DKIM", "status"] == "fail" and "does not match" in f.loc["DKIM", "detail"]
    assert f.loc["DMARC", "status"] == "warn"
    dns.set("example.org", "TXT", ["v=spf1 include:_spf.example.org ~all"])
    dns.set("_spf.example.org", "TXT", ["v=spf1 ip4:127.0.0.0/8 -all"])
    inc = check_sender(from_addr="news@example.org", relay_host="127.0.0.1",
                       nameserver=dns.address).to_frame().set_index("check")
    assert inc.loc["SPF", "status"] == "pass" and inc.loc["DKIM", "status"] == "warn"
    none = check_sender(from_addr="news@nowhere.example", relay_host="127.0.0.1",
                        nameserver=dns.address).to_frame().set_index("check")
    assert none.loc["SPF", "status"] == "fail" and none.loc["DMARC", "status"] == "fail"
    assert "_dmarc.nowhere.example" in none.loc["DMARC", "fix"]


def test_strict_postfix_passes_every_message_unaltered(dovecot, tmp_path, journal, key, dns):
    """Through a real Postfix with strict settings to a loopback MX: each message arrives with the
    exact bytes mailnb sent (Postfix only prepends its Received header)."""
    from mailservers import Postfix
    from smtp_servers import Recorder, start_smtp
    mx = start_smtp("plain", recorder=Recorder())
    postfix = Postfix(dovecot, mx.port, strict=True).start()
    try:
        addrs = [f"r{i}@remote.test" for i in range(3)]
        df = people(addresses=addrs[:3])
        df["first_name"] = ["Zoë", "O'Brien \"Jr\"", "=?utf-8?q?x?="]
        c = mailnb.Campaign("strict", mailnb.Audience(df, allow_test_domains=True),
                            mailnb.Template("Grüße {{ first_name }} " + "long " * 30,
                                            text="Hallo {{ first_name }}\n" + "x" * 2000,
                                            html="<p>{{ first_name }}</p>", to_name="{{ first_name }}"),
                            from_addr="news@example.org", from_name="Ünïcode News", dkim=key)
        res = mailnb.send(c, mailnb.Relay("127.0.0.1", postfix.port, security="none"),
                          journal=journal, backup=str(tmp_path / "sent" / "{recipient}.eml"),
                          progress=None)
        assert (res["status"] == "sent").all(), res
        import time
        deadline = time.time() + 30
        while len(mx.recorder.messages) < 3 and time.time() < deadline:
            time.sleep(0.2)
        assert len(mx.recorder.messages) == 3, postfix.log()[-2000:]
        sent = {p.name[:-4]: p.read_bytes() for p in (tmp_path / "sent").iterdir()}
        for m in mx.recorder.messages:
            original = sent[m.rcpt_tos[0]]
            assert m.data.endswith(original), m.rcpt_tos[0]
            added = m.data[:-len(original)]
            assert added.startswith(b"Received:") and b"\r\n\r\n" not in added
            assert dkim.verify(m.data, dnsfunc=dns.txt_lookup)      # still verifies downstream
    finally:
        postfix.stop()
        mx.stop()


def test_hygiene_warnings_in_the_preflight_and_css_inlined():
    import pandas as pd
    df = pd.DataFrame({"email": ["a@example.com", "b@example.com"], "link": ["https://e.org/x",
                                                                           "javascript:alert(1)"]})
    t = mailnb.Template("S", html="<html><head><style>p {color: red}</style></head><body>"
                        "<img src='https://e.org/i.png'><p><a href='{{ link }}'>x</a></p>"
                        "</body></html>")
    p = t.preflight(mailnb.Audience(df))
    assert set(p["severity"]) == {"warning"}
    text = " ".join(p["error"])
    assert "only images" in text and "no alt text" in text and "javascript:alert(1)" in text
    assert list(p[p["error"].str.contains("alt text")]["row"]) == [0]      # reported once
    r = t.render({"link": "https://e.org/x"})
    assert 'style="color: red' in r.html                                 # inlined for mail readers
    assert mailnb.Template("S", html="<style>p{color:red}</style><p>x</p>", css="keep").render(
        {}).html.startswith("<style>")
    ok = mailnb.Template("S", text="hello", html="<p>Hello there, this is a proper message with "
                         "words and an <img src='https://e.org/a.png' alt='logo'> image.</p>")
    assert ok.preflight(pd.DataFrame({"email": ["a@example.com"]})).empty


def test_unsubscribe_requests_by_mail(dovecot, journal, smtp):
    from mailnb.inbound.mailbox import Mailbox
    from mailnb.inbound.unsubscribes import process_unsubscribe_mailbox
    folder = "Unsub"
    good = make_token(SECRET, "user2@example.com", "test")
    forged = make_token(b"guessed", "user3@example.com", "test")
    for token in (good, forged):
        dovecot.deliver(f"From: someone@example.com\nTo: news@example.org\n"
                        f"Subject: unsubscribe:{token}\n\nplease\n".encode(), folder)
    mb = Mailbox("127.0.0.1", dovecot.user, port=dovecot.ports["imaps"], folder=folder,
                 password=dovecot.password, cafile=dovecot.cafile)
    out = process_unsubscribe_mailbox(mb, journal, policy="global")
    assert sorted(out["result"]) == ["rejected: the unsubscribe token's signature does not match",
                                      "unsubscribed"]
    assert process_unsubscribe_mailbox(mb, journal).empty            # processed once
    res = mailnb.send(campaign(people(4)), plain(smtp), journal=journal, progress=None)
    st = dict(zip(res["address"], res["status"]))
    assert st["user2@example.com"] == "skipped" and st["user3@example.com"] == "sent"


def test_preferences_form_checks_the_sender_domain(key, dns, config_dir, monkeypatch, tmp_path):
    from mailnb import Profile, widgets
    monkeypatch.setenv("MAILNB_DNS_SERVER", dns.address)
    keyfile = tmp_path / "k.pem"
    keyfile.write_bytes(key.private_key)
    form = widgets.preferences_form(Profile(name="p", host="127.0.0.1", requires_auth=False, from_addr="news@example.org"))
    form.inputs["unsubscribe_url"].value = "http://no-token.example.org"
    assert "https" in form.checks["unsubscribe_url"].value
    form.inputs["unsubscribe_url"].value = "https://example.org/u?t={token}"
    for k, v in dict(dkim_selector="mnb1", dkim_domain="example.org",
                     dkim_key_file=str(keyfile)).items():
        form.inputs[k].value = v
    report = form.check_sender()
    assert report.ok and "SPF" in form.message.value


def test_cli_unsubscribes_from_hits(tmp_path, config_dir):
    import subprocess
    import sys

    from mailnb import Profile, SQLiteJournal
    Profile(name="u", host="smtp.example.org", requires_auth=False, journal=str(tmp_path / "j.sqlite"),
            exclusion_policy="campaign").save()
    good = make_token(SECRET, "a@example.com", "spring")
    (tmp_path / "hits.csv").write_text(f"token\n{good}\nforged.AAAAAAAAAAAAAAAAAAAAAA\n")
    env = {"PATH": "/usr/bin:/bin", "MAILNB_CONFIG_DIR": str(config_dir), "HOME": str(tmp_path),
           "MAILNB_UNSUBSCRIBE_SECRET": SECRET.decode()}
    r = subprocess.run([sys.executable, "-m", "mailnb.cli", "unsubscribes", "--profile", "u",
                        "--hits", str(tmp_path / "hits.csv")], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "2 request(s): 1 unsubscribed, 1 rejected" in r.stdout
    with SQLiteJournal(tmp_path / "j.sqlite") as j:
        assert j.unsubscribes().match("a@example.com", "spring", policy="campaign") is not None
        assert j.unsubscribes().match("a@example.com", "autumn", policy="campaign") is None


def test_list_unsubscribe_stays_a_link_for_an_internationalised_address():
    """An SMTPUTF8 message (an internationalised recipient) carries the same List-Unsubscribe as
    an ASCII one: URIs in angle brackets, folded at the comma, never RFC 2047 encoded words that
    no mail program reads as a link (RFC 2369, RFC 6532, RFC 8058)."""
    from mailnb.sending.message import build
    c = campaign(people(addresses=["jörg@exämple.de", "ann@example.org"]), name="idn")
    c.unsubscribe = Unsubscribe(url="https://example.org/u?t={token}")
    for it in c.recipients():
        data, _, _ = build(c, it)
        head = data.split(b"\r\n\r\n")[0].decode("utf-8")
        raw = head[head.index("List-Unsubscribe:"):].split("\r\nList-Unsubscribe-Post")[0]
        assert "=?" not in raw and all(len(line) <= 998 for line in raw.split("\r\n"))
        msg = email.message_from_bytes(data, policy=policy.SMTPUTF8)
        links = [u.strip(" <>") for u in str(msg["List-Unsubscribe"]).split(",")]
        assert links[0].startswith("mailto:") and links[1].startswith("https://example.org/u?t=")
        token = links[1].split("?t=")[1]
        assert verify_token(SECRET, token) == (it.address, "idn")
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
