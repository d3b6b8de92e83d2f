"""The SQL both journal backends run: the connection, the dialect's few differences (each a hook
:class:`~mailnb.journal.postgres.PostgresJournal` overrides) and the daily cap's count."""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..config.pacing import CAP_PERIOD
from .base import STALE_AFTER

#: what counts toward a relay account's daily cap: sent in the last 24 hours, and in flight
IN_CAP = ("((SELECT count(*) FROM events WHERE status = 'sent' AND account = ? AND at >= ?) + "
           "(SELECT count(*) FROM recipients WHERE status = 'sending' AND account = ?))")


def in_cap_args(account: str) -> tuple[Any, ...]:
    return (account, time.time() - CAP_PERIOD, account)



class SQLStore:
    """The connection and dialect every role's SQL runs on."""

    db: Any
    # the SQL that differs between backends
    shared = False                  # several machines can share it
    begin_write = "BEGIN IMMEDIATE"  # a transaction that writes after it reads
    for_update = ""
    skip_locked = ""                # SQLite's write lock lets one writer in at a time
    lease = STALE_AFTER
    _beat: dict[str, float]

    def _frame(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        return pd.read_sql_query(sql, self.db, params=tuple(params))

    def _lock_account(self, account: str) -> None:
        """Serialise the claims that count toward one account's daily cap (SQLite's write lock
        does already)."""

    if TYPE_CHECKING:       # a role's SQL may use another role's (the journal has them all)
        def heartbeat(self, run_id: str) -> None: ...
