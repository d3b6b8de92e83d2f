"""What a journal is: the roles it plays, each a typed protocol that both backends implement.

- :class:`Ledger`: every recipient's state in every campaign, the runs, the audit trail;
- :class:`Coordination`: what several runs sharing one campaign need (leases, held rows, the daily
  cap over every worker, one pacing schedule);
- :class:`Lists`: the unsubscribe and suppression lists;
- :class:`BounceStore`: the reports and replies that came back, matched to the messages sent;
- :class:`PrivacyStore`: export, erasure and expiry of what is kept about a person.

:class:`Journal` is all of them; :class:`~mailnb.journal.sqlite.SQLiteJournal` (one file) and
:class:`~mailnb.journal.postgres.PostgresJournal` (shared by workers) implement it with one SQL
implementation (:mod:`mailnb.journal.sql`), a module a role.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeAlias, runtime_checkable

import pandas as pd

from ..audience.recipients import Suppressions, Unsubscribes

STATES = ("pending", "claimed", "sending", "sent", "failed", "deferred", "skipped", "unknown",
          "bounced")
#: a run's lease: a run whose heartbeat is older than this is taken to be dead (another host's;
#: on the same host a run is dead as soon as its process is gone). Runs beat every quarter lease.
STALE_AFTER = 120.0
#: the most rows a run holds in one statement (fewer when its limit or daily cap is closer)
HOLD_BATCH = 20
JOURNAL_ENV = "MAILNB_JOURNAL"


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


@dataclass(frozen=True, slots=True)
class Outcome:
    """A write for :meth:`Ledger.apply`: what one attempt at a recipient came to (the arguments
    of :meth:`Ledger.record`). ``attempt=False``: not an attempt at sending (a skip, a message
    that could not be rendered, a row returned to pending)."""

    campaign: str
    key: str
    run_id: str
    status: str
    code: int | None = None
    reply: str | None = None
    message_id: str | None = None
    account: str | None = None
    attempt: bool = True

    def recorded(self, journal: Ledger) -> None:
        journal.record(self.campaign, self.key, self.run_id, self.status, code=self.code,
                       reply=self.reply, message_id=self.message_id, account=self.account,
                       attempt=self.attempt)


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


def default_path() -> Path:
    """``$MAILNB_JOURNAL``, else ``journal.sqlite`` in the user's data folder: the same file for every
    run on this account, so a scheduled job finds what earlier runs did."""
    if os.environ.get(JOURNAL_ENV):
        return Path(os.environ[JOURNAL_ENV])
    import platformdirs
    return Path(platformdirs.user_data_dir("mailnb", appauthor=False)) / "journal.sqlite"



class Ledger(Protocol):
    """Every recipient's state in every campaign, the runs, and every outcome with its time."""

    @property
    def location(self) -> str:
        """Where the journal lives, for the user to see."""
    def start_run(self, campaign: str, *, account: str, dry_run: bool = False,
                  meta: dict[str, Any] | None = None) -> str: ...
    def end_run(self, run_id: str, summary: dict[str, Any]) -> None: ...
    def runs(self, campaign: str | None = None) -> pd.DataFrame: ...
    def add_recipients(self, campaign: str, rows: Iterable[tuple[str, str, str]]) -> int: ...
    def reset(self, campaign: str, statuses: Sequence[str]) -> int: ...
    def states(self, campaign: str, only: Sequence[str] = ()) -> dict[str, str]: ...
    def claim(self, campaign: str, key: str, run_id: str, claimable: Sequence[str], *,
              to: str = "sending", cap: Cap | None = None) -> bool: ...
    def record(self, campaign: str, key: str, run_id: str, status: str, *,
               code: int | None = None, reply: str | None = None,
               message_id: str | None = None, account: str | None = None,
               attempt: bool = True) -> None: ...
    def apply(self, writes: Sequence[Outcome | Claim]) -> list[bool]:
        """Several writes in order, in one transaction (a group commit); for each, whether it
        took effect (an outcome always does)."""
    def rescue(self, outcome: Outcome) -> None:
        """Record one outcome after a write failed (a full disk): the last write before a stop."""
    def outcomes(self, campaign: str) -> Iterable[tuple[Any, ...]]:
        """Each recipient's state as plain tuples: (key, status, attempts, code, reply,
        message_id, sent_at, run_id), ``sent_at`` in seconds since the epoch."""
    def history(self, campaign: str | None = None) -> pd.DataFrame: ...
    def events(self, campaign: str | None = None) -> pd.DataFrame: ...
    def close(self) -> None: ...


class Coordination(Protocol):
    """What the runs and workers sharing a campaign need of each other."""

    shared: bool
    lease: float

    def heartbeat(self, run_id: str) -> None:
        """Renew the run's lease."""
    def recover(self, campaign: str, run_id: str) -> int:
        """Dead runs' held rows back to pending, their in-flight rows ``unknown``; how many."""
    def hold(self, campaign: str, keys: Sequence[str], run_id: str,
             claimable: Sequence[str]) -> list[str]:
        """Hold whichever of ``keys`` are free for this run (``claimed``); the keys held."""
    def release(self, campaign: str, run_id: str) -> int:
        """Return the run's held rows to ``pending``."""
    def others_hold(self, campaign: str, run_id: str) -> float | None:
        """The longest lease of the other live runs that hold rows of ``campaign``, if any."""
    def in_cap(self, account: str) -> int:
        """The messages counting toward ``account``'s daily cap now."""
    def reserve_slot(self, account: str, interval: float, block_size: int | None = None,
                     block_pause: float = 0.0) -> float:
        """The account's next send slot, for every run sharing the journal."""
    def sent_since(self, account: str, since: float) -> int: ...
    def sent_times(self, account: str, since: float) -> list[float]: ...
    def cap_frees_at(self, account: str, cap: int, now: float) -> float | None:
        """When the rolling 24 hours next allow a message under a daily ``cap`` (None: now)."""


class Lists(Protocol):
    """The unsubscribe and suppression lists every send excludes."""

    def unsubscribe(self, address: str, campaign: str | None = None, source: str = "") -> bool: ...
    def unsubscribes(self) -> Unsubscribes: ...
    def suppress(self, address: str, reason: str, source: str = "") -> bool: ...
    def unsuppress(self, address: str) -> bool: ...
    def suppressions(self) -> Suppressions: ...
    def suppressed(self) -> pd.DataFrame: ...


class BounceStore(Protocol):
    """The reports and replies that came back, matched to the messages sent."""

    def bounce_sources(self) -> set[str]: ...
    def unsettled_bounces(self) -> set[str]: ...
    def record_bounces(self, source_id: str, bounces: Iterable[Any], also: str = "",
                       policy: str = "global") -> bool: ...
    def bounce_history(self, address: str) -> pd.DataFrame: ...
    def last_success(self, address: str, grace_seconds: float) -> float | None: ...
    def bounces(self) -> pd.DataFrame: ...
    def find_message(self, token: str) -> dict[str, Any] | None:
        """The recipient of the message whose Message-ID starts ``<token@`` (a VERP token)."""
    def find_recipient(self, message_ids: Iterable[str] = (),
                       address: str | None = None) -> dict[str, Any] | None: ...
    def responded(self, campaign: str | None = None) -> pd.DataFrame: ...


class PrivacyStore(Protocol):
    """What a person may ask of what is kept: export, erase, expire."""

    def forgotten_hashes(self) -> set[str]: ...
    def forget(self, keys: list[str], hashes: list[str]) -> dict[str, int]: ...
    def compact(self) -> None: ...
    def about(self, key: str) -> dict[str, pd.DataFrame]: ...
    def purge_before(self, cutoff: float) -> dict[str, int]: ...
    def campaign_counts(self) -> pd.DataFrame: ...


@runtime_checkable
class Journal(Ledger, Coordination, Lists, BounceStore, PrivacyStore, Protocol):
    """Every role: what a campaign's sends, workers, mailboxes and privacy requests share."""


#: what the functions that open a journal take: a journal, a path or URL, or None (the default)
JournalLike: TypeAlias = "Journal | str | Path | None"
