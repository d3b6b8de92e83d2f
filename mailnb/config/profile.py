"""Profiles: a named set of settings kept as TOML (mode 0600, never a password)."""
from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..audience.recipients import normalize
from ..errors import ConfigError, alt, arg, named
from ..util.files import private_dir
from .registry import FORMATS, PROFILE, in_door, settings_fields
from .secrets import SMTP_PASSWORD_ENV, Secret, find_password
from .targets import (
    AUTH_METHODS,
    GOOGLE_SMTP_SCOPES,
    GRAPH_URL,
    MICROSOFT_GRAPH_SCOPES,
    MICROSOFT_SMTP_SCOPES,
    OAUTH_PROVIDERS,
    SECURITY,
    Direct,
    Graph,
    Mailbox,
    OAuth,
    Pickup,
    Relay,
    port_mismatch,
    transport_names,
    url_problem,
    valid_hostname,
)

PROFILE_ENV = "MAILNB_PROFILE"
CONFIG_DIR_ENV = "MAILNB_CONFIG_DIR"
IMAP_PASSWORD_ENV = "MAILNB_IMAP_PASSWORD"


def config_dir() -> Path:
    """Where profiles live: ``$MAILNB_CONFIG_DIR``, else the user's config folder (platformdirs)."""
    if os.environ.get(CONFIG_DIR_ENV):
        return Path(os.environ[CONFIG_DIR_ENV])
    import platformdirs
    return Path(platformdirs.user_config_dir("mailnb", appauthor=False))


def _env_name(base: str, profile: str) -> str:
    return f"{base}_{re.sub(r'[^A-Za-z0-9]', '_', profile).upper()}"


@settings_fields(PROFILE, defaults="profile")
class Profile:
    """A named set of settings: the relay, the sending preferences and the bounce mailbox. Its
    keys are the registry's ``profile`` settings (:mod:`mailnb.config.registry`).

    Stored as ``<config dir>/profiles/<name>.toml`` (mode 0600) without any password: passwords come
    from ``MAILNB_SMTP_PASSWORD_<PROFILE>``, ``MAILNB_SMTP_PASSWORD`` or the keyring (IMAP alike).
    """

    if TYPE_CHECKING:        # the fields come from the registry: typed there, checked at runtime
        __dataclass_fields__: ClassVar[dict[str, Any]]

        def __init__(self, **settings: Any) -> None: ...

        def __getattr__(self, name: str) -> Any: ...

        def __setattr__(self, name: str, value: Any) -> None: ...

    # -- derived values ------------------------------------------------------------------------------
    def relay(self, password: Any = None) -> Relay:
        """The relay of this profile (the password is looked up when a connection needs it)."""
        if not self.host:
            raise ConfigError(f"profile {self.name!r} has no relay host; give one "
                              f"({arg('host', 'smtp.example.org')}) or set it in the profile")
        if self.requires_auth and not self.username:
            raise ConfigError(f"profile {self.name!r} requires a login but has no username; set "
                              f"the username ({arg('username', 'you@example.org')}), or "
                              f"{arg('requires_auth', False)} for a relay that needs none")
        env = _env_name(SMTP_PASSWORD_ENV, self.name)
        pop = None
        if self.pop_before_smtp:
            pop = Mailbox(self.imap_host, self.imap_username, security=self.imap_security,
                          protocol="pop3", cafile=self.imap_cafile or None,
                          password_env=_env_name(IMAP_PASSWORD_ENV, self.name)
                          if os.environ.get(_env_name(IMAP_PASSWORD_ENV, self.name))
                          else IMAP_PASSWORD_ENV)
        return Relay(self.host, self.port or None, self.security, pop_before_smtp=pop,
                     auth=self.auth, oauth=self.oauth() if self.auth == "oauth2" else None,
                     username=self.username if self.requires_auth and self.username else None,
                     password=password, password_env=env if os.environ.get(env) else
                     SMTP_PASSWORD_ENV, helo=self.helo or None, timeout=self.timeout,
                     verify=self.verify, cafile=self.cafile or None)

    def oauth(self) -> OAuth:
        """Who signs in with OAuth2, and where (``auth = "oauth2"``, or the Graph transport)."""
        scopes = (GOOGLE_SMTP_SCOPES if self.oauth_provider == "google" else
                  MICROSOFT_GRAPH_SCOPES if self.transport == "graph" else MICROSOFT_SMTP_SCOPES)
        return OAuth(self.oauth_provider, self.oauth_client_id, self.username,
                     tenant=self.oauth_tenant or "organizations",
                     authority=self.oauth_authority or None, scopes=scopes)

    def transport_target(self) -> Any:
        """Where this profile's mail goes: the pickup folder, or the target of its transport
        (the SMTP relay, Microsoft Graph, each domain's MX, or a registered one)."""
        return target_for(self)

    def sender(self, alternate: bool = False) -> tuple[str, str | None]:
        """(From address, From name); the alternate From falls back to the main one."""
        if alternate and self.alt_from_addr:
            return self.alt_from_addr, (self.alt_from_name or self.from_name or None)
        if not self.from_addr:
            where = "" if self.name == "command-line" else f" (profile {self.name!r} has none)"
            raise ConfigError(f"no From address{where}: give one, "
                              f"{arg('from_addr', 'you@example.org')}")
        return self.from_addr, self.from_name or None

    def imap_password(self, username: str | None = None) -> Secret:
        env = _env_name(IMAP_PASSWORD_ENV, self.name)
        return find_password(kind="imap", username=username or self.imap_username,
                             host=self.imap_host,
                             env=env if os.environ.get(env) else IMAP_PASSWORD_ENV)

    # -- checks -------------------------------------------------------------------------------------
    def problems(self) -> dict[str, str]:
        """Field -> what is wrong, for every field that is set but invalid (live form checks)."""
        return {**self._relay_problems(), **self._message_problems(),
                **self._pacing_problems(), **self._mailbox_problems()}

    def _relay_problems(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.host and not valid_hostname(self.host):
            out["host"] = "not a valid host name or IP address"
        if not 0 <= int(self.port or 0) <= 65535:
            out["port"] = "out of range (1-65535; 0 for the security's default)"
        if self.security not in SECURITY:
            out["security"] = f"one of {', '.join(SECURITY)}"
        elif (mismatch := port_mismatch(self.port, self.security)):
            out["port"] = mismatch
        if self.requires_auth and self.host and not self.username and self.transport == "smtp":
            out["username"] = ("required when 'requires login' is ticked (untick it for a relay "
                               "that needs no login)")
            out["requires_auth"] = "ticked, but there is no username"
        if self.transport == "graph" and not self.username:
            out["username"] = "the mailbox Graph sends from"
        if self.transport not in transport_names():
            out["transport"] = f"one of {', '.join(transport_names())}"
        if self.graph_url and (problem := url_problem(self.graph_url)):
            out["graph_url"] = problem
        if self.auth not in AUTH_METHODS:
            out["auth"] = f"one of {', '.join(AUTH_METHODS)}"
        elif self.auth == "oauth2" or self.transport == "graph":
            if not self.oauth_client_id:
                out["oauth_client_id"] = ("the client id of the app registered for your "
                                          "organisation (needed for OAuth2)")
            if self.oauth_provider not in OAUTH_PROVIDERS:
                out["oauth_provider"] = f"one of {', '.join(OAUTH_PROVIDERS)}"
            if self.oauth_authority and (problem := url_problem(
                    self.oauth_authority, loopback_http=self.oauth_provider != "microsoft")):
                out["oauth_authority"] = problem
        return out

    def _message_problems(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for f in ("from_addr", "alt_from_addr", "reply_to", "bounce_address",
                  "unsubscribe_mailto"):
            value = getattr(self, f)
            if value:
                try:
                    normalize(value, allow_test_domains=True)
                except Exception as err:
                    out[f] = str(err)
        if self.email_format not in FORMATS:
            out["email_format"] = f"one of {', '.join(FORMATS)}"
        if self.unsubscribe_url and (not self.unsubscribe_url.startswith("https://")
                                     or "{token}" not in self.unsubscribe_url):
            out["unsubscribe_url"] = "an https:// URL with {token} in it"
        if self.dkim_key_file and not Path(self.dkim_key_file).expanduser().is_file():
            out["dkim_key_file"] = "no such file (make one with mailnb.compose.signing.generate_key)"
        if self.dkim_key_file and not self.dkim_selector:
            out["dkim_selector"] = "a DKIM key needs a selector"
        if self.verp and not self.bounce_address:
            out["verp"] = "VERP needs a bounce address to add the +id to"
        if self.exclusion_policy not in ("global", "campaign"):
            out["exclusion_policy"] = "global or campaign"
        return out

    def _pacing_problems(self) -> dict[str, str]:
        """The settings whose text the registry checks (a rate, a pause, a window, a period)."""
        out: dict[str, str] = {}
        for s in in_door(PROFILE):
            value = getattr(self, s.name)
            if s.check is not None and value:
                try:
                    s.check(value)
                except ConfigError as err:
                    out[s.name] = str(err)
        return out

    def _mailbox_problems(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.protocol not in ("imap", "pop3"):
            out["protocol"] = "imap or pop3"
        if self.imap_host and not valid_hostname(self.imap_host):
            out["imap_host"] = "not a valid host name or IP address"
        if not 1 <= int(self.imap_port or 0) <= 65535:
            out["imap_port"] = "out of range (1-65535)"
        if self.imap_security not in ("tls", "starttls"):
            out["imap_security"] = "tls or starttls"
        if int(self.bounce_threshold) < 1:
            out["bounce_threshold"] = "at least 1"
        return out

    # -- storage ------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, folder: str | Path | None = None) -> Path:
        """Write the profile as TOML (mode 0600). No password is ever written."""
        import tomli_w
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", self.name):
            raise ConfigError(f"profile name {self.name!r}: use letters, digits, '.', '_' or '-'")
        bad = self.problems()
        if bad:
            raise ConfigError("cannot save profile: " + "; ".join(f"{named(k)}: {v}" for k, v in
                                                                   bad.items()))
        path = Path(folder or config_dir()) / "profiles" / f"{self.name}.toml"
        private_dir(path.parent)
        data = {k: v for k, v in self.to_dict().items() if k != "name"}
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(b"# mailnb profile. Passwords are never stored here: see the README.\n")
            f.write(tomli_w.dumps(data).encode())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, name: str | None = None, folder: str | Path | None = None) -> Profile:
        """Load a profile by name (default: ``$MAILNB_PROFILE`` or ``default``)."""
        import tomllib
        name = name or os.environ.get(PROFILE_ENV) or "default"
        path = Path(folder or config_dir()) / "profiles" / f"{name}.toml"
        if not path.is_file():
            have = list_profiles(folder)
            raise ConfigError(
                f"no profile {name!r} in {path.parent} (profiles there: {have or 'none'}). "
                "Give the relay itself (" + arg("host", "smtp.example.org") + ", "
                + arg("from_addr", "you@example.org") + "), or save a profile: "
                + alt(f"the setup notebook, or mailnb.Profile(name={name!r}, host=..., "
                      "from_addr=...).save()",
                      f"mailnb profiles create {name} --host HOST --from ADDRESS"))
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: not valid TOML: {err}") from None
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"{path}: unknown settings {sorted(unknown)}")
        return cls(name=name, **data)

    def __repr__(self) -> str:
        return f"<{self.describe()}>"

    def describe(self) -> str:
        relay = f"{self.host}:{self.port} ({self.security})" if self.host else "no relay"
        return f"profile {self.name!r}: {relay}, From {self.from_addr or '(not set)'}"

    def _repr_html_(self) -> str:
        import html as h
        rows = "".join(f"<tr><td>{h.escape(k)}</td><td>{h.escape(str(v))}</td></tr>"
                       for k, v in self.to_dict().items() if v not in ("", 0, None))
        return f"<div><b>{h.escape(self.describe())}</b><table>{rows}</table></div>"


def list_profiles(folder: str | Path | None = None) -> list[str]:
    d = Path(folder or config_dir()) / "profiles"
    return sorted(p.stem for p in d.glob("*.toml")) if d.is_dir() else []


#: how a profile makes the target of each transport (:func:`mailnb.transports.base.register`
#: adds a registered transport's own)
TARGET_MAKERS: dict[str, Callable[[Profile], Any]] = {
    "smtp": lambda p: p.relay(),
    "pickup": lambda p: Pickup(p.pickup),
    "graph": lambda p: Graph(p.username, p.oauth(), p.graph_url or GRAPH_URL, p.timeout),
    "direct": lambda p: Direct(p.helo or None, timeout=p.timeout),
}


def target_for(profile: Profile) -> Any:
    """Where a profile's mail goes: its pickup folder, or the target of its ``transport``."""
    name = "pickup" if profile.pickup else profile.transport
    make = TARGET_MAKERS.get(name)
    if make is None:
        names = transport_names()
        raise ConfigError(f"transport {profile.transport!r}: use {', '.join(names[:-1])} or "
                          f"{names[-1]}")
    return make(profile)
