"""What a person may ask of what is kept: the export of what is held about an address, its
erasure (only a keyed hash is kept, so no later send mails it), and expiry of old detail.

The SQL both backends run (:class:`~mailnb.journal.sql.SQLStore`); the role it implements is
:class:`mailnb.journal.base.PrivacyStore`."""
from __future__ import annotations

import time

import pandas as pd

from .sql import SQLStore


class SQLPrivacyStore(SQLStore):
    """PrivacyStore in SQL."""

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

    def _secure_delete(self) -> None:
        self.db.execute("PRAGMA secure_delete = ON")

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

