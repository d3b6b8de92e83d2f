"""Checks of a rendered message: size, header safety, an empty report, and the hygiene spam filters
look at (images without alt text, links that are not links); each problem said once."""
from __future__ import annotations

import html as html_lib
import re
from collections.abc import Iterable
from typing import Any, NamedTuple

from ..errors import arg
from .rendered import Rendered
from .text import html_to_text

_IMG = re.compile(r"<img\b[^>]*>", re.I)
_ALT = re.compile(r"\balt\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s>]+)", re.I)
_HREF = re.compile(r"<a\b[^>]*?\bhref\s*=\s*(\"([^\"]*)\"|'([^']*)'|([^\s>]+))", re.I)
_URL = re.compile(r"^(?:https?://[^\s/?#]+\.[^\s/?#]+[^\s]*|mailto:[^\s@]+@[^\s@]+|tel:[+\d()\s.-]+|#.*)$",
                  re.I)


def hygiene(rendered: Rendered) -> list[tuple[str, str]]:
    """What receiving mail filters and readers dislike, as (field, advice) pairs: no text part, an
    HTML part that is only an image, images without alt text, malformed links."""
    out: list[tuple[str, str]] = []
    if not (rendered.text or "").strip():
        out.append(("text", "the text part is empty: add text, filters distrust HTML-only mail"))
    markup = rendered.html
    if markup:
        images = _IMG.findall(markup)
        if images and len(html_to_text(markup).split()) < 10:
            out.append(("html", "the HTML is (almost) only images: add text, or it will look "
                                "like spam and say nothing when images are blocked"))
        if any(not _ALT.search(img) for img in images):
            out.append(("html", "an image has no alt text: add alt=\"...\" for readers with "
                                "images off and screen readers"))
        for m in _HREF.finditer(markup):
            href = html_lib.unescape(next(g for g in m.groups()[1:] if g is not None)).strip()
            if href.lower().startswith("javascript:") or not _URL.match(href):
                out.append(("html", f"link {href[:80]!r} is not a well-formed https, mailto or "
                                    "tel address"))
                break
    return out


EMPTY_CHOICES = ("error", "skip", "send")


class Problem(NamedTuple):
    """One thing a preflight found: the ``row`` (its index label; None for the whole template or
    campaign), the ``field`` (the template part or the setting), the ``error`` (what is wrong,
    and the fix in the words of the door in use) and its ``severity``: ``error`` (nothing is
    sent), ``warning``, or ``skip`` (the row is left out, as asked)."""

    row: Any
    field: str
    error: str
    severity: str


def check_rendered(result: Rendered, idx: Any, max_size: int,
                   advised: set[tuple[str, str]], empty: str = "error"
                   ) -> list[Problem]:
    """Size (an error), an empty report selection (as ``empty`` says: an error, a note that
    the row is skipped, or nothing) and hygiene (warnings, each reported once, at the first row
    it shows)."""
    out: list[Problem] = []
    if result.empty and empty != "send":
        what = ", ".join(result.empty)
        if empty == "error":
            out.append(Problem(idx, "data", f"row {idx!r}: the report's selection is empty ({what}); "
                        f"fix the data, or pass {arg('empty', 'skip')} to leave such rows out or "
                        f"{arg('empty', 'send')} to send them anyway", "error"))
        else:
            out.append(Problem(idx, "data", f"row {idx!r} is skipped: its report's selection is empty "
                        f"({what})", "skip"))
    if (size := result.size_estimate()) > max_size:
        out.append(Problem(idx, "size", f"row {idx!r}: the message would be about {size / 1e6:.1f} MB, "
                    f"over the limit of {max_size / 1e6:.1f} MB; send smaller attachments or "
                    "raise max_size if your relay allows", "error"))
    for field_name, advice in hygiene(result):
        if (field_name, advice) not in advised:
            advised.add((field_name, advice))
            out.append(Problem(idx, field_name, f"row {idx!r}: {advice}", "warning"))
    return out


def once_each(found: Iterable[list[Problem]]) -> list[Problem]:
    """The problems of consecutive ranges of rows, each checked with its own ``advised`` set
    (:func:`check_rendered`), as one list: a warning only at the first row it shows, as if the
    rows had been checked in one go."""
    out: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for problems in found:
        for p in problems:
            if p.severity == "warning":
                key = (p.field, p.error[len(f"row {p.row!r}: "):])
                if key in seen:
                    continue
                seen.add(key)
            out.append(p)
    return out
