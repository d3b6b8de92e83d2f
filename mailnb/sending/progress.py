"""Progress of a send: a bar with sent / failed / deferred counts and the ETA.

In a notebook kernel it is one display that is updated in place (``display_id``), as HTML with a
text/plain twin: JupyterLab shows it live, and papermill writes its final state into the output
notebook, readable as text. In a terminal it is a tqdm bar; with ``mode="text"``, plain lines.
"""
from __future__ import annotations

import html
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..errors import phrase


@dataclass
class Stats:
    total: int = 0
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    retrying: int = 0
    skipped: int = 0
    in_flight: int = 0
    started: float = field(default_factory=time.time)
    eta: float | None = None           # expected end (epoch seconds)
    state: str = "sending"

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.deferred + self.skipped

    def expected_end(self) -> float | None:
        """The later of the pacing's schedule and what the speed so far predicts."""
        elapsed = time.time() - self.started
        observed = None
        if self.done and self.total > self.done:
            observed = time.time() + (self.total - self.done) * elapsed / self.done
        found = [t for t in (self.eta, observed) if t]
        return max(found) if found else None

    def line(self) -> str:
        eta = ""
        end = self.expected_end()
        if end and self.state == "sending":
            eta = f", ETA {datetime.fromtimestamp(end):%H:%M:%S}"
        elapsed = time.time() - self.started
        return (f"{self.state}: {self.done}/{self.total} | sent {self.sent}, failed {self.failed}, "
                f"deferred {self.deferred}, retrying {self.retrying} | {elapsed:.0f}s{eta}")


def in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


class _Rich:
    def __init__(self, stats: Stats) -> None:
        self.stats = stats

    def _repr_html_(self) -> str:
        s = self.stats
        pct = 100 * s.done / s.total if s.total else 100
        color = "#2a7" if s.state == "done" else "#37c"
        return (f"<div style='font-family:monospace'><div style='background:#eee;width:320px;"
                f"height:10px'><div style='background:{color};width:{pct * 3.2:.0f}px;"
                f"height:10px'></div></div>{html.escape(s.line())}</div>")

    def __repr__(self) -> str:
        return self.stats.line()


class Progress:
    def __init__(self, stats: Stats, mode: str | bool | None = "auto") -> None:
        self.stats = stats
        if mode is True:
            mode = "auto"
        if mode == "auto":
            mode = "notebook" if in_kernel() else ("bar" if sys.stderr.isatty() else "text")
        self.mode = mode or None
        self.handle: Any = None
        self.bar: Any = None
        self.last_text = 0.0
        if self.mode == "notebook":
            from IPython.display import display
            self.handle = display(_Rich(stats), display_id=True)   # type: ignore[no-untyped-call]
        elif self.mode == "bar":
            from tqdm import tqdm
            self.bar = tqdm(total=stats.total, unit="msg", file=sys.stderr)

    def refresh(self, final: bool = False) -> None:
        s = self.stats
        if self.handle is not None:
            self.handle.update(_Rich(s))
        elif self.bar is not None:
            self.bar.total = s.total
            self.bar.n = s.done
            self.bar.set_postfix(sent=s.sent, failed=s.failed, deferred=s.deferred, refresh=False)
            self.bar.refresh()
            if final:
                self.bar.close()
        elif self.mode == "text" and (final or time.time() - self.last_text >= 10):
            self.last_text = time.time()
            print(s.line(), file=sys.stderr if not in_kernel() else sys.stdout, flush=True)


def say(text: str) -> None:
    """Tell the user, on a line of its own (the doors phrase the fix: :func:`mailnb.errors.phrase`)."""
    print(f"mailnb: {phrase(text)}", flush=True)


def clock(t: float) -> str:
    """A time of day for the user: the local date and time."""
    return f"{datetime.fromtimestamp(t):%Y-%m-%d %H:%M:%S}"
