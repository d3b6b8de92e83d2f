"""The ledger: every recipient's state in every campaign, the runs, and the events table (every
outcome with its time: the audit trail of who got what, when).

The SQL both backends run (:class:`~mailnb.journal.sql.SQLStore`); the role it implements is
:class:`mailnb.journal.base.Ledger`."""
from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from ..errors import JournalError
from .base import STATES, Cap, Claim, Outcome, decode_row
from .sql import IN_CAP, SQLStore, in_cap_args


class SQLLedger(SQLStore):
    """Ledger in SQL."""

    def start_run(self, campaign: str, *, account: str, dry_run: bool = False,
                  meta: dict[str, Any] | None = None) -> str:
        run_id = uuid.uuid4().hex
        now = time.time()
        self.db.execute(
            "INSERT INTO runs (id, campaign, account, host, pid, dry_run, started_at, heartbeat, "
            "meta, lease) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (run_id, campaign, account, socket.gethostname(), os.getpid(), int(dry_run), now, now,
             json.dumps(meta or {}, default=str), self.lease))
        self._beat[run_id] = now
        return run_id

    def end_run(self, run_id: str, summary: dict[str, Any]) -> None:
        self.db.execute("UPDATE runs SET ended_at = ?, heartbeat = ?, summary = ? WHERE id = ?",
                        (time.time(), time.time(), json.dumps(summary, default=str), run_id))

    def runs(self, campaign: str | None = None) -> pd.DataFrame:
        q = "SELECT * FROM runs" + (" WHERE campaign = ?" if campaign else "") + " ORDER BY started_at"
        return self._frame(q, (campaign,) if campaign else ())

    def add_recipients(self, campaign: str, rows: Iterable[tuple[str, str, str]]) -> int:
        """Register ``(key, address, row)`` triples as pending; known keys are left as they are."""
        now = time.time()
        with self.db:
            self.db.execute("BEGIN")
            before = self.db.total_changes
            self.db.executemany(
                "INSERT OR IGNORE INTO recipients (campaign, key, address, row, added_at, "
                "updated_at) VALUES (?,?,?,?,?,?)",
                ((campaign, k, a, r, now, now) for k, a, r in rows))
            return int(self.db.total_changes - before)

    def reset(self, campaign: str, statuses: Sequence[str]) -> int:
        """Set the rows in ``statuses`` back to ``pending`` (their history stays in ``events``)."""
        marks = ",".join("?" * len(statuses))
        with self.db:
            self.db.execute("BEGIN")
            cur = self.db.execute(
                f"UPDATE recipients SET status = 'pending', updated_at = ? WHERE campaign = ? "
                f"AND status IN ({marks})", (time.time(), campaign, *statuses))
            return int(cur.rowcount)

    def states(self, campaign: str, only: Sequence[str] = ()) -> dict[str, str]:
        """Each recipient's state; ``only`` those in these states."""
        where = f" AND status IN ({','.join('?' * len(only))})" if only else ""
        return dict(self.db.execute("SELECT key, status FROM recipients WHERE campaign = ?" + where,
                                    (campaign, *only)))

    def claim(self, campaign: str, key: str, run_id: str, claimable: Sequence[str], *,
              to: str = "sending", cap: Cap | None = None) -> bool:
        """Atomically move a row to ``to`` (``sending``, or ``claimed`` to hold it while waiting
        for a send slot) if it is in one of ``claimable``; a ``claimed`` row only by the run that
        claimed it. With ``cap``, only while the relay account's messages sent in the last 24
        hours and in flight (by every worker) are fewer than the cap. False if another run took
        it, it is done, or the cap is full."""
        return self.apply([Claim(campaign, key, run_id, tuple(claimable), to, cap)])[0]

    def _claim(self, campaign: str, key: str, run_id: str, claimable: Sequence[str],
               to: str = "sending", cap: Cap | None = None) -> bool:
        marks = ",".join("?" * len(claimable))
        account, under_cap, cap_args = "", "", ()
        if cap is not None:
            account, under_cap = ", account = ?", f" AND {IN_CAP} < ?"
            cap_args = (*in_cap_args(cap.account), cap.limit)
        sql = (f"UPDATE recipients SET status = ?, run_id = ?, updated_at = ?{account} WHERE "
               f"campaign = ? AND key = ? AND status IN ({marks}) AND (status != 'claimed' OR "
               f"run_id = ?){under_cap}")
        args = (to, run_id, time.time(), *((cap.account,) if cap is not None else ()), campaign,
                key, *claimable, run_id, *cap_args)
        return bool(self.db.execute(sql, args).rowcount == 1)

    def record(self, campaign: str, key: str, run_id: str, status: str, *, code: int | None = None,
               reply: str | None = None, message_id: str | None = None,
               account: str | None = None, attempt: bool = True) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self._record(campaign, key, run_id, status, code=code, reply=reply,
                         message_id=message_id, account=account, attempt=attempt)

    def _record(self, campaign: str, key: str, run_id: str, status: str, *,
                code: int | None = None, reply: str | None = None, message_id: str | None = None,
                account: str | None = None, attempt: bool = True) -> None:
        if status not in STATES:
            raise JournalError(f"unknown state {status!r}")
        now = time.time()
        self.db.execute(
            "UPDATE recipients SET status = ?, attempts = attempts + ?, code = ?, reply = ?, "
            "message_id = COALESCE(?, message_id), account = COALESCE(?, account), "
            "run_id = ?, updated_at = ?, sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END "
            "WHERE campaign = ? AND key = ?",
            (status, int(attempt), code, reply, message_id, account, run_id, now, status, now,
             campaign, key))
        self.db.execute(
            "INSERT INTO events (at, campaign, key, run_id, status, code, reply, message_id, "
            "account) VALUES (?,?,?,?,?,?,?,?,?)",
            (now, campaign, key, run_id, status, code, reply, message_id, account))

    def apply(self, writes: Sequence[Outcome | Claim]) -> list[bool]:
        """The writes of every connection in one transaction (a group commit): the outcomes
        answered and the claims due since the last one, in the order given."""
        if not writes:
            return []
        caps = sorted({w.cap.account for w in writes if isinstance(w, Claim) and w.cap})
        with self.db:
            self.db.execute("BEGIN")
            for account in caps:
                # the account's lock before any row lock: a worker waiting for it holds no
                # row another worker's claim may have to wait for (no deadlock)
                self._lock_account(account)
            done = [self._claim(w.campaign, w.key, w.run_id, w.claimable, w.to, w.cap)
                    if isinstance(w, Claim) else self._recorded(w) for w in writes]
        for run_id in {w.run_id for w in writes}:
            self.heartbeat(run_id)
        return done

    def _recorded(self, w: Outcome) -> bool:
        self._record(w.campaign, w.key, w.run_id, w.status, code=w.code, reply=w.reply,
                     message_id=w.message_id, account=w.account, attempt=w.attempt)
        return True                 # an outcome always takes effect

    def outcomes(self, campaign: str) -> Iterable[tuple[Any, ...]]:
        rows: Iterable[tuple[Any, ...]] = self.db.execute(
            "SELECT key, status, attempts, code, reply, message_id, sent_at, run_id FROM "
            "recipients WHERE campaign = ?", (campaign,))
        return rows

    def history(self, campaign: str | None = None) -> pd.DataFrame:
        """Every recipient's state (one row each), as a DataFrame with UTC timestamps."""
        q = ("SELECT campaign, key, address, row, status, attempts, code, reply, message_id, "
             "account, run_id, added_at, updated_at, sent_at FROM recipients")
        df = self._frame(q + (" WHERE campaign = ?" if campaign else "") +
                         " ORDER BY campaign, added_at, rowid", (campaign,) if campaign else ())
        for col in ("added_at", "updated_at", "sent_at"):
            df[col] = pd.to_datetime(df[col], unit="s", utc=True)
        df["row"] = df["row"].map(lambda r: decode_row(r) if isinstance(r, str) else r)
        return df

    def events(self, campaign: str | None = None) -> pd.DataFrame:
        """Every outcome ever recorded, oldest first: the audit trail."""
        q = "SELECT * FROM events" + (" WHERE campaign = ?" if campaign else "") + " ORDER BY at"
        df = self._frame(q, (campaign,) if campaign else ())
        df["at"] = pd.to_datetime(df["at"], unit="s", utc=True)
        return df

