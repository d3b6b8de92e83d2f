"""Messages: one standards-clean MIME message per recipient, as bytes ready for SMTP.

Built with the standard library's ``EmailMessage`` (CRLF line ends, RFC 2047 encoded words where a
header needs them, quoted-printable or base64 bodies where lines are long or not ASCII). The bytes parse
back under ``email.policy.strict`` with the same headers and bodies; the tests hold it to that.
"""
from __future__ import annotations

import mimetypes
import os
import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from email import policy as email_policy
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, localtime

from .errors import TemplateError
from .templates import Rendered

#: headers mailnb sets itself; a custom header cannot replace them
RESERVED_HEADERS = {"from", "to", "subject", "date", "message-id", "reply-to", "mime-version",
                    "content-type", "content-transfer-encoding", "cc", "bcc"}
CAMPAIGN_HEADER = "X-Mailnb-Campaign"

_SMTP = email_policy.SMTP
_SMTPUTF8 = email_policy.SMTPUTF8


def make_message_id(domain: str) -> str:
    """A unique Message-ID on the sender's domain: ``<time.random@domain>``."""
    return f"<{time.time_ns():x}.{uuid.uuid4().hex[:16]}@{domain}>"


def domain_of(address: str) -> str:
    return address.rpartition("@")[2] or "localhost"


def _set_text(msg: EmailMessage, name: str, value: str) -> None:
    """Set an unstructured header. Text that looks like an RFC 2047 encoded word (``=?...?=``) is
    itself encoded, so readers show the characters the row had instead of decoding them."""
    if "=?" in value:
        msg.set_raw(name, Header(value, "utf-8", header_name=name).encode(linesep="\r\n"))
    else:
        msg[name] = value


def _set_address(msg: EmailMessage, name: str, address: Address) -> None:
    # The stdlib folds long non-ASCII display names wrongly (it can insert a space between
    # characters outside the BMP), and it would decode a literal "=?...?=": encode those names here.
    display = address.display_name
    if "=?" in display or (not display.isascii() and not msg.policy.utf8):
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


def build_message(rendered: Rendered, *, from_addr: str, to_addr: str,
                  from_name: str | None = None, to_name: str | None = None,
                  reply_to: str | None = None, message_id: str | None = None,
                  date: float | None = None, headers: Mapping[str, str] | None = None,
                  campaign: str | None = None, smtputf8: bool = False) -> tuple[bytes, str]:
    """Build the message for one recipient; return ``(bytes, message_id)``.

    Values from the rendered template win over the arguments (``from_name``, ``reply_to``,
    ``to_name``), so a template can personalise them per row.
    """
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
