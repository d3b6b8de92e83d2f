"""The journal in PostgreSQL, for a campaign that several workers (machines, scheduled jobs, an
Airflow pool) send together: the same tables, methods and meaning as :class:`SQLiteJournal`, read
and written through psycopg 3 and its connection pool.

``journal="postgresql://user@host:5432/db"`` wherever a journal path is accepted;
``?lease=30s`` sets how long a worker that stops beating (a frozen or cut-off machine) keeps its
rows before the others take them over (default two minutes). The password
comes from libpq's own sources (``PGPASSWORD``, ``~/.pgpass``, a service file) or from the
keyring (service ``mailnb-postgresql``, user ``user@host:port/db``), never from the URL given to a
notebook, which would land in its output.

The SQL is the SQLite journal's: :class:`_Connection` turns its few SQLite-only words into
PostgreSQL's (``?`` placeholders, ``INSERT OR IGNORE``, ``REAL`` timestamps) so that both
backends run one implementation and cannot drift apart.
"""
from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pandas as pd

from ..config.pacing import parse_duration
from ..errors import ConfigError, JournalError, arg
from .base import STALE_AFTER, Outcome
from .open import URL_BACKENDS
from .sqlite import SQLiteJournal

URL_SCHEMES = ("postgresql://", "postgres://")
KEYRING_SERVICE = "mailnb-postgresql"
#: how long a statement waits for PostgreSQL to come back (a restart, a failover) before the run
#: stops with an error; nothing is lost either way
RECONNECT_FOR = 60.0


def is_url(journal: Any) -> bool:
    return isinstance(journal, str) and journal.startswith(URL_SCHEMES)


def redact(url: str) -> str:
    """The URL without its password, for messages and ``location``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def split_lease(url: str) -> tuple[str, float]:
    """The URL without mailnb's own ``lease`` parameter (libpq would refuse it), and the lease
    in seconds (:data:`~mailnb.journal.STALE_AFTER` unless given)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    given = [v for k, v in query if k == "lease"]
    if not given:
        return url, STALE_AFTER
    try:
        lease = parse_duration(given[-1])
    except ConfigError:
        lease = 0.0
    if not lease or lease < 2:
        raise JournalError(f"the journal URL's lease={given[-1]!r} is not a duration of 2 s or "
                           "more; write it like lease=30s or lease=2min")
    rest = urlencode([(k, v) for k, v in query if k != "lease"])
    return urlunsplit(parts._replace(query=rest)), lease


def _keyring_password(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.password is not None or not parts.username:
        return None
    try:
        import keyring
        return keyring.get_password(
            KEYRING_SERVICE, f"{parts.username}@{parts.hostname}:{parts.port or 5432}{parts.path}")
    except Exception:           # no keyring backend on this machine: libpq's sources only
        return None


_PLACEHOLDER = re.compile(r"\?")
_OR_IGNORE = re.compile(r"INSERT OR IGNORE INTO (.*)$", re.S)
_OR_REPLACE_COUNTS = "INSERT OR REPLACE INTO campaign_counts"


def translate(sql: str) -> str:
    """SQLite's SQL as PostgreSQL's: the journal's statements use no other SQLite-only words."""
    sql = sql.replace("%", "%%")
    sql = _PLACEHOLDER.sub("%s", sql)
    sql = re.sub(r"\bREAL\b", "DOUBLE PRECISION", sql)
    sql = re.sub(r"\browid\b", "seq", sql)
    if sql.startswith(_OR_REPLACE_COUNTS):
        sql = sql.replace("INSERT OR REPLACE INTO", "INSERT INTO") + (
            " ON CONFLICT (campaign, status) DO UPDATE SET n = EXCLUDED.n, "
            "purged_at = EXCLUDED.purged_at")
    m = _OR_IGNORE.match(sql)
    if m:
        sql = f"INSERT INTO {m.group(1)} ON CONFLICT DO NOTHING"
    return sql


class _Cursor:
    """What the journal reads of a sqlite3 cursor: rows, ``rowcount``, iteration."""

    def __init__(self, rows: list[tuple[Any, ...]] | None, rowcount: int) -> None:
        self.rows, self.rowcount = rows or [], rowcount

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.rows)


class _Connection:
    """A sqlite3-like connection over a psycopg pool: ``execute`` outside a transaction takes
    any pooled connection (autocommit); ``with db: db.execute("BEGIN") ...`` keeps one
    connection for the transaction and commits at the end (rolls back on an error). A lost
    connection outside a transaction is retried on a fresh one for up to :data:`RECONNECT_FOR`
    seconds, so a restart of PostgreSQL pauses the run instead of ending it."""

    def __init__(self, url: str, lease: float = STALE_AFTER) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool
        self.psycopg = psycopg
        self.url = url
        # the journal's transactions last milliseconds: a worker frozen in one (a suspended VM)
        # loses it after a quarter of its lease, so it holds no lock the others wait for
        idle = max(int(lease * 250), 1000)
        kwargs: dict[str, Any] = {"autocommit": True,
                                  "options": f"-c idle_in_transaction_session_timeout={idle}"}
        password = _keyring_password(url)
        if password:
            kwargs["password"] = password
        # one plain connection first: a wrong URL or a stopped server fails at once with the
        # server's own reason, not after the pool's retries
        psycopg.connect(url, connect_timeout=5, **kwargs).close()
        self.pool = ConnectionPool(url, min_size=1, max_size=4, kwargs=kwargs, open=False,
                                   reconnect_timeout=RECONNECT_FOR, name="mailnb-journal")
        self.pool.open(wait=True, timeout=10)
        self.local = threading.local()
        self.sql_cache: dict[str, str] = {}

    # -- the sqlite3 surface the journal uses ------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Cursor:
        return self._run(sql, params, many=False)

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> _Cursor:
        return self._run(sql, list(seq), many=True)

    def __enter__(self) -> _Connection:
        self.local.depth = getattr(self.local, "depth", 0) + 1
        return self

    def __exit__(self, kind: Any, *exc: Any) -> None:
        self.local.depth -= 1
        conn = getattr(self.local, "conn", None)
        if self.local.depth or conn is None:
            return
        self.local.conn = None
        try:
            conn.execute("ROLLBACK" if kind else "COMMIT")
        except self.psycopg.OperationalError:
            if not kind:
                raise                # the commit may not have happened: the caller retries
        finally:
            self.pool.putconn(conn)  # a broken one is discarded by the pool

    def forget_transaction(self) -> None:
        """After a lost connection: the transaction went with it."""
        self.local.conn, self.local.depth = None, 0

    def close(self) -> None:
        self.pool.close()

    def frame(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        with self.pool.connection() as conn:
            cur = conn.execute(self._sql(sql), tuple(params))
            cols = [d.name for d in cur.description or ()]
            return pd.DataFrame(cur.fetchall(), columns=cols)

    # -- inside ------------------------------------------------------------------------------------
    def _sql(self, sql: str) -> str:
        out = self.sql_cache.get(sql)
        if out is None:
            out = self.sql_cache[sql] = translate(sql)
        return out

    def _run(self, sql: str, params: Any, *, many: bool) -> _Cursor:
        if sql.startswith("BEGIN"):        # BEGIN IMMEDIATE too: PostgreSQL locks by row
            self.local.conn = self.pool.getconn()
            self.local.conn.execute("BEGIN")
            return _Cursor(None, -1)
        conn = getattr(self.local, "conn", None)
        if conn is not None:                      # inside a transaction: no retry here
            return self._on(conn, sql, params, many)
        deadline = time.monotonic() + RECONNECT_FOR
        while True:
            try:
                with self.pool.connection() as conn:
                    return self._on(conn, sql, params, many)
            except self.psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def _on(self, conn: Any, sql: str, params: Any, many: bool) -> _Cursor:
        with conn.cursor() as cur:
            if many:
                cur.executemany(self._sql(sql), params)
                return _Cursor(None, cur.rowcount)
            cur.execute(self._sql(sql), tuple(params))
            rows = cur.fetchall() if cur.description else None
            return _Cursor(rows, cur.rowcount)


class PostgresJournal(SQLiteJournal):
    """The journal in a PostgreSQL database that several workers share."""

    shared = True
    for_update = " FOR UPDATE"
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str, *, label: str | None = None) -> None:   # no super(): no file
        self.label = label or redact(url)
        self.url, self.lease = split_lease(url)
        self.path = None                       # type: ignore[assignment]
        self._beat: dict[str, float] = {}
        self._reserve = None
        try:
            self.db = _Connection(self.url, self.lease)
            self._migrate()
        except Exception as err:               # psycopg's errors, the pool's timeout
            raise JournalError(self._why(err)) from None

    def _why(self, err: Exception) -> str:
        text = redact(str(err).strip().splitlines()[0] if str(err).strip() else repr(err))
        return (f"cannot use the PostgreSQL journal {self.label}: {text}. Check that the server "
                "runs and the URL's host, port, user and database; the password comes from "
                f"PGPASSWORD, ~/.pgpass or the keyring (service {KEYRING_SERVICE!r}), never the "
                f"URL in a notebook. Or use a file: {arg('journal', 'journal.sqlite')}")

    def _lock_schema(self) -> None:
        # several workers starting at once: one migrates, the others wait and find it done. A
        # lock of its own, taken before any CREATE TABLE IF NOT EXISTS: two of those at once can
        # fail with "duplicate key value violates unique constraint pg_type_typname_nsp_index"
        self.db.execute("SELECT pg_advisory_xact_lock(hashtext('mailnb schema'))")

    def _lock_account(self, account: str) -> None:
        self.db.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (f"mailnb cap {account}",))

    def _schema(self, sql: str) -> str:
        return sql.replace("PRIMARY KEY (campaign, key));",
                           "seq BIGSERIAL, PRIMARY KEY (campaign, key));", 1)

    def _frame(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        frame: pd.DataFrame = self.db.frame(sql, params)
        return frame

    def _keep_reserve(self) -> None:
        pass

    def rescue(self, outcome: Outcome) -> None:
        outcome.recorded(self)

    def add_recipients(self, campaign: str, rows: Iterable[tuple[str, str, str]]) -> int:
        now = time.time()
        with self.db:
            self.db.execute("BEGIN")
            (before,) = self.db.execute("SELECT count(*) FROM recipients WHERE campaign = ?",
                                        (campaign,)).fetchone()
            self.db.executemany(
                "INSERT OR IGNORE INTO recipients (campaign, key, address, row, added_at, "
                "updated_at) VALUES (?,?,?,?,?,?)",
                ((campaign, k, a, r, now, now) for k, a, r in rows))
            (after,) = self.db.execute("SELECT count(*) FROM recipients WHERE campaign = ?",
                                       (campaign,)).fetchone()
        return int(after - before)

    def compact(self) -> None:
        # FULL rewrites the tables, so erased rows leave the data files (old WAL segments keep
        # them until the server recycles them: the database's own backups are its owner's care)
        self.db.execute("VACUUM FULL recipients, events, bounces, unsubscribes, suppressions")

    def _secure_delete(self) -> None:
        pass

    @property
    def location(self) -> str:
        return self.label or redact(self.url)

    def __repr__(self) -> str:
        return f"<PostgresJournal {self.label}>"


URL_BACKENDS.update(dict.fromkeys(URL_SCHEMES, PostgresJournal))


def _retrying(method: Any) -> Any:
    """Run a journal method again, whole, when PostgreSQL went away in the middle of it (a
    restart, a failover): its transaction was rolled back with the connection, so nothing is
    half done. Waits up to :data:`RECONNECT_FOR` seconds, then fails with one clear error. A
    connection lost during COMMIT leaves it unknown whether the commit happened; a claim run
    again then finds its row taken and the message is not sent (it ends ``unknown`` at worst,
    never sent twice)."""
    @functools.wraps(method)
    def again(self: PostgresJournal, *args: Any, **kw: Any) -> Any:
        from psycopg import Error, OperationalError
        from psycopg_pool import PoolTimeout
        deadline = time.monotonic() + RECONNECT_FOR
        while True:
            try:
                return method(self, *args, **kw)
            except (OperationalError, PoolTimeout) as err:
                self.db.forget_transaction()
                if time.monotonic() > deadline:
                    raise JournalError(self._why(err)) from None
                time.sleep(0.5)
            except Error as err:
                raise JournalError(self._why(err)) from None
    return again


for _name in ("start_run", "heartbeat", "end_run", "runs", "add_recipients", "recover", "reset",
              "states", "apply", "hold", "others_hold", "record", "release", "in_cap",
              "reserve_slot", "sent_since", "sent_times", "cap_frees_at", "find_message",
              "find_recipient", "responded", "history", "outcomes", "unsubscribe", "unsubscribes",
              "suppress", "unsuppress", "suppressions", "suppressed", "bounce_sources",
              "unsettled_bounces", "record_bounces", "bounce_history", "last_success", "bounces",
              "events", "forget",
              "about", "purge_before", "forgotten_hashes", "campaign_counts"):
    if hasattr(PostgresJournal, _name):
        setattr(PostgresJournal, _name, _retrying(getattr(PostgresJournal, _name)))
