"""Status marks that read without an emoji font: a word ("ok", "warning", "failed") in white on
a colour, so passed and failed steps look different in any browser and to a screen reader."""
from __future__ import annotations

import html

COLOURS = {"ok": "#1a7f37", "pass": "#1a7f37", "warning": "#9a6700", "warn": "#9a6700",
           "failed": "#cf222e", "fail": "#cf222e"}
WORDS = {"pass": "ok", "warn": "warning", "fail": "failed"}

#: a block of text that wraps inside the cell instead of running off to the right
WRAP = "white-space:pre-wrap;overflow-wrap:anywhere;max-width:100%"


def mark(kind: str) -> str:
    """``kind`` is ok/pass, warning/warn or failed/fail."""
    word = WORDS.get(kind, kind)
    return (f"<span class='mailnb-mark mailnb-{word}' style='display:inline-block;"
            f"min-width:4.5em;text-align:center;color:#fff;background:{COLOURS[kind]};"
            f"border-radius:3px;padding:0 4px;font-weight:bold;font-size:90%'>{word}</span>")


def marked(kind: str, text: str) -> str:
    """A mark followed by the text (escaped), wrapped."""
    return (f"<div style='{WRAP}'>{mark(kind)} <span style='color:{COLOURS[kind]}'>"
            f"{html.escape(text)}</span></div>")


def text_mark(ok: bool) -> str:
    """The plain-text form, for a terminal."""
    return "ok    " if ok else "FAILED"
