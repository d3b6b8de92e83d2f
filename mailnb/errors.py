"""One exception tree for mailnb.

Catch :class:`MailnbError` to catch everything mailnb raises on purpose, or a subclass to be precise.
Subclasses also inherit the matching built-in (``ValueError``, ``ConnectionError``) so code that
already catches those keeps working. Every message says what to do next, and none contains a secret.

The fix is phrased for the door in use. A message names a setting with :func:`arg` (and a
door-specific passage with :func:`alt`); it reads ``security='none'`` in Python and a notebook,
``--security none`` once the ``mailnb`` command has said it is the door (:func:`door`).
``err.phrased(door)`` gives either.
"""
from __future__ import annotations

import contextlib
import re
import shlex
import warnings
from collections.abc import Callable, Iterator
from typing import Any

_ARG, _ALT, _SEP = "\x1e", "\x1d", "\x1f"
_MARKED = re.compile(f"{_ARG}([^{_ARG}]*){_ARG}|{_ALT}([^{_ALT}]*){_ALT}")
DOORS = ("python", "cli")
_door = ["python"]


@contextlib.contextmanager
def door(name: str) -> Iterator[None]:
    """Phrase every message made inside for this door ("cli": the ``mailnb`` command)."""
    if name not in DOORS:
        raise ValueError(f"door must be one of {DOORS}")
    _door.append(name)
    try:
        yield
    finally:
        _door.pop()


def arg(name: str, value: Any = True) -> str:
    """A setting in a message's fix: ``name=value`` in Python, ``--name value`` on the command
    line. ``value`` is written as given (a str is quoted in Python, shell-quoted in the CLI)."""
    return f"{_ARG}{name}{_SEP}{value!r}{_ARG}"


def alt(python: str, cli: str) -> str:
    """A passage that differs by door: the first for Python and notebooks, the second for the
    ``mailnb`` command."""
    return f"{_ALT}{python}{_SEP}{cli}{_ALT}"


#: settings whose flag is not their name with dashes (``verify`` is switched off by its flag)
#: the command line's flags that are not the setting's name (the settings registry fills it)
FLAGS: dict[str, str] = {}


def flag_name(name: str) -> str:
    """The command line's flag for a setting: ``--daily-cap`` for ``daily_cap``."""
    return FLAGS.get(name) or "--" + name.replace("_", "-")


def named(name: str) -> str:
    """A setting's name: ``daily_cap`` in Python, ``--daily-cap`` on the command line."""
    return alt(name, flag_name(name))


def cli_flag(name: str, value: Any) -> str:
    """How the command line spells a setting: ``--daily-cap 500``, ``--wait``, ``--insecure``."""
    flag = flag_name(name)
    if value is True or name == "verify":
        return flag
    if value is False:
        return "--no-" + name.replace("_", "-")
    return f"{flag} {shlex.quote(str(value))}"


def phrase(message: str, door: str | None = None,
           flag: Callable[[str, Any], str] = cli_flag) -> str:
    """The message with its settings and passages phrased for ``door`` ("python" or "cli"; default
    the door in use)."""
    import ast
    door = door or _door[-1]

    def one(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            name, value = m.group(1).split(_SEP, 1)
            if door != "cli":
                return f"{name}={value}"
            return flag(name, ast.literal_eval(value))
        python, cli = m.group(2).split(_SEP, 1)
        return cli if door == "cli" else python
    return _MARKED.sub(one, message)


class _Phrased(Exception):
    """A message kept with its marks: ``str()`` reads it for the door in use when it was made,
    :meth:`phrased` for another door."""

    def __init__(self, message: str = "", *args: Any) -> None:
        self.marked = str(message)
        super().__init__(phrase(self.marked), *args)

    def phrased(self, door: str | None = None) -> str:
        return phrase(self.marked, door)


class MailnbError(_Phrased):
    """Root of every error mailnb raises on purpose."""


class MailnbWarning(_Phrased, UserWarning):
    """A doubt worth a line (a rate under one an hour, a file others can read); the fix phrased
    for the door as in :class:`MailnbError`."""


def warn(message: str, stacklevel: int = 2) -> None:
    warnings.warn(MailnbWarning(message), stacklevel=stacklevel + 1)


class ConfigError(MailnbError, ValueError):
    """A setting is missing or wrong (relay, profile, pacing, paths)."""


class SecretMissingError(ConfigError):
    """A password was needed but none was found in the environment or the keyring."""


class RecipientError(MailnbError, ValueError):
    """The recipients' DataFrame cannot be used as given (missing column, empty, wrong type)."""


class TemplateError(MailnbError, ValueError):
    """A template cannot be compiled or rendered."""

    def __init__(self, message: str, *, field: str | None = None, row: Any = None,
                 line: int | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.row = row
        self.line = line


class PreflightError(MailnbError, ValueError):
    """The preflight found problems; nothing was sent. ``problems`` is a DataFrame (row, field,
    error)."""

    def __init__(self, message: str, problems: Any) -> None:
        super().__init__(message)
        self.problems = problems


class RelayError(MailnbError, ConnectionError):
    """Talking to the SMTP relay failed. ``host`` and ``port`` say which relay."""

    def __init__(self, message: str, *, host: str | None = None, port: int | None = None,
                 code: int | None = None) -> None:
        super().__init__(message)
        self.host = host
        self.port = port
        self.code = code


class AuthenticationError(RelayError):
    """The relay refused the username or password."""


class TLSError(RelayError):
    """TLS could not be negotiated or the certificate could not be verified."""


class JournalError(MailnbError):
    """The journal cannot be opened or written, or is in a state mailnb does not understand.
    ``disk_full`` says the disk holding it is full."""

    def __init__(self, message: str, *, disk_full: bool = False) -> None:
        super().__init__(message)
        self.disk_full = disk_full
