"""Reports inside messages: campaign-wide data for templates, and the filters that turn it into
what mail programs show.

- ``Campaign(..., data={"sales": sales_df, "logo": "logo.png", "mine": lambda row: ...})``: each
  name is a variable of every row's template. A callable is applied to the row when a template
  first uses it (and at most once a row).
- ``{{ sales | where(region=region) }}``: the rows of a DataFrame whose columns equal the values
  (a list or tuple: any of them).
- ``{{ frame | table(caption="Your figures", max_rows=20) }}``: a DataFrame, or a pandas Styler
  with its formatting, as an HTML table whose styles are all inline (no ``<style>`` block, no
  class: Outlook, Gmail and Apple Mail show it alike), numbers right-aligned; in the text part, the
  same figures as an aligned plain-text table.
- ``{{ figure | chart(alt="Sales by month", key=region) }}`` (or ``image``): a matplotlib Figure,
  PNG/JPEG/SVG bytes, an image file's path, or a callable from ``data`` that draws the row's
  figure, embedded as a ``multipart/related`` part shown through ``cid:``. Identical images are
  one part built once; a callable's figure is drawn once per ``key``, so 10,000 managers in 40
  regions cost 40 drawings.

Pure apart from reading image files and drawing: nothing here sends or stores anything.
"""
from __future__ import annotations

import base64
import hashlib
import html as html_lib
import io
import math
import numbers
import re
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from markupsafe import Markup

#: how many drawn or read images one process keeps (by content), and keyed drawings
CACHE_SIZE = 1024
#: the rows a table shows unless told otherwise
MAX_ROWS = 50
#: processes that draw keyed charts before sending (None: one a core; 1: in this process)
DRAW_WORKERS: int | None = None
_SUBTYPES = {b"\x89PNG": "png", b"\xff\xd8\xff": "jpeg", b"GIF8": "gif"}
_CELL = "padding:4px 8px;border-bottom:1px solid #dddddd;"
_TABLE = ("border-collapse:collapse;font-family:Arial,Helvetica,sans-serif;font-size:14px;"
          "color:#222222;")
_HEAD = "padding:4px 8px;border-bottom:2px solid #888888;font-weight:bold;"
# what a Styler's own rules start from, before they are moved into style attributes
_STYLER_BASE = (f"table {{{_TABLE}}} th {{{_HEAD}text-align:left;}} td {{{_CELL}}} "
                "caption {text-align:left;font-weight:bold;padding:4px 0;}")


@dataclass(frozen=True)
class InlineImage:
    """One image part of a message: its Content-ID (without ``<>``), bytes and MIME subtype,
    and the part's bytes, base64-encoded once however many messages carry it."""

    cid: str
    content: bytes = field(repr=False)
    subtype: str
    filename: str
    width: int | None = None
    height: int | None = None
    part: bytes = field(default=b"", repr=False, compare=False)

    @classmethod
    def of(cls, content: bytes, subtype: str) -> InlineImage:
        digest = hashlib.sha256(content).hexdigest()[:24]
        cid = f"{digest}@mailnb"
        ext = {"svg+xml": "svg"}.get(subtype, subtype)
        name = f"image-{digest[:12]}.{ext}"
        width, height = _size(content, subtype)
        encoded = base64.encodebytes(content).replace(b"\n", b"\r\n")
        part = (f"Content-Type: image/{subtype}\r\nContent-Transfer-Encoding: base64\r\n"
                f"Content-ID: <{cid}>\r\nContent-Disposition: inline; filename=\"{name}\"\r\n"
                "\r\n").encode("ascii") + encoded
        return cls(cid, content, subtype, name, width, height, part)


class RowValue:
    """A callable from ``data``, applied to the row the first time a template uses it."""

    def __init__(self, fn: Callable[[Mapping[str, Any]], Any], row: Mapping[str, Any]) -> None:
        self.fn, self.row, self._done, self._value = fn, row, False, None

    def value(self) -> Any:
        if not self._done:
            self._value, self._done = self.fn(self.row), True
        return self._value

    # what a template may do with the value itself
    def __iter__(self) -> Any:
        return iter(self.value())

    def __len__(self) -> int:
        return len(self.value())

    def __bool__(self) -> bool:
        value = self.value()                 # a DataFrame: has it rows (pandas has no truth)
        return not value.empty if _is_frame(value) else bool(value)

    def __str__(self) -> str:
        return str(self.value())

    def __getitem__(self, key: Any) -> Any:
        return self.value()[key]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.value(), name)


@dataclass
class Collected:
    """What one render's filters produced besides text: images, empty selections, tables."""

    images: dict[str, InlineImage] = field(default_factory=dict)
    empty: list[str] = field(default_factory=list)
    tables: list[tuple[str, str]] = field(default_factory=list)      # (html, text)


#: the context variable that carries a render's :class:`Collected`
SLOT = "_mailnb_collected"


def context_for(data: Mapping[str, Any] | None, row: Mapping[str, Any]) -> dict[str, Any]:
    """The template variables ``data`` gives one row: callables wrapped to run on first use."""
    out: dict[str, Any] = {}
    for name, value in (data or {}).items():
        if isinstance(value, RowValue):
            value = value.fn
        out[name] = RowValue(value, row) if callable(value) else value
    return out


def _is_frame(value: Any) -> bool:
    return hasattr(value, "columns") and hasattr(value, "iloc")


def _unwrap(value: Any) -> Any:
    return value.value() if isinstance(value, RowValue) else value


def _collected(ctx: Any) -> Collected:
    found = ctx.get(SLOT) if ctx is not None else None
    return found if isinstance(found, Collected) else Collected()


# -- where -----------------------------------------------------------------------------------------
def where(ctx: Any, frame: Any, **equal: Any) -> Any:
    """The rows of ``frame`` whose columns equal the given values (a list: any of them)."""
    frame = _unwrap(frame)
    if not _is_frame(frame):
        raise TypeError(f"where() takes a DataFrame, not {type(frame).__name__}")
    mask = None
    for column, value in equal.items():
        if column not in frame.columns:
            raise KeyError(f"where(): the data has no column {column!r}; its columns are "
                           f"{[str(c) for c in frame.columns]}")
        test = frame[column].isin(list(value)) if isinstance(value, (list, tuple, set)) \
            else frame[column] == value
        mask = test if mask is None else mask & test
    out = frame[mask] if mask is not None else frame
    if out.empty:
        what = ", ".join(f"{k}={v!r}" for k, v in equal.items())
        _collected(ctx).empty.append(f"where({what})")
    return out


# -- table -----------------------------------------------------------------------------------------
def table(ctx: Any, value: Any, caption: str | None = None, max_rows: int = MAX_ROWS,
          index: bool = False) -> Any:
    """An HTML table (in an HTML part) or an aligned text table (in a text part)."""
    value = _unwrap(value)
    styler = value if hasattr(value, "to_html") and hasattr(value, "data") and \
        not _is_frame(value) else None
    frame = styler.data if styler is not None else value
    if not _is_frame(frame):
        raise TypeError(f"table() takes a DataFrame or a pandas Styler, not "
                        f"{type(value).__name__}")
    found = _collected(ctx)
    if frame.empty:
        found.empty.append(f"table({caption!r})" if caption else "table()")
    more = max(len(frame) - max_rows, 0)
    header, rows, numeric = _cells(styler, frame, max_rows, index)
    text = _text_table(header, rows, numeric, caption, more)
    if not ctx.eval_ctx.autoescape:
        return text
    markup = (_styler_html(styler, caption, max_rows, more, numeric) if styler is not None
              else _html_table(header, rows, numeric, caption, more))
    found.tables.append((markup, text))
    return Markup(markup)


def _format(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return f"{value:,}"
    if isinstance(value, numbers.Real):
        return f"{value:,.2f}"
    if hasattr(value, "strftime"):
        has_time = any(getattr(value, a, 0) for a in ("hour", "minute", "second"))
        return str(value.strftime("%Y-%m-%d %H:%M" if has_time else "%Y-%m-%d"))
    return str(value)


def _cells(styler: Any, frame: Any, max_rows: int, index: bool
           ) -> tuple[list[str], list[list[str]], list[bool]]:
    """Header, display strings (the Styler's formats when there is one) and which columns hold
    numbers."""
    import pandas as pd
    shown = frame.head(max_rows)
    header = [str(c) for c in shown.columns]
    numeric = [pd.api.types.is_numeric_dtype(shown[c]) and not pd.api.types.is_bool_dtype(
        shown[c]) for c in shown.columns]
    if styler is not None:
        rows = _styler_cells(styler, len(shown), len(header))
    else:
        rows = [[_format(v) for v in r] for r in shown.itertuples(index=False, name=None)]
    if index:
        header = [str(shown.index.name or "")] + header
        numeric = [False] + numeric
        rows = [[str(i)] + r for i, r in zip(shown.index, rows)]
    return header, rows, numeric


def _styler_cells(styler: Any, n_rows: int, n_cols: int) -> list[list[str]]:
    """The Styler's display values (its ``format``), read through its public ``to_string``."""
    sep = "\x1f"
    lines = styler.to_string(delimiter=sep).splitlines()
    out = []
    for line in lines[1:n_rows + 1]:
        cells = line.split(sep)
        out.append(cells[-n_cols:])
    return out


def _html_table(header: list[str], rows: list[list[str]], numeric: list[bool],
                caption: str | None, more: int) -> str:
    esc = html_lib.escape
    align = ["right" if n else "left" for n in numeric]
    out = [f'<table cellpadding="0" cellspacing="0" border="0" style="{_TABLE}">']
    if caption:
        out.append('<caption style="text-align:left;font-weight:bold;padding:4px 0;">'
                   f"{esc(caption)}</caption>")
    out.append("<thead><tr>" + "".join(
        f'<th style="{_HEAD}text-align:{a};">{esc(h)}</th>' for h, a in zip(header, align))
        + "</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>" + "".join(f'<td style="{_CELL}text-align:{a};">{esc(c)}</td>'
                                    for c, a in zip(row, align)) + "</tr>")
    if more:
        out.append(f'<tr><td colspan="{len(header)}" style="{_CELL}font-style:italic;">'
                   f"and {more:,} more rows</td></tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _styler_html(styler: Any, caption: str | None, max_rows: int, more: int,
                 numeric: list[bool]) -> str:
    """The Styler's table with every rule moved into style attributes, classes and ids gone
    (the user's Styler is left as it was)."""
    import css_inline
    source = styler.to_html(max_rows=max_rows if more else None, doctype_html=False)
    if more:                        # pandas' own "..." row becomes a sentence below
        source = re.sub(r"<tr>\s*(<t[hd][^>]*>\s*\.\.\.\s*</t[hd]>\s*)+</tr>", "", source)
    right = " ".join(f"td.col{i} {{text-align:right;}} th.col{i} {{text-align:right;}}"
                     for i, n in enumerate(numeric[-len(styler.columns):]) if n)
    inlined = css_inline.inline_fragment(source, _STYLER_BASE + " " + right)
    inlined = re.sub(r'\s(?:class|id)="[^"]*"', "", inlined)
    if caption:
        inlined = re.sub(r"(<table[^>]*>)", lambda m: m.group(1) + (
            '<caption style="text-align:left;font-weight:bold;padding:4px 0;">'
            f"{html_lib.escape(caption)}</caption>"), inlined, count=1)
    if more:
        first = re.search(r"<tr>(.*?)</tr>", inlined, re.S)
        n = len(re.findall(r"<t[hd]\b", first.group(1))) if first else 1
        note = (f'<tr><td colspan="{n}" style="{_CELL}font-style:italic;">and {more:,} more '
                "rows</td></tr>")
        inlined = inlined.replace("</tbody>", note + "</tbody>", 1)
    return inlined


def _text_table(header: list[str], rows: list[list[str]], numeric: list[bool],
                caption: str | None, more: int) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if n else c.ljust(w)
                         for c, w, n in zip(cells, widths, numeric)).rstrip()

    out = [caption] if caption else []
    out += [line(header), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    if more:
        out.append(f"and {more:,} more rows")
    return "\n".join(out) + "\n"


# -- chart / image ---------------------------------------------------------------------------------
_BY_CONTENT: OrderedDict[str, InlineImage] = OrderedDict()
_BY_KEY: OrderedDict[tuple[int, Any], InlineImage] = OrderedDict()


def _remember(cache: OrderedDict[Any, InlineImage], key: Any, image: InlineImage) -> InlineImage:
    cache[key] = image
    cache.move_to_end(key)
    while len(cache) > CACHE_SIZE:
        cache.popitem(last=False)
    return image


def chart(ctx: Any, value: Any, alt: str | None = None, key: Any = None,
          width: int | None = None, height: int | None = None, dpi: int = 100,
          kind: str = "bar", x: str | None = None, y: str | None = None,
          title: str | None = None) -> Any:
    """An ``<img src="cid:...">`` for the image (in a text part: its alt text in brackets). A
    DataFrame is drawn with pandas' plotting (``kind``, ``x``, ``y``, ``title``), so a template
    fed only files (the command line) can chart a recipient's rows too."""
    found = _collected(ctx)
    if not ctx.eval_ctx.autoescape:
        return f"[{alt}]" if alt else ""
    cache_key = (id(value.fn), key) if isinstance(value, RowValue) and key is not None else None
    image = _BY_KEY.get(cache_key) if cache_key is not None else None
    later = _LATER.get()
    if image is None and cache_key is not None and later is not None:
        image = later.placeholder(cache_key, value.fn, value.row, dpi)
        size = f' {SIZE_MARK}="{image.cid}:{width or 0}:{height or 0}"'   # set when drawn
    else:
        if image is None:
            value = _unwrap(value)
            if _is_frame(value):
                value = _plot(value, kind, x, y, title)
            image = to_image(value, dpi)
            if cache_key is not None:
                _remember(_BY_KEY, cache_key, image)
        size = _size_attrs(image, width, height)
    found.images[image.cid] = image
    return Markup(_img(image.cid, alt, size))


def _size_attrs(image: InlineImage, width: int | None, height: int | None) -> str:
    w, h = width or image.width, height or image.height
    if width and not height and image.width and image.height:
        h = round(image.height * width / image.width)
    return (f' width="{w}"' if w else "") + (f' height="{h}"' if h else "")


def _img(cid: str, alt: str | None, size: str) -> str:
    alt_attr = f' alt="{html_lib.escape(alt)}"' if alt else ""     # none: hygiene warns
    return (f'<img src="cid:{cid}"{alt_attr}{size} '
            'style="display:block;max-width:100%;height:auto;border:0;">')


def _plot(frame: Any, kind: str, x: str | None, y: str | None, title: str | None) -> Any:
    from matplotlib.figure import Figure
    if kind not in ("bar", "barh", "line", "area"):
        raise ValueError(f"chart kind {kind!r}: use bar, barh, line or area")
    figure = Figure(figsize=(5, 2.6))
    ax = figure.subplots()
    frame.plot(kind=kind, x=x, y=y, ax=ax, legend=False, title=title, rot=0)
    figure.tight_layout()
    return figure


# -- drawing in worker processes ------------------------------------------------------------------
#: the attribute a deferred chart's <img> carries until its image is drawn
SIZE_MARK = "data-mailnb-size"
_LATER: ContextVar[Later | None] = ContextVar("mailnb_draw_later", default=None)
_JOBS: list[tuple[Any, dict[str, Any], int]] = []      # read by forked workers


class Later:
    """Keyed charts not drawn yet: each gets a placeholder image at once; :meth:`draw` draws
    them all in worker processes, then :meth:`patch` puts the real images into what was
    rendered meanwhile."""

    def __init__(self) -> None:
        self.token = hashlib.sha256(str(id(self)).encode()).hexdigest()[:8]
        self.jobs: dict[tuple[int, Any], tuple[Any, dict[str, Any], int]] = {}
        self.holders: dict[tuple[int, Any], InlineImage] = {}
        self.drawn: dict[str, InlineImage] = {}         # placeholder cid -> image

    def placeholder(self, key: tuple[int, Any], fn: Any, row: Mapping[str, Any],
                    dpi: int) -> InlineImage:
        if key not in self.holders:
            self.jobs[key] = (fn, dict(row), dpi)
            self.holders[key] = InlineImage(f"later{len(self.holders)}.{self.token}@mailnb",
                                            b"", "png", "later.png")
        return self.holders[key]

    def draw(self, workers: int | None = None) -> None:
        """Draw every placeholder's chart: in worker processes (forked, so the callables and
        the data need no pickling) when there are several and this is Linux, else here."""
        keys = list(self.jobs)
        results = _draw_all([self.jobs[k] for k in keys], workers or DRAW_WORKERS)
        for key, (content, subtype) in zip(keys, results):
            image = _remember(_BY_KEY, key, _cached(content, subtype))
            self.drawn[self.holders[key].cid] = image

    def patch(self, rendered: Any) -> Any:
        """``rendered`` with its placeholders replaced by the drawn images."""
        if not any(i.cid in self.drawn for i in rendered.inline):
            return rendered
        markup = rendered.html or ""
        inline: dict[str, InlineImage] = {}
        for image in rendered.inline:
            real = self.drawn.get(image.cid, image)
            markup = re.sub(rf' {SIZE_MARK}="{re.escape(image.cid)}:(\d+):(\d+)"',
                            lambda m, real=real: _size_attrs(real, int(m[1]) or None,
                                                             int(m[2]) or None),
                            markup.replace(f"cid:{image.cid}", f"cid:{real.cid}"))
            inline.setdefault(real.cid, real)
        return replace(rendered, html=markup, inline=list(inline.values()))


@contextmanager
def drawing_later() -> Iterator[Later]:
    """Within: keyed charts the cache lacks are left as placeholders for :meth:`Later.draw`."""
    later = Later()
    token = _LATER.set(later)
    try:
        yield later
    finally:
        _LATER.reset(token)


def _draw_one(i: int) -> tuple[bytes, str]:
    fn, row, dpi = _JOBS[i]
    image = to_image(fn(row), dpi)
    return image.content, image.subtype


def _draw_all(jobs: list[tuple[Any, dict[str, Any], int]], workers: int | None
              ) -> list[tuple[bytes, str]]:
    import multiprocessing
    import os
    workers = min(workers or os.cpu_count() or 1, len(jobs))
    _JOBS[:] = jobs
    try:
        # fork only on Linux: macOS's system libraries are not safe to use in a forked child
        if workers > 1 and sys.platform.startswith("linux"):
            from concurrent.futures import ProcessPoolExecutor
            ctx = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
                return list(pool.map(_draw_one, range(len(jobs)),
                                     chunksize=max(1, len(jobs) // (workers * 4))))
        return [_draw_one(i) for i in range(len(jobs))]
    finally:
        _JOBS.clear()


def to_image(value: Any, dpi: int = 100) -> InlineImage:
    """A matplotlib Figure, image bytes or an image file as one :class:`InlineImage`."""
    if hasattr(value, "savefig"):                      # a matplotlib Figure
        buf = io.BytesIO()
        value.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        _close(value)
        content, subtype = buf.getvalue(), "png"
    elif isinstance(value, (bytes, bytearray, memoryview)):
        content = bytes(value)
        subtype = _sniff(content)
    elif isinstance(value, (str, Path)):
        path = Path(value).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"image {str(value)!r} is no file; give a path that exists")
        content = path.read_bytes()
        subtype = _sniff(content)
    else:
        raise TypeError(f"chart()/image() takes a matplotlib Figure, PNG/JPEG/SVG bytes or a "
                        f"file path, not {type(value).__name__}")
    return _cached(content, subtype)


def _cached(content: bytes, subtype: str) -> InlineImage:
    """The image of these bytes, built (and base64-encoded) once per process."""
    digest = hashlib.sha256(content).hexdigest()
    image = _BY_CONTENT.get(digest)
    return image if image is not None else _remember(_BY_CONTENT, digest,
                                                     InlineImage.of(content, subtype))


def _close(figure: Any) -> None:
    try:
        import matplotlib.pyplot as plt
        plt.close(figure)
    except Exception:           # a Figure made without pyplot has nothing to close
        pass


def _sniff(content: bytes) -> str:
    for magic, subtype in _SUBTYPES.items():
        if content.startswith(magic):
            return subtype
    head = content[:512].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head):
        return "svg+xml"
    raise ValueError("the image is not PNG, JPEG, GIF or SVG")


def _size(content: bytes, subtype: str) -> tuple[int | None, int | None]:
    if subtype == "png" and len(content) >= 24:
        return int.from_bytes(content[16:20], "big"), int.from_bytes(content[20:24], "big")
    if subtype in ("jpeg", "gif"):
        try:
            from PIL import Image
            with Image.open(io.BytesIO(content)) as im:
                return im.size
        except Exception:       # no Pillow, or an image it cannot read: no size attributes
            return None, None
    return None, None


__all__ = ["InlineImage", "chart", "context_for", "table", "to_image", "where"]
