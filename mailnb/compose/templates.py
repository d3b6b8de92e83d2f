"""Templates: subject, text and HTML bodies with per-row merge fields (jinja2).

Rendering is strict and sandboxed: an undefined variable is an error for that row (never an empty
string in someone's inbox), HTML is autoescaped and text is not, and any control character that would
end up in a header is refused (header injection). Each template is compiled once.

Pure: no network. Reading template files and checking attachment paths is the only I/O.
"""
from __future__ import annotations

import math
import re
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence, Set
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import pandas as pd
from jinja2.sandbox import SandboxedEnvironment

from ..errors import TemplateError, alt
from ..util import fanout
from . import embeds
from .checks import Problem, check_rendered, once_each
from .preview import Preview
from .rendered import Rendered
from .text import html_to_text, inline_css, text_to_html, text_with_tables

#: the parts of a template that become headers: a control character there is an injection
HEADER_FIELDS = ("subject", "to_name", "from_name", "reply_to")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SPLIT_PATHS = re.compile(r"[;\n]")
DEFAULT_MAX_SIZE = 10 * 1024 * 1024


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA \
        or value is pd.NaT


def _template_line(tb: Any, names: set[str]) -> int | None:
    """The line in one of our templates where a render error happened (jinja keeps it in the tb)."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename in names:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


class Template:
    """A message template.

    >>> t = Template(subject="Hello {{ first_name }}", text="Dear {{ first_name }}, ...",
    ...              html="<p>Dear {{ first_name }}, ...</p>", to_name="{{ first_name }} {{ last }}")

    Every DataFrame column is a variable, and ``row`` holds the whole row (for columns whose names
    are not identifiers: ``{{ row['Due date'] }}``). ``missing="error"`` (default) makes an empty
    (NaN/None) value of a variable the template uses an error for that row; ``missing="empty"``
    renders it as an empty string.

    Attachments: ``attachment_column`` names a column holding a path, a list of paths, or paths
    separated by ``;``; ``attachments`` is a template yielding paths (one per line or ``;``).
    Relative paths are resolved against ``attachment_dir`` (default: the current folder).
    """

    PARTS = ("subject", "text", "html", "to_name", "from_name", "reply_to", "footer",
             "footer_html", "attachments")

    def __init__(self, subject: str, text: str | None = None, html: str | None = None, *,
                 to_name: str | None = None, from_name: str | None = None,
                 reply_to: str | None = None, footer: str | None = None,
                 footer_html: str | None = None, attachments: str | None = None,
                 attachment_column: str | None = None, attachment_dir: str | Path | None = None,
                 headers: Mapping[str, str] | None = None, missing: str = "error",
                 css: str = "inline") -> None:
        if text is None and html is None:
            raise TemplateError("a template needs a text body, an HTML body or both "
                                "(pass text=... and/or html=...)", field="text")
        if missing not in ("error", "empty"):
            raise TemplateError(f"missing must be 'error' or 'empty', not {missing!r}")
        self.sources: dict[str, str] = {}
        for name, src in (("subject", subject), ("text", text), ("html", html),
                          ("to_name", to_name), ("from_name", from_name),
                          ("reply_to", reply_to), ("footer", footer),
                          ("footer_html", footer_html), ("attachments", attachments)):
            if src is not None:
                self.sources[name] = src
        for name, src in (headers or {}).items():
            self.sources[f"header:{name}"] = src
        if css not in ("inline", "keep"):
            raise TemplateError(f"css must be 'inline' or 'keep', not {css!r}")
        self.css = css
        self.attachment_column = attachment_column
        self.attachment_dir = Path(attachment_dir) if attachment_dir else None
        self.missing = missing
        self._compiled: dict[str, jinja2.Template] | None = None
        self._combined: jinja2.Template | None = None
        self._variables: dict[str, set[str]] = {}
        self._env = SandboxedEnvironment(
            loader=jinja2.FunctionLoader(self._source),
            undefined=jinja2.StrictUndefined,
            autoescape=lambda name: name in ("html", "footer_html"),
            keep_trailing_newline=True)
        self._env.filters.update(
            where=jinja2.pass_context(embeds.where), table=jinja2.pass_context(embeds.table),
            chart=jinja2.pass_context(embeds.chart), image=jinja2.pass_context(embeds.chart))

    def _source(self, name: str) -> tuple[str, str, Any]:
        # the name doubles as the file name, so a render error's traceback tells which part and line
        return self.sources[name], name, lambda: True

    # -- construction from files -----------------------------------------------------------------
    @classmethod
    def from_folder(cls, path: str | Path, **options: Any) -> Template:
        """Load ``subject.txt``, ``body.txt`` and/or ``body.html``, and the optional ``footer.txt``,
        ``footer.html``, ``to_name.txt``, ``from_name.txt``, ``reply_to.txt`` and
        ``attachments.txt`` from a folder. A folder holding one ``*.md`` file and no
        ``subject.txt`` is read with :meth:`from_markdown`."""
        folder = Path(path)
        if not folder.is_dir():
            raise TemplateError(f"template folder {str(folder)!r} does not exist; create it with "
                                "subject.txt and body.txt and/or body.html")

        def read(name: str) -> str | None:
            p = folder / name
            return p.read_text(encoding="utf-8") if p.is_file() else None

        subject = read("subject.txt")
        if subject is None:
            md = sorted(folder.glob("*.md"))
            if len(md) == 1:
                return cls.from_markdown(md[0], **options)
            raise TemplateError(f"{folder / 'subject.txt'} is missing: a template folder needs "
                                "subject.txt (one line) and body.txt and/or body.html",
                                field="subject")
        text, markup = read("body.txt"), read("body.html")
        if text is None and markup is None:
            raise TemplateError(f"{folder} has neither body.txt nor body.html; add one of them",
                                field="text")
        kwargs: dict[str, Any] = {"attachment_dir": folder}
        for key, fname in (("footer", "footer.txt"), ("footer_html", "footer.html"),
                           ("to_name", "to_name.txt"), ("from_name", "from_name.txt"),
                           ("reply_to", "reply_to.txt"), ("attachments", "attachments.txt")):
            value = read(fname)
            if value is not None:
                kwargs[key] = value.strip() if key in HEADER_FIELDS + ("attachments",) else value
        kwargs.update(options)
        return cls(subject.strip(), text, markup, **kwargs)

    @classmethod
    def from_markdown(cls, path: str | Path, **options: Any) -> Template:
        """Load a Markdown file with YAML front matter (``subject`` required; ``to_name``,
        ``from_name``, ``reply_to``, ``footer``, ``attachments`` optional). The Markdown is the text
        part; the HTML part is the Markdown converted once, at load time, so merge values are
        still autoescaped in it."""
        import markdown
        import yaml

        p = Path(path)
        source = p.read_text(encoding="utf-8")
        meta: dict[str, Any] = {}
        m = re.match(r"\A---\s*\n(.*?)\n---\s*\n", source, re.S)
        if m:
            try:
                meta = yaml.safe_load(m.group(1)) or {}
            except yaml.YAMLError as err:
                raise TemplateError(f"{p}: the front matter is not valid YAML: {err}") from None
            source = source[m.end():]
        if "subject" not in meta:
            raise TemplateError(f"{p}: the front matter needs a subject, e.g.\n---\n"
                                "subject: Hello {{ first_name }}\n---", field="subject")
        kwargs: dict[str, Any] = {k: str(v) for k, v in meta.items()
                                  if k in ("to_name", "from_name", "reply_to", "footer", "attachments")}
        kwargs.setdefault("attachment_dir", p.parent)
        kwargs.update(options)
        markup = markdown.markdown(source, extensions=["extra"])
        return cls(str(meta["subject"]), source, markup, **kwargs)

    # -- compiling ---------------------------------------------------------------------------------
    def compile(self) -> dict[str, jinja2.Template]:
        """Compile every part once; a syntax error raises :class:`TemplateError` with the line."""
        if self._compiled is None:
            compiled = {}
            for name, src in self.sources.items():
                try:
                    compiled[name] = self._env.get_template(name)
                    self._variables[name] = jinja2.meta.find_undeclared_variables(
                        self._env.parse(src))
                except jinja2.TemplateSyntaxError as err:
                    raise TemplateError(
                        f"template {name}, line {err.lineno}: {err.message}. Fix the template "
                        f"syntax there.", field=name, line=err.lineno) from None
            self._compiled = compiled
            # every part in one template, each in its own autoescape scope, split on a marker
            # no value can contain: one render per row instead of one per part
            self._sep = f"\x1f{uuid.uuid4().hex}\x1f"
            self._order = list(compiled)
            combined = "".join(
                f"{{% autoescape {'true' if n in ('html', 'footer_html') else 'false'} %}}"
                f"{self.sources[n]}{{% endautoescape %}}{self._sep}" for n in self._order)
            try:
                self._combined = self._env.from_string(combined)
            except jinja2.TemplateSyntaxError:
                self._combined = None
            self._all_vars = set().union(*self._variables.values()) if self._variables else set()
        return self._compiled

    @property
    def variables(self) -> set[str]:
        """Every variable the template uses."""
        self.compile()
        return set().union(*self._variables.values()) - {"row"}

    def unknown_fields(self, columns: list[str], known: Set[str] = frozenset()
                       ) -> list[tuple[str, str, int | None, str | None]]:
        """(variable, part, line, closest column) for every variable the template uses that is
        neither a column nor given by mailnb (``row``, ``unsubscribe_url``, ``known``)."""
        import difflib
        self.compile()
        given = set(columns) | {"row", "unsubscribe_url"} | set(known)
        found = []
        for part, names in self._variables.items():
            for name in sorted(names - given):
                line = next((n for n, text in enumerate(self.sources[part].splitlines(), 1)
                             if re.search(rf"{{[{{%][^}}]*\b{re.escape(name)}\b", text)), None)
                near = difflib.get_close_matches(name, columns, n=1, cutoff=0.6)
                found.append((name, part, line, near[0] if near else None))
        return found

    def field_problems(self, columns: list[str], first: Mapping[str, Any] | None,
                       context: Mapping[str, Any] | None = None
                       ) -> list[Problem]:
        """Every unknown merge field at once (not only the first a render stops at), when the
        first row shows they are really used (a field guarded by ``is defined`` is not)."""
        unknown = self.unknown_fields(columns, set(context or ()))
        if not unknown or first is None:
            return []
        out = []
        names = {name for name, *_ in unknown}
        for name, part, line, near in unknown:
            others = {n: "" for n in names - {name}}
            try:                  # each alone: a field guarded by `is defined` renders fine
                self.render(first, context={**(context or {}), **others})
                continue
            except TemplateError as err:
                if f"'{name}' is undefined" not in str(err):
                    continue
            where = f"template {part}" + (f", line {line}" if line else "")
            hint = f"did you mean {{{{ {near} }}}}? " if near else ""
            out.append(Problem(None, part, f"{where}: {{{{ {name} }}}} is no column of the recipients; "
                        f"{hint}the columns are {sorted(columns)}", "error"))
        return out

    # -- rendering ---------------------------------------------------------------------------------
    def render(self, row: Mapping[str, Any], *, row_id: Any = None,
               context: Mapping[str, Any] | None = None, default_footer: str | None = None,
               default_footer_html: str | None = None) -> Rendered:
        """Render one row. Raises :class:`TemplateError` naming the row, the field and the fix."""
        self.compile()
        values = dict(row)
        if self.missing == "empty":
            values = {k: ("" if _is_missing(v) else v) for k, v in values.items()}
        ctx = dict(values)
        ctx["row"] = values
        if context:
            ctx.update(embeds.context_for(context, values))
        found = ctx[embeds.SLOT] = embeds.Collected()
        out = self._render_parts(ctx, values, row_id)
        _check_header_fields(out, row_id)
        text, markup = self._assemble(out, default_footer, default_footer_html, found.tables)
        images = list(found.images.values())
        if markup is not None and images:            # only the images the final HTML shows
            images = [i for i in images if f"cid:{i.cid}" in markup]
        return Rendered(
            subject=out["subject"], text=text, html=markup, to_name=out.get("to_name") or None,
            from_name=out.get("from_name") or None, reply_to=out.get("reply_to") or None,
            attachments=self._attachments(row, out.get("attachments"), row_id),
            headers={k[7:]: v for k, v in out.items() if k.startswith("header:")},
            inline=images if markup is not None else [], empty=list(dict.fromkeys(found.empty)))

    def _render_parts(self, ctx: dict[str, Any], values: dict[str, Any],
                      row_id: Any) -> dict[str, str]:
        """Every part, in one render when nothing is wrong; part by part, for the precise error,
        when something is."""
        out: dict[str, str] = {}
        if self._combined is not None and (self.missing != "error" or not any(
                var in values and _is_missing(values[var]) for var in self._all_vars)):
            try:
                pieces = self._combined.render(ctx).split(self._sep)
            except Exception:
                pieces = []
            if len(pieces) == len(self._order) + 1:
                out = dict(zip(self._order, pieces))
        for name, tmpl in (self._compiled or {}).items():
            if name not in out:
                out[name] = self._render_part(name, tmpl, ctx, values, row_id)
        return out

    def _render_part(self, name: str, tmpl: jinja2.Template, ctx: dict[str, Any],
                     values: dict[str, Any], row_id: Any) -> str:
        if self.missing == "error":
            for var in self._variables[name]:
                if var in values and _is_missing(values[var]):
                    raise TemplateError(
                        f"row {row_id!r}, field {name}: column {var!r} is empty in this row. "
                        "Fill it in or drop the row"
                        + alt(", or use Template(..., missing='empty').", "."),
                        field=name, row=row_id)
        try:
            return tmpl.render(ctx)
        except jinja2.UndefinedError as err:
            line = _template_line(sys.exc_info()[2], set(self.sources))
            raise TemplateError(
                f"row {row_id!r}, field {name}{f' line {line}' if line else ''}: {err.message}. "
                f"Add that column to the DataFrame or fix the template; the columns are "
                f"{sorted(k for k in values)}.", field=name, row=row_id, line=line) from None
        except jinja2.TemplateError as err:
            raise TemplateError(f"row {row_id!r}, field {name}: {err}", field=name,
                                row=row_id) from None
        except Exception as err:  # an error inside a filter or a value's __str__
            raise TemplateError(f"row {row_id!r}, field {name}: {type(err).__name__}: {err}",
                                field=name, row=row_id) from None

    def _assemble(self, out: dict[str, str], default_footer: str | None,
                  default_footer_html: str | None, tables: Sequence[tuple[str, str]] = ()
                  ) -> tuple[str | None, str | None]:
        """The text and HTML bodies with the footer, CSS inlined, a text part made from HTML
        (its report ``tables``, (html, text) pairs, as aligned text)."""
        text, markup = out.get("text"), out.get("html")
        footer = out.get("footer", default_footer)
        footer_html = out.get("footer_html", default_footer_html)
        if footer is None and footer_html is not None:
            footer = html_to_text(footer_html)
        if footer_html is None and footer is not None:
            footer_html = text_to_html(footer)
        if markup is not None and self.css == "inline":
            markup = inline_css(markup)
        if markup is not None and text is None:
            text = text_with_tables(out["html"], tables)
        if footer:
            if text is not None:
                text = text.rstrip("\n") + "\n\n" + footer.strip("\n") + "\n"
            if markup is not None and footer_html:
                block = f'<div class="footer">{footer_html}</div>'
                pos = markup.lower().rfind("</body>")
                markup = markup[:pos] + block + markup[pos:] if pos >= 0 else markup + block
        return text, markup

    def _attachments(self, row: Mapping[str, Any], rendered: str | None, row_id: Any) -> list[Path]:
        raw: list[str] = []
        if self.attachment_column is not None:
            if self.attachment_column not in row:
                raise TemplateError(
                    f"row {row_id!r}, field attachments: there is no column "
                    f"{self.attachment_column!r}; name an existing column in attachment_column",
                    field="attachments", row=row_id)
            value = row[self.attachment_column]
            if isinstance(value, (list, tuple)):
                raw.extend(str(v) for v in value)
            elif not _is_missing(value) and str(value).strip():
                raw.extend(_SPLIT_PATHS.split(str(value)))
        if rendered:
            raw.extend(_SPLIT_PATHS.split(rendered))
        paths = []
        for item in raw:
            item = item.strip()
            if not item:
                continue
            p = Path(item).expanduser()
            if not p.is_absolute() and self.attachment_dir is not None:
                p = self.attachment_dir / p
            if not p.is_file():
                raise TemplateError(
                    f"row {row_id!r}, field attachments: file {str(p)!r} does not exist. Fix the "
                    f"path in that row or put the file there.", field="attachments", row=row_id)
            paths.append(p)
        return paths

    # -- whole audiences ---------------------------------------------------------------------------
    def iter_rendered(self, audience: Any, *, context: Mapping[str, Any] | None = None,
                      **render_options: Any) -> Iterator[tuple[Any, Rendered | TemplateError]]:
        """Render each sendable row of an audience (or DataFrame) in turn, without keeping them."""
        frame = audience.sendable if hasattr(audience, "sendable") else audience
        columns = [str(c) for c in frame.columns]
        # the per-recipient unsubscribe link exists only at send time: a placeholder here
        context = {"unsubscribe_url": "https://unsubscribe.invalid/preview", **(context or {})}
        values = [frame.iloc[:, k].tolist() for k in range(frame.shape[1])]  # as itertuples, faster
        for idx, *vals in zip(frame.index, *values):
            try:
                yield idx, self.render(dict(zip(columns, vals)), row_id=idx, context=context,
                                       **render_options)
            except TemplateError as err:
                yield idx, err

    def preflight(self, audience: Any, *, max_size: int = DEFAULT_MAX_SIZE,
                  context: Mapping[str, Any] | None = None, empty: str = "error",
                  **render_options: Any) -> pd.DataFrame:
        """Render every sendable row without sending; return a DataFrame of problems with columns
        ``row``, ``field`` and ``error`` (empty when all is well). Template syntax errors are
        reported with ``row`` None and the template's line number."""
        problems: list[Problem] = []
        columns_out = ["row", "field", "error", "severity"]
        try:
            self.compile()
        except TemplateError as err:
            problems.append(Problem(None, err.field or "", str(err), "error"))
            return pd.DataFrame(problems, columns=columns_out)
        frame = audience.sendable if hasattr(audience, "sendable") else audience
        columns = [str(c) for c in frame.columns]
        first = dict(zip(columns, next(frame.itertuples(index=False, name=None), ()))) \
            if len(frame) else None
        unknown = self.field_problems(columns, first, {**(context or {}),
                                                       "unsubscribe_url": "https://x.invalid/"})
        if unknown:
            return pd.DataFrame(unknown, columns=columns_out)

        def task(start: int, stop: int) -> list[Problem]:
            found: list[Problem] = []
            advised: set[tuple[str, str]] = set()
            for idx, result in self.iter_rendered(frame.iloc[start:stop], context=context,
                                                  **render_options):
                if isinstance(result, TemplateError):
                    found.append(Problem(idx, result.field or "", str(result), "error"))
                else:
                    found.extend(check_rendered(result, idx, max_size, advised, empty))
            return found

        problems.extend(once_each(fanout.ranges(task, len(frame))))
        return pd.DataFrame(problems, columns=columns_out)

    def preview(self, audience: Any, n: int = 3, **render_options: Any) -> Preview:
        """The first ``n`` rendered messages, shown in the cell (HTML as HTML)."""
        items = []
        for idx, result in self.iter_rendered(audience, **render_options):
            items.append((idx, result))
            if len(items) >= n:
                break
        return Preview(items)

    def __repr__(self) -> str:
        parts = ", ".join(k for k in ("text", "html", "footer") if k in self.sources)
        return f"<Template {self.sources['subject']!r} ({parts})>"


def _check_header_fields(out: dict[str, str], row_id: Any) -> None:
    """Header parts are single lines; a control character would forge headers."""
    for name in HEADER_FIELDS:
        if name in out:
            out[name] = out[name].strip()
    for name, value in out.items():
        if (name in HEADER_FIELDS or name.startswith("header:")) and CONTROL.search(value):
            raise TemplateError(
                f"row {row_id!r}, field {name}: the rendered value {value[:60]!r} contains a "
                f"line break or control character, which would forge headers. Clean that "
                f"column (e.g. df[col].str.replace(r'\\s+', ' ', regex=True)).",
                field=name, row=row_id)
    if not out["subject"]:
        raise TemplateError(f"row {row_id!r}, field subject: the subject renders empty; "
                            "give every row a subject", field="subject", row=row_id)


