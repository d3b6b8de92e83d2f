"""Files instead of a relay: the pickup transport writes each message as an ``.eml`` file, and a
:class:`Backup` keeps a copy of each message sent (both 0600, in folders made 0700)."""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..config.secrets import Secret
from ..config.targets import Pickup
from ..errors import ConfigError
from ..util.files import private_dir, write_private
from .base import Transport, register
from .outcome import Delivery, Handover


class PickupConnection:
    """"Save as file": each message becomes ``<n>-<recipient>.eml`` in the folder."""

    pipelines = False

    def __init__(self, pickup: Pickup, password: Secret | None = None) -> None:
        self.folder = Path(pickup.folder)
        self.steps: list[tuple[str, bool, str]] = []

    async def open(self) -> None:
        try:
            private_dir(self.folder)
        except OSError as err:
            raise ConfigError(f"cannot create the pickup folder {str(self.folder)!r}: {err}") \
                from None

    async def close(self) -> None:
        pass

    async def send(self, sender: str, recipient: str, data: bytes, *, smtputf8: bool = False,
                   handover: Handover | None = None) -> Delivery | None:
        if handover is not None and not (await handover())[0]:
            return None
        path = unique_path(self.folder / f"{time.time_ns()}-{safe_name(recipient)}.eml")
        write_atomic(path, data)
        return Delivery("sent", None, f"written to {path}")


# -- files --------------------------------------------------------------------------------------------
_UNSAFE = re.compile(r"[^\w@.+=-]+", re.UNICODE)


def safe_name(text: str, limit: int = 80) -> str:
    """Text made safe for a file name on any system."""
    name = _UNSAFE.sub("_", text).strip("._") or "_"
    return name[:limit]


def unique_path(path: Path) -> Path:
    if not path.exists():
        return path
    for i in range(1, 10_000):
        candidate = path.with_name(f"{path.stem}-{i}{path.suffix}")
        if not candidate.exists():
            return candidate
    raise ConfigError(f"too many files named like {path}")


def write_atomic(path: Path, data: bytes) -> None:
    """Messages hold personal data: written 0600, in folders made 0700."""
    write_private(path, data)


@dataclass
class Backup:
    """Save a copy of every sent message. ``pattern`` is a path with placeholders ``{campaign}``,
    ``{subject}``, ``{recipient}``, ``{date}`` (YYYY-MM-DD) and ``{time}`` (HHMMSS), each made
    safe for file names; a pattern not ending in ``.eml`` is a folder, and files are named
    ``{date}-{time}-{recipient}.eml`` in it."""

    pattern: str
    written: list[Path] = field(default_factory=list, repr=False)

    def path_for(self, *, campaign: str, subject: str, recipient: str,
                 when: float | None = None) -> Path:
        now = datetime.fromtimestamp(when or time.time())
        values = {"campaign": safe_name(campaign), "subject": safe_name(subject, 60),
                  "recipient": safe_name(recipient), "date": now.strftime("%Y-%m-%d"),
                  "time": now.strftime("%H%M%S")}
        pattern = self.pattern
        if not pattern.endswith(".eml"):
            pattern = pattern.rstrip("/") + "/{date}-{time}-{recipient}.eml"
        try:
            return Path(os.path.expanduser(pattern.format(**values)))
        except (KeyError, IndexError, ValueError) as err:
            raise ConfigError(f"backup pattern {self.pattern!r}: unknown placeholder {err}; use "
                              "{campaign}, {subject}, {recipient}, {date} or {time}") from None

    def check(self) -> None:
        self.path_for(campaign="c", subject="s", recipient="r@example.com")

    def save(self, data: bytes, **values: Any) -> Path:
        path = unique_path(self.path_for(**values))
        private_dir(path.parent)
        write_atomic(path, data)
        return path


register(Transport("pickup", Pickup, connect=PickupConnection))
