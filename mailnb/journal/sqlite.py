"""The journal: every recipient's state in every campaign, so any run can resume without duplicates.

States: ``pending`` (not tried yet), ``claimed`` (taken by a run, its content not yet handed to the
relay, so it returns to ``pending`` if that run dies), ``sending`` (in flight), ``sent``, ``failed``
(permanent 5xx),
``deferred`` (temporary failures past the retry limit; tried again by the next run), ``skipped``, and
``unknown`` (in flight when a run died: the relay may or may not have it; not resent unless asked),
and ``bounced`` (the relay took it, then a bounce came back for it).

A row becomes ``sending`` in the transaction committed just before the message's end of data is
handed to the relay, and takes its outcome after the reply; the sender groups the writes of all its
connections into one transaction a turn (:mod:`mailnb.commits`). So a crash leaves ``unknown`` only
messages whose content may have reached the relay, and loses at most the outcomes just answered.
The ``events`` table keeps every outcome with its time: the audit trail of who got what, when.

:class:`Journal` is the interface the sender uses; :class:`SQLiteJournal` the default (one file, WAL
mode). A shared backend (PostgreSQL, several workers claiming rows) can implement the same methods.
"""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import JournalError, arg
from ..util.files import private_dir, touch_private, warn_if_shared
from ..config.pacing import CAP_PERIOD
from ..audience.recipients import Suppressions, Unsubscribes, address_key


STATES = ("pending", "claimed", "sending", "sent", "failed", "deferred", "skipped", "unknown",
          "bounced")
#: a run's lease: a run whose heartbeat is older than this is taken to be dead (another host's;
#: on the same host a run is dead as soon as its process is gone). Runs beat every quarter lease.
STALE_AFTER = 120.0
#: the most rows a run holds in one statement (fewer when its limit or daily cap is closer)
HOLD_BATCH = 20
JOURNAL_ENV = "MAILNB_JOURNAL"
#: journals kept in a server, by URL scheme; :mod:`mailnb.pgjournal` adds ``postgresql://``
URL_BACKENDS: dict[str, Any] = {}


#: what counts toward a relay account's daily cap: sent in the last 24 hours, and in flight
_IN_CAP = ("((SELECT count(*) FROM events WHERE status = 'sent' AND account = ? AND at >= ?) + "
           "(SELECT count(*) FROM recipients WHERE status = 'sending' AND account = ?))")


def _in_cap_args(account: str) -> tuple[Any, ...]:
    return (account, time.time() - CAP_PERIOD, account)


@dataclass(frozen=True)
class Cap:
    """A daily cap that claims must respect: ``limit`` messages per rolling 24 hours from the
    relay ``account``, counted over every run and worker that shares the journal."""

    account: str
    limit: int


@dataclass(frozen=True)
class Claim:
    """A write for :meth:`Journal.apply`: move the row ``key`` to ``to`` if it is in one of
    ``claimable`` (a ``claimed`` row only by the run holding it) and, with ``cap``, while the
    account's daily cap allows one more message in flight."""

    campaign: str
    key: str
    run_id: str
    claimable: tuple[str, ...]
    to: str = "claimed"
    cap: Cap | None = None


def default_path() -> Path:
    """``$MAILNB_JOURNAL``, else ``journal.sqlite`` in the user's data folder: the same file for every
    run on this account, so a scheduled job finds what earlier runs did."""
    if os.environ.get(JOURNAL_ENV):
        return Path(os.environ[JOURNAL_ENV])
    import platformdirs
    return Path(platformdirs.user_data_dir("mailnb", appauthor=False)) / "journal.sqlite"


def encode_row(label: Any) -> str:
    """The DataFrame index label as text that round-trips for ints and strings."""
    if hasattr(label, "item"):
        label = label.item()
    try:
        return json.dumps(label)
    except TypeError:
        return json.dumps(str(label))


def decode_row(text: str) -> Any:
    value = json.loads(text)
    return tuple(value) if isinstance(value, list) else value


class Journal(ABC):
    """What the sender needs from a journal."""

    @abstractmethod
    def start_run(self, campaign: str, *, account: str, dry_run: bool = False,
                  meta: dict[str, Any] | None = None) -> str: ...

    @abstractmethod
    def end_run(self, run_id: str, summary: dict[str, Any]) -> None: ...

    @abstractmethod
    def add_recipients(self, campaign: str, rows: Iterable[tuple[str, str, str]]) -> int: ...

    @abstractmethod
    def recover(self, campaign: str, run_id: str) -> int: ...

    @abstractmethod
    def reset(self, campaign: str, statuses: Sequence[str]) -> int: ...

    @abstractmethod
    def states(self, campaign: str, only: Sequence[str] = ()) -> dict[str, str]: ...

    @abstractmethod
    def claim(self, campaign: str, key: str, run_id: str, claimable: Sequence[str], *,
              to: str = "sending", cap: Cap | None = None) -> bool: ...

    @abstractmethod
    def record(self, campaign: str, key: str, run_id: str, status: str, *, code: int | None = None,
               reply: str | None = None, message_id: str | None = None,
               account: str | None = None, attempt: bool = True) -> None: ...

    def apply(self, writes: Sequence[dict[str, Any] | Claim]) -> list[bool]:
        """Several writes in order, each an outcome (``record``'s arguments) or a
        :class:`Claim`; a backend may do them in one transaction (a group commit). For each,
        whether it took effect (an outcome always does)."""
        return [self.claim(w.campaign, w.key, w.run_id, w.claimable, to=w.to, cap=w.cap)
                if isinstance(w, Claim) else self.record(**w) or True for w in writes]

    # -- what several runs sharing one campaign need -------------------------------------------------
    @abstractmethod
    def heartbeat(self, run_id: str) -> None:
        """Renew the run's lease."""

    @abstractmethod
    def hold(self, campaign: str, keys: Sequence[str], run_id: str,
             claimable: Sequence[str]) -> list[str]:
        """Hold whichever of ``keys`` are free for this run (``claimed``); the keys held."""

    @abstractmethod
    def release(self, campaign: str, run_id: str) -> int:
        """Return the run's held rows to ``pending``."""

    @abstractmethod
    def others_hold(self, campaign: str, run_id: str) -> float | None:
        """The longest lease of the other live runs that hold rows of ``campaign``, if any."""

    @abstractmethod
    def in_cap(self, account: str) -> int:
        """The messages counting toward ``account``'s daily cap now."""

    @abstractmethod
    def reserve_slot(self, account: str, interval: float, block_size: int | None = None,
                     block_pause: float = 0.0) -> float:
        """The account's next send slot, for every run sharing the journal."""

    def suppressions(self) -> Any:
        """The suppression list (none, unless the backend keeps one)."""
        return Suppressions()

    def unsubscribes(self) -> Any:
        """The unsubscribe list (none, unless the backend keeps one)."""
        return Unsubscribes()

    def record_bounces(self, source_id: str, bounces: Iterable[Any], also: str = "",
                       policy: str = "global") -> bool:
        raise JournalError(f"{type(self).__name__} keeps no bounces; use SQLiteJournal")

    def unsettled_bounces(self) -> set[str]:
        return set()

    @abstractmethod
    def sent_since(self, account: str, since: float) -> int: ...

    def cap_frees_at(self, account: str, cap: int, now: float) -> float | None:
        """When the rolling 24 hours next allow a message for ``account`` under a daily ``cap``
        (None: it allows one now)."""
        times = self.sent_times(account, now - CAP_PERIOD)
        over = len(times) - cap
        return None if over < 0 else times[over] + CAP_PERIOD

    def find_message(self, token: str) -> dict[str, Any] | None:
        """The recipient of the message whose Message-ID starts ``<token@`` (a VERP token)."""
        return None

    def sent_times(self, account: str, since: float) -> list[float]:
        raise JournalError(f"{type(self).__name__} cannot list send times")

    @property
    def location(self) -> str:
        """Where the journal lives, for the user to see."""
        return repr(self)

    def close(self) -> None:
        """Release the journal (a no-op unless the backend holds a connection)."""

    def rescue(self, outcome: dict[str, Any]) -> None:
        """Record one outcome after a write failed (a full disk): the last write before a stop."""
        self.record(**outcome)

    @abstractmethod
    def history(self, campaign: str | None = None) -> pd.DataFrame: ...

    @abstractmethod
    def outcomes(self, campaign: str) -> Iterable[tuple[Any, ...]]:
        """Each recipient's state as plain tuples, for a run's result without a frame of the
        whole journal: (key, status, attempts, code, reply, message_id, sent_at, run_id),
        ``sent_at`` in seconds since the epoch."""


SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, campaign TEXT NOT NULL, account TEXT, host TEXT, pid INTEGER,
    dry_run INTEGER NOT NULL DEFAULT 0, started_at REAL NOT NULL, heartbeat REAL NOT NULL,
    ended_at REAL, summary TEXT, meta TEXT);
CREATE TABLE IF NOT EXISTS recipients (
    campaign TEXT NOT NULL, key TEXT NOT NULL, address TEXT NOT NULL, row TEXT,
    status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
    code INTEGER, reply TEXT, message_id TEXT, account TEXT, run_id TEXT,
    added_at REAL NOT NULL, updated_at REAL NOT NULL, sent_at REAL,
    PRIMARY KEY (campaign, key));
CREATE TABLE IF NOT EXISTS events (
    at REAL NOT NULL, campaign TEXT NOT NULL, key TEXT NOT NULL, run_id TEXT, status TEXT NOT NULL,
    code INTEGER, reply TEXT, message_id TEXT, account TEXT);
CREATE INDEX IF NOT EXISTS events_sent ON events (account, at) WHERE status = 'sent';
CREATE TABLE IF NOT EXISTS bounce_sources (source_id TEXT PRIMARY KEY, processed_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS bounces (
    at REAL NOT NULL, source_id TEXT NOT NULL, recipient TEXT, rkey TEXT, campaign TEXT, key TEXT,
    message_id TEXT, status TEXT, reply_code INTEGER, reason TEXT, hard INTEGER, kind TEXT,
    diagnostic TEXT);
CREATE INDEX IF NOT EXISTS bounces_rkey ON bounces (rkey, at);
CREATE INDEX IF NOT EXISTS recipients_mid ON recipients (message_id);
CREATE TABLE IF NOT EXISTS unsubscribes (
    key TEXT NOT NULL, address TEXT NOT NULL, campaign TEXT NOT NULL DEFAULT '', source TEXT,
    at REAL NOT NULL, PRIMARY KEY (key, campaign));
CREATE TABLE IF NOT EXISTS suppressions (
    key TEXT PRIMARY KEY, address TEXT NOT NULL, reason TEXT, source TEXT, added_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS forgotten (hash TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS campaign_counts (
    campaign TEXT NOT NULL, status TEXT NOT NULL, n INTEGER NOT NULL, purged_at REAL NOT NULL,
    PRIMARY KEY (campaign, status));
"""

#: the schema's versions: each entry's statements take a journal from the version before to its
#: own. Every journal records its version (``schema_version``) and is brought up to date when
#: opened; one made before versions were kept has version 1's tables already.
MIGRATIONS: dict[int, str] = {
    1: SCHEMA,
    2: """
CREATE TABLE IF NOT EXISTS pace (
    account TEXT PRIMARY KEY, next_at REAL NOT NULL, n INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS recipients_in_flight ON recipients (account) WHERE status = 'sending';
CREATE INDEX IF NOT EXISTS recipients_state ON recipients (campaign, status);
""",
    3: """
ALTER TABLE runs ADD COLUMN lease REAL;
""",
}
SCHEMA_VERSION = max(MIGRATIONS)


#: bytes kept free beside the journal, given up when the disk fills so the last outcomes fit
RESERVE = 256 * 1024


def write_error(path: Path, err: sqlite3.Error, doing: str = "write to") -> JournalError:
    """What a failed write means for the user: which file, why, and what to do."""
    import shutil
    text = str(err)
    try:
        full = shutil.disk_usage(path.parent).free < RESERVE // 4
    except OSError:
        full = False
    if "full" in text or full:
        return JournalError(
            f"the disk holding the journal {str(path)!r} is full ({text}): nothing more is "
            "sent. Every outcome recorded so far is kept; free some space and run again, and the "
            "run resumes where it stopped.", disk_full=True)
    if "readonly" in text or not _writable(path):
        return JournalError(
            f"cannot {doing} the journal {str(path)!r}: the file or its file system is read-only "
            f"({text}). Make it writable, or give another journal: "
            f"{arg('journal', 'other.sqlite')}")
    if "locked" in text:
        return JournalError(f"the journal {str(path)!r} stayed locked by another program for 30 s "
                            f"({text}); let it finish, then run again")
    return JournalError(f"cannot {doing} the journal {str(path)!r}: {text}. Check the path, its "
                        f"permissions and its disk, or give another journal: "
                        f"{arg('journal', 'other.sqlite')}")


def _writable(path: Path) -> bool:
    """False for a read-only file or file system (which the superuser cannot write either)."""
    try:
        if os.statvfs(path.parent).f_flag & os.ST_RDONLY:
            return False
        return os.access(path if path.exists() else path.parent, os.W_OK)
    except OSError:
        return True


class _Connection(sqlite3.Connection):
    """A connection whose failed writes say which journal and why (:func:`write_error`)."""

    path: Path = Path(":memory:")

    def execute(self, *args: Any) -> sqlite3.Cursor:
        try:
            return super().execute(*args)
        except sqlite3.OperationalError as err:
            raise write_error(self.path, err) from None

    def executemany(self, *args: Any) -> sqlite3.Cursor:
        try:
            return super().executemany(*args)
        except sqlite3.OperationalError as err:
            raise write_error(self.path, err) from None

    def __exit__(self, *exc: Any) -> Any:
        try:
            return super().__exit__(*exc)
        except sqlite3.OperationalError as err:
            raise write_error(self.path, err) from None


class SQLiteJournal(Journal):
    """The journal in one SQLite file (WAL mode: readers never block the sender)."""

    def __init__(self, path: str | Path | None = None, *, label: str | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.label = label
        try:
            if str(self.path) != ":memory:":
                private_dir(self.path.parent)
                if self.path.exists():
                    warn_if_shared(self.path)
                else:           # SQLite makes the -wal and -shm files with the same mode
                    touch_private(self.path)
            self.db = sqlite3.connect(str(self.path), timeout=30, isolation_level=None,
                                      check_same_thread=False, factory=_Connection)
            self.db.path = self.path
            self.db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a killed process (only power loss can drop the last
            # commits); FULL would fsync every message.
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.Error as err:
            raise write_error(self.path, err, "open") from None
        except OSError as err:
            raise JournalError(f"cannot open the journal {str(self.path)!r}: {err}") from None
        self._beat: dict[str, float] = {}
        self._reserve = None if str(self.path) == ":memory:" else \
            self.path.with_name(self.path.name + "-reserve")
        self._keep_reserve()

    # the SQL that differs between backends
    shared = False                  # several machines can share it
    begin_write = "BEGIN IMMEDIATE"  # a transaction that writes after it reads
    for_update = ""
    skip_locked = ""                # SQLite's write lock lets one writer in at a time
    lease = STALE_AFTER

    def _lock_schema(self) -> None:
        pass

    def _schema(self, sql: str) -> str:
        return sql

    def _secure_delete(self) -> None:
        self.db.execute("PRAGMA secure_delete = ON")

    def _migrate(self) -> None:
        """Create the tables, or bring an older journal's up to :data:`SCHEMA_VERSION`."""
        with self.db:
            self.db.execute(self.begin_write)
            self._lock_schema()
            self.db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            (have,) = self.db.execute("SELECT max(version) FROM schema_version").fetchone()
            have = have or 0
            if have > SCHEMA_VERSION:
                raise JournalError(
                    f"the journal {self.location} was made by a newer mailnb (schema version "
                    f"{have}; this one knows {SCHEMA_VERSION}): upgrade mailnb to use it")
            for version in range(have + 1, SCHEMA_VERSION + 1):
                for stmt in self._schema(MIGRATIONS[version]).split(";"):
                    if stmt.strip():
                        self.db.execute(stmt)
                self.db.execute("INSERT INTO schema_version VALUES (?)", (version,))

    def schema_version(self) -> int:
        (have,) = self.db.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(have or 0)

    def _keep_reserve(self) -> None:
        """A file of RESERVE bytes beside the journal, so that a disk that fills up mid-send
        still takes the outcome of the message just sent (:meth:`rescue`)."""
        if self._reserve is None or self._reserve.exists():
            return
        try:
            fd = os.open(self._reserve, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(bytes(RESERVE))
                f.flush()
                os.fsync(f.fileno())
        except OSError:              # no room even for that: the first write will say so
            self._reserve.unlink(missing_ok=True)

    def rescue(self, outcome: dict[str, Any]) -> None:
        """Give up the reserve and record the outcome (the disk is full)."""
        if self._reserve is not None:
            self._reserve.unlink(missing_ok=True)
        self.record(**outcome)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> SQLiteJournal:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SQLiteJournal {self.path}>"

    # -- runs ---------------------------------------------------------------------------------------
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

    def heartbeat(self, run_id: str) -> None:
        """Renew the run's lease (written at most every eighth of it)."""
        now = time.time()
        if now - self._beat.get(run_id, 0) > self.lease / 8:
            self.db.execute("UPDATE runs SET heartbeat = ? WHERE id = ?", (now, run_id))
            self._beat[run_id] = now

    def end_run(self, run_id: str, summary: dict[str, Any]) -> None:
        self.db.execute("UPDATE runs SET ended_at = ?, heartbeat = ?, summary = ? WHERE id = ?",
                        (time.time(), time.time(), json.dumps(summary, default=str), run_id))

    def _frame(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        return pd.read_sql_query(sql, self.db, params=tuple(params))

    def runs(self, campaign: str | None = None) -> pd.DataFrame:
        q = "SELECT * FROM runs" + (" WHERE campaign = ?" if campaign else "") + " ORDER BY started_at"
        return self._frame(q, (campaign,) if campaign else ())

    # -- recipients ---------------------------------------------------------------------------------
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
            return self.db.total_changes - before

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

    def reset(self, campaign: str, statuses: Sequence[str]) -> int:
        """Set the rows in ``statuses`` back to ``pending`` (their history stays in ``events``)."""
        marks = ",".join("?" * len(statuses))
        with self.db:
            self.db.execute("BEGIN")
            cur = self.db.execute(
                f"UPDATE recipients SET status = 'pending', updated_at = ? WHERE campaign = ? "
                f"AND status IN ({marks})", (time.time(), campaign, *statuses))
            return cur.rowcount

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

    def _lock_account(self, account: str) -> None:
        """Serialise the claims that count toward one account's daily cap (SQLite's write lock
        does already)."""

    def _claim(self, campaign: str, key: str, run_id: str, claimable: Sequence[str],
               to: str = "sending", cap: Cap | None = None) -> bool:
        marks = ",".join("?" * len(claimable))
        account, under_cap, cap_args = "", "", ()
        if cap is not None:
            account, under_cap = ", account = ?", f" AND {_IN_CAP} < ?"
            cap_args = (*_in_cap_args(cap.account), cap.limit)
        sql = (f"UPDATE recipients SET status = ?, run_id = ?, updated_at = ?{account} WHERE "
               f"campaign = ? AND key = ? AND status IN ({marks}) AND (status != 'claimed' OR "
               f"run_id = ?){under_cap}")
        args = (to, run_id, time.time(), *((cap.account,) if cap is not None else ()), campaign,
                key, *claimable, run_id, *cap_args)
        return self.db.execute(sql, args).rowcount == 1

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
        return self.db.execute(
            "UPDATE recipients SET status = 'pending', updated_at = ? WHERE campaign = ? AND "
            "status = 'claimed' AND run_id = ?", (time.time(), campaign, run_id)).rowcount

    def in_cap(self, account: str) -> int:
        """The messages that count toward ``account``'s daily cap now: sent in the last 24 hours
        and in flight, by every run."""
        (n,) = self.db.execute(f"SELECT {_IN_CAP}", _in_cap_args(account)).fetchone()
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
        return slot

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

    def apply(self, writes: Sequence[dict[str, Any] | Claim]) -> list[bool]:
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
                    if isinstance(w, Claim) else self._record(**w) or True for w in writes]
        for run_id in {w.run_id if isinstance(w, Claim) else w["run_id"] for w in writes}:
            self.heartbeat(run_id)
        return done

    def sent_since(self, account: str, since: float) -> int:
        (n,) = self.db.execute("SELECT count(*) FROM events WHERE status = 'sent' AND account = ? "
                               "AND at >= ?", (account, since)).fetchone()
        return int(n)

    def sent_times(self, account: str, since: float) -> list[float]:
        return [t for (t,) in self.db.execute(
            "SELECT at FROM events WHERE status = 'sent' AND account = ? AND at >= ? ORDER BY at",
            (account, since))]

    @property
    def location(self) -> str:
        return self.label or str(self.path)

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

    def outcomes(self, campaign: str) -> Iterable[tuple[Any, ...]]:
        return self.db.execute("SELECT key, status, attempts, code, reply, message_id, sent_at, "
                               "run_id FROM recipients WHERE campaign = ?", (campaign,))

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

    # -- unsubscribes ----------------------------------------------------------------------------------
    def unsubscribe(self, address: str, campaign: str | None = None, source: str = "") -> bool:
        """Record an unsubscribe, for one campaign or (``campaign=None``) for all. False if it
        was recorded already."""
        cur = self.db.execute("INSERT OR IGNORE INTO unsubscribes VALUES (?,?,?,?,?)",
                              (address_key(address), address, campaign or "", source, time.time()))
        return cur.rowcount == 1

    def unsubscribes(self) -> Any:
        """The unsubscribe list, ready for ``Audience(..., unsubscribes=...)``."""
        return Unsubscribes((addr, camp or None, f"unsubscribed via {src or 'list'}")
                            for addr, camp, src in self.db.execute(
                                "SELECT address, campaign, source FROM unsubscribes"))

    # -- suppressions ----------------------------------------------------------------------------------
    def suppress(self, address: str, reason: str, source: str = "") -> bool:
        """Put an address on the suppression list (kept apart from unsubscribes). False if it was
        there already."""
        cur = self.db.execute(
            "INSERT OR IGNORE INTO suppressions (key, address, reason, source, added_at) "
            "VALUES (?,?,?,?,?)", (address_key(address), address, reason, source, time.time()))
        return cur.rowcount == 1

    def unsuppress(self, address: str) -> bool:
        return self.db.execute("DELETE FROM suppressions WHERE key = ?",
                               (address_key(address),)).rowcount == 1

    def suppressions(self) -> Suppressions:
        """The suppression list, ready for ``Audience(..., suppressions=...)``."""
        return Suppressions((addr, None, reason or "") for addr, reason in
                            self.db.execute("SELECT address, reason FROM suppressions"))

    def suppressed(self) -> pd.DataFrame:
        df = self._frame("SELECT address, reason, source, added_at FROM suppressions "
                         "ORDER BY added_at")
        df["added_at"] = pd.to_datetime(df["added_at"], unit="s", utc=True)
        return df

    # -- bounces ---------------------------------------------------------------------------------------
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

    # -- personal data: erasure, export, retention ------------------------------------------------
    def forgotten_hashes(self) -> set[str]:
        return {h for (h,) in self.db.execute("SELECT hash FROM forgotten")}

    def forget(self, keys: list[str], hashes: list[str]) -> dict[str, int]:
        """Remove every row about these addresses (case-folded keys) and keep only their hashes;
        the file is then rewritten, so no byte of them is left in it or its WAL."""
        marks = ",".join("?" * len(keys))
        counts: dict[str, int] = {}
        self._secure_delete()
        with self.db:
            self.db.execute("BEGIN")
            rows = self.db.execute(f"SELECT campaign, key FROM recipients WHERE lower(address) "
                                   f"IN ({marks})", keys).fetchall()
            counts["events"] = sum(self.db.execute(
                "DELETE FROM events WHERE campaign = ? AND key = ?", r).rowcount for r in rows)
            counts["recipients"] = self.db.execute(
                f"DELETE FROM recipients WHERE lower(address) IN ({marks})", keys).rowcount
            counts["bounces"] = self.db.execute(
                f"DELETE FROM bounces WHERE rkey IN ({marks}) OR lower(recipient) IN ({marks})",
                keys + keys).rowcount
            counts["unsubscribes"] = self.db.execute(
                f"DELETE FROM unsubscribes WHERE key IN ({marks})", keys).rowcount
            counts["suppressions"] = self.db.execute(
                f"DELETE FROM suppressions WHERE key IN ({marks})", keys).rowcount
            self.db.executemany("INSERT OR IGNORE INTO forgotten VALUES (?, ?)",
                                ((h, time.time()) for h in hashes))
        self.compact()
        return counts

    def compact(self) -> None:
        """Rewrite the file without the space deleted rows left, and empty the WAL."""
        self.db.execute("VACUUM")
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def about(self, key: str) -> dict[str, pd.DataFrame]:
        """Everything held about one address (case-folded key), by kind."""
        q = {"campaigns": ("SELECT campaign, key, address, status, attempts, code, reply, "
                           "message_id, added_at, sent_at FROM recipients WHERE lower(address) "
                           "= ? ORDER BY added_at", (key,)),
             "events": ("SELECT e.at, e.campaign, e.status, e.code, e.reply, e.message_id FROM "
                        "events e JOIN recipients r ON r.campaign = e.campaign AND r.key = "
                        "e.key WHERE lower(r.address) = ? ORDER BY e.at", (key,)),
             "bounces": ("SELECT at, campaign, kind, hard, reason, status, diagnostic FROM "
                         "bounces WHERE rkey = ? ORDER BY at", (key,)),
             "suppressions": ("SELECT address, reason, source, added_at FROM suppressions "
                              "WHERE key = ?", (key,)),
             "unsubscribes": ("SELECT address, campaign, source, at FROM unsubscribes WHERE "
                              "key = ?", (key,))}
        return {kind: self._frame(sql, args)
                for kind, (sql, args) in q.items()}

    def purge_before(self, cutoff: float) -> dict[str, int]:
        """Per-message detail of the campaigns whose last run ended before ``cutoff``: their
        recipients, events and bounces go, their counts per state stay (``campaign_counts``),
        as do suppressions and forgotten hashes."""
        ended = [c for (c,) in self.db.execute(
            "SELECT campaign FROM runs GROUP BY campaign HAVING max(coalesce(ended_at, "
            "heartbeat)) < ?", (cutoff,))]
        counts = {"campaigns": 0, "recipients": 0, "events": 0, "bounces": 0}
        self._secure_delete()
        with self.db:
            self.db.execute("BEGIN")
            for c in ended:
                self.db.execute(
                    "INSERT OR REPLACE INTO campaign_counts SELECT campaign, status, count(*), ? "
                    "FROM recipients WHERE campaign = ? GROUP BY campaign, status", (time.time(), c))
                n = self.db.execute("DELETE FROM recipients WHERE campaign = ?", (c,)).rowcount
                counts["campaigns"] += bool(n)
                counts["recipients"] += n
                counts["events"] += self.db.execute("DELETE FROM events WHERE campaign = ?",
                                                    (c,)).rowcount
                counts["bounces"] += self.db.execute("DELETE FROM bounces WHERE campaign = ?",
                                                     (c,)).rowcount
        self.compact()
        return counts

    def campaign_counts(self) -> pd.DataFrame:
        """What is kept of purged campaigns: how many recipients ended in each state."""
        df = self._frame("SELECT * FROM campaign_counts ORDER BY campaign, status")
        df["purged_at"] = pd.to_datetime(df["purged_at"], unit="s", utc=True)
        return df

    def events(self, campaign: str | None = None) -> pd.DataFrame:
        """Every outcome ever recorded, oldest first: the audit trail."""
        q = "SELECT * FROM events" + (" WHERE campaign = ?" if campaign else "") + " ORDER BY at"
        df = self._frame(q, (campaign,) if campaign else ())
        df["at"] = pd.to_datetime(df["at"], unit="s", utc=True)
        return df


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


def open_journal(journal: Journal | str | Path | None, *, new: bool = False,
                 create: bool = True) -> Journal:
    """The journal to use. ``None``: ``$MAILNB_JOURNAL``, else the default file in the user's data
    folder. A ``postgresql://`` URL: the shared journal in that database (:mod:`mailnb.pgjournal`). A path given explicitly (an argument, ``$MAILNB_JOURNAL``, a profile) that does not
    exist is refused unless ``new=True``: a mistyped path would otherwise start an empty journal
    and send the whole campaign again. ``create=False`` (a dry run) never makes a file."""
    if isinstance(journal, Journal):
        return journal
    url = journal if journal is not None else os.environ.get(JOURNAL_ENV)
    for scheme, backend in URL_BACKENDS.items():
        if isinstance(url, str) and url.startswith(scheme):
            return backend(url)
    explicit = journal is not None or bool(os.environ.get(JOURNAL_ENV))
    path = Path(journal).expanduser() if journal is not None else default_path()
    if not path.exists():
        if explicit and not new:
            raise JournalError(
                f"the journal {str(path)!r} does not exist. Check the path (a mistyped one would "
                "send the campaign again to everyone), or start a new journal there with "
                f"{arg('new_journal')}")
        if not create:
            return SQLiteJournal(":memory:", label=str(path))
    return SQLiteJournal(path)


def history(campaign: str | None = None, journal: Journal | str | Path | None = None, *,
            status: str | None = None) -> pd.DataFrame:
    """The journal of a campaign (or of all) as a DataFrame: one row per recipient, who got what,
    when (``status="unknown"``: only those)."""
    j = open_journal(journal)
    try:
        df = j.history(campaign)
    finally:
        if j is not journal:
            j.close()
    return df[df["status"] == status].reset_index(drop=True) if status else df


def timeline(campaign: str, journal: Journal | str | Path | None = None,
             freq: str | None = None) -> pd.DataFrame:
    """Cumulative sent / failed / deferred counts of a campaign over time (for a chart).
    A recipient counts once, by their latest outcome."""
    j = open_journal(journal)
    if not hasattr(j, "events"):
        raise JournalError("this journal keeps no events")
    ev = j.events(campaign)  # type: ignore[attr-defined]
    ev = ev[ev["status"].isin(["sent", "failed", "deferred"])]
    if ev.empty:
        return pd.DataFrame(columns=["sent", "failed", "deferred"])
    last = ev.drop_duplicates("key", keep="last")
    if freq is None:
        span = (last["at"].max() - last["at"].min()).total_seconds()
        freq = "1s" if span < 600 else ("1min" if span < 36000 else "1h")
    counts = (last.set_index("at").groupby("status").resample(freq).size().unstack(0)
              .fillna(0).cumsum())
    for col in ("sent", "failed", "deferred"):
        if col not in counts:
            counts[col] = 0
    return counts[["sent", "failed", "deferred"]].astype(int)


def _columns() -> dict[str, list[str]]:
    """Every table of the journal and its columns, as the schema defines them."""
    db = sqlite3.connect(":memory:")
    for version in sorted(MIGRATIONS):
        db.executescript(MIGRATIONS[version])
    tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {t: [c[1] for c in db.execute(f"PRAGMA table_info({t})")] for t in tables}


def copy_journal(source: Journal | str | Path, target: Journal | str | Path) -> pd.DataFrame:
    """Copy a journal's whole history into an empty one, across backends (a SQLite file to a
    ``postgresql://`` URL and back), then check it by counting each table on both sides.
    Returns the counts (``table``, ``source``, ``target``)."""
    if not isinstance(source, Journal) and not any(str(source).startswith(scheme)
                                                   for scheme in URL_BACKENDS):
        if not Path(source).expanduser().exists():
            raise JournalError(f"the journal to copy, {str(source)!r}, does not exist: check "
                               "its path")
    src = open_journal(source)
    dst = open_journal(target, new=True)
    try:
        if dst.db.execute("SELECT count(*) FROM recipients").fetchone()[0] or \
                dst.db.execute("SELECT count(*) FROM runs").fetchone()[0]:
            raise JournalError(f"the journal {dst.location} already holds campaigns: copy into "
                               "a new, empty journal (a new file or an empty database)")
        counts, tables = [], _columns()
        # everything read first: the target's transaction never waits on the source
        rows_of = {table: src.db.execute(f"SELECT {', '.join(cols)} FROM {table}").fetchall()
                   for table, cols in tables.items()}
        with dst.db:
            dst.db.execute("BEGIN")
            for table, cols in tables.items():
                rows = rows_of.pop(table)
                if rows:
                    dst.db.executemany(f"INSERT OR IGNORE INTO {table} ({', '.join(cols)}) "
                                       f"VALUES ({','.join('?' * len(cols))})", rows)
        for table in tables:
            n_src = src.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            n_dst = dst.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            counts.append((table, int(n_src), int(n_dst)))
        out = pd.DataFrame(counts, columns=["table", "source", "target"])
        bad = out[out["source"] != out["target"]]
        if len(bad):
            raise JournalError(f"the copy into {dst.location} does not match {src.location}: "
                               + ", ".join(f"{t} {a} vs {b}" for t, a, b in bad.itertuples(
                                   index=False)))
        return out
    finally:
        src.close()
        dst.close()
