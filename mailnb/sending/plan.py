"""The plan of a run: who is due now, who later, who is skipped and why. Pure: it reads the journal's
states as plain data and returns plain data, so it is tested without a server or a database.

Stages of a send: **plan** (this module) -> **run** (claim, pace, send, record: ``sender``) ->
**summary**.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import pandas as pd

from ..audience.recipients import AddressList
from ..compose.rendered import Rendered
from ..config.pacing import Pacing

#: states a run may claim; ``unknown`` only with resend_unknown. ``claimed``: held by another
#: worker for its send slot, or by one that died (the run's recovery returns those to pending);
#: the claim itself decides, so nobody is sent twice
CLAIMABLE = frozenset({"pending", "deferred", "claimed"})


class Row(Mapping[str, Any]):
    """One recipient's merge fields, read from the audience's columns when asked: a million-row
    audience keeps one list a column, not a dict a row."""

    __slots__ = ("_columns", "_pos")

    def __init__(self, columns: dict[str, list[Any]], pos: int) -> None:
        self._columns, self._pos = columns, pos

    def __getitem__(self, name: str) -> Any:
        return self._columns[name][self._pos]

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)

    def __repr__(self) -> str:
        return f"Row({dict(self)!r})"


@dataclass(slots=True)
class Item:
    """One recipient of a run, and what the run has made for them (slotted: there is one a row)."""

    row: Any
    key: str
    address: str
    smtputf8: bool
    values: Mapping[str, Any]
    rendered: Rendered | None = None
    data: bytes | None = None
    message_id: str | None = None
    attempts: int = 0
    thread: str | None = None                    # the Message-ID this message follows up
    context: dict[str, Any] | None = None        # unsubscribe_url
    extra_headers: dict[str, str] | None = None  # List-Unsubscribe
    envelope_from: str | None = None             # MAIL FROM (bounce address, VERP)


@dataclass
class Plan:
    """What a run will do. ``due`` is sent now, in order; ``later`` waits for a later run (limit,
    daily cap); ``skipped`` were excluded at send time (suppressed or unsubscribed since the audience
    was built); ``unreached`` never got the campaign a reminder follows up."""

    items: list[Item]
    due: list[Item]
    later: list[Item]
    skipped: list[tuple[Item, str]]
    unreached: list[Item]
    done_before: int
    cap_left: float
    stopped_by: str | None = None                # "limit", "daily cap" or None
    states: Mapping[str, str] = field(default_factory=dict)
    forgotten: list[Item] = field(default_factory=list)   # erased on request: never journaled

    @property
    def todo(self) -> list[Item]:
        return self.due + self.later

    def drop(self, skip: list[tuple[Item, str]]) -> None:
        """Skip these items, each with its reason (an empty report, found by the preflight)."""
        if skip:
            gone = {it.key for it, _ in skip}
            self.due = [it for it in self.due if it.key not in gone]
            self.later = [it for it in self.later if it.key not in gone]
            self.skipped.extend(skip)

    def describe(self) -> str:
        return (f"{len(self.due)} to send now, {len(self.later)} left for later runs, "
                f"{self.done_before} done before")

    def table(self, pacing: Pacing, now: pd.Timestamp, index_name: Any = None) -> pd.DataFrame:
        """The dry run's table: every recipient with what would happen and when."""
        offsets = pacing.offsets(len(self.due), start=now.timestamp())
        when = {it.key: now + pd.Timedelta(seconds=o) for it, o in zip(self.due, offsets)}
        later = {it.key for it in self.later}
        skipped = {it.key: why for it, why in self.skipped}
        status, planned, reply = [], [], []
        for it in self.items:
            if it.key in when:
                status.append("would send")
            elif it.key in later:
                status.append("later run")
            elif it.key in skipped:
                status.append("skipped")
            else:
                status.append(self.states.get(it.key, "pending"))
            planned.append(when.get(it.key, pd.NaT))
            reply.append(skipped.get(it.key))
        return pd.DataFrame({"address": [it.address for it in self.items], "status": status,
                             "reply": reply, "planned_at": pd.to_datetime(cast(Any, planned), utc=True)},
                            index=pd.Index([it.row for it in self.items], name=index_name))


def follow_up_threads(items: list[Item], threads: Mapping[str, str]) -> tuple[list[Item],
                                                                               list[Item]]:
    """A reminder goes only to those the earlier campaign reached, threaded to their message."""
    reached, unreached = [], []
    for it in items:
        if it.key in threads:
            it.thread = threads[it.key]
            reached.append(it)
        else:
            unreached.append(it)
    return reached, unreached


def exclusions(items: list[Item], suppressions: AddressList, unsubscribes: AddressList | None,
               campaign: str, policy: str) -> tuple[list[Item], list[tuple[Item, str]]]:
    """Those still to send, and those suppressed or unsubscribed (with the reason)."""
    keep, skipped = [], []
    for it in items:
        k = it.address.casefold()
        note = suppressions.match(k)
        if note is not None:
            skipped.append((it, f"suppressed: {note}"))
        elif unsubscribes is not None and \
                (u := unsubscribes.match(k, campaign, policy=policy)) is not None:
            skipped.append((it, f"unsubscribed: {u}"))
        else:
            keep.append(it)
    return keep, skipped


def make_plan(items: list[Item], states: Mapping[str, str], *, campaign: str,
              pacing: Pacing, sent_last_24h: int = 0, resend_unknown: bool = False,
              threads: Mapping[str, str] | None = None,
              suppressions: AddressList | None = None, unsubscribes: AddressList | None = None,
              policy: str = "global", forgotten: Any = None) -> Plan:
    """Who is due now. ``states`` is the journal's state per key; ``threads`` the earlier campaign's
    Message-ID per key for a reminder; ``sent_last_24h`` what the relay account sent in the rolling
    day (for the daily cap); ``forgotten`` the erased addresses (``match(key)``), which the plan
    leaves out entirely, so nothing about them is journaled."""
    erased: list[Item] = []
    if forgotten is not None and len(forgotten):
        kept: list[Item] = []
        for it in items:
            (erased if forgotten.match(it.address.casefold()) is not None else kept).append(it)
        items = kept
    unreached: list[Item] = []
    if threads is not None:
        items, unreached = follow_up_threads(items, threads)
    claimable = CLAIMABLE | ({"unknown"} if resend_unknown else set())
    todo = [it for it in items if states.get(it.key, "pending") in claimable]
    done_before = len(items) - len(todo)
    todo, skipped = exclusions(todo, suppressions or AddressList(), unsubscribes, campaign, policy)
    cap_left = math.inf if pacing.daily_cap is None else max(pacing.daily_cap - sent_last_24h, 0)
    n_now = int(min(len(todo), pacing.limit or math.inf, cap_left))
    stopped_by = None
    if n_now < len(todo):
        stopped_by = "daily cap" if cap_left <= (pacing.limit or math.inf) else "limit"
    return Plan(items, todo[:n_now], todo[n_now:], skipped, unreached, done_before, cap_left,
                stopped_by, states, erased)
