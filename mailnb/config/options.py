"""The options of a send, typed and in one place.

:class:`SendOptions` is what :func:`mailnb.send` takes as keyword arguments: an unknown name is a
:class:`~mailnb.errors.ConfigError` that names the closest valid one. :meth:`SendOptions.resolve` is
the one place where an explicit option overrides a profile's value; ``None`` means "not given" (so
the profile's value, else the default) and ``0`` means "no limit" in every door.
"""
from __future__ import annotations

import difflib
import inspect
import threading
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import ConfigError
from .pacing import Pacing
from .registry import PROFILE, SEND, in_door, settings_fields


def closest(name: str, valid: list[str], what: str) -> ConfigError:
    """An error for an unknown ``name`` that suggests the closest valid one."""
    near = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    hint = f"; did you mean {near[0]!r}?" if near else f"; valid ones are {', '.join(valid)}"
    return ConfigError(f"unknown {what} {name!r}{hint}")


@settings_fields(SEND, defaults="send", frozen=True)
class SendOptions:
    """Everything :func:`mailnb.send` takes besides the campaign and the relay: the registry's
    ``send`` settings (None: the profile's value, else the default), then these."""

    backoff: float = 2.0                # first retry after this many seconds, doubling
    max_backoff: float = 300.0
    max_size: int | None = None         # bytes a message may have (default 10 MB)
    block: Any = None                   # shorthand: (size, pause) or a size
    pacing: Pacing | None = None        # a ready Pacing (wins over the pacing options)
    stop: threading.Event | None = None   # set it to stop after the messages in flight
    preflight: Any = None               # a preflight already run (Job.preflight): not run again

    if TYPE_CHECKING:        # the settings' fields come from the registry
        __dataclass_fields__: ClassVar[dict[str, Any]]

        def __init__(self, **options: Any) -> None: ...

        def __getattr__(self, name: str) -> Any: ...

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_kwargs(cls, options: dict[str, Any]) -> SendOptions:
        valid = cls.names()
        for name in options:
            if name not in valid:
                raise closest(name, valid, "option")
        return cls(**options)

    @classmethod
    def resolve(cls, profile: Any, options: dict[str, Any]) -> SendOptions:
        """The profile's values where an option is not given (None). The one place where an
        explicit option overrides a profile. Every value the profile sets counts, ``0`` and
        ``False`` too (``retries = 0`` means no retry); only an empty text is "not set"."""
        given = cls.from_kwargs(options)
        if profile is None:
            return given
        changes: dict[str, Any] = {}
        for opt in from_profile():
            value = getattr(profile, opt, None)
            if options.get(opt) is None and value is not None and value != "":
                changes[opt] = value
        return replace(given, **changes)

    def make_pacing(self) -> Pacing:
        if self.pacing is not None:
            return self.pacing
        size, pause = self.block_size, self.block_pause
        if self.block is not None:
            size, pause = self.block if isinstance(self.block, tuple) else (self.block, pause)
        return Pacing.build(rate=self.rate, block=size, block_pause=pause,
                            daily_cap=self.daily_cap, limit=self.limit,
                            concurrency=self.concurrency, window=self.window)

    def check(self) -> Pacing:
        """Check every option; return the pacing."""
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ConfigError(f"retries must be a whole number >= 0, not {self.retries!r}")
        if isinstance(self.journal, (str, Path)) and not str(self.journal).strip():
            raise ConfigError("journal is an empty path; leave it out for the default journal")
        return self.make_pacing()


def from_profile() -> list[str]:
    """The options a profile's value stands in for when they are not given: the settings that
    are both a profile key and a send option."""
    return [s.name for s in in_door(SEND) if PROFILE in s.doors]


def signature_of(func: Any) -> inspect.Signature:
    """``func(campaign, relay, /, *, <every SendOptions field>)``: the signature help() shows."""
    params = [inspect.Parameter("campaign", inspect.Parameter.POSITIONAL_ONLY),
              inspect.Parameter("relay", inspect.Parameter.POSITIONAL_ONLY)]
    params += [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default,
                                 annotation=f.type) for f in fields(SendOptions)]
    return inspect.Signature(params, return_annotation="pandas.DataFrame")
