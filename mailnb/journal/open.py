"""Opening a journal (a file, a ``postgresql://`` URL, or the default), and what is read from one
as a whole: a campaign's history, its timeline, a copy into another backend."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ..errors import JournalError, arg
from .base import JOURNAL_ENV, Journal, default_path
from .schema import columns
from .sqlite import SQLiteJournal

#: journals kept in a server, by URL scheme; :mod:`mailnb.journal.postgres` adds ``postgresql://``
URL_BACKENDS: dict[str, Callable[[str], SQLiteJournal]] = {}


def open_journal(journal: Journal | str | Path | None, *, new: bool = False,
                 create: bool = True) -> Journal:
    """The journal to use. ``None``: ``$MAILNB_JOURNAL``, else the default file in the user's
    data folder. A ``postgresql://`` URL: the shared journal in that database
    (:mod:`mailnb.journal.postgres`). A path given explicitly (an argument, ``$MAILNB_JOURNAL``,
    a profile) that does not exist is refused unless ``new=True``: a mistyped path would
    otherwise start an empty journal and send the whole campaign again. ``create=False`` (a dry
    run) never makes a file."""
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
    ev = j.events(campaign)
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


def copy_journal(source: Journal | str | Path, target: Journal | str | Path) -> pd.DataFrame:
    """Copy a journal's whole history into an empty one, across backends (a SQLite file to a
    ``postgresql://`` URL and back), then check it by counting each table on both sides.
    Returns the counts (``table``, ``source``, ``target``)."""
    if not isinstance(source, Journal) and not any(str(source).startswith(scheme)
                                                   for scheme in URL_BACKENDS):
        if not Path(source).expanduser().exists():
            raise JournalError(f"the journal to copy, {str(source)!r}, does not exist: check "
                               "its path")
    src, dst = _sql(open_journal(source)), _sql(open_journal(target, new=True))
    try:
        if dst.db.execute("SELECT count(*) FROM recipients").fetchone()[0] or \
                dst.db.execute("SELECT count(*) FROM runs").fetchone()[0]:
            raise JournalError(f"the journal {dst.location} already holds campaigns: copy into "
                               "a new, empty journal (a new file or an empty database)")
        counts, tables = [], columns()
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


def _sql(journal: Journal) -> SQLiteJournal:
    """A journal whose tables a copy can read and write: mailnb's own (SQLite, PostgreSQL)."""
    if not isinstance(journal, SQLiteJournal):
        journal.close()
        raise JournalError(f"{journal.location} is not one of mailnb's SQL journals: a copy "
                           "goes from a SQLite file or a postgresql:// URL to another")
    return journal
