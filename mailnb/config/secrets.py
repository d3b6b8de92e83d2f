"""Secrets: passwords and tokens held so that they never land in a notebook, a journal, a log or
an exception message, and found in the environment or the system keyring, never in a file."""
from __future__ import annotations

import os
from typing import Any

from ..errors import SecretMissingError

SMTP_PASSWORD_ENV = "MAILNB_SMTP_PASSWORD"
KEYRING_SERVICE = "mailnb"


class Secret:
    """A password that does not show itself: ``repr`` and ``str`` print stars."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def scrub(self, text: str) -> str:
        """``text`` with the secret replaced by stars (for error messages from libraries)."""
        return text.replace(self._value, "********") if self._value else text

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:  # never pickled into a notebook or a result by accident
        raise TypeError("a Secret cannot be pickled")


def keyring_key(kind: str, username: str, host: str) -> str:
    return f"{kind}:{username}@{host}"


def find_password(*, kind: str, username: str, host: str, given: Any = None,
                  env: str | None = None) -> Secret:
    """A password from the value given, else the environment variable ``env``, else the keyring
    (service ``mailnb``, user ``<kind>:<username>@<host>``). Raises SecretMissingError saying how to
    set one."""
    if isinstance(given, Secret):
        return given
    if isinstance(given, str) and given:
        return Secret(given)
    if env and os.environ.get(env):
        return Secret(os.environ[env])
    try:
        import keyring  # optional: only where the user has a keyring
        value = keyring.get_password(KEYRING_SERVICE, keyring_key(kind, username, host))
    except Exception:  # no backend, locked keyring, package missing: fall through to the error
        value = None
    if value:
        return Secret(value)
    where = f"the environment variable {env}" if env else "an environment variable"
    raise SecretMissingError(
        f"no {kind.upper()} password for {username} on {host}. Set {where} (e.g. in the shell "
        f"that starts Jupyter), or store it in the system keyring: python -c \"import keyring; "
        f"keyring.set_password('{KEYRING_SERVICE}', '{keyring_key(kind, username, host)}', "
        f"input('password: '))\"")


