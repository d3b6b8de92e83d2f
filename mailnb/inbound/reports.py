"""Reading what comes back: RFC 3464 delivery-status reports, RFC 5965 feedback reports
(complaints), RFC 3834 auto-replies, success reports and the free-text formats of the common mail
servers (recipients found with flufl.bounce where the report has no structure), as
:class:`Bounce` records. ``parse(raw) -> list[Bounce]`` is pure; the reason of each failure comes
from :mod:`mailnb.classify`."""
from __future__ import annotations

import email
import email.parser
import email.policy
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from email.message import Message
from typing import Any

import pandas as pd

from .classify import STATUS_RE, classify, find_command, find_reply_code, find_status, is_hard

KINDS = ("bounce", "feedback", "auto-reply", "delivered", "reply", "unmatched")
#: RFC 3464 2.3.3 actions that report a success (and RFC 3461's "deliverable" of a verify
#: request); with a 2.x.x status (RFC 3463: success) a report is never a bounce either
DELIVERED = ("delivered", "relayed", "expanded", "deliverable")


@dataclass
class Bounce:
    """One failed (or reported) recipient of one report."""

    recipient: str | None
    status: str | None
    reply_code: int | None
    diagnostic: str
    reason: str
    hard: bool
    kind: str = "bounce"
    action: str | None = None
    message_id: str | None = None
    campaign: str | None = None
    remote_mta: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_bounce(self) -> bool:
        return self.kind == "bounce"



_ADDR_RE = re.compile(r"<?([A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+)>?")
#: senders that are mail systems: RFC 5321's postmaster, the daemons of the common MTAs, and the
#: administrative addresses of list servers (Mailman's -owner/-bounces, fml's -admin)
_DAEMON = re.compile(r"^(?:mailer-daemon|post_?master|mail-daemon|mailerdaemon|mdaemon|"
                     r"bounce|bounces|noreply|no-reply|nobody|root|double-bounce|"
                     r"[\w.-]+-(?:admin|owner|bounces|request))@", re.I)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery (?:status|failure|failed|has failed|notification|problem)|"
    r"returned (?:mail|to sender)|failure notice|mail delivery|could not be delivered|"
    r"non.?deliver|nondeliver|delivery report|rejected|bounce|warning: could not|"
    r"unable to deliver|mail system error|failed|error", re.I)
#: out-of-office subjects: Outlook's "Automatic reply:" in its languages (en, de, fr, es, it, nl,
#: pt, ja) and the words vacation programs put there. A reply's "Re:" is no sign: people write those
_AUTOREPLY_SUBJECT = re.compile(
    r"out of (?:the )?office|auto(?:matic)?[ -]?(?:reply|response|antwort|matische)|autoreply|"
    r"vacation|away (?:until|from)|abwesen|absence|absent|on leave|holiday|congé|ausser haus|"
    r"réponse automatique|respuesta automática|risposta automatica|automatisch antwoord|"
    r"resposta automática|fuera de la oficina|fuori sede|afwezig|自動応答|不在", re.I)
#: filtering appliances and services in front of mail servers: a "user unknown" from them is their
#: filter's verdict on the message
_GATEWAYS = re.compile(r"mcafee|m-filter|surfcontrol|mailfoundry|mxlogic|active!?hunter", re.I)
_ORIGINAL_MARKERS = re.compile(
    r"^(?:-{2,}.*(?:original message|copy of|below this line|returned message|undelivered message|"
    r"message headers?|headers of|original mail).*|.*this is a copy of the message.*|"
    r"message headers follow\.?|"
    r"content-type: (?:message/rfc822|text/rfc822-headers).*)$", re.I | re.M)


def text_of(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if not isinstance(payload, bytes):
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:
        return payload.decode("utf-8", "replace")


def clean(value: Any) -> str:
    return re.sub(r"\s+", " ", str(value or "")).strip()


def _strip_type(value: str) -> tuple[str | None, str]:
    """``rfc822; user@x`` -> ("rfc822", "user@x"); ``smtp; 550 ...`` -> ("smtp", "550 ...")."""
    if ";" in value[:20]:
        t, _, rest = value.partition(";")
        return t.strip().lower(), rest.strip()
    return None, value.strip()


def first_address(value: str | None) -> str | None:
    if not value:
        return None
    _, v = _strip_type(value)
    m = _ADDR_RE.search(v)
    return m.group(1) if m else None


def _original_headers(msg: Message, body_text: str) -> tuple[str | None, str | None]:
    """(Message-ID, campaign) of the original message the report quotes."""
    mid = camp = None
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            inner = part.get_payload()
            inner = inner[0] if isinstance(inner, list) and inner else inner
            if isinstance(inner, Message):
                mid = mid or inner.get("Message-ID")
                camp = camp or inner.get("X-Mailnb-Campaign")
        elif ctype == "text/rfc822-headers":
            h = email.message_from_string(text_of(part))
            mid = mid or h.get("Message-ID")
            camp = camp or h.get("X-Mailnb-Campaign")
    if not mid or not camp:
        start = _ORIGINAL_MARKERS.search(body_text)
        tail = body_text[start.start():] if start else body_text
        if not mid:
            m = re.search(r"^\s*message-id:\s*(<[^>\s]+>)", tail, re.I | re.M)
            mid = m.group(1) if m else None
        if not camp:
            m = re.search(r"^\s*x-mailnb-campaign:\s*(.+)$", tail, re.I | re.M)
            camp = m.group(1).strip() if m else None
    return (clean(mid) or None), (clean(camp) or None)


def _human_text(msg: Message) -> str:
    """The readable part of a report, without the quoted original message."""
    texts: list[str] = []
    for part in msg.walk():
        if part.get_content_maintype() == "multipart":
            payload = part.get_payload()
            if isinstance(payload, str) and part is not msg:
                texts.append(payload)   # a broken boundary: read the parts as text
            continue
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "text/rfc822-headers", "message/delivery-status",
                     "message/feedback-report"):
            continue
        if ctype.startswith("text/"):
            t = text_of(part)
            if ctype == "text/html":
                from ..compose.text import html_to_text
                t = html_to_text(t)
            texts.append(t)
        if isinstance(part.get_payload(), Message):
            continue
    if not texts and not msg.is_multipart():
        raw = msg.get_payload()
        texts.append(raw if isinstance(raw, str) else "")
    text = "\n".join(texts)
    cut = _ORIGINAL_MARKERS.search(text)
    return text[:cut.start()] if cut else text


def _status_blocks(msg: Message) -> list[Message] | None:
    found = _mime_status_blocks(msg)
    if found is not None:
        return found
    # a report whose MIME structure is broken (a wrong boundary, a forwarded copy): read the
    # delivery-status fields from the text
    text = _text_of_all(msg)
    m = re.search(r"^(?:reporting-mta|final-recipient|original-recipient):", text, re.I | re.M)
    if not m or not re.search(r"^final-recipient:", text, re.I | re.M):
        return None
    region = text[m.start():]
    blocks = []
    for chunk in re.split(r"\n\s*\n", region):
        if not re.search(r"^[\w-]+:", chunk.strip(), re.M):
            break
        head = email.message_from_string(chunk.strip() + "\n")
        if not head.keys():
            break
        blocks.append(head)
        if len(blocks) > 200:
            break
    if blocks and not blocks[0].get("Final-Recipient"):
        return blocks
    return [Message(), *blocks] if blocks else None


def _split_recipients(block: Message) -> list[Message]:
    """One block per recipient, for reports that run several recipients' fields together
    without the blank line between them."""
    if len(block.get_all("Final-Recipient") or []) < 2:
        return [block]
    out: list[Message] = []
    current = Message()
    for name, value in block.items():
        key = name.lower()
        if key in ("final-recipient", "original-recipient") and current.get(name) is not None:
            out.append(current)
            current = Message()
        current[name] = value
    out.append(current)
    return out


def _mime_status_blocks(msg: Message) -> list[Message] | None:
    for part in msg.walk():
        if part.get_content_type() in ("message/delivery-status", "message/global-delivery-status"):
            blocks = part.get_payload()
            if isinstance(blocks, list) and blocks:
                return [b for b in blocks if isinstance(b, Message)]
            text = text_of(part) if not isinstance(blocks, list) else ""
            return [email.message_from_string(chunk) for chunk in re.split(r"\n\s*\n", text)
                    if chunk.strip()]
    return None


def _around(text: str, address: str, lines_after: int = 4,
            others: Iterable[str] = ()) -> str:
    """The lines of a free-text report that speak of one address: from its first mention up to
    ``lines_after`` lines on, stopping where another failed address begins."""
    lines = text.splitlines()
    others = [o.lower() for o in others if o and o.lower() != address.lower()]
    for i, line in enumerate(lines):
        if address.lower() in line.lower():
            chunk = [line]
            for nxt in lines[i + 1:i + 1 + lines_after]:
                if any(o in nxt.lower() for o in others):
                    break
                chunk.append(nxt)
            return "\n".join(chunk)
    return ""


def _session_reply(text: str, address: str) -> tuple[str, str | None] | None:
    """In a Sendmail-style transcript, the status line for ``address``
    (``554 <a@b>... Remote protocol error``) with the remote server's replies (``<<< ...``) that
    caused it, and the command they answered (``>>> MAIL From:...``); no command when no reply
    of the remote server led to the line."""
    address = address.lower()
    command: str | None = None
    replies: list[str] = []
    notes: list[str] = []
    for line in text.splitlines():
        t = line.strip()
        if re.match(r"\.*\s*while talking to ", t, re.I):
            command, replies, notes = None, [], []
        elif t.startswith(">>> "):
            command, replies = find_command(t), []
        elif t.startswith("<<< "):
            replies.append(t[4:])
        elif re.match(r"[245]\d\d[ -]\S+.*\.\.\.", t):
            # Sendmail's own status line; the replies before it were its cause
            m = re.match(r"[245]\d\d[ -]<?([^\s<>]+@[^\s<>]+?)>?\.\.\.\s", t)
            if m and m.group(1).lower() == address:
                return " ".join([t, *replies, *notes]), command if replies else None
            replies, notes = [], []
        elif t and not t.startswith("-----"):
            notes.append(t)                   # a local program's words ("mail.local: ...")
    return None


def is_auto_reply(msg: Message) -> bool:
    """An automatic answer (out of office, vacation): RFC 3834's ``Auto-Submitted: auto-replied``,
    the older ``X-Autoreply`` / ``X-Autorespond`` / ``Precedence: auto_reply`` of vacation
    programs, or Exchange's ``X-Auto-Response-Suppress`` or an out-of-office subject."""
    subject = clean(msg.get("Subject"))
    auto = (msg.get("Auto-Submitted", "") or "").lower()
    if msg.get("X-Autoreply") or msg.get("X-Autorespond") or msg.get("X-Auto-Response-Suppress") \
            and _AUTOREPLY_SUBJECT.search(subject):
        return True
    prec = (msg.get("Precedence", "") or "").lower()
    if "auto-replied" in auto or prec == "auto_reply":
        return True
    return bool(_AUTOREPLY_SUBJECT.search(subject) and not _BOUNCE_SUBJECT.search(subject))


def is_report(msg: Message) -> bool:
    """Mail from a mail system about mail (a delivery or feedback report), not from a person:
    RFC 6522's multipart/report, a daemon's address, ``X-Failed-Recipients`` (Exim) or a
    delivery-failure subject."""
    sender = first_address(str(msg.get("From", ""))) or ""
    return (msg.get_content_type() == "multipart/report" or bool(_DAEMON.match(sender))
            or bool(msg.get("X-Failed-Recipients"))
            or bool(_BOUNCE_SUBJECT.search(clean(msg.get("Subject")))))


def parse(raw: bytes | str) -> list[Bounce]:
    """Every failed (or reported) recipient in one message. A message that is no report at all
    gives an empty list; feedback, auto-replies and success reports come back with their ``kind``
    so a caller never counts them as bounces."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    raw = raw.replace(b"\r\n", b"\n")
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    subject = clean(msg.get("Subject"))
    sender = first_address(str(msg.get("From", ""))) or ""
    human = _human_text(msg)
    mid, campaign = _original_headers(msg, _text_of_all(msg))
    gateway = bool(_GATEWAYS.search(" ".join(f"{k}: {v}" for k, v in msg.items())
                                    + human[:3000]))
    report_type = str(msg.get_param("report-type") or "").lower() if msg.get_content_type() == \
        "multipart/report" else ""

    # RFC 5965 feedback (a complaint)
    feedback = next((p for p in msg.walk() if p.get_content_type() == "message/feedback-report"),
                    None)
    if feedback is not None or report_type == "feedback-report":
        fields = _feedback_fields(feedback)
        rcpts: list[str | None] = [a for a in (first_address(v) for v in
                                               fields.get("original-rcpt-to", []) +
                             fields.get("removal-recipient", [])) if a] or [_quoted_to(msg)]
        ftype = (fields.get("feedback-type") or ["abuse"])[0]
        return [Bounce(r, None, None, clean(ftype), "feedback", False, kind="feedback",
                       message_id=mid, campaign=campaign, extra={"feedback_type": ftype})
                for r in rcpts]

    if re.fullmatch(r"unsubscribe", subject, re.I) or \
            re.search(r"sent this (?:e-?mail|message) to unsubscribe", human, re.I):
        # a one-click List-Unsubscribe by mail: a request, not a failure
        return [Bounce(sender or None, None, None, "unsubscribe request", "feedback", False,
                       kind="feedback", message_id=mid, campaign=campaign,
                       extra={"feedback_type": "unsubscribe"})]

    ses = _ses_notification(_text_of_all(msg))
    if ses is not None:
        return ses

    blocks = _status_blocks(msg)
    if blocks:
        out = []
        blocks = [one for b in blocks[1:] or blocks for one in _split_recipients(b)]
        everyone = [a for a in (first_address(b.get("Final-Recipient")) for b in blocks) if a]
        for block in blocks:
            rcpt = first_address(block.get("Final-Recipient")) or \
                first_address(block.get("Original-Recipient")) or \
                first_address(block.get("X-Actual-Recipient"))
            action = clean(block.get("Action")).lower() or None
            if rcpt is None and action is None:
                continue
            status = clean(block.get("Status")) or None
            if status and not STATUS_RE.fullmatch(status):
                status = find_status(status)
            dtype, diag = _strip_type(clean(block.get("Diagnostic-Code")))
            if not diag or diag.lower() in ("", "smtp;"):
                diag = clean(_around(human, rcpt) if rcpt else "") or clean(human)[:500]
            elif rcpt:
                # the human-readable part often says more than the code (e.g. Gmail's text)
                near = clean(_around(human, rcpt))
                if near and near not in diag and len(diag) < 40:
                    diag = f"{diag} {near}"
            code = find_reply_code(diag)
            if action in DELIVERED or (status or "").startswith("2."):
                out.append(Bounce(rcpt, status, code, diag, "delivered", False, kind="delivered",
                                  action=action, message_id=mid, campaign=campaign))
                continue
            if status is None:
                status = find_status(diag)
            command = find_command(diag) or (
                (_session_reply(human, rcpt) or ("", None))[1] or
                find_command(_around(human, rcpt, 5, everyone))
                if rcpt else None)
            reason = classify(diag, status, code, action=action, diagnostic_type=dtype,
                              command=command, gateway=gateway)
            out.append(Bounce(rcpt, status, code, diag, reason, is_hard(reason, status, code),
                              action=action, message_id=mid, campaign=campaign,
                              remote_mta=_strip_type(clean(block.get("Remote-MTA")))[1] or None))
        if out:
            return out

    if is_auto_reply(msg) and not _DAEMON.match(sender) and \
            not _BOUNCE_SUBJECT.search(subject) and not msg.get("X-Failed-Recipients"):
        return [Bounce(sender or None, None, None, subject, "vacation", False, kind="auto-reply",
                       message_id=mid, campaign=campaign)]

    # a free-text report: who failed, and what the server said about each
    recipients = _free_text_recipients(msg, human, sender)
    if not recipients:
        return []
    out = []
    for rcpt in recipients:
        session = _session_reply(human, rcpt)
        diag, command = session if session else \
            (clean(_around(human, rcpt, 12, recipients)) or clean(human)[:800], None)
        status = find_status(diag) or find_status(human)
        code = find_reply_code(diag) or find_reply_code(human)
        # the lines about the address, unless they are too short to say anything or the
        # server's answer (its reply code) stands elsewhere in the report
        own_words = len(diag) > 30 and (find_reply_code(diag) or not find_reply_code(human))
        reason = classify(diag if own_words else clean(human), status, code,
                          command=command, gateway=gateway)
        if reason in ("onhold", "undefined"):
            reason = classify(clean(human) + " " + subject, status, code, gateway=gateway)
        out.append(Bounce(rcpt, status, code, diag, reason, is_hard(reason, status, code),
                          message_id=mid, campaign=campaign))
    return out


def _text_of_all(msg: Message) -> str:
    out = []
    for part in msg.walk():
        if part.get_content_maintype() == "multipart":
            continue
        if part.get_content_type() == "message/rfc822":
            inner = part.get_payload()
            inner = inner[0] if isinstance(inner, list) and inner else inner
            if isinstance(inner, Message):
                out.append("----- original message -----\n" + "\n".join(
                    f"{k}: {v}" for k, v in inner.items()))
            continue
        out.append(text_of(part))
    return "\n".join(out)


def _ses_notification(text: str) -> list[Bounce] | None:
    """Amazon SES notifications (bounce, complaint, delivery) forwarded as JSON."""
    import json
    start = text.find('{"notificationType"')
    if start < 0 and '\\"notificationType\\"' in text:
        text = text.replace('\\"', '"')     # wrapped in an SNS notification as a JSON string
        start = text.find('{"notificationType"')
    if start < 0:
        return None
    try:
        data, _ = json.JSONDecoder(strict=False).raw_decode(text[start:])
    except ValueError:
        # wrapped lines or a truncated copy: read what is needed with patterns
        chunk = re.sub(r"\s*\n\s*", "", text[start:start + 20000])
        try:
            data, _ = json.JSONDecoder(strict=False).raw_decode(chunk)
        except ValueError:
            kind = re.search(r'"notificationType"\s*:\s*"(\w+)"', chunk)
            addrs = re.findall(r'"emailAddress"\s*:\s*"([^"]+)"', chunk)
            if not kind or not addrs:
                return None
            key = {"Complaint": "complaint", "Bounce": "bounce"}.get(kind.group(1), "other")
            data = {"notificationType": kind.group(1),
                    key: {"complainedRecipients" if key == "complaint" else "bouncedRecipients":
                          [{"emailAddress": a} for a in addrs]}}
    kind = data.get("notificationType")
    mail = data.get("mail", {})
    headers = {h.get("name", "").lower(): h.get("value") for h in mail.get("headers", [])}
    mid = headers.get("message-id")
    camp = headers.get("x-mailnb-campaign")
    if kind == "Complaint":
        return [Bounce(r.get("emailAddress"), None, None,
                       data["complaint"].get("complaintFeedbackType", "abuse"), "feedback", False,
                       kind="feedback", message_id=mid, campaign=camp)
                for r in data.get("complaint", {}).get("complainedRecipients", [])]
    if kind == "Delivery":
        return [Bounce(r, None, 250, data.get("delivery", {}).get("smtpResponse", ""),
                       "delivered", False, kind="delivered", message_id=mid, campaign=camp)
                for r in data.get("delivery", {}).get("recipients", [])]
    if kind == "Bounce":
        out = []
        b = data.get("bounce", {})
        for r in b.get("bouncedRecipients", []):
            diag = r.get("diagnosticCode", "") or b.get("bounceSubType", "")
            status = r.get("status") or find_status(diag)
            code = find_reply_code(diag)
            reason = classify(diag, status, code)
            if b.get("bounceType") == "Permanent" and b.get("bounceSubType") == "Suppressed":
                reason = "userunknown" if reason in ("onhold", "undefined") else reason
            out.append(Bounce(r.get("emailAddress"), status, code, diag, reason,
                              is_hard(reason, status, code), message_id=mid, campaign=camp))
        return out
    return None


def _feedback_fields(part: Message | None) -> dict[str, list[str]]:
    if part is None:
        return {}
    payload = part.get_payload()
    text = ""
    if isinstance(payload, list):
        for block in payload:
            if isinstance(block, Message):
                text += "\n".join(f"{k}: {v}" for k, v in block.items()) + "\n"
    else:
        text = text_of(part)
    fields: dict[str, list[str]] = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep and k.strip() and " " not in k.strip():
            fields.setdefault(k.strip().lower(), []).append(v.strip())
    return fields


def _quoted_to(msg: Message) -> str | None:
    for part in msg.walk():
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
            inner = part.get_payload()
            inner = inner[0] if isinstance(inner, list) and inner else inner
            if isinstance(inner, Message):
                return first_address(inner.get("To"))
            if isinstance(inner, str):
                return first_address(email.message_from_string(inner).get("To"))
    return None


def _free_text_recipients(msg: Message, human: str, sender: str) -> list[str]:
    found: list[str] = []
    failed = msg.get_all("X-Failed-Recipients") or []
    for value in failed:
        for a in _ADDR_RE.findall(str(value)):
            if a.lower() not in (f.lower() for f in found):
                found.append(a)
    if found:
        return found
    own = {sender.lower(), (first_address(str(msg.get("To", ""))) or "").lower()}
    # the envelope sender in a session transcript ("MAIL FROM:<...>") is not a recipient
    own |= {a.lower() for a in re.findall(r"\bfrom:\s*<([^<>\s]+@[^<>\s]+)>", human, re.I)}
    # nor is a help desk to write to, or a message id or sender in headers quoted in the text
    noise = {a.lower() for a in re.findall(
        r"(?:\bcontact\s+(?:\w+\s+){0,3}|^[>\s]*(?:message-id|in-reply-to|references|"
        r"return-path|reply-to|sender):\s*|^[>\s]*from:(?:[^<\n]*<|\s*))"
        r"<?([\w.+=-]+@[\w-]+(?:\.[\w-]+)+)", human, re.I | re.M)}
    try:
        import flufl.bounce
        temporary, permanent = flufl.bounce.all_failures(msg)
        for a in sorted(permanent | temporary):
            addr = a.decode("utf-8", "replace") if isinstance(a, bytes) else str(a)
            if _ADDR_RE.fullmatch(addr) and not _DAEMON.match(addr) and addr.lower() not in noise:
                found.append(addr)
    except Exception:  # a detector that trips over one odd message must not lose the rest
        pass
    if found:
        order = {a.lower(): human.lower().find(a.lower()) for a in found}
        return sorted(found, key=lambda a: (order[a.lower()] < 0, order[a.lower()]))
    quoted = (_quoted_to(msg) or "").lower()
    # an address the text names as the one that failed counts even if it looks like a role
    # account (postmaster@ can bounce too)
    named = {a.lower() for a in re.findall(
        r"(?:error delivering your (?:mail|message) to|could not be delivered to|"
        r"failed to deliver to)\s*:?\s*<?([\w.+=-]+@[\w-]+(?:\.[\w-]+)+)", human, re.I)}
    for a in _ADDR_RE.findall(human):
        if a.lower() in (f.lower() for f in found):
            continue
        if a.lower() in noise and a.lower() not in named:
            continue
        if a.lower() in named or a.lower() == quoted or not (a.lower() in own or _DAEMON.match(a)):
            found.append(a)
    if not found and quoted and _BOUNCE_SUBJECT.search(str(msg.get("Subject", ""))):
        found.append(_quoted_to(msg) or "")
    return found[:20]


def parse_many(messages: Iterable[bytes]) -> pd.DataFrame:
    rows = []
    for raw in messages:
        for b in parse(raw):
            rows.append(asdict(b))
    return pd.DataFrame(rows)


# -- VERP: the bounce address names the message ---------------------------------------------------
#: ``local+<the Message-ID's local part>@domain`` (``Campaign.envelope_from`` with ``verp=True``)
_VERP = re.compile(r"\+([0-9a-f]{6,24}\.[0-9a-f]{16})@", re.I)
#: where the address a report was delivered to shows (RFC 9228 Delivered-To, Postfix, Exim)
_ENVELOPE_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")


def verp_token(raw: bytes) -> str | None:
    """The message token of a VERP bounce address the report was delivered to, if any."""
    head = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
    for name in _ENVELOPE_HEADERS:
        for value in head.get_all(name, []):
            if (m := _VERP.search(str(value))):
                return m.group(1).lower()
    return None


def with_verp(found: list[Bounce], match: Mapping[str, Any] | None) -> list[Bounce]:
    """Fill in what the report's text did not say from the message its VERP address names; a
    report whose text names no recipient at all still counts for that message's recipient."""
    if match is None:
        return found
    out = [replace(b, recipient=b.recipient or match["address"],
                   message_id=b.message_id or match["message_id"],
                   campaign=b.campaign or match["campaign"]) if b.kind == "bounce" else b
           for b in found]
    if not any(b.recipient for b in out):
        out = [b for b in out if b.recipient] + [Bounce(
            match["address"], None, None, "a report to this message's VERP address; its text "
            "names no recipient", "undefined", False, message_id=match["message_id"],
            campaign=match["campaign"])]
    return out

