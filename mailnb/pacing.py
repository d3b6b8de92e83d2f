"""Pacing: rates, blocks with pauses, and the schedule they make. Pure, with an injectable clock."""
from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .errors import ConfigError

_UNITS = {"s": 1, "sec": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "minute": 60,
          "minutes": 60, "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600, "d": 86400,
          "day": 86400, "days": 86400}


def parse_rate(rate: str | float | None) -> float | None:
    """``"600/h"``, ``"10/min"``, ``"5/s"``, ``"2000/day"`` -> messages per second (None: no limit)."""
    if rate is None or rate == "" or rate == 0:
        return None
    if isinstance(rate, (int, float)):
        raise ConfigError(f"rate {rate!r} has no unit; write it as '{rate}/h', '{rate}/min' or "
                          f"'{rate}/s'")
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:/|per\s+)\s*([a-z]+)\s*", str(rate).lower())
    if not m or m.group(2) not in _UNITS or float(m.group(1)) <= 0:
        raise ConfigError(f"rate {rate!r} is not understood; write e.g. '600/h', '10/min' or '5/s'")
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


@dataclass(frozen=True)
class Pacing:
    """Every pacing knob in one value (like listmonk's): rate, blocks with a pause, daily cap,
    limit per run and parallel connections."""

    rate: float | None = None             # messages per second, across all connections
    block_size: int | None = None         # messages per block ...
    block_pause: float = 0.0              # ... then a pause of this many seconds
    daily_cap: int | None = None          # per relay account, rolling 24 hours, across runs
    limit: int | None = None              # messages this run
    concurrency: int = 1

    @classmethod
    def build(cls, *, rate: str | float | None = None, block: tuple | int | None = None,
              block_pause: str | float | None = None, daily_cap: int | None = None,
              limit: int | None = None, concurrency: int = 1) -> Pacing:
        size, pause = None, parse_duration(block_pause)
        if isinstance(block, tuple):
            size, pause = int(block[0]), parse_duration(block[1])
        elif block:
            size = int(block)
        for name, value in (("daily_cap", daily_cap), ("limit", limit), ("block size", size)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name} must be a whole number of messages >= 1, not {value!r}")
        if not isinstance(concurrency, int) or not 1 <= concurrency <= 100:
            raise ConfigError(f"concurrency must be a whole number from 1 to 100, not "
                              f"{concurrency!r}")
        if pause and not size:
            raise ConfigError("a block pause needs a block size: block=(50, '2min')")
        return cls(parse_rate(rate), size, pause, daily_cap, limit, concurrency)

    def offsets(self, n: int) -> list[float]:
        """Seconds from the start at which each of ``n`` messages may start, by this schedule."""
        out, t = [], 0.0
        step = 1 / self.rate if self.rate else 0.0
        for k in range(n):
            if k and self.block_size and k % self.block_size == 0:
                t += self.block_pause
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
        parts.append(f"{self.concurrency} connection{'s' if self.concurrency > 1 else ''}")
        return ", ".join(parts)


class Pacer:
    """Hands out start times: the k-th message never starts before the schedule says, and the
    schedule is shared by every connection. When the sender falls behind, the schedule moves with
    it (no burst to catch up)."""

    def __init__(self, pacing: Pacing, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.interval = 1 / pacing.rate if pacing.rate else 0.0
        self.block_size = pacing.block_size
        self.block_pause = pacing.block_pause
        self.clock = clock
        self.sleep = sleep
        self.count = 0
        self.next_slot: float | None = None

    def slow_down(self, factor: float = 2.0, floor: float = 0.5) -> None:
        """After a 421 (the relay is overloaded): send at most half as fast from now on."""
        self.interval = max(self.interval * factor, floor)

    def reserve(self) -> float:
        """Take the next slot and return its time (no waiting)."""
        now = self.clock()
        if self.next_slot is None:
            self.next_slot = now
        if self.count and self.block_size and self.count % self.block_size == 0:
            # the pause is a real break even when the sender has fallen behind the schedule
            self.next_slot = max(self.next_slot, now) + self.block_pause
        slot = max(self.next_slot, now)
        self.next_slot = slot + self.interval
        self.count += 1
        return slot

    async def wait(self, before_sleep: Callable[[], None] | None = None) -> None:
        slot = self.reserve()
        delay = slot - self.clock()
        if delay > 0:
            if before_sleep is not None:
                before_sleep()
            await self.sleep(delay)
