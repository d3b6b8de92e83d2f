"""A preview of the first messages, as a table a notebook shows and a terminal prints."""
from __future__ import annotations

import base64
import html as html_lib
from typing import Any

from ..errors import TemplateError
from .rendered import Rendered


def _shown(r: Rendered) -> str:
    """The HTML with its ``cid:`` images as ``data:`` URLs, which a notebook can show."""
    markup = r.html or ""
    for image in r.inline:
        data = base64.b64encode(image.content).decode("ascii")
        markup = markup.replace(f"cid:{image.cid}", f"data:image/{image.subtype};base64,{data}")
    return markup


class Preview:
    """A few rendered messages; shown as cards in a notebook, as text elsewhere."""

    def __init__(self, items: list[tuple[Any, Rendered | TemplateError]]) -> None:
        self.items = items

    def __repr__(self) -> str:
        out = []
        for idx, r in self.items:
            if isinstance(r, TemplateError):
                out.append(f"--- row {idx!r}: ERROR {r}")
            else:
                out.append(f"--- row {idx!r}\nSubject: {r.subject}\n\n{r.text or ''}")
        return "\n".join(out)

    def _repr_html_(self) -> str:
        cards = []
        esc = html_lib.escape
        for idx, r in self.items:
            if isinstance(r, TemplateError):
                cards.append(f"<div style='border:1px solid #c00;padding:6px;margin:4px'>"
                             f"<b>row {esc(repr(idx))}</b>: {esc(str(r))}</div>")
                continue
            body = (f"<iframe sandbox='' style='width:100%;height:360px;border:0' "
                    f"srcdoc='{esc(_shown(r), quote=True)}'></iframe>" if r.html else
                    f"<pre style='white-space:pre-wrap'>{esc(r.text or '')}</pre>")
            files = (f"<div>attachments: {esc(', '.join(p.name for p in r.attachments))}</div>"
                     if r.attachments else "")
            cards.append(f"<div style='border:1px solid #ccc;padding:6px;margin:4px'>"
                         f"<div><b>row {esc(repr(idx))}</b> &middot; To name: "
                         f"{esc(r.to_name or '')}</div><div><b>Subject:</b> {esc(r.subject)}</div>"
                         f"{files}{body}</div>")
        return "".join(cards)
