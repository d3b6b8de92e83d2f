"""Bounce processing: keep bad addresses off the list.

Reading the report formats is :mod:`mailnb.reports` (``parse``), naming the reason is
:mod:`mailnb.classify` with the rules in :mod:`mailnb.bounce_rules`; both are re-exported here.
``process_bounces(profile)`` reads the bounce mailbox, records each bounce in the journal
against its campaign and recipient (mailnb's messages carry ``X-Mailnb-Campaign`` and a Message-ID that
a bounce quotes), marks each message processed only after that, and suppresses addresses past the
threshold.
"""
from __future__ import annotations

import email
import email.policy
import re
import time
from collections.abc import Iterable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ConfigError, arg
from ..journal.base import BounceStore, Journal, JournalLike
from ..journal.open import open_journal
from .classify import HARD, REASONS, classify, find_command, find_reply_code, find_status, is_hard
from .mailbox import Mailbox, Session
from .replies import answered, read_reply
from .reports import (
    DELIVERED,
    KINDS,
    Bounce,
    clean,
    is_auto_reply,
    is_report,
    parse,
    parse_many,
    verp_token,
    with_verp,
)

__all__ = ["Bounce", "DELIVERED", "HARD", "KINDS", "REASONS", "apply_threshold", "classify",
           "content_id", "find_command", "find_reply_code", "find_status", "is_hard", "parse",
           "parse_many", "process_bounces", "process_mailbox", "process_replies", "read_folder",
           "read_message", "read_report", "summary_line"]


# -- I/O: the mailbox, the journal, suppression ----------------------------------------------------
BOUNCE_COLUMNS = ["recipient", "status", "reply_code", "diagnostic", "reason", "hard", "kind",
                  "action", "message_id", "campaign", "remote_mta", "source_id"]


def content_id(raw: bytes) -> str:
    """What a report is known by: its Message-ID, else a hash of its bytes. The same report
    under a new IMAP UID (a migrated mailbox, a forwarding rule) is the same report."""
    import hashlib
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    found = re.search(rb"^message-id:[ \t]*(<[^>\r\n]+>)", head, re.I | re.M)
    if found:
        return "mid:" + found.group(1).decode("ascii", "replace")
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def read_report(raw: bytes, journal: BounceStore) -> list[Bounce]:
    """The report's bounces, matched by VERP where the text names nobody. Never raises: an
    odd message is stored as unparsable, for review."""
    try:
        found = parse(raw)
    except Exception as err:
        found = [Bounce(None, None, None, f"unparsable: {err}", "undefined", False)]
    token = verp_token(raw)
    if token is not None:
        found = with_verp(found, journal.find_message(token))
    if not found:               # kept, for a person to look at: nothing here names a recipient
        subject = email.message_from_bytes(raw, policy=email.policy.compat32).get("Subject", "")
        found = [Bounce(None, None, None, f"no recipient found (subject: {clean(subject)[:200]})",
                        "unmatched", False, kind="unmatched")]
    return found


def read_reply_message(raw: bytes, journal: BounceStore,
                       secret: bytes | None = None) -> list[Bounce]:
    """A person's reply as a record: matched to the message it answers (In-Reply-To,
    References), else to the latest message sent to its sender; an unsubscribe request (by
    words or by the mailto: link's token) names whom to unsubscribe. A reply that matches nothing
    mailnb sent is ``unmatched``, kept for review (a request to stop is honoured all the same)."""
    from ..compose.unsubscribe import TokenError, load_secret, verify_token
    reply = read_reply(raw)
    match = journal.find_recipient(reply.answers, reply.sender)
    address, campaign = (match["address"], match["campaign"]) if match else (reply.sender, None)
    reason, kind = reply.kind, "reply" if match else "unmatched"
    if reply.token:
        try:
            address, campaign = verify_token(secret or load_secret(), reply.token)
            kind = "reply"
        except TokenError as err:
            reason, kind = f"unsubscribe refused: {err}", "unmatched"
    elif reply.kind == "unsubscribe" and address:
        kind = "reply"
    note = f"{reply.partstat}: " if reply.partstat else ""
    return [Bounce(address, None, None, f"{note}{reply.subject} | {reply.text}"[:2000], reason,
                   False, kind=kind, message_id=match["message_id"] if match else None,
                   campaign=campaign)]


def read_message(raw: bytes, journal: BounceStore,
                 secret: bytes | None = None) -> list[Bounce]:
    """Whatever arrived: a report from a mail system (bounce, complaint, success, auto-reply) or
    a person's reply. Both mailboxes (bounces, replies) are read alike, so a reply in the bounce
    folder or a bounce in the replies folder is still recorded for what it is."""
    head = email.message_from_bytes(raw, policy=email.policy.compat32)
    if is_report(head) or is_auto_reply(head):
        found = read_report(raw, journal)
        auto = [b for b in found if b.kind == "auto-reply" and not b.message_id]
        if auto:          # an out-of-office names the message it answers: which campaign
            match = journal.find_recipient(answered(head), auto[0].recipient)
            found = [replace(b, message_id=match["message_id"], campaign=match["campaign"])
                     if b in auto and match else b for b in found]
        return found
    return read_reply_message(raw, journal, secret)


def process_bounces(profile: Any, *, folder: str | None = None, since: str | None = None,
                    threshold: int | None = None, journal: JournalLike = None, mailbox: Any = None,
                    window_days: float = 30.0, grace_days: float = 3.0) -> pd.DataFrame:
    """Read the bounce mailbox, record each report in the journal and the suppressions it
    triggers, then mark it processed. Returns one row per report recipient of the reports new to
    the journal (``recipient``, ``reason``, ``hard``, ``kind``, ``campaign``, ``suppressed``, ...);
    ``attrs["counts"]`` has what the run read. Replies found there are recorded as
    :func:`process_replies` records them.

    Cron can trust it: each report is stored before it is flagged or moved, its suppressions right
    after it, and every run starts by settling the suppressions an interrupted run left undecided,
    so an interrupted run and its rerun end with the suppressions of one uninterrupted run."""
    mb = mailbox or Mailbox.from_profile(profile, folder=folder)
    return process_mailbox(profile, mb, since=since, threshold=threshold, journal=journal,
                           window_days=window_days, grace_days=grace_days)


def process_replies(profile: Any, *, folder: str | None = None, since: str | None = None,
                    journal: JournalLike = None, mailbox: Any = None) -> pd.DataFrame:
    """Read the replies mailbox (the profile's ``replies_folder``, on the bounce mailbox's
    server, as ``replies_username`` if that is another account): requests to stop become
    unsubscribes (global, or per campaign by the profile's ``exclusion_policy``), answers and
    calendar responses mark their recipient as responded, out-of-office answers are
    ``auto-reply``. Every reply is kept in the journal for audit. Same rows as
    :func:`process_bounces`."""
    if mailbox is None:
        folder = folder or getattr(profile, "replies_folder", "")
        if not folder:
            raise ConfigError(f"profile {profile.name!r} names no replies folder: set "
                              f"{arg('replies_folder', 'INBOX')} (the folder of the Reply-To "
                              "mailbox on the bounce mailbox's server), or name one with "
                              f"{arg('folder', 'Replies')}")
        mailbox = Mailbox.from_profile(profile, folder=folder,
                                       username=getattr(profile, "replies_username", "") or None)
    return process_mailbox(profile, mailbox, since=since, journal=journal)


def process_mailbox(profile: Any, mb: Mailbox, *, since: str | None = None,
                    threshold: int | None = None, journal: JournalLike = None,
                    window_days: float = 30.0, grace_days: float = 3.0) -> pd.DataFrame:
    """Read one mailbox folder: each message stored (with the suppression or unsubscribe it
    triggers) before it is flagged or moved."""
    j = open_journal(journal if journal is not None else (profile.journal or None), new=True)
    rule: dict[str, Any] = dict(threshold=threshold or getattr(profile, "bounce_threshold", 3) or 3,
                window_days=window_days, grace_days=grace_days)
    policy = getattr(profile, "exclusion_policy", "global") or "global"
    newly = apply_threshold(j, j.unsettled_bounces(), **rule)    # what a stopped run left
    rows: list[dict[str, Any]] = []
    counts = {"read": 0, "duplicates": 0}
    with Session(mb) as session:
        for item in session.fetch(since=since, seen=j.bounce_sources()):
            counts["read"] += 1
            found = read_message(item.raw, j)
            if not j.record_bounces(content_id(item.raw), found, also=item.source_id,
                                    policy=policy):
                counts["duplicates"] += 1             # the same report seen before
            else:
                newly |= apply_threshold(j, {b.recipient for b in found if b.recipient
                                             and b.kind == "bounce"}, **rule)
                rows += [{**{k: v for k, v in asdict(b).items() if k != "extra"},
                          "source_id": item.source_id} for b in found]
            session.mark_processed(item)               # only once it is stored
    out = pd.DataFrame(rows, columns=BOUNCE_COLUMNS)
    out["suppressed"] = out["recipient"].map(lambda r: isinstance(r, str) and r.casefold()
                                             in newly)
    out.attrs["counts"] = {**counts, "newly_suppressed": len(newly)}
    return out


def summary_line(found: pd.DataFrame) -> str:
    """One line for cron's mail: what was read and what it did."""
    counts = found.attrs.get("counts", {})
    kind = found["kind"] if len(found) else pd.Series(dtype=object)
    bounced = found[kind == "bounce"]
    replies = found[kind == "reply"]
    stops = int((replies["reason"] == "unsubscribe").sum())
    unmatched = int((kind == "unmatched").sum())
    hard = int(bounced["hard"].astype(bool).sum())
    return (f"{counts.get('read', len(found))} read ({counts.get('duplicates', 0)} seen before), "
            f"{len(bounced)} bounce(s) ({hard} hard, {len(bounced) - hard} soft), "
            f"{int((kind == 'feedback').sum())} complaint(s), "
            f"{int((kind == 'auto-reply').sum())} auto-reply(ies), "
            f"{len(replies)} reply(ies) ({stops} unsubscribe(s)), {unmatched} unmatched, "
            f"{counts.get('newly_suppressed', int(found['suppressed'].sum()))} address(es) newly "
            "suppressed")


def apply_threshold(journal: Journal, addresses: Iterable[str], *, threshold: int = 3,
                    window_days: float = 30.0, grace_days: float = 3.0) -> set[str]:
    """Suppress each address whose hard bounces reach 1, or whose soft bounces since its last
    successful delivery reach ``threshold`` within ``window_days``. A delivery counts as successful
    when a report says so, or when a message sent to the address is more than ``grace_days`` old
    and nothing bounced for it. Returns the addresses newly suppressed (case-folded)."""
    newly: set[str] = set()
    now = time.time()
    for address in set(addresses):
        hist = journal.bounce_history(address)
        if hist.empty:
            continue
        bounces = hist[hist["kind"] == "bounce"]
        hard = bounces[bounces["hard"]]
        if len(hard):
            last = hard.iloc[-1]
            if journal.suppress(address, f"hard bounce: {last['reason']} ({last['status'] or ''} "
                                f"{clean(last['diagnostic'])[:120]})".strip(), "bounces"):
                newly.add(address.casefold())
            continue
        since = now - window_days * 86400
        success = journal.last_success(address, grace_seconds=grace_days * 86400)
        soft = bounces[(bounces["at"] >= max(since, success or 0))]
        if len(soft) >= threshold:
            if journal.suppress(address, f"{len(soft)} soft bounces in {window_days:g} days "
                                f"(last: {soft.iloc[-1]['reason']})", "bounces"):
                newly.add(address.casefold())
    return newly


def read_folder(path: str | Path) -> pd.DataFrame:
    """Parse every ``.eml`` file in a folder (a saved bounce mailbox) into one DataFrame."""
    files = sorted(Path(path).glob("*.eml"))
    rows = []
    for f in files:
        for b in parse(f.read_bytes()):
            row = asdict(b)
            row["file"] = f.name
            rows.append(row)
    return pd.DataFrame(rows)

