"""The unsubscribe and suppression lists that every send excludes.

The SQL both backends run (:class:`~mailnb.journal.sql.SQLStore`); the role it implements is
:class:`mailnb.journal.base.Lists`."""
from __future__ import annotations

import time
from typing import Any

import pandas as pd

from ..audience.recipients import Suppressions, Unsubscribes, address_key
from .sql import SQLStore


class SQLLists(SQLStore):
    """Lists in SQL."""

    def unsubscribe(self, address: str, campaign: str | None = None, source: str = "") -> bool:
        """Record an unsubscribe, for one campaign or (``campaign=None``) for all. False if it
        was recorded already."""
        cur = self.db.execute("INSERT OR IGNORE INTO unsubscribes VALUES (?,?,?,?,?)",
                              (address_key(address), address, campaign or "", source, time.time()))
        return bool(cur.rowcount == 1)

    def unsubscribes(self) -> Any:
        """The unsubscribe list, ready for ``Audience(..., unsubscribes=...)``."""
        return Unsubscribes((addr, camp or None, f"unsubscribed via {src or 'list'}")
                            for addr, camp, src in self.db.execute(
                                "SELECT address, campaign, source FROM unsubscribes"))

    def suppress(self, address: str, reason: str, source: str = "") -> bool:
        """Put an address on the suppression list (kept apart from unsubscribes). False if it was
        there already."""
        cur = self.db.execute(
            "INSERT OR IGNORE INTO suppressions (key, address, reason, source, added_at) "
            "VALUES (?,?,?,?,?)", (address_key(address), address, reason, source, time.time()))
        return bool(cur.rowcount == 1)

    def unsuppress(self, address: str) -> bool:
        return bool(self.db.execute("DELETE FROM suppressions WHERE key = ?",
                                    (address_key(address),)).rowcount == 1)

    def suppressions(self) -> Suppressions:
        """The suppression list, ready for ``Audience(..., suppressions=...)``."""
        return Suppressions((addr, None, reason or "") for addr, reason in
                            self.db.execute("SELECT address, reason FROM suppressions"))

    def suppressed(self) -> pd.DataFrame:
        df = self._frame("SELECT address, reason, source, added_at FROM suppressions "
                         "ORDER BY added_at")
        df["added_at"] = pd.to_datetime(df["added_at"], unit="s", utc=True)
        return df

