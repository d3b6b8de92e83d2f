"""Pacing: rates, blocks with pauses, a daily cap, a limit per run, parallel connections and a send
window, and the schedule they make. Pure, with an injectable clock.

"No limit" has one spelling in every door: ``0`` (or leaving the setting out: ``None``, which means
"the profile's value" where a profile is in play). :meth:`Pacing.build` is the one place that reads
these settings; everything else reads a :class:`Pacing`.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import ConfigError, arg, warn

_UNITS = {"s": 1, "sec": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "minute": 60,
          "minutes": 60, "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600, "d": 86400,
          "day": 86400, "days": 86400}
_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
#: the daily cap counts the messages of the last 24 hours (a rolling window, as providers count)
CAP_PERIOD = 86400.0


def parse_rate(rate: str | float | None) -> float | None:
    """``"600/h"``, ``"10/min"``, ``"5/s"``, ``"2000/day"`` -> messages per second (None or ``0``:
    no limit)."""
    if rate is None or rate == "" or rate == 0 or rate == "0":
        return None
    if isinstance(rate, (int, float)):
        raise ConfigError(f"rate {rate!r} has no unit; write it as '{rate}/h', '{rate}/min' or "
                          f"'{rate}/s'")
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:/|per\s+)\s*([a-z]+)\s*", str(rate).lower())
    if not m or m.group(2) not in _UNITS:
        raise ConfigError(f"rate {rate!r} is not understood; write e.g. '600/h', '10/min' or '5/s'")
    if float(m.group(1)) <= 0:
        raise ConfigError(f"rate {rate!r} must be above 0 (0 alone means no limit)")
    return float(m.group(1)) / _UNITS[m.group(2)]


def parse_duration(value: str | float | None) -> float:
    """``"2min"``, ``"30s"``, ``"1.5h"`` or a number of seconds -> seconds."""
    if value is None or value == "":
        return 0.0
    if isinstance(value, (int, float)):
        if value < 0:
            raise ConfigError(f"a duration cannot be negative: {value!r}")
        return float(value)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", str(value).lower())
    if not m or (m.group(2) and m.group(2) not in _UNITS):
        raise ConfigError(f"duration {value!r} is not understood; write e.g. '30s', '2min', '1h'")
    return float(m.group(1)) * _UNITS.get(m.group(2) or "s", 1)


def _count(name: str, value: Any) -> int | None:
    """A whole number of messages; ``None`` or ``0``: no limit."""
    if value is None or value == 0 or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be a whole number of messages (0 for no limit), not "
                          f"{value!r}")
    return value


@dataclass(frozen=True)
class Window:
    """When messages may go out: days of the week and a time of day in a time zone, e.g.
    ``"Mon-Fri 09:00-17:00 Europe/Berlin"`` (days and zone optional; the zone defaults to the
    machine's). Pure: every method takes the time it is asked about."""

    days: frozenset[int]
    start: dtime
    end: dtime
    zone: str | None
    text: str

    @classmethod
    def parse(cls, text: str) -> Window:
        words = str(text).split()
        days: set[int] = set(range(7))
        zone = None
        if words and re.fullmatch(r"[A-Za-z]{3}(?:-[A-Za-z]{3})?(?:,[A-Za-z]{3}(?:-[A-Za-z]{3})?)*",
                                  words[0]):
            days = cls._days(words.pop(0), text)
        if not words or not (m := re.fullmatch(r"(\d{1,2}:\d{2}(?::\d{2})?)-(\d{1,2}:\d{2}(?::\d{2})?)",
                                                words[0])):
            raise ConfigError(f"send window {text!r} is not understood; write e.g. "
                              "'Mon-Fri 09:00-17:00 Europe/Berlin'")
        words.pop(0)
        try:
            start, end = dtime.fromisoformat(m.group(1).zfill(5)), \
                dtime.fromisoformat(m.group(2).zfill(5))
        except ValueError:
            raise ConfigError(f"send window {text!r}: {m.group(0)!r} is not a time range like "
                              "09:00-17:00") from None
        if start == end:
            raise ConfigError(f"send window {text!r} is empty: it starts and ends at {start}")
        if words:
            zone = words.pop(0)
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ConfigError(f"send window {text!r}: unknown time zone {zone!r}; use a name "
                                  "like Europe/Berlin or UTC") from None
        if words:
            raise ConfigError(f"send window {text!r}: unexpected {' '.join(words)!r}")
        return cls(frozenset(days), start, end, zone, str(text))

    @staticmethod
    def _days(spec: str, text: str) -> set[int]:
        out: set[int] = set()
        for part in spec.lower().split(","):
            a, _, b = part.partition("-")
            if a not in _DAYS or (b and b not in _DAYS):
                raise ConfigError(f"send window {text!r}: {part!r} is not a day range like Mon-Fri")
            i, j = _DAYS.index(a), _DAYS.index(b or a)
            out.update(range(i, j + 1) if i <= j else [*range(i, 7), *range(0, j + 1)])
        return out

    def _local(self, t: float) -> datetime:
        return datetime.fromtimestamp(t, ZoneInfo(self.zone) if self.zone else None).astimezone(
            ZoneInfo(self.zone) if self.zone else None)

    def is_open(self, t: float) -> bool:
        local = self._local(t)
        now = local.timetz().replace(tzinfo=None)
        if self.start < self.end:
            return local.weekday() in self.days and self.start <= now < self.end
        # over midnight (22:00-06:00): the part after midnight belongs to the day before
        if now >= self.start:
            return local.weekday() in self.days
        return now < self.end and (local.weekday() - 1) % 7 in self.days

    def next_open(self, t: float) -> float:
        """``t`` if the window is open then, else when it next opens (epoch seconds)."""
        if self.is_open(t):
            return t
        local = self._local(t)
        for d in range(0, 9):
            day = (local + timedelta(days=d)).date()
            start = datetime.combine(day, self.start, local.tzinfo)
            if day.weekday() in self.days and start.timestamp() > t:
                return start.timestamp()
        raise ConfigError(f"send window {self.text!r} never opens")

    def describe(self) -> str:
        return f"only {self.text}"


@dataclass(frozen=True)
class Pacing:
    """Every pacing knob in one value (like listmonk's): rate, blocks with a pause, daily cap,
    limit per run, parallel connections and the send window. ``None`` is "no limit"."""

    rate: float | None = None             # messages per second, across all connections
    block_size: int | None = None         # messages per block ...
    block_pause: float = 0.0              # ... then a pause of this many seconds
    daily_cap: int | None = None          # per relay account, rolling 24 hours, across runs
    limit: int | None = None              # messages this run
    concurrency: int = 1
    window: Window | None = None          # when messages may go out

    @classmethod
    def build(cls, *, rate: str | float | None = None, block: tuple[Any, Any] | int | None = None,
              block_pause: str | float | None = None, daily_cap: int | None = None,
              limit: int | None = None, concurrency: int | None = 1,
              window: str | Window | None = None) -> Pacing:
        size, pause = block, block_pause
        if isinstance(block, tuple):
            size, pause = block
        size = _count("block size", size)
        pause_s = parse_duration(pause)
        concurrency = 1 if concurrency in (None, 0) else concurrency
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or \
                not 1 <= concurrency <= 100:
            raise ConfigError(f"concurrency must be a whole number from 1 to 100, not "
                              f"{concurrency!r}")
        if pause_s and not size:
            raise ConfigError(f"a block pause needs a block size ({arg('block_size', 50)})")
        if size and not pause_s:
            raise ConfigError(f"blocks of {size} need a pause between them "
                              f"({arg('block_pause', '2min')})")
        rate_s = parse_rate(rate)
        if rate_s is not None and rate_s < 1 / 3600:
            warn(f"rate {rate!r} sends fewer than one message an hour; to limit the number a "
                 f"day, use {arg('daily_cap', 100)} instead", stacklevel=3)
        if window is not None and not isinstance(window, Window):
            window = Window.parse(window) if str(window).strip() else None
        return cls(rate_s, size, pause_s, _count("daily_cap", daily_cap),
                   _count("limit", limit), concurrency, window)

    def with_(self, **changes: Any) -> Pacing:
        return replace(self, **changes)

    def offsets(self, n: int, start: float | None = None) -> list[float]:
        """Seconds from ``start`` (now) at which each of ``n`` messages may start, by this
        schedule (the window included)."""
        start = time.time() if start is None else start
        out, t = [], 0.0
        step = 1 / self.rate if self.rate else 0.0
        for k in range(n):
            if k and self.block_size and k % self.block_size == 0:
                t += self.block_pause
            if self.window is not None:
                t = self.window.next_open(start + t) - start
            out.append(t)
            t += step
        return out

    def describe(self) -> str:
        parts = []
        if self.rate:
            parts.append(f"{self.rate * 3600:g}/h" if self.rate < 1 else f"{self.rate:g}/s")
        if self.block_size:
            parts.append(f"blocks of {self.block_size} with {self.block_pause:g}s pauses")
        if self.daily_cap:
            parts.append(f"at most {self.daily_cap} a day")
        if self.limit:
            parts.append(f"at most {self.limit} this run")
        if self.window:
            parts.append(self.window.describe())
        parts.append(f"{self.concurrency} connection{'s' if self.concurrency > 1 else ''}")
        return ", ".join(parts)
