"""Why a delivery failed: the reason named from the server's words, the enhanced status code
(RFC 3463), the SMTP command that was refused and the reply code (RFC 5321), using the rules in
:mod:`mailnb.bounce_rules`."""
from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from contextvars import ContextVar

from .bounce_rules import (
    CHECKED_AFTER_DATA,
    LOOKUP_FAILED,
    NO_SUCH_USER,
    ORANGE_CODE,
    ORANGE_REASONS,
    REASON_TIER,
    REPLY_REASONS,
    RULES,
    STATUS_REASONS,
    Rule,
)

#: every reason a bounce can have (the issue's list and the few finer ones real servers give)
REASONS = ("userunknown", "hostunknown", "hasmoved", "mailboxfull", "expired", "filtered",
           "blocked", "rejected", "spamdetected", "suspend", "policyviolation", "networkerror",
           "systemerror", "toomanyconn", "mesgtoobig", "exceedlimit", "securityerror",
           "norelaying", "requireptr", "authfailure", "badreputation", "virusdetected",
           "syntaxerror", "notaccept", "notcompliantrfc", "contenterror", "speeding",
           "systemfull", "mailererror", "failedstarttls", "onhold", "undefined")
HARD = {"userunknown", "hostunknown", "hasmoved"}

_COMPILED = [(rule, re.compile(rule.pattern)) for rule in RULES]
_OFF: ContextVar[frozenset[int]] = ContextVar("rules_off", default=frozenset())
_SEEN: ContextVar[set[int] | None] = ContextVar("rules_seen", default=None)


@contextlib.contextmanager
def reviewing_rules(off: Iterable[int] = ()) -> Iterator[set[int]]:
    """For reviewing the rules (``tests/sisimai_eval.py``): classify with the rules at these
    indices of ``RULES`` switched off, and collect the indices of every rule that matched."""
    seen: set[int] = set()
    t_off, t_seen = _OFF.set(frozenset(off)), _SEEN.set(seen)
    try:
        yield seen
    finally:
        _OFF.reset(t_off)
        _SEEN.reset(t_seen)


def match_rule(text: str, diagnostic_type: str | None = None,
               expect: str | None = None) -> Rule | None:
    """The most specific rule whose words are in ``text`` (lower-cased): a local delivery
    program's failure in an ``x-unix`` diagnostic first; then one that agrees with the status
    code (``expect``: the reason RFC 3463 gives it, when that names a cause rather than how it
    ended: a relay's 4.4.7 "expired" wraps the remote server's reason); then the reason that says
    most (:data:`~mailnb.bounce_rules.REASON_TIER`); then a provider's own wording; then the
    longest match.
    A ``mailererror`` rule counts only in an ``x-unix`` diagnostic, if one is typed at all."""
    off, seen = _OFF.get(), _SEEN.get()
    local = diagnostic_type is not None and diagnostic_type.lower().startswith("x-unix")
    best, best_key = None, None
    for i, (rule, rx) in enumerate(_COMPILED):
        m = rx.search(text) if i not in off else None
        if m is None or (rule.reason == "mailererror" and diagnostic_type and not local):
            continue
        if seen is not None:
            seen.add(i)
        key = (local and rule.reason == "mailererror", rule.reason == expect,
               REASON_TIER[rule.reason], rule.provider, len(m.group(0)))
        if best_key is None or key > best_key:
            best, best_key = rule, key
    return best
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


def _focus(diagnostic: str) -> str:
    """The lower-cased answer; a relay's own summary that quotes the remote server's answer
    (Amazon SES: "5.1.0 - Unknown address error 550-'5.7.1 ... Access denied'") is reduced to
    the answer, which is what counts."""
    text = re.sub(r"\s+", " ", (diagnostic or "").lower())
    quoted = re.search(r"\b[245]\d\d-'([^']{4,})'", text)
    return quoted.group(0) if quoted else text


def _status(text: str, status: str | None) -> str | None:
    """The remote server's own enhanced status code beats a wrapper's (RFC 3464 Status)."""
    own = find_status(text)
    return own if own and own != status and not own.startswith("2") else status


def _by_status(reason: str | None, sub: str | None, status: str | None, command: str | None,
               text: str) -> str | None:
    """What the RFC 3463 status code settles that the words left vague or got wrong."""
    said = STATUS_REASONS.get(sub or "")
    if said in ("userunknown", "hostunknown") and sub != "1.0" and \
            reason in (None, "systemerror", "securityerror", "expired", "networkerror",
                       "syntaxerror", "onhold", "contenterror", "recipient"):
        reason = said                         # x.1.1 / x.1.2 said plainly beat vague words
    if reason == "hostunknown" and ((status or "").startswith("4") or LOOKUP_FAILED.search(text)
                                    or (status is None and "try again" in text)):
        reason = "networkerror"               # a lookup that failed for now: RFC 3463 X.4.3
    if sub == "2.3" and reason == "mesgtoobig":
        reason = "exceedlimit"                # the per-mailbox limit, not the system's
    if sub in ("1.7", "1.8"):
        reason = "rejected"                   # the sender's address was refused
    if reason == "recipient":
        # "recipient address rejected" alone says where, not why: the status code says why
        reason = STATUS_REASONS.get(sub or "", "userunknown") if sub not in (None, "0.0") else \
            ("userunknown" if command in ("RCPT", None) else None)
    if reason is None and sub in STATUS_REASONS:
        reason = STATUS_REASONS[sub]
    return reason


def _by_command(reason: str | None, sub: str | None, command: str | None, text: str,
                gateway: bool) -> str | None:
    """What the refused SMTP command (RFC 5321) says about a reason the words alone got wrong."""
    if command == "MAIL" and "access denied" in text and reason == "blocked":
        reason = "rejected"
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
    return reason


def _fallback(text: str, reply_code: int | None, action: str | None,
              diagnostic_type: str | None, command: str | None = None) -> str:
    """No words and no status to go by: RFC 3464's Action, the diagnostic's type, the reply
    code (RFC 5321) and the command it answered."""
    if action in ("delayed", "expired"):
        return "expired"
    if diagnostic_type and diagnostic_type.lower().startswith("x-unix"):
        return "mailererror"
    if command == "DATA" and reply_code in (550, 554):
        # refused after the message was seen: the recipient was already accepted at RCPT TO,
        # so the refusal is of the message (RFC 5321 4.2.5, RFC 3463 X.7.1), not the mailbox
        return "policyviolation"
    if reply_code in REPLY_REASONS:
        return REPLY_REASONS[reply_code]
    return "onhold" if text.strip() else "undefined"


def classify(diagnostic: str, status: str | None = None, reply_code: int | None = None, *,
             action: str | None = None, diagnostic_type: str | None = None,
             command: str | None = None, gateway: bool = False) -> str:
    """The reason a delivery failed: the rule that fits the server's words best
    (:func:`match_rule`), corrected by what the status code and the refused command settle, else
    what the Action, the diagnostic's type or the reply code say. ``gateway``: the report comes
    from a filtering appliance in front of the mail server, which refuses whole messages."""
    text = _focus(diagnostic)
    status = _status(text, status)
    sub = status.split(".", 1)[1] if status and STATUS_RE.fullmatch(status) else None
    command = command or find_command(text)
    expect = STATUS_REASONS.get(sub or "")
    rule = match_rule(text, diagnostic_type, expect if REASON_TIER.get(expect or "") else None)
    reason = _by_status(rule.reason if rule else None, sub, status, command, text)
    reason = _by_command(reason, sub, command, text, gateway)
    if reason is not None:
        return reason
    return _fallback(text, reply_code, action, diagnostic_type, command)


def is_hard(reason: str, status: str | None, reply_code: int | None) -> bool:
    """Hard: the address itself is bad (unknown user or domain, moved), or the domain accepts no
    mail at all (a permanent ``notaccept``)."""
    if reason in HARD:
        return True
    # a domain with no mail exchanger stays so: permanent unless the server itself said "try
    # again" with a 4xx code
    temporary = (status or "").startswith("4") or 400 <= (reply_code or 0) < 500
    return reason == "notaccept" and not temporary


