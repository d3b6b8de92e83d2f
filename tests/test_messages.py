"""Built messages parse back under email.policy.strict with the same headers and bodies, whatever the
merge values are."""
from email import policy
from email.parser import BytesParser

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailnb import Template, TemplateError, build_message
from mailnb.compose.messages import make_message_id

strict = BytesParser(policy=policy.strict)


def parse(raw: bytes):
    return strict.parsebytes(raw)


def body(msg, kind):
    part = msg.get_body((kind,))
    return None if part is None else norm(part.get_content())


def display_name(raw: bytes, header: str) -> str:
    """The display name by RFC 2047's own rules: whitespace between two encoded words is dropped.
    (The strict parser's address phrase keeps it, a stdlib quirk; decode_header follows the RFC.)"""
    import email
    from email.header import decode_header, make_header
    from email.utils import parseaddr
    value = email.message_from_bytes(raw)[header]
    name, _ = parseaddr(str(value).replace("\r\n", ""))
    return str(make_header(decode_header(name)))


def norm(text):
    """Line ends are the transport's business (CRLF on the wire, bare CR is not allowed in SMTP), and
    the MIME builder ends every body with one: compare content, not line-end bytes."""
    return text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")


def test_round_trip_alternative_with_attachments(tmp_path):
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(bytes(range(256)) * 10)
    notes = tmp_path / "notes.txt"
    notes.write_text("plain notes ü\n")
    t = Template("Grüße, {{ name }} — ready?", text="Hallo {{ name }}\n" + "long " * 100,
                 html="<p>Hallo <i>{{ name }}</i></p>", to_name="{{ name }}, Jr.",
                 attachment_column="files")
    r = t.render({"name": "Zoë O'Brien", "files": f"{pdf};{notes}"})
    raw, mid = build_message(r, from_addr="news@example.org", from_name="Study Team (Ü)",
                             to_addr="zoe@example.com", reply_to="help@example.org",
                             headers={"X-Study": "wave-2"}, campaign="spring")
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    m = parse(raw)
    assert m["Subject"] == "Grüße, Zoë O'Brien — ready?"
    assert m["To"].addresses[0].display_name == "Zoë O'Brien, Jr."
    assert m["To"].addresses[0].addr_spec == "zoe@example.com"
    assert m["From"].addresses[0].display_name == "Study Team (Ü)"
    assert m["Reply-To"] == "help@example.org"
    assert m["Message-ID"] == mid and mid.endswith("@example.org>")
    assert m["X-Study"] == "wave-2" and m["X-Mailnb-Campaign"] == "spring"
    assert m["Date"] is not None
    assert m.get_content_type() == "multipart/mixed"
    assert body(m, "plain") == norm(r.text)
    assert body(m, "html") == norm(r.html)
    files = {a.get_filename(): a.get_content() for a in m.iter_attachments()}
    assert files["report.pdf"] == pdf.read_bytes()
    assert norm(files["notes.txt"]) == "plain notes ü"
    assert not m.defects


def test_text_only_stays_text_plain():
    r = Template("S", text="just text").render({})
    m = parse(build_message(r, from_addr="a@example.org", to_addr="b@example.com")[0])
    assert m.get_content_type() == "text/plain" and body(m, "plain") == "just text"


def test_smtputf8_address():
    r = Template("S", text="x").render({})
    raw, _ = build_message(r, from_addr="a@example.org", to_addr="jörg@bücher.de", smtputf8=True)
    # SMTPUTF8 headers are raw UTF-8 (RFC 6532); the stdlib's bytes parser does not decode them
    from email.parser import Parser
    m = Parser(policy=policy.strict.clone(utf8=True)).parsestr(raw.decode("utf-8"))
    assert m["To"].addresses[0].addr_spec == "jörg@bücher.de"


def test_reserved_header_refused():
    r = Template("S", text="x").render({})
    with pytest.raises(TemplateError, match="Bcc"):
        build_message(r, from_addr="a@example.org", to_addr="b@example.com", headers={"Bcc": "x"})


def test_message_ids_unique():
    ids = {make_message_id("example.org") for _ in range(10_000)}
    assert len(ids) == 10_000


HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type",
           "Content-Transfer-Encoding", "X-Mailnb-Campaign")
TEMPLATE = Template("Re: {{ v }}", text="A {{ v }} B", html="<p>{{ v }}</p>", to_name="{{ v }}")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.sampled_from(list("\"'<>&;:,@()\\ \r\n\tBcc=?ü€😀")), max_size=80),
    st.just("x" * 5000), st.just("<script>alert(1)</script>"),
    st.just("=?utf-8?q?Bcc:_x@evil.test?=")))
def test_any_merge_value_gives_a_clean_message_or_a_clear_refusal(value):
    try:
        r = TEMPLATE.render({"v": value}, row_id=0)
    except TemplateError as err:
        # the only reasons to refuse: a control character or an empty subject can't happen here
        assert "control character" in str(err)
        return
    raw, _ = build_message(r, from_addr="news@example.org", to_addr="x@example.com",
                           campaign="c")
    m = parse(raw)
    assert not m.defects
    names = [k for k in m.keys()]
    assert sorted(set(names)) == sorted(set(HEADERS) - {"Content-Transfer-Encoding"}) or \
        set(names) <= set(HEADERS)
    assert len(names) == len(set(names))                  # no header appears twice
    assert m["Subject"] == r.subject
    assert display_name(raw, "To") == (r.to_name or "")
    assert body(m, "plain") == norm(r.text)
    assert body(m, "html") == norm(r.html)
    assert "<script>" not in r.html


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200), st.text(max_size=60), st.booleans())
def test_direct_builder_parses_like_the_stdlib_one(value, name, with_html):
    """The direct builder and EmailMessage give the same message once parsed."""
    from mailnb.compose.messages import _build_stdlib
    t = Template("S {{ v }}", text="T {{ v }}", html="<p>{{ v }}</p>" if with_html else None,
                 to_name="{{ n }}")
    try:
        r = t.render({"v": value, "n": name})
    except TemplateError:
        return
    kw = dict(from_addr="news@example.org", to_addr="x@example.com", from_name="Nëws",
              reply_to="help@example.org", message_id="<1@example.org>", date=1.7e9,
              campaign="c", headers={"X-Tag": "t"})
    fast, slow = parse(build_message(r, **kw)[0]), parse(_build_stdlib(r, **kw)[0])
    for h in ("Subject", "From", "Reply-To", "Date", "Message-ID", "X-Mailnb-Campaign", "X-Tag"):
        assert str(fast[h]) == str(slow[h]), h
    assert fast.get_content_type() == slow.get_content_type()
    assert body(fast, "plain") == body(slow, "plain")
    assert body(fast, "html") == body(slow, "html")
    assert not fast.defects
