"""What a transport is, and the registry that names them.

A **target** is the settings value that says where mail goes (:class:`~mailnb.config.targets.Relay`,
``Pickup``, ``Graph``, ``Direct``); a **connection** is what a run sends through, one a worker:
``open()``, ``send()`` and ``close()``, and whether it ``pipelines``. A :class:`Transport` ties a
target's type to the function that connects to it and says what the transport supports.

A new transport is one module with its target and connection, and one line::

    transports.register(Transport("ses", SESTarget, connect=SESConnection))

(papermill's engines are the model). The sender, the forms and the command line know transports
only through :func:`lookup` and :func:`connect`; the built-in ones load on first use.
"""
from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..config.options import closest
from ..config.profile import TARGET_MAKERS, Profile
from ..config.secrets import Secret
from ..config.targets import TARGET_TYPES, Target, add_target_type
from ..errors import ConfigError
from .outcome import Delivery, Envelope, Handover


class Connection(Protocol):
    """One connection of a transport: opened on its first message, reused, closed at the end."""

    @property
    def pipelines(self) -> bool:
        """Whether the next message's envelope may go out with this one's end of data."""

    async def open(self) -> None: ...

    async def send(self, sender: str, recipient: str, data: bytes, *, smtputf8: bool = False,
                   handover: Handover | None = None) -> Delivery | None:
        """Send one message; None when the handover said it is not this run's to send."""

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Transport:
    """A transport: its ``name`` (the ``transport`` setting), the ``target`` type that names it,
    and ``connect(target, password)``. ``envelope_sender``: it takes a bounce address (MAIL FROM)
    of its own; ``password(target)``: the password a run looks up once, before its first
    message; ``before_send``: run once before a run's first message (POP before SMTP)."""

    name: str
    target: type[Any]
    connect: Callable[[Any, Secret | None], Connection]
    envelope_sender: bool = True
    password: Callable[[Any], Secret | None] | None = None
    before_send: Callable[[Any], Awaitable[None]] | None = None
    title: str = ""                     # how messages name it (default: its name)
    from_profile: Callable[[Profile], Any] | None = None   # a profile's target of this kind

    def __post_init__(self) -> None:
        if not self.title:
            object.__setattr__(self, "title", self.name)


_REGISTRY: dict[str, Transport] = {}
#: the built-in transports, by name: the module that registers each, imported on first use
BUILTIN = {"smtp": "smtp", "pickup": "pickup", "graph": "graph", "direct": "direct",
           "none": "nowhere"}


def register(transport: Transport) -> None:
    """Make a transport known by its name and its target's type (a later one replaces it)."""
    _REGISTRY[transport.name] = transport
    add_target_type(transport.name, transport.target)
    if transport.from_profile is not None:
        TARGET_MAKERS[transport.name] = transport.from_profile


def lookup(name: str) -> Transport:
    """The transport called ``name``; an unknown name is an error naming the closest one."""
    if name not in _REGISTRY and name in BUILTIN:
        importlib.import_module(f"{__package__}.{BUILTIN[name]}")
    if name not in _REGISTRY:
        raise closest(name, sorted({*BUILTIN, *_REGISTRY}), "transport")
    return _REGISTRY[name]


def of(target: Target) -> Transport:
    """The transport of a target (a Relay, Pickup, Graph, Direct or a registered one)."""
    name = getattr(type(target), "transport", None)
    if not isinstance(name, str) or TARGET_TYPES.get(name) is not type(target):
        raise ConfigError("relay must be a mailnb.Relay (SMTP), Graph, Direct, Pickup (.eml "
                          f"files) or a registered transport's target, not {type(target).__name__}")
    return lookup(name)


def connect(target: Target, password: Secret | None) -> Connection:
    """A connection of the target's transport (opened on its first message)."""
    return of(target).connect(target, password)


def password_for(target: Target) -> Secret | None:
    """The target's password, if its transport logs in with one (looked up once a run)."""
    find = of(target).password
    return find(target) if find is not None else None


__all__ = ["BUILTIN", "Connection", "Delivery", "Envelope", "Handover", "Target", "Transport",
           "connect", "lookup", "of", "password_for", "register"]
