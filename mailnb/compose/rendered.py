"""One recipient's rendered message parts, before MIME: what templates make and messages build."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import embeds


@dataclass
class Rendered:
    """One row's rendered message parts, before MIME building."""

    subject: str
    text: str | None
    html: str | None
    to_name: str | None = None
    from_name: str | None = None
    reply_to: str | None = None
    attachments: list[Path] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    inline: list[embeds.InlineImage] = field(default_factory=list)   # cid: images of the HTML
    empty: list[str] = field(default_factory=list)    # report selections that came out empty

    def size_estimate(self) -> int:
        """Bytes the message will take on the wire, roughly (base64 attachments, encoded parts)."""
        body = sum(len(p.encode("utf-8")) for p in (self.subject, self.text or "", self.html or ""))
        files = 0
        for p in self.attachments:
            try:
                files += p.stat().st_size
            except OSError:
                pass
        return 1024 + body * 11 // 10 + files * 4 // 3 + sum(len(i.part) for i in self.inline)
