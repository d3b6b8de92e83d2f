"""HTML and plain text: the text part made from an HTML body (links and tables kept readable), HTML
made from text, and ``<style>`` rules inlined for mail programs that drop them."""
from __future__ import annotations

import html as html_lib
import re
import uuid
from collections.abc import Sequence
from html.parser import HTMLParser


class _TextFromHTML(HTMLParser):
    """A plain-text rendering of HTML for the text/plain alternative: block elements become line
    breaks, links keep their address, scripts and styles vanish."""

    BLOCK = {"p", "div", "br", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "li", "table", "ul", "ol",
             "blockquote", "hr", "section", "article", "header", "footer", "pre"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0
        self.href: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head", "title"):
            self.skip += 1
        elif tag in self.BLOCK:
            self.out.append("\n")
            if tag == "li":
                self.out.append("- ")
        elif tag == "a":
            self.href.append(dict(attrs).get("href"))
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self.out.append(alt)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head", "title"):
            self.skip = max(0, self.skip - 1)
        elif tag in self.BLOCK:
            self.out.append("\n")
        elif tag == "a" and self.href:
            href = self.href.pop()
            if href and not href.startswith("#") and href not in "".join(self.out[-3:]):
                self.out.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.out.append(re.sub(r"\s+", " ", data))


def html_to_text(markup: str) -> str:
    """Turn an HTML body into a readable text/plain alternative."""
    parser = _TextFromHTML()
    parser.feed(markup)
    parser.close()
    text = "".join(parser.out)
    lines = [line.strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def text_with_tables(markup: str, tables: Sequence[tuple[str, str]]) -> str:
    """The text made from HTML, its report tables as the aligned text tables of the same
    figures (not one cell a line)."""
    marks = {}
    for n, (table_html, table_text) in enumerate(tables):
        mark = f"MAILNBTABLE{n}X{uuid.uuid4().hex}"
        if table_html in markup:
            markup = markup.replace(table_html, f"<p>{mark}</p>", 1)
            marks[mark] = table_text.rstrip("\n")
    text = html_to_text(markup)
    for mark, table_text in marks.items():
        text = text.replace(mark, table_text)
    return text


def text_to_html(text: str) -> str:
    """Escape text for an HTML part, keeping its line breaks."""
    return "<p>" + html_lib.escape(text).replace("\n", "<br>\n") + "</p>"


def inline_css(markup: str) -> str:
    """Move the rules of ``<style>`` blocks into ``style`` attributes, which is all many mail
    programs read (css-inline, a maintained inliner)."""
    if "<style" not in markup.lower():
        return markup
    import css_inline
    return css_inline.inline(markup)
