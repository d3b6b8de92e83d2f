"""No relay: the target of a dry run that names none. A dry run never connects; anything that
tries is told what to give."""
from __future__ import annotations

from ..config.secrets import Secret
from ..config.targets import Nowhere
from ..errors import ConfigError, arg
from .base import Connection, Transport, register


def _connect(target: Nowhere, password: Secret | None) -> Connection:
    raise ConfigError(f"there is no relay to send through: give one ({arg('host', 'smtp.example.org')} "
                      f"or {arg('profile', 'work')}), or plan only ({arg('dry_run')})")


register(Transport("none", Nowhere, connect=_connect, title="no relay"))
