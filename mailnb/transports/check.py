"""``check_relay``: connect, say EHLO, negotiate TLS, log in and quit, step by step; send nothing."""
from __future__ import annotations

import html
from typing import Any

from ..config.targets import Relay
from ..errors import ConfigError, MailnbError
from ..util.marks import WRAP, mark, marked, text_mark
from ..util.runner import run_sync
from .smtp import SMTPConnection


class RelayCheck:
    """The steps of :func:`check_relay`, each ok or not, with what the server said."""

    def __init__(self, relay: Relay, steps: list[tuple[str, bool, str]], warnings: list[str]):
        self.relay = relay
        self.steps = steps
        self.warnings = warnings

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(ok for _, ok, _ in self.steps)

    def to_frame(self) -> Any:
        import pandas as pd
        return pd.DataFrame(self.steps, columns=["step", "ok", "detail"])

    def __repr__(self) -> str:
        lines = [f"check of {self.relay.describe()}: {'OK' if self.ok else 'FAILED'}"]
        lines += [f"  {text_mark(ok)} {step}: {detail}" for step, ok, detail in self.steps]
        lines += [f"  ! {w}" for w in self.warnings]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{mark('ok' if ok else 'failed')}</td><td>{html.escape(step)}</td>"
            f"<td style='{WRAP}'>{html.escape(detail)}</td></tr>" for step, ok, detail in self.steps)
        warns = "".join(marked("warning", w) for w in self.warnings)
        return (f"<div><b>{html.escape(self.relay.describe())}</b>: "
                f"{mark('ok' if self.ok else 'failed')}<table>{rows}</table>{warns}</div>")


async def check_relay_async(relay: Relay) -> RelayCheck:
    import warnings as _w
    with _w.catch_warnings(record=True) as caught:
        _w.simplefilter("always")
        try:
            found = relay.validate()
        except ConfigError as err:
            return RelayCheck(relay, [("settings", False, str(err))], [])
    steps: list[tuple[str, bool, str]] = [("settings", True, relay.describe())]
    try:
        password = relay.resolve_password()
    except MailnbError as err:
        return RelayCheck(relay, steps + [("password", False, str(err))], found)
    conn = SMTPConnection(relay, password)
    try:
        await conn.open()
    except MailnbError:
        pass
    finally:
        if conn.smtp is not None:
            await conn.close()
            conn.steps.append(("QUIT", True, "closed without sending"))
    del caught
    return RelayCheck(relay, steps + conn.steps, found)


def check_relay(relay: Relay) -> RelayCheck:
    """Connect, say EHLO, negotiate TLS, authenticate and quit, reporting each step; send nothing."""
    return run_sync(check_relay_async(relay))
