"""Where mail goes, as settings values: an SMTP :class:`Relay` (with its TLS and login), a
:class:`Pickup` folder of ``.eml`` files, Microsoft :class:`Graph`, :class:`Direct` delivery to
each domain's MX, the bounce :class:`Mailbox` and the :class:`OAuth` sign-in they may use.

Each target names its transport (``transport``); :data:`TARGET_TYPES` maps those names to the
target types (:func:`mailnb.transports.base.register` adds to it), and :func:`target_for` makes a
profile's target by the name it gives.
"""
from __future__ import annotations

import ipaddress
import re
import ssl
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol
from urllib.parse import urlparse

from ..errors import ConfigError, alt, arg, phrase, warn
from .secrets import SMTP_PASSWORD_ENV, Secret, find_password

SECURITY = ("none", "starttls", "tls")
AUTH_METHODS = ("password", "oauth2")
DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


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


def client_ssl_context(verify: bool = True, cafile: str | None = None) -> ssl.SSLContext:
    """A TLS client context that verifies certificates (against ``cafile`` when given); with
    ``verify=False`` one that does not, for those who turned it off knowingly."""
    if not verify:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=cafile)


@dataclass(frozen=True)
class Relay:
    """An SMTP relay.

    ``security``: ``"starttls"`` (submission, port 587), ``"tls"`` (implicit TLS, port 465) or
    ``"none"`` (a local relay on port 25). Certificates are verified unless ``verify=False`` (warned
    about); ``cafile`` names a private CA. ``password`` may be given, but it is better left out: it is
    then read from ``password_env`` (default ``MAILNB_SMTP_PASSWORD``) or the keyring when needed.
    """

    transport: ClassVar[str] = "smtp"

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
    pop_before_smtp: Any = field(default=None, compare=False)   # a mailbox.Mailbox to log in to
    auth: str = "password"              # or "oauth2": sign in with a token (see ``oauth``)
    oauth: Any = field(default=None, compare=False)   # an oauth.OAuth: who signs in, where
    opportunistic: bool = False         # security none, but STARTTLS when offered (unverified,
                                        # RFC 7435): what direct delivery to an MX does

    def __post_init__(self) -> None:
        given: object = self.password           # a plain text is taken, and wrapped at once
        if isinstance(given, str):
            object.__setattr__(self, "password", Secret(given))
        if self.port is None and self.security in DEFAULT_PORTS:
            object.__setattr__(self, "port", DEFAULT_PORTS[self.security])

    @property
    def account(self) -> str:
        """Who the daily cap is counted for: the username at the host."""
        return f"{self.username or ''}@{self.host.lower()}"

    @property
    def needs_auth(self) -> bool:
        return bool(self.username)

    @property
    def uses_oauth(self) -> bool:
        return self.auth == "oauth2"

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
        if self.auth not in AUTH_METHODS:
            raise ConfigError(f"auth must be {' or '.join(AUTH_METHODS)}, not {self.auth!r}")
        if self.uses_oauth:
            if self.oauth is None:
                raise ConfigError(f"{arg('auth', 'oauth2')} needs who signs in: "
                                  f"{arg('oauth_client_id', 'ID')} and the username")
            self.oauth.validate()
        if (mismatch := port_mismatch(self.port, self.security)):
            raise ConfigError(f"relay {self.host}:{self.port}: {mismatch}")
        found = []
        if not self.verify:
            found.append("TLS certificate verification is off: anyone on the path can read the "
                         f"password and the mail. Use {arg('cafile', 'ca.pem')} for a private CA "
                         "instead.")
        if self.username and self.security == "none" and not _loopback(self.host):
            found.append("AUTH over an unencrypted connection sends the password in clear text; "
                         f"use {arg('security', 'starttls')} or 'tls'")
        for message in found:
            warn(message, stacklevel=3)
        return [phrase(m) for m in found]

    def resolve_password(self) -> Secret | None:
        """The password to log in with, or None when the relay needs no login."""
        if not self.username or self.uses_oauth:
            return None
        return find_password(kind="smtp", username=self.username, host=self.host,
                             given=self.password, env=self.password_env)

    def with_(self, **changes: Any) -> Relay:
        return replace(self, **changes)

    def describe(self) -> str:
        who = f"{self.username} at " if self.username else ""
        how = ", OAuth2" if self.uses_oauth else ""
        return f"{who}{self.host}:{self.port} ({self.security}{how})"


def port_mismatch(port: int | None, security: str) -> str | None:
    """What is wrong when a well-known port does not fit the security (None when it fits)."""
    if port == 465 and security != "tls":
        return f"port 465 is for implicit TLS, but security is {security!r}: choose tls, or port 587"
    if port in (587, 25) and security == "tls":
        return (f"port {port} starts in plain text (STARTTLS), but security is 'tls': choose "
                "starttls, or port 465")
    return None


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@dataclass(frozen=True)
class Pickup:
    """"Save as file": write each message as an ``.eml`` file into ``folder`` instead of sending.
    A message counts as sent once its file is written."""

    transport: ClassVar[str] = "pickup"

    folder: str | Path

    @property
    def account(self) -> str:
        return f"pickup:{Path(self.folder).resolve()}"

    def validate(self) -> list[str]:
        return []

    def describe(self) -> str:
        return f"files in {self.folder}"


MAILBOX_PORTS = {("imap", "tls"): 993, ("imap", "starttls"): 143, ("pop3", "tls"): 995,
                 ("pop3", "starttls"): 110}


class MailboxSettings(Protocol):
    """What a bounce mailbox is made from (a :class:`~mailnb.config.profile.Profile`)."""

    name: str
    imap_host: str
    imap_port: int
    imap_security: str
    imap_username: str
    imap_cafile: str
    protocol: str
    bounce_folder: str
    processed_folder: str

    def imap_password(self, username: str | None = None) -> Secret: ...


@dataclass(frozen=True)
class Mailbox:
    """Where bounces arrive. ``protocol``: ``imap`` or ``pop3``; ``security``: ``tls`` (993/995)
    or ``starttls`` (143/110)."""

    host: str
    username: str
    port: int | None = None
    security: str = "tls"
    protocol: str = "imap"
    folder: str = "INBOX"
    processed_folder: str | None = None
    password: Secret | None = None
    password_env: str | None = "MAILNB_IMAP_PASSWORD"
    cafile: str | None = None
    verify: bool = True
    timeout: float = 30.0

    def __post_init__(self) -> None:
        given: object = self.password           # a plain text is taken, and wrapped at once
        if isinstance(given, str):
            object.__setattr__(self, "password", Secret(given))
        if self.port is None:
            object.__setattr__(self, "port", MAILBOX_PORTS.get((self.protocol, self.security), 993))

    @classmethod
    def from_profile(cls, profile: MailboxSettings, password: Secret | str | None = None,
                     **overrides: Any) -> Mailbox:
        if not profile.imap_host or not profile.imap_username:
            raise ConfigError(f"profile {profile.name!r} has no bounce mailbox; set imap_host and "
                              "imap_username (" + alt("bounce_form in the setup notebook",
                                                      "--imap-host and --imap-username of mailnb "
                                                      "profiles create") + ")")
        values: dict[str, Any] = dict(
            host=profile.imap_host, username=profile.imap_username, port=profile.imap_port,
            security=profile.imap_security, protocol=profile.protocol,
            folder=profile.bounce_folder or "INBOX",
            processed_folder=profile.processed_folder or None,
            cafile=profile.imap_cafile or None,
            password=password if password is not None else
            profile.imap_password(overrides.get("username")))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def validate(self) -> None:
        if not valid_hostname(self.host):
            raise ConfigError(f"mailbox host {self.host!r} is not a valid host name")
        if self.protocol not in ("imap", "pop3"):
            raise ConfigError(f"protocol must be imap or pop3, not {self.protocol!r}")
        if self.security not in ("tls", "starttls"):
            raise ConfigError(f"mailbox security must be tls or starttls, not {self.security!r}")
        if not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise ConfigError(f"mailbox port {self.port!r} is out of range (1-65535)")

    def secret(self) -> Secret:
        return find_password(kind="imap", username=self.username, host=self.host,
                             given=self.password, env=self.password_env)

    def ssl_context(self) -> ssl.SSLContext:
        return client_ssl_context(self.verify, self.cafile)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


# -- OAuth2 sign-in (the settings; mailnb.oauth signs in) ----------------------------------------
REFRESH_TOKEN_ENV = "MAILNB_OAUTH_REFRESH_TOKEN"
OAUTH_PROVIDERS = ("microsoft", "google")
CLIENT_SECRET_ENV = "MAILNB_OAUTH_CLIENT_SECRET"
#: Google's documented endpoints and the scope Gmail's SMTP needs
#: (https://developers.google.com/gmail/imap/xoauth2-protocol)
GOOGLE_URL = "https://accounts.google.com/o/oauth2"
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
GOOGLE_SMTP_SCOPES = ("https://mail.google.com/",)
#: Microsoft's documented authority and the scope SMTP AUTH needs
#: (https://learn.microsoft.com/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth)
MICROSOFT_AUTHORITY = "https://login.microsoftonline.com/{tenant}"
MICROSOFT_SMTP_SCOPES = ("https://outlook.office.com/SMTP.Send",)
#: what Microsoft Graph's sendMail needs (https://learn.microsoft.com/graph/api/user-sendmail)
MICROSOFT_GRAPH_SCOPES = ("https://graph.microsoft.com/Mail.Send",)
GRAPH_URL = "https://graph.microsoft.com/v1.0"


def check_url(url: str, *, loopback_http: bool = True) -> None:
    """A service's URL must be https; plain http only on this machine (127.0.0.0/8, for tests)
    and only where the client library takes it (``loopback_http``: msal takes https only)."""
    parts = urlparse(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname and loopback_http:
        try:
            if ipaddress.ip_address(parts.hostname).is_loopback:
                return
        except ValueError:
            pass
    if not loopback_http:
        raise ConfigError(f"the sign-in URL {url!r} must be https://: Microsoft's sign-in "
                          "library (msal) takes no other, not even on this machine")
    raise ConfigError(f"the URL {url!r} must be https:// (plain http only for 127.0.0.0/8)")


def url_problem(url: str, *, loopback_http: bool = True) -> str | None:
    """What is wrong with a service's URL, for a form's field (None: nothing)."""
    try:
        check_url(url, loopback_http=loopback_http)
    except ConfigError as err:
        return str(err)
    return None


@dataclass(frozen=True)
class OAuth:
    """Who signs in, and where: ``provider`` (``microsoft``), the app's ``client_id`` (the
    application registered in the tenant, with the SMTP.Send permission), the ``username``
    (the mailbox), the ``tenant`` (a tenant id or domain; default ``organizations``) and, for tests
    and self-hosted identity providers, the ``authority`` URL that replaces Microsoft's."""

    provider: str
    client_id: str
    username: str
    tenant: str = "organizations"
    authority: str | None = None
    scopes: tuple[str, ...] = ()        # default: what the provider's SMTP needs

    @property
    def scope_list(self) -> list[str]:
        if self.scopes:
            return list(self.scopes)
        return list(GOOGLE_SMTP_SCOPES if self.provider == "google" else MICROSOFT_SMTP_SCOPES)

    def validate(self) -> None:
        if self.provider not in OAUTH_PROVIDERS:
            raise ConfigError(f"OAuth provider {self.provider!r} is not supported; use "
                              f"{' or '.join(OAUTH_PROVIDERS)}")
        if not self.client_id:
            raise ConfigError("OAuth2 needs the client id of the app registered for your "
                              f"organisation: {arg('oauth_client_id', 'ID')}")
        if not self.username:
            raise ConfigError("OAuth2 needs the mailbox to sign in as: "
                              f"{arg('username', 'you@example.org')}")
        if self.authority:
            check_url(self.authority, loopback_http=self.provider != "microsoft")

    @property
    def authority_url(self) -> str:
        if self.provider == "google":
            return self.authority or GOOGLE_URL
        return self.authority or MICROSOFT_AUTHORITY.format(tenant=self.tenant or "organizations")

    @property
    def google_endpoints(self) -> tuple[str, str]:
        """(authorization URL, token URL): Google's, or ``<authority>/auth`` and
        ``<authority>/token`` of the server that replaces it."""
        if self.authority:
            base = self.authority.rstrip("/")
            return f"{base}/auth", f"{base}/token"
        return f"{GOOGLE_URL}/auth", GOOGLE_TOKEN_URL

    @property
    def cache_key(self) -> str:
        return f"oauth:{self.provider}:{self.client_id}:{self.username}@{self.authority_url}"

    def describe(self) -> str:
        return f"OAuth2 ({self.provider}) as {self.username}"


# -- other transports ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Graph:
    """Microsoft Graph's ``sendMail`` (the successor of EWS for Microsoft 365): each message is
    posted as MIME with an OAuth2 token, from the mailbox ``user``."""

    transport: ClassVar[str] = "graph"

    user: str
    oauth: OAuth
    url: str = GRAPH_URL
    timeout: float = 30.0

    @property
    def account(self) -> str:
        return f"graph:{self.user.lower()}"

    @property
    def host(self) -> str:
        return urlparse(self.url).hostname or ""

    def validate(self) -> list[str]:
        check_url(self.url)
        self.oauth.validate()
        return []

    def describe(self) -> str:
        return f"Microsoft Graph as {self.user} ({self.url})"


@dataclass(frozen=True)
class Direct:
    """Direct delivery: each recipient's domain's MX hosts (in preference order, the address
    records without MX, nothing for a null MX), one reused connection per destination host,
    STARTTLS when offered. ``helo`` is the fully qualified name this machine says it is."""

    transport: ClassVar[str] = "direct"

    helo: str | None = None
    per_destination: int = 2
    timeout: float = 30.0
    nameserver: str | None = None       # host:port of a resolver (default $MAILNB_DNS_SERVER)

    @property
    def account(self) -> str:
        return f"direct:{self.helo or 'localhost'}"

    def validate(self) -> list[str]:
        found = []
        if self.helo and not valid_hostname(self.helo):
            raise ConfigError(f"HELO name {self.helo!r} is not a valid host name")
        if not self.helo or "." not in self.helo.strip("."):
            found.append(f"direct delivery says HELO {self.helo or 'localhost'!r}: receiving "
                         f"servers expect this machine's fully qualified name "
                         f"({arg('helo', 'mail.example.org')}), and may refuse or score the mail "
                         "otherwise")
        if not 1 <= self.per_destination <= 20:
            raise ConfigError("per_destination must be from 1 to 20 connections")
        for message in found:
            warn(message, stacklevel=3)
        return [phrase(m) for m in found]

    def describe(self) -> str:
        return f"direct to each domain's MX (HELO {self.helo or 'localhost'})"


# -- profiles ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Nowhere:
    """No relay at all: what a dry run without one plans against. Nothing can be sent to it."""

    transport: ClassVar[str] = "none"

    @property
    def account(self) -> str:
        return "nowhere"

    def validate(self) -> list[str]:
        return []

    def describe(self) -> str:
        return "no relay (a dry run needs none)"


class Target(Protocol):
    """Where a run's mail goes: what every target says of itself. ``transport`` names the
    transport that sends to it (:mod:`mailnb.transports.base`)."""

    transport: ClassVar[str]

    @property
    def account(self) -> str:
        """Whose sending this is: the daily cap and the pacing schedule are per account."""

    def validate(self) -> list[str]:
        """Raise ConfigError for a setting that cannot work; return warnings."""

    def describe(self) -> str: ...


#: the target types by transport name; :func:`mailnb.transports.base.register` adds to it
TARGET_TYPES: dict[str, type[Any]] = {"smtp": Relay, "pickup": Pickup, "graph": Graph,
                                      "direct": Direct, "none": Nowhere}
def add_target_type(name: str, kind: type[Any]) -> None:
    TARGET_TYPES[name] = kind


def transport_names() -> list[str]:
    """The ``transport`` setting's values (a pickup folder is its own setting)."""
    return [name for name in TARGET_TYPES if name not in ("pickup", "none")]
