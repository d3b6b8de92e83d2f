"""The bounce store: the delivery reports and replies read, matched to the messages sent.

The SQL both backends run (:class:`~mailnb.journal.sql.SQLStore`); the role it implements is
:class:`mailnb.journal.base.BounceStore`."""
from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import pandas as pd

from ..audience.recipients import address_key
from .sql import SQLStore


class SQLBounceStore(SQLStore):
    """BounceStore in SQL."""

    def bounce_sources(self) -> set[str]:
        return {r for (r,) in self.db.execute("SELECT source_id FROM bounce_sources")}

    def unsettled_bounces(self) -> set[str]:
        """Addresses with a bounce on record and no suppression: the ones whose threshold a
        stopped run may not have weighed yet."""
        return {k for (k,) in self.db.execute(
            "SELECT DISTINCT b.rkey FROM bounces b LEFT JOIN suppressions s ON s.key = b.rkey "
            "WHERE b.kind = 'bounce' AND b.rkey IS NOT NULL AND s.key IS NULL")}

    def record_bounces(self, source_id: str, bounces: Iterable[Any], also: str = "",
                       policy: str = "global") -> bool:
        """Store the reports found in one mailbox message, once: a message already recorded
        (``source_id``, what its content is known by) is ignored, so a crash between storing and
        flagging, or the same report under a new IMAP UID, never double-counts. ``also``: the
        mailbox's own id for it (POP3 skips those without downloading them).
        Each bounce is matched to the campaign and recipient it belongs to, by the quoted
        Message-ID first, then by campaign header and address. A reply asking to hear no more
        (reason ``unsubscribe``) is an unsubscribe, for all campaigns or (``policy="campaign"``)
        the one it answers, in the same transaction. Returns False if already stored."""
        now = time.time()
        with self.db:
            self.db.execute("BEGIN")
            if also:
                self.db.execute("INSERT OR IGNORE INTO bounce_sources VALUES (?, ?)", (also, now))
            cur = self.db.execute("INSERT OR IGNORE INTO bounce_sources VALUES (?, ?)",
                                  (source_id, now))
            if cur.rowcount == 0:
                return False
            for b in bounces:
                rkey = address_key(b.recipient) if b.recipient else None
                campaign, key = None, None
                if b.message_id:
                    row = self.db.execute("SELECT campaign, key FROM recipients WHERE message_id = ?",
                                          (b.message_id,)).fetchone()
                    if row:
                        campaign, key = row
                if key is None and rkey:
                    q = "SELECT campaign, key FROM recipients WHERE lower(address) = ?"
                    args: tuple[Any, ...] = (rkey,)
                    if b.campaign:
                        q += " AND campaign = ?"
                        args += (b.campaign,)
                    row = self.db.execute(q + " ORDER BY sent_at DESC LIMIT 1", args).fetchone()
                    if row:
                        campaign, key = row
                self.db.execute(
                    "INSERT INTO bounces VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (now, source_id, b.recipient, rkey, campaign or b.campaign, key, b.message_id,
                     b.status, b.reply_code, b.reason, int(bool(b.hard)), b.kind,
                     (b.diagnostic or "")[:2000]))
                if b.kind == "reply" and b.reason == "unsubscribe" and b.recipient:
                    camp = (campaign or b.campaign or "") if policy == "campaign" else ""
                    self.db.execute("INSERT OR IGNORE INTO unsubscribes VALUES (?,?,?,?,?)",
                                    (rkey, b.recipient, camp, "reply", now))
                if key is not None and b.kind == "bounce":
                    self.db.execute("UPDATE recipients SET status = 'bounced', updated_at = ?, "
                                    "reply = ? WHERE campaign = ? AND key = ? AND status = 'sent'",
                                    (now, f"bounced: {b.reason} {b.status or ''}".strip(),
                                     campaign, key))
                    self.db.execute(
                        "INSERT INTO events (at, campaign, key, status, code, reply, message_id) "
                        "VALUES (?,?,?,'bounced',?,?,?)", (now, campaign, key, b.reply_code,
                                                            f"{b.reason}: {b.diagnostic[:300]}",
                                                            b.message_id))
        return True

    def bounce_history(self, address: str) -> pd.DataFrame:
        df = self._frame("SELECT at, kind, hard, reason, status, diagnostic, campaign, "
                         "message_id FROM bounces WHERE rkey = ? ORDER BY at",
                         (address_key(address),))
        df["hard"] = df["hard"].astype(bool)
        return df

    def last_success(self, address: str, grace_seconds: float) -> float | None:
        """When mail to the address last got through: a success report, or a message sent more
        than ``grace_seconds`` ago for which no bounce came back."""
        rkey = address_key(address)
        (delivered,) = self.db.execute("SELECT max(at) FROM bounces WHERE rkey = ? AND "
                                       "kind = 'delivered'", (rkey,)).fetchone()
        (quiet,) = self.db.execute(
            "SELECT max(sent_at) FROM recipients r WHERE lower(address) = ? AND status = 'sent' "
            "AND sent_at < ? AND NOT EXISTS (SELECT 1 FROM bounces b WHERE b.message_id = "
            "r.message_id)", (rkey, time.time() - grace_seconds)).fetchone()
        found = [t for t in (delivered, quiet) if t is not None]
        return max(found) if found else None

    def bounces(self) -> pd.DataFrame:
        df = self._frame("SELECT * FROM bounces ORDER BY at")
        df["at"] = pd.to_datetime(df["at"], unit="s", utc=True)
        return df

    def find_message(self, token: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT campaign, key, address, message_id FROM recipients WHERE message_id >= ? AND "
            "message_id < ? LIMIT 1", (f"<{token}@", f"<{token}@\U0010ffff")).fetchone()
        return dict(zip(("campaign", "key", "address", "message_id"), row)) if row else None

    def find_recipient(self, message_ids: Iterable[str] = (),
                       address: str | None = None) -> dict[str, Any] | None:
        """The recipient a reply answers: the first of ``message_ids`` (In-Reply-To, then
        References) that mailnb sent, else the latest message sent to ``address``."""
        cols = ("campaign", "key", "address", "message_id")
        for mid in message_ids:
            row = self.db.execute("SELECT campaign, key, address, message_id FROM recipients "
                                  "WHERE message_id = ?", (mid,)).fetchone()
            if row:
                return dict(zip(cols, row))
        if address:
            row = self.db.execute(
                "SELECT campaign, key, address, message_id FROM recipients WHERE lower(address) "
                "= ? AND sent_at IS NOT NULL ORDER BY sent_at DESC LIMIT 1",
                (address_key(address),)).fetchone()
            if row:
                return dict(zip(cols, row))
        return None

    def responded(self, campaign: str | None = None) -> pd.DataFrame:
        """Who answered (a reply or a calendar response matched to a message they were sent):
        ``campaign``, ``key``, ``address``, ``responded_at`` (the first answer)."""
        q = ("SELECT r.campaign, r.key, r.address, min(b.at) AS responded_at FROM bounces b "
             "JOIN recipients r ON r.campaign = b.campaign AND r.key = b.key WHERE b.kind = "
             "'reply' AND b.reason IN ('answer', 'calendar')")
        df = self._frame(q + (" AND r.campaign = ?" if campaign else "") +
                         " GROUP BY r.campaign, r.key", (campaign,) if campaign else ())
        df["responded_at"] = pd.to_datetime(df["responded_at"], unit="s", utc=True)
        return df

