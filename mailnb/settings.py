"""Settings: the relay to send through, and where its password comes from.

:class:`Relay` is a plain value object; nothing here opens a socket. Passwords never sit in a repr,
an error message or a file: they are wrapped in :class:`Secret` and read, in this order, from the
value given, an environment variable, or the system keyring.
"""
from __future__ import annotations

import ipaddress
import os
import re
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError, SecretMissingError

SECURITY = ("none", "starttls", "tls")
DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}
SMTP_PASSWORD_ENV = "MAILNB_SMTP_PASSWORD"
KEYRING_SERVICE = "mailnb"

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


class Secret:
    """A password that does not show itself: ``repr`` and ``str`` print stars."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:  # never pickled into a notebook or a result by accident
        raise TypeError("a Secret cannot be pickled")


def valid_hostname(host: str) -> bool:
    """True for an IP address or a host name made of valid DNS labels."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    if not name or len(name) > 253:
        return False
    try:
        name = name.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    return all(_LABEL.match(label) for label in name.split("."))


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


@dataclass(frozen=True)
class Relay:
    """An SMTP relay.

    ``security``: ``"starttls"`` (submission, port 587), ``"tls"`` (implicit TLS, port 465) or
    ``"none"`` (a local relay on port 25). Certificates are verified unless ``verify=False`` (warned
    about); ``cafile`` names a private CA. ``password`` may be given, but it is better left out: it is
    then read from ``password_env`` (default ``MAILNB_SMTP_PASSWORD``) or the keyring when needed.
    """

    host: str
    port: int | None = None
    security: str = "starttls"
    username: str | None = None
    password: Secret | None = field(default=None, repr=False, compare=False)
    password_env: str | None = SMTP_PASSWORD_ENV
    helo: str | None = None
    timeout: float = 30.0
    verify: bool = True
    cafile: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.password, str):
            object.__setattr__(self, "password", Secret(self.password))
        if self.port is None and self.security in DEFAULT_PORTS:
            object.__setattr__(self, "port", DEFAULT_PORTS[self.security])

    @property
    def account(self) -> str:
        """Who the daily cap is counted for: the username at the host."""
        return f"{self.username or ''}@{self.host.lower()}"

    @property
    def needs_auth(self) -> bool:
        return bool(self.username)

    def validate(self) -> list[str]:
        """Check the settings without connecting. Raises ConfigError for what cannot work and
        returns warnings for what is unusual (and warns them)."""
        if not isinstance(self.host, str) or not valid_hostname(self.host):
            raise ConfigError(f"relay host {self.host!r} is not a valid host name or IP address; "
                              "use e.g. 'smtp.example.org' or '127.0.0.1'")
        if self.security not in SECURITY:
            raise ConfigError(f"relay security must be one of {SECURITY}, not {self.security!r}")
        if not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise ConfigError(f"relay port {self.port!r} is out of range; use 1-65535 (587 for "
                              "starttls, 465 for tls, 25 for none)")
        if not self.timeout or self.timeout <= 0:
            raise ConfigError(f"relay timeout must be a positive number of seconds, not "
                              f"{self.timeout!r}")
        if self.cafile and not Path(self.cafile).is_file():
            raise ConfigError(f"CA file {self.cafile!r} does not exist; give the path of a PEM file")
        if self.helo and not valid_hostname(self.helo):
            raise ConfigError(f"HELO name {self.helo!r} is not a valid host name")
        found = []
        if self.port == 465 and self.security != "tls":
            found.append(f"port 465 is for implicit TLS, but security is {self.security!r}; "
                         "use security='tls'")
        if self.port == 587 and self.security != "starttls":
            found.append(f"port 587 is for STARTTLS, but security is {self.security!r}; "
                         "use security='starttls'")
        if not self.verify:
            found.append("TLS certificate verification is off: anyone on the path can read the "
                         "password and the mail. Use cafile=... for a private CA instead.")
        if self.username and self.security == "none" and not _loopback(self.host):
            found.append("AUTH over an unencrypted connection sends the password in clear text; "
                         "use security='starttls' or 'tls'")
        for message in found:
            warnings.warn(message, stacklevel=3)
        return found

    def resolve_password(self) -> Secret | None:
        """The password to log in with, or None when the relay needs no login."""
        if not self.username:
            return None
        return find_password(kind="smtp", username=self.username, host=self.host,
                             given=self.password, env=self.password_env)

    def with_(self, **changes: Any) -> Relay:
        return replace(self, **changes)

    def describe(self) -> str:
        who = f"{self.username} at " if self.username else ""
        return f"{who}{self.host}:{self.port} ({self.security})"


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@dataclass(frozen=True)
class Pickup:
    """"Save as file": write each message as an ``.eml`` file into ``folder`` instead of sending.
    A message counts as sent once its file is written."""

    folder: str | Path

    @property
    def account(self) -> str:
        return f"pickup:{Path(self.folder).resolve()}"

    def validate(self) -> list[str]:
        return []

    def describe(self) -> str:
        return f"files in {self.folder}"
