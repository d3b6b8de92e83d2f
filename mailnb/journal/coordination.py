"""Coordination of the runs and workers sharing a campaign: leases and heartbeats, rows held in
batches, a dead run's rows recovered, the daily cap counted over every worker, and one pacing
schedule per relay account.

The SQL both backends run (:class:`~mailnb.journal.sql.SQLStore`); the role it implements is
:class:`mailnb.journal.base.Coordination`."""
from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence

from ..config.pacing import CAP_PERIOD
from .base import STALE_AFTER
from .sql import IN_CAP, SQLStore, in_cap_args


class SQLCoordination(SQLStore):
    """Coordination in SQL."""

    def heartbeat(self, run_id: str) -> None:
        """Renew the run's lease (written at most every eighth of it)."""
        now = time.time()
        if now - self._beat.get(run_id, 0) > self.lease / 8:
            self.db.execute("UPDATE runs SET heartbeat = ? WHERE id = ?", (now, run_id))
            self._beat[run_id] = now

    def recover(self, campaign: str, run_id: str) -> int:
        """After runs that are no longer alive (ended, their lease run out, or their process on
        this host gone: :meth:`_dead`): their ``sending`` rows become ``unknown`` (the relay
        may have them), their ``claimed`` rows ``pending`` again (never handed to the relay).
        Returns how many became unknown."""
        now = time.time()
        reply = "the run sending this message stopped before the relay answered"
        with self.db:
            self.db.execute("BEGIN")
            dead = self._dead(campaign, run_id, now)
            rows = [(k, r, st) for k, r, st in self.db.execute(
                "SELECT key, run_id, status FROM recipients WHERE campaign = ? AND status IN "
                "('sending', 'claimed') AND run_id != ?", (campaign, run_id)) if r in dead]
            keys = [(k, r) for k, r, st in rows if st == "sending"]
            self.db.executemany(
                "UPDATE recipients SET status = 'unknown', reply = ?, updated_at = ? "
                "WHERE campaign = ? AND key = ? AND status = 'sending'",
                ((reply, now, campaign, k) for k, _ in keys))
            self.db.executemany(
                "INSERT INTO events (at, campaign, key, run_id, status, reply) "
                "VALUES (?,?,?,?,'unknown',?)", ((now, campaign, k, r, reply) for k, r in keys))
            self.db.executemany(
                "UPDATE recipients SET status = 'pending', updated_at = ? WHERE campaign = ? AND "
                "key = ? AND status = 'claimed'",
                ((now, campaign, k) for k, _, st in rows if st == "claimed"))
        return len(keys)

    def _dead(self, campaign: str, run_id: str, now: float) -> set[str]:
        """The other runs of ``campaign`` that ended, whose lease expired (no heartbeat for
        their lease) or whose process on this host is gone."""
        runs = self.db.execute(
            "SELECT id, host, pid, ended_at, heartbeat, lease FROM runs WHERE campaign = ? AND "
            "id != ?", (campaign, run_id)).fetchall()
        return {rid for rid, host, pid, ended, beat, lease in runs
                if ended is not None or beat < now - (lease or STALE_AFTER)
                or (host == socket.gethostname() and not _alive(pid))}

    def others_hold(self, campaign: str, run_id: str) -> float | None:
        """The longest lease of the other runs still alive that hold rows of ``campaign``
        (``claimed`` or ``sending``); None if no other run holds any."""
        dead = self._dead(campaign, run_id, time.time())
        leases = [lease or STALE_AFTER for rid, lease in self.db.execute(
            "SELECT id, lease FROM runs WHERE id IN (SELECT DISTINCT run_id FROM recipients "
            "WHERE campaign = ? AND status IN ('claimed', 'sending') AND run_id != ?)",
            (campaign, run_id)) if rid not in dead]
        return max(leases) if leases else None

    def hold(self, campaign: str, keys: Sequence[str], run_id: str,
             claimable: Sequence[str]) -> list[str]:
        """Hold for this run (``claimed``) whichever of ``keys`` are free, in one transaction:
        in one of ``claimable`` and not held by another run. PostgreSQL skips the rows another
        worker is taking at that moment (``FOR UPDATE SKIP LOCKED``), so workers going through
        one plan split it between them without waiting on each other. The keys held."""
        if not keys:
            return []
        keys_in, states_in = ",".join("?" * len(keys)), ",".join("?" * len(claimable))
        with self.db:
            self.db.execute(self.begin_write)
            free = [k for (k,) in self.db.execute(
                f"SELECT key FROM recipients WHERE campaign = ? AND key IN ({keys_in}) AND status "
                f"IN ({states_in}) AND (status != 'claimed' OR run_id = ?){self.skip_locked}",
                (campaign, *keys, *claimable, run_id))]
            if free:
                self.db.execute(
                    f"UPDATE recipients SET status = 'claimed', run_id = ?, updated_at = ? WHERE "
                    f"campaign = ? AND key IN ({','.join('?' * len(free))})",
                    (run_id, time.time(), campaign, *free))
        self.heartbeat(run_id)
        return free

    def release(self, campaign: str, run_id: str) -> int:
        """Return this run's ``claimed`` rows (never handed to the relay) to ``pending``."""
        return int(self.db.execute(
            "UPDATE recipients SET status = 'pending', updated_at = ? WHERE campaign = ? AND "
            "status = 'claimed' AND run_id = ?", (time.time(), campaign, run_id)).rowcount)

    def in_cap(self, account: str) -> int:
        """The messages that count toward ``account``'s daily cap now: sent in the last 24 hours
        and in flight, by every run."""
        (n,) = self.db.execute(f"SELECT {IN_CAP}", in_cap_args(account)).fetchone()
        return int(n)

    def reserve_slot(self, account: str, interval: float, block_size: int | None = None,
                     block_pause: float = 0.0) -> float:
        """The next send slot (a wall-clock time) of the relay account, for every run and worker
        that shares this journal: slots are ``interval`` apart, with ``block_pause`` after every
        ``block_size``. One short write transaction a message."""
        now = time.time()
        with self.db:
            self.db.execute(self.begin_write)
            self.db.execute("INSERT OR IGNORE INTO pace (account, next_at, n) VALUES (?, ?, 0)",
                            (account, now))
            next_at, n = self.db.execute("SELECT next_at, n FROM pace WHERE account = ?" +
                                         self.for_update, (account,)).fetchone()
            if block_size and block_pause and now - next_at >= block_pause:
                n = 0                   # idle for a pause's length: a new block starts
            slot = max(next_at, now)
            if n and block_size and n % block_size == 0:
                slot += block_pause
            self.db.execute("UPDATE pace SET next_at = ?, n = ? WHERE account = ?",
                            (slot + interval, n + 1, account))
        return float(slot)

    def sent_since(self, account: str, since: float) -> int:
        (n,) = self.db.execute("SELECT count(*) FROM events WHERE status = 'sent' AND account = ? "
                               "AND at >= ?", (account, since)).fetchone()
        return int(n)

    def sent_times(self, account: str, since: float) -> list[float]:
        return [t for (t,) in self.db.execute(
            "SELECT at FROM events WHERE status = 'sent' AND account = ? AND at >= ? ORDER BY at",
            (account, since))]

    def cap_frees_at(self, account: str, cap: int, now: float) -> float | None:
        """When the rolling 24 hours next allow a message for ``account`` under a daily ``cap``
        (None: it allows one now)."""
        times = self.sent_times(account, now - CAP_PERIOD)
        over = len(times) - cap
        return None if over < 0 else times[over] + CAP_PERIOD


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    if pid == os.getpid():
        return True  # this process: only a run that ended (handled above) is dead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (killed, not yet reaped) is dead too
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True
