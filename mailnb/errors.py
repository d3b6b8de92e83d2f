"""One exception tree for mailnb.

Catch :class:`MailnbError` to catch everything mailnb raises on purpose, or a subclass to be precise.
Subclasses also inherit the matching built-in (``ValueError``, ``ConnectionError``) so code that
already catches those keeps working. Every message says what to do next, and none contains a secret.
"""
from __future__ import annotations

from typing import Any


class MailnbError(Exception):
    """Root of every error mailnb raises on purpose."""


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
    """The preflight found problems; nothing was sent. ``problems`` is a DataFrame (row, field, error)."""

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
    """The journal cannot be opened or is in a state mailnb does not understand."""
