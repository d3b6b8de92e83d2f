"""Why a delivery failed: the reason named from the server's words, the enhanced status code
(RFC 3463), the SMTP command that was refused and the reply code (RFC 5321), using the rules in
:mod:`mailnb.bounce_rules`."""
from __future__ import annotations

import re

from .bounce_rules import (CHECKED_AFTER_DATA, NO_SUCH_USER, ORANGE_CODE, ORANGE_REASONS, PATTERNS,
                           STATUS_REASONS)

#: every reason a bounce can have (the issue's list and the few finer ones real servers give)
REASONS = ("userunknown", "hostunknown", "hasmoved", "mailboxfull", "expired", "filtered",
           "blocked", "rejected", "spamdetected", "suspend", "policyviolation", "networkerror",
           "systemerror", "toomanyconn", "mesgtoobig", "exceedlimit", "securityerror",
           "norelaying", "requireptr", "authfailure", "badreputation", "virusdetected",
           "syntaxerror", "notaccept", "notcompliantrfc", "contenterror", "speeding",
           "systemfull", "mailererror", "failedstarttls", "onhold", "undefined")
HARD = {"userunknown", "hostunknown", "hasmoved"}

_COMPILED = [(reason, re.compile("|".join(f"(?:{p})" for p in pats))) for reason, pats in PATTERNS]
STATUS_RE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_REPLY_RE = re.compile(r"(?<![\w.:/\-])([245][0-5]\d)(?=[\s\-]|$)", re.M)


def find_status(text: str) -> str | None:
    """The enhanced status code in a server's text, preferring one that follows a reply code
    (``550 5.7.1``: the remote server's own) over a wrapper's."""
    text = text or ""
    found = [m.group(1) for m in
             re.finditer(r"\b[245]\d\d[ -]'?([245]\.\d{1,3}\.\d{1,3})(?![\d.])", text)] or \
        [".".join(m.groups()) for m in STATUS_RE.finditer(text)]
    # in a session transcript the failure comes after the successes ("250 2.1.5 Ok")
    return next((c for c in found if c[0] != "2"), found[0] if found else None)


def find_reply_code(text: str) -> int | None:
    found = [int(m.group(1)) for m in _REPLY_RE.finditer(text or "")]
    return next((c for c in found if c >= 400), found[0] if found else None)


_VERB = r"(rcpt(?:[ _]to)?|mail(?:[ _]from)?|end of data|data|text|helo|ehlo|initial connection)"
_COMMANDS = [
    re.compile(rf"in reply to {_VERB}", re.I),                        # Postfix
    re.compile(rf"after {_VERB}\b", re.I),                            # Exim, GMX
    re.compile(rf"did not like our {_VERB}", re.I),                   # DragonFly
    re.compile(rf"for {_VERB} command", re.I),                        # 1&1
    re.compile(rf">>> {_VERB}", re.I),                                # Sendmail transcript
    re.compile(rf"most progress was {_VERB}", re.I),
    re.compile(rf"smtp:{_VERB}\b", re.I),                             # "SMTP:RCPT host ..."
    re.compile(rf"\[{_VERB}\]", re.I),                                # Yahoo's "[RCPT_TO]"
    re.compile(r"does not like (recipient)", re.I),                   # qmail
]


def find_command(text: str) -> str | None:
    """The SMTP command a server refused: MAIL, RCPT, DATA, HELO or CONN."""
    for rx in _COMMANDS:
        found = rx.findall(text or "")
        if found:
            word = found[-1].lower()
            if word.startswith("mail"):
                return "MAIL"
            if word.startswith(("rcpt", "recipient")):
                return "RCPT"
            if "data" in word or word == "text":
                return "DATA"
            if word in ("helo", "ehlo"):
                return "HELO"
            return "CONN"
    return None


def classify(diagnostic: str, status: str | None = None, reply_code: int | None = None, *,
             action: str | None = None, diagnostic_type: str | None = None,
             command: str | None = None, gateway: bool = False) -> str:
    """The reason a delivery failed, from the server's words first, then the status code, the
    SMTP command that was refused and the reply code. ``gateway``: the report comes from a
    filtering appliance in front of the mail server, which refuses whole messages."""
    text = re.sub(r"\s+", " ", (diagnostic or "").lower())
    quoted = re.search(r"\b[245]\d\d-'([^']{4,})'", text)
    if quoted:
        # a relay's own summary quoting the remote server's answer (Amazon SES: "5.1.0 -
        # Unknown address error 550-'5.7.1 ... Access denied'"): the answer is what counts
        text = quoted.group(0)
    own = find_status(text)
    if own and own != status and not own.startswith("2"):
        status = own                          # the remote server's code beats a wrapper's
    sub = status.split(".", 1)[1] if status and STATUS_RE.fullmatch(status) else None
    command = command or find_command(text)
    reason = None
    if diagnostic_type and diagnostic_type.lower().startswith("x-unix") and \
            dict(_COMPILED)["mailererror"].search(text):
        reason = "mailererror"                # a local delivery program failed
    if reason is None:
        for name, rx in _COMPILED:
            if rx.search(text):
                if name == "mailererror" and diagnostic_type and \
                        not diagnostic_type.lower().startswith("x-unix"):
                    continue
                reason = name
                break
    if STATUS_REASONS.get(sub or "") in ("userunknown", "hostunknown") and sub != "1.0" and \
            reason in (None, "systemerror", "securityerror", "expired", "networkerror",
                       "syntaxerror", "onhold", "contenterror", "recipient"):
        reason = STATUS_REASONS[sub]                 # x.1.1 / x.1.2 said plainly beat vague words
    if sub == "2.3" and reason == "mesgtoobig":
        reason = "exceedlimit"                # the per-mailbox limit, not the system's
    if sub in ("1.7", "1.8"):
        reason = "rejected"                   # the sender's address was refused
    if command == "MAIL" and "access denied" in text and reason == "blocked":
        reason = "rejected"
    if reason == "recipient":
        # "recipient address rejected" alone says where, not why: the status code says why
        reason = STATUS_REASONS.get(sub or "", "userunknown") if sub not in (None, "0.0") else \
            ("userunknown" if command in ("RCPT", None) else None)
    if reason is None and sub in STATUS_REASONS:
        reason = STATUS_REASONS[sub]
    # what the refused command says about a reason the words alone got wrong
    if reason == "userunknown" and STATUS_REASONS.get(sub or "") != "userunknown" and \
            not CHECKED_AFTER_DATA.search(text) and (
                command == "DATA" or gateway or re.search(r"\b550:? ?: user unknown", text) or
                (command is None and not NO_SUCH_USER.search(text))):
        # "user unknown" is believed when the status code (x.1.1) or the refused command (RCPT
        # TO) confirms it. Said in answer to DATA, by a filtering gateway, or with nothing to
        # confirm it, the words may be a filter's: many filters in front of a mailbox (and
        # Japanese carriers' sender filters) answer "user unknown" to mail they refuse.
        reason = "filtered"
    if command == "MAIL" and reason in (None, "userunknown", "hostunknown", "filtered",
                                        "systemerror"):
        reason = "rejected"                   # MAIL FROM refused: the sender was the problem
    if command in ("HELO", "CONN") and reason in (None, "rejected", "userunknown", "systemerror"):
        reason = "blocked"
    orange = ORANGE_CODE.search(text)
    if orange and orange.group(1) in ORANGE_REASONS:
        reason = ORANGE_REASONS[orange.group(1)]
    if reason is not None:
        return reason
    if action in ("delayed", "expired"):
        return "expired"
    if diagnostic_type and diagnostic_type.lower().startswith("x-unix"):
        return "mailererror"
    if reply_code in (421, 450, 451):
        return "systemerror"
    if reply_code == 452:
        return "mailboxfull"
    if reply_code in (550, 551):
        return "userunknown"
    if reply_code == 552:
        return "mailboxfull"
    if reply_code in (553, 554):
        return "rejected"
    return "onhold" if text.strip() else "undefined"


def is_hard(reason: str, status: str | None, reply_code: int | None) -> bool:
    """Hard: the address itself is bad (unknown user or domain, moved), or the domain accepts no
    mail at all (a permanent ``notaccept``)."""
    if reason in HARD:
        return True
    # a domain with no mail exchanger stays so: permanent unless the server itself said "try
    # again" with a 4xx code
    temporary = (status or "").startswith("4") or 400 <= (reply_code or 0) < 500
    return reason == "notaccept" and not temporary


