"""Personal data on request: erase an address (``forget``), say what is held about it (``export``)
and expire what is old (``purge``). ``mailnb forget``, ``mailnb export`` and ``mailnb purge`` are
the same functions from the command line.

An erased address is kept only as a keyed hash (HMAC-SHA256 with the installation's secret, the
one that signs unsubscribe links), so every later send excludes it with reason ``forgotten``
while the address itself is nowhere in clear.
"""
from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..audience.recipients import address_key
from ..compose.unsubscribe import load_secret
from ..config.pacing import parse_duration
from ..errors import ConfigError
from .base import Journal, JournalLike
from .open import open_journal


def address_hash(address: str, secret: bytes | None = None) -> str:
    """The keyed hash an erased address is remembered by."""
    key = address_key(address).encode("utf-8")
    return hmac.new(secret or load_secret(), key, hashlib.sha256).hexdigest()


class Forgotten:
    """The erased addresses, as an exclusion list (``Audience(..., forgotten=...)``)."""

    def __init__(self, hashes: Iterable[str] = (), secret: bytes | None = None) -> None:
        self.hashes = set(hashes)
        self.secret = secret

    def match(self, key: str) -> str | None:
        if not self.hashes:
            return None
        return "erased on request" if address_hash(key, self.secret) in self.hashes else None

    def __len__(self) -> int:
        return len(self.hashes)


@contextmanager
def _opened(journal: JournalLike) -> Iterator[Journal]:
    """The journal, closed afterwards if it was opened here (from a path or a URL)."""
    j = open_journal(journal)
    try:
        yield j
    finally:
        if j is not journal:
            j.close()


def forgotten(journal: JournalLike) -> Forgotten:
    """The journal's erased addresses."""
    with _opened(journal) as j:
        return Forgotten(j.forgotten_hashes())


def _message_files(folders: Iterable[str | Path]) -> list[Path]:
    out: list[Path] = []
    for folder in folders:
        root = Path(folder).expanduser()
        if root.is_dir():
            out += [p for p in root.rglob("*.eml") if p.is_file()]
    return out


def forget(addresses: Iterable[str], journal: JournalLike = None, *,
           folders: Iterable[str | Path] = ()) -> dict[str, int]:
    """Erase each address from the journal (recipients, events, bounces, unsubscribes,
    suppressions) and delete the saved messages (``folders``: backups, pickup, captures) that
    hold it; keep only its hash, so no later send mails it. Returns what was removed, by kind."""
    wanted = sorted({address_key(a) for a in addresses if a and a.strip()})
    if not wanted:
        raise ConfigError("forget needs at least one address")
    with _opened(journal) as j:
        counts = j.forget(wanted, [address_hash(a) for a in wanted])
    files = 0
    needles = [a.encode("utf-8") for a in wanted]
    for path in _message_files(folders):
        if any(n in path.read_bytes().lower() for n in needles):
            path.unlink()
            files += 1
    counts["message files"] = files
    counts["addresses"] = len(wanted)
    return counts


def export(address: str, journal: JournalLike = None) -> dict[str, Any]:
    """Everything held about one address: campaigns with states and times, events, bounces,
    suppressions and unsubscribes (each a list of records), and whether it was erased."""
    key = address_key(address)
    with _opened(journal) as j:
        held = {kind: frame.astype(object).where(frame.notna(), None).to_dict("records")
                for kind, frame in j.about(key).items()}
        return {"address": key, "erased": address_hash(key) in j.forgotten_hashes(), **held}


def purge(journal: JournalLike = None, *, older_than: str | float = "365d",
          folders: Iterable[str | Path] = ()) -> dict[str, int]:
    """Remove the per-message detail of campaigns that ended more than ``older_than`` ago
    (``"365d"``, ``"26w"`` or seconds), and saved messages older than that; keep the counts per
    campaign, the suppressions and the erased hashes. Returns what was removed, by kind."""
    seconds = parse_duration(older_than)
    if seconds <= 0:
        raise ConfigError(f"older_than {older_than!r} must be a positive duration, e.g. '365d'")
    cutoff = time.time() - seconds
    with _opened(journal) as j:
        counts = j.purge_before(cutoff)
    files = 0
    for path in _message_files(folders):
        if path.stat().st_mtime < cutoff:
            path.unlink()
            files += 1
    counts["message files"] = files
    return counts


def message_folders(profile: Any) -> list[str]:
    """Where a profile keeps copies of messages: the pickup folder and the backup folder's root
    (the pattern up to its first placeholder)."""
    out = []
    if getattr(profile, "pickup", ""):
        out.append(profile.pickup)
    pattern = getattr(profile, "backup", "")
    if pattern:
        if "{" in pattern:
            out.append(pattern.split("{", 1)[0] or ".")
        else:                   # a folder, or one file's path
            out.append(str(Path(pattern).parent) if pattern.endswith(".eml") else pattern)
    return out


__all__ = ["Forgotten", "address_hash", "export", "forget", "forgotten", "message_folders",
           "purge"]
