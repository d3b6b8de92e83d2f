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

:class:`SQLiteJournal` is the default (one file, WAL mode), made of one SQL module a role
(:mod:`mailnb.journal.base`); :class:`~mailnb.journal.postgres.PostgresJournal` runs the same SQL.
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from ..errors import JournalError, arg
from ..util.files import private_dir, touch_private, warn_if_shared
from .base import Outcome, default_path
from .bounce_store import SQLBounceStore
from .coordination import SQLCoordination
from .ledger import SQLLedger
from .lists import SQLLists
from .privacy_store import SQLPrivacyStore
from .schema import MIGRATIONS, SCHEMA_VERSION

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


class SQLiteJournal(SQLLedger, SQLCoordination, SQLLists, SQLBounceStore, SQLPrivacyStore):
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


    def _lock_schema(self) -> None:
        pass

    def _schema(self, sql: str) -> str:
        return sql

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

    def rescue(self, outcome: Outcome) -> None:
        """Give up the reserve and record the outcome (the disk is full)."""
        if self._reserve is not None:
            self._reserve.unlink(missing_ok=True)
        outcome.recorded(self)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> SQLiteJournal:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SQLiteJournal {self.path}>"

    @property
    def location(self) -> str:
        """Where the journal lives, for the user to see."""
        return self.label or str(self.path)
