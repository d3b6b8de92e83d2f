"""Messages: one standards-clean MIME message per recipient, as bytes ready for SMTP.

CRLF line ends, RFC 2047 encoded words where a header needs them, 7bit bodies where they are plain
ASCII with short lines and quoted-printable otherwise, base64 attachments. The bytes parse back under
``email.policy.strict`` with the same headers and bodies; the tests hold it to that.

Two builders stand behind ``build_message``: a direct one that writes the MIME text itself (the
standard library's ``EmailMessage`` builds about 1,500 messages a second, which was the sender's
first wall), and ``EmailMessage`` for the rare internationalised (SMTPUTF8) address, whose raw UTF-8
headers it handles. Both give the same parsed result.
"""
from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import itertools
import mimetypes
import os
import re
import time
import unicodedata
import urllib.parse
import uuid
from collections.abc import Mapping
from datetime import datetime
from email import policy as email_policy
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formatdate, localtime
from typing import Any, cast

from ..errors import TemplateError
from .rendered import Rendered

#: headers mailnb sets itself; a custom header cannot replace them
RESERVED_HEADERS = {"from", "to", "subject", "date", "message-id", "reply-to", "mime-version",
                    "content-type", "content-transfer-encoding", "cc", "bcc"}
CAMPAIGN_HEADER = "X-Mailnb-Campaign"

_SMTP = email_policy.SMTP
#: headers set raw (already folded) are written as they are: the stdlib would turn a line it
#: cannot fold (a long List-Unsubscribe URI) into RFC 2047 encoded words, which no mail program
#: reads as a link (RFC 2369, RFC 8058)
_SMTPUTF8 = email_policy.SMTPUTF8.clone(refold_source="none")


def make_message_id(domain: str) -> str:
    """A unique Message-ID on the sender's domain: ``<time.random@domain>``."""
    return f"<{time.time_ns():x}.{uuid.uuid4().hex[:16]}@{domain}>"


def domain_of(address: str) -> str:
    return address.rpartition("@")[2] or "localhost"


@functools.lru_cache(maxsize=64)        # one campaign asks once a message
def list_id(campaign: str, from_addr: str) -> str:
    """The ``List-Id`` of a campaign (RFC 2919): the campaign name as the description and
    ``<label.domain>``, the label made of the name's letters and digits, the namespace the From
    domain (which the sender controls, as RFC 2919 section 3 asks)."""
    ascii_name = unicodedata.normalize("NFKD", campaign).encode("ascii", "ignore").decode()
    label = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:60].strip("-")
    label = label or "campaign-" + hashlib.sha256(campaign.encode()).hexdigest()[:10]
    domain = domain_of(from_addr).lower()
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        domain = "invalid"
    ident = f"<{label}.{domain}>"
    if ascii_name == campaign and re.fullmatch(r"[ -~]+", campaign):
        quoted = campaign.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{quoted}" {ident}'
    return ident


def _set_text(msg: EmailMessage, name: str, value: str) -> None:
    """Set an unstructured header. Text that looks like an RFC 2047 encoded word (``=?...?=``) is
    itself encoded, so readers show the characters the row had instead of decoding them. ASCII
    text is folded at its spaces as the ASCII messages' headers are (:func:`_unstructured`), so
    a URI in List-Unsubscribe stays a URI in every message."""
    if "=?" in value:
        msg.set_raw(name, Header(value, "utf-8", header_name=name).encode(linesep="\r\n"))
    elif value.isascii():
        msg.set_raw(name, _unstructured(name, value)[len(name) + 2:])
    else:
        msg[name] = value


def _set_address(msg: EmailMessage, name: str, address: Address) -> None:
    # The stdlib folds long non-ASCII display names wrongly (it can insert a space between
    # characters outside the BMP), and it would decode a literal "=?...?=": encode those names here.
    display = address.display_name
    if "=?" in display or (not display.isascii() and not getattr(msg.policy, "utf8", False)):
        encoded = Header(display, "utf-8", header_name=name).encode(linesep="\r\n")
        msg.set_raw(name, f"{encoded} <{address.addr_spec}>")
    else:
        msg[name] = address


def _address(name: str | None, addr: str, field: str) -> Address:
    local, _, domain = addr.rpartition("@")
    if not local or not domain:
        raise TemplateError(f"{field}: {addr!r} is not an email address (user@domain)", field=field)
    try:
        return Address(display_name=name or "", username=local, domain=domain)
    except (ValueError, IndexError) as err:
        raise TemplateError(f"{field}: cannot use {name!r} <{addr}>: {err}", field=field) from None


def _build_stdlib(rendered: Rendered, *, from_addr: str, to_addr: str,
                  from_name: str | None = None, to_name: str | None = None,
                  reply_to: str | None = None, message_id: str | None = None,
                  date: float | None = None, headers: Mapping[str, str] | None = None,
                  campaign: str | None = None, smtputf8: bool = False) -> tuple[bytes, str]:
    msg = EmailMessage(policy=_SMTPUTF8 if smtputf8 else _SMTP)
    _set_address(msg, "From", _address(rendered.from_name or from_name, from_addr, "From"))
    _set_address(msg, "To", _address(rendered.to_name or to_name, to_addr, "To"))
    _set_text(msg, "Subject", rendered.subject)
    msg["Date"] = format_datetime(localtime(None if date is None else datetime.fromtimestamp(date)))
    mid = message_id or make_message_id(domain_of(from_addr))
    msg["Message-ID"] = mid
    reply = rendered.reply_to or reply_to
    if reply:
        msg["Reply-To"] = _address(None, reply, "Reply-To")
    if campaign:
        msg[CAMPAIGN_HEADER] = campaign
    for name, value in {**(headers or {}), **rendered.headers}.items():
        if name.lower() in RESERVED_HEADERS:
            raise TemplateError(f"custom header {name!r} would replace one mailnb sets itself; "
                                f"use the matching option instead", field=f"header:{name}")
        _set_text(msg, name, value)

    if rendered.text is not None:
        msg.set_content(rendered.text)
        if rendered.html is not None:
            msg.add_alternative(rendered.html, subtype="html")
    elif rendered.html is not None:
        msg.set_content(rendered.html, subtype="html")
    if rendered.html is not None and rendered.inline:
        parts = cast(list[EmailMessage], msg.get_payload())
        html_part = parts[1] if msg.is_multipart() else msg
        for image in rendered.inline:
            html_part.add_related(image.content, maintype="image", subtype=image.subtype,
                                  cid=f"<{image.cid}>", disposition="inline",
                                  filename=image.filename)
    for path in rendered.attachments:
        ctype, encoding = mimetypes.guess_type(path.name)
        if ctype is None or encoding is not None:
            ctype = "application/octet-stream"
        maintype, subtype = ctype.split("/", 1)
        data = path.read_bytes()
        if maintype == "text":
            msg.add_attachment(data.decode("utf-8", "replace"), subtype=subtype,
                               filename=os.path.basename(path))
        else:
            msg.add_attachment(data, maintype=maintype, subtype=subtype,
                               filename=os.path.basename(path))
    return msg.as_bytes(), mid


# -- the direct builder ---------------------------------------------------------------------------
_ATEXT = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_WORD_BYTES = 42          # utf-8 bytes per encoded word: 4 + 56 base64 chars + 12 = 72 <= 75


def _encoded_words(text: str) -> list[str]:
    """RFC 2047 ``=?utf-8?b?...?=`` words, each <= 75 characters, never splitting a character."""
    out: list[str] = []
    chunk: list[str] = []
    size = 0
    for ch in text:
        n = len(ch.encode("utf-8"))
        if size + n > _WORD_BYTES and chunk:
            out.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(ch)
        size += n
    if chunk:
        out.append("".join(chunk))
    return ["=?utf-8?b?" + base64.b64encode(w.encode("utf-8")).decode("ascii") + "?="
            for w in out]


def _unstructured(name: str, value: str) -> str:
    """``Name: value`` for a text header, folded at spaces or encoded, lines <= 78 where possible
    and never over 998."""
    if _CONTROL.search(value):
        raise TemplateError(f"header {name}: {value[:60]!r} contains a line break or control "
                            "character", field=f"header:{name}")
    words = value.split(" ")
    if value.isascii() and "=?" not in value and all(len(w) < 900 for w in words) and \
            value == value.strip() and "  " not in value:
        line, lines = f"{name}:", []
        for w in words:
            if len(line) + 1 + len(w) > 78 and line != f"{name}:":
                lines.append(line)
                line = ""
            line += " " + w
        lines.append(line)
        return "\r\n".join(lines)
    return f"{name}: " + "\r\n ".join(_encoded_words(value))


def _mailbox(name: str, display: str | None, addr: str) -> str:
    local, _, domain = addr.rpartition("@")
    if not local or not domain or _CONTROL.search(addr) or " " in addr or "<" in addr:
        raise TemplateError(f"{name}: {addr!r} is not an email address (user@domain)", field=name)
    if not display:
        return f"{name}: {addr}"
    if _CONTROL.search(display):
        raise TemplateError(f"{name}: the display name {display[:60]!r} contains a line break or "
                            "control character", field=name)
    if display.isascii() and "=?" not in display and len(display) < 900:
        if _ATEXT.match(display) and display == display.strip() and "  " not in display:
            phrase = display
        else:
            phrase = '"' + display.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"{name}: {phrase} <{addr}>"
    return f"{name}: " + "\r\n ".join(_encoded_words(display)) + f" <{addr}>"


def _text_part(text: str, subtype: str) -> bytes:
    body = text.replace("\r\n", "\n").replace("\r", "\n")
    if not body.endswith("\n"):
        body += "\n"
    raw = body.encode("utf-8")
    if raw.isascii() and max(map(len, body.split("\n"))) <= 78 and not body.startswith("From "):
        cte, data = "7bit", raw
    else:
        cte, data = "quoted-printable", binascii.b2a_qp(raw, istext=True)
    charset = "us-ascii" if raw.isascii() else "utf-8"
    return (f"Content-Type: text/{subtype}; charset=\"{charset}\"\r\n"
            f"Content-Transfer-Encoding: {cte}\r\n\r\n").encode("ascii") + \
        data.replace(b"\n", b"\r\n")


def _attachment(path: Any) -> bytes:
    ctype, encoding = mimetypes.guess_type(path.name)
    if ctype is None or encoding is not None:
        ctype = "application/octet-stream"
    data = path.read_bytes()
    params = ""
    if ctype.startswith("text/"):
        try:
            data.decode("utf-8")
            params = '; charset="utf-8"'
        except UnicodeDecodeError:
            ctype = "application/octet-stream"
    filename = os.path.basename(path)
    if filename.isascii() and '"' not in filename and "\\" not in filename:
        disp = f'attachment; filename="{filename}"'
    else:
        disp = "attachment; filename*=utf-8''" + urllib.parse.quote(filename, safe="")
    return (f"Content-Type: {ctype}{params}\r\nContent-Transfer-Encoding: base64\r\n"
            f"Content-Disposition: {disp}\r\n\r\n").encode("ascii") + \
        base64.encodebytes(data).replace(b"\n", b"\r\n")


_BOUNDARY_PREFIX = uuid.uuid4().hex[:12]
_BOUNDARY_COUNT = itertools.count()
_DATE_CACHE: list[Any] = [None, ""]


def _date(when: float | None) -> str:
    """RFC 5322 date in local time; the current second's string is made once."""
    if when is not None:
        return formatdate(when, localtime=True)
    now = int(time.time())
    if _DATE_CACHE[0] != now:
        _DATE_CACHE[:] = [now, formatdate(now, localtime=True)]
    return str(_DATE_CACHE[1])


def _multipart(subtype: str, parts: list[bytes]) -> bytes:
    while True:
        # unique in this process (prefix random per process, counter per part); checked against
        # the content anyway, since a 7bit text part could quote anything
        boundary = f"=_mailnb_{_BOUNDARY_PREFIX}_{next(_BOUNDARY_COUNT)}"
        b = boundary.encode("ascii")
        if not any(b in p for p in parts):
            break
    out = [f"Content-Type: multipart/{subtype}; boundary=\"{boundary}\"\r\n\r\n".encode()]
    for p in parts:
        out.append(b"--" + b + b"\r\n" + p + (b"" if p.endswith(b"\r\n") else b"\r\n"))
    out.append(b"--" + b + b"--\r\n")
    return b"".join(out)


def build_message(rendered: Rendered, *, from_addr: str, to_addr: str,
                  from_name: str | None = None, to_name: str | None = None,
                  reply_to: str | None = None, message_id: str | None = None,
                  date: float | None = None, headers: Mapping[str, str] | None = None,
                  campaign: str | None = None, smtputf8: bool = False) -> tuple[bytes, str]:
    """Build the message for one recipient; return ``(bytes, message_id)``.

    Values from the rendered template win over the arguments (``from_name``, ``reply_to``,
    ``to_name``), so a template can personalise them per row.
    """
    if smtputf8 or not (from_addr.isascii() and to_addr.isascii()):
        return _build_stdlib(rendered, from_addr=from_addr, to_addr=to_addr, from_name=from_name,
                             to_name=to_name, reply_to=reply_to, message_id=message_id, date=date,
                             headers=headers, campaign=campaign, smtputf8=True)
    mid = message_id or make_message_id(domain_of(from_addr))
    lines = [_mailbox("From", rendered.from_name or from_name, from_addr),
             _mailbox("To", rendered.to_name or to_name, to_addr),
             _unstructured("Subject", rendered.subject),
             "Date: " + _date(date),
             f"Message-ID: {mid}"]
    reply = rendered.reply_to or reply_to
    if reply:
        lines.append(_mailbox("Reply-To", None, reply))
    if campaign:
        lines.append(_unstructured(CAMPAIGN_HEADER, campaign))
    for name, value in {**(headers or {}), **rendered.headers}.items():
        if name.lower() in RESERVED_HEADERS:
            raise TemplateError(f"custom header {name!r} would replace one mailnb sets itself; "
                                f"use the matching option instead", field=f"header:{name}")
        if not re.fullmatch(r"[!-9;-~]+", name):
            raise TemplateError(f"{name!r} is not a valid header name", field=f"header:{name}")
        lines.append(_unstructured(name, value))
    lines.append("MIME-Version: 1.0")
    head = "\r\n".join(lines).encode("ascii") + b"\r\n"

    html = None
    if rendered.html is not None:
        html = _text_part(rendered.html, "html")
        if rendered.inline:         # the HTML and the images it shows through cid: (RFC 2387)
            html = _multipart("related; type=\"text/html\"",
                              [html, *(image.part for image in rendered.inline)])
    if rendered.text is not None and html is not None:
        body = _multipart("alternative", [_text_part(rendered.text, "plain"), html])
    elif rendered.text is not None:
        body = _text_part(rendered.text, "plain")
    else:
        body = html or _text_part("", "html")
    if rendered.attachments:
        body = _multipart("mixed", [body, *(_attachment(p) for p in rendered.attachments)])
    return head + body, mid
