"""Settings: the relay to send through, and where its password comes from.

:class:`Relay` is a plain value object; nothing here opens a socket. Passwords never sit in a repr,
an error message or a file: they are wrapped in :class:`Secret` and read, in this order, from the
value given, an environment variable, or the system keyring.
"""
from __future__ import annotations

import ipaddress
import os
import re
import ssl
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..errors import (ConfigError, SecretMissingError, alt, arg, named, phrase,
                     warn)
from ..util.files import private_dir
from .pacing import Window, parse_duration, parse_rate
from ..audience.recipients import normalize

SECURITY = ("none", "starttls", "tls")
AUTH_METHODS = ("password", "oauth2")
TRANSPORTS = ("smtp", "graph", "direct")
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
    pop_before_smtp: Any = field(default=None, compare=False)   # a mailbox.Mailbox to log in to
    auth: str = "password"              # or "oauth2": sign in with a token (see ``oauth``)
    oauth: Any = field(default=None, compare=False)   # an oauth.OAuth: who signs in, where
    opportunistic: bool = False         # security none, but STARTTLS when offered (unverified,
                                        # RFC 7435): what direct delivery to an MX does

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
        if isinstance(self.password, str):
            object.__setattr__(self, "password", Secret(self.password))
        if self.port is None:
            object.__setattr__(self, "port", MAILBOX_PORTS.get((self.protocol, self.security), 993))

    @classmethod
    def from_profile(cls, profile: Profile, password: Secret | str | None = None,
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


def _check_url(url: str) -> None:
    """An identity provider's URL must be https (http only on this machine, for tests)."""
    parts = urlparse(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname:
        try:
            if ipaddress.ip_address(parts.hostname).is_loopback:
                return
        except ValueError:
            pass
    raise ConfigError(f"the OAuth URL {url!r} must be https:// (plain http only for 127.0.0.0/8)")


def _url_problem(url: str) -> str | None:
    """What is wrong with an identity provider's URL, for a form's field (None: nothing)."""
    try:
        _check_url(url)
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
            _check_url(self.authority)

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
        _check_url(self.url)
        self.oauth.validate()
        return []

    def describe(self) -> str:
        return f"Microsoft Graph as {self.user} ({self.url})"


@dataclass(frozen=True)
class Direct:
    """Direct delivery: each recipient's domain's MX hosts (in preference order, the address
    records without MX, nothing for a null MX), one reused connection per destination host,
    STARTTLS when offered. ``helo`` is the fully qualified name this machine says it is."""

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
PROFILE_ENV = "MAILNB_PROFILE"
CONFIG_DIR_ENV = "MAILNB_CONFIG_DIR"
IMAP_PASSWORD_ENV = "MAILNB_IMAP_PASSWORD"
FORMATS = ("both", "text", "html")


@dataclass(frozen=True)
class Preset:
    label: str
    host: str
    port: int
    security: str
    daily_cap: int | None
    note: str = ""
    username_hint: str = ""
    auth: str = "password"
    oauth_provider: str = ""
    transport: str = "smtp"
    rate: str = ""


PRESETS: dict[str, Preset] = {
    "custom": Preset("Custom", "", 587, "starttls", None),
    "gmail": Preset("Gmail", "smtp.gmail.com", 587, "starttls", 500,
                    "Gmail signs in with OAuth2: give the client id of your OAuth client (Google "
                    "Cloud console, a desktop app) and its secret in $MAILNB_OAUTH_CLIENT_SECRET, "
                    "then 'Sign in with Google' (or choose password and an app password). It "
                    "sends at most 500 messages a day (2,000 with Google Workspace).",
                    "you@gmail.com", auth="oauth2", oauth_provider="google"),
    "outlook": Preset("Outlook.com / Hotmail", "smtp-mail.outlook.com", 587, "starttls", 300,
                      "Outlook.com accounts send at most 300 messages a day.", "you@outlook.com"),
    "office365": Preset("Office 365", "smtp.office365.com", 587, "starttls", 10000,
                        "Microsoft 365 signs in with OAuth2 (passwords are off by default from "
                        "the end of December 2026): give the client id of your organisation's "
                        "app registration (SMTP.Send permission), then 'Sign in with Microsoft'. "
                        "It allows 10,000 recipients a day; SMTP AUTH must be enabled for the "
                        "mailbox.", "you@yourorg.example", auth="oauth2",
                        oauth_provider="microsoft"),
    "graph": Preset("Microsoft 365 (Graph)", "", 0, "tls", 10000,
                    "Microsoft Graph sends from the mailbox with OAuth2 (the app registration "
                    "needs the delegated Mail.Send permission). Exchange Online allows 30 "
                    "messages a minute and 10,000 recipients a day: the preset paces to that.",
                    "you@yourorg.example", auth="oauth2", oauth_provider="microsoft",
                    transport="graph", rate="30/min"),
    "ses": Preset("Amazon SES", "email-smtp.{region}.amazonaws.com", 587, "starttls", 200,
                  "Amazon SES: the username and password are SMTP credentials from the SES console; "
                  "the sandbox allows 200 messages a day to verified addresses.", "AKIA..."),
    "sendgrid": Preset("SendGrid", "smtp.sendgrid.net", 587, "starttls", 100,
                       "SendGrid: the username is the word 'apikey' and the password an API key.",
                       "apikey"),
    "mailgun": Preset("Mailgun", "smtp.mailgun.org", 587, "starttls", 100,
                      "Mailgun: SMTP credentials from the domain's settings page.",
                      "postmaster@mg.yourdomain.example"),
    "postmark": Preset("Postmark", "smtp.postmarkapp.com", 587, "starttls", None,
                       "Postmark: the username and password are both the server API token.", ""),
}


def preset(name: str, region: str = "us-east-1") -> Preset:
    try:
        p = PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown provider {name!r}; choose one of {sorted(PRESETS)}") from None
    if "{region}" in p.host:
        if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", region):
            raise ConfigError(f"{region!r} is not an AWS region name like 'eu-west-1'")
        p = replace(p, host=p.host.format(region=region))
    return p


def apply_preset(profile: Profile, provider: str, region: str = "us-east-1") -> Profile:
    """A copy of the profile with the provider's server, port, security and daily limit filled in.
    Warns with the provider's note (Gmail: app passwords and 500 a day)."""
    p = preset(provider, region)
    if p.note:
        warn(p.note, stacklevel=2)
    changes: dict[str, Any] = {"provider": provider}
    if provider != "custom":
        changes.update(host=p.host, port=p.port, security=p.security,
                       daily_cap=p.daily_cap or 0, requires_auth=True, auth=p.auth,
                       transport=p.transport, rate=p.rate or profile.rate)
        if p.oauth_provider:
            changes["oauth_provider"] = p.oauth_provider
    return replace(profile, **changes)


def config_dir() -> Path:
    """Where profiles live: ``$MAILNB_CONFIG_DIR``, else the user's config folder (platformdirs)."""
    if os.environ.get(CONFIG_DIR_ENV):
        return Path(os.environ[CONFIG_DIR_ENV])
    import platformdirs
    return Path(platformdirs.user_config_dir("mailnb", appauthor=False))


def _env_name(base: str, profile: str) -> str:
    return f"{base}_{re.sub(r'[^A-Za-z0-9]', '_', profile).upper()}"


@dataclass
class Profile:
    """A named set of settings: the relay, the sending preferences and the bounce mailbox.

    Stored as ``<config dir>/profiles/<name>.toml`` (mode 0600) without any password: passwords come
    from ``MAILNB_SMTP_PASSWORD_<PROFILE>``, ``MAILNB_SMTP_PASSWORD`` or the keyring (IMAP alike).
    """

    name: str = "default"
    provider: str = "custom"
    # relay
    host: str = ""
    port: int = 0                      # 0: the security's port (587 starttls, 465 tls, 25 none)
    security: str = "starttls"
    requires_auth: bool = True
    auth: str = "password"             # or oauth2: sign in with Microsoft (device code, refresh)
    oauth_provider: str = "microsoft"
    oauth_client_id: str = ""          # the app registered in the tenant (SMTP.Send permission)
    oauth_tenant: str = ""             # the tenant id or domain (default: organizations)
    oauth_authority: str = ""          # replaces the provider's sign-in URL (tests, own servers)
    pop_before_smtp: bool = False      # log in to the bounce mailbox over POP3 before sending
    username: str = ""
    helo: str = ""
    timeout: float = 30.0
    verify: bool = True
    cafile: str = ""
    pickup: str = ""                   # a folder: write .eml files there instead of sending
    transport: str = "smtp"            # smtp (the relay), graph (Microsoft Graph), direct (MX)
    graph_url: str = ""                # replaces Microsoft Graph's URL (tests, national clouds)
    # sending preferences
    from_addr: str = ""
    from_name: str = ""
    alt_from_addr: str = ""
    alt_from_name: str = ""
    alternate_from: bool = False       # send from the alternate From (falls back to the main one)
    reply_to: str = ""
    footer: str = ""
    email_format: str = "both"
    rate: str = ""
    daily_cap: int = 0
    block_size: int = 0
    block_pause: str = ""
    concurrency: int = 1
    limit: int = 0
    window: str = ""                   # "Mon-Fri 09:00-17:00 Europe/Berlin"
    wait: bool = False                 # at the daily cap or outside the window: wait, not stop
    retries: int = 3
    exclusion_policy: str = "global"
    blocklist: str = ""                # a file of addresses and @domains, one per line
    key_column: str = ""               # the column that identifies a person (default: address)
    attachment_column: str = ""        # the column of attachment paths
    journal: str = ""
    backup: str = ""                   # a path pattern for a copy of each sent message
    resend_unknown: bool = False
    requeue_errors: bool = False
    retention: str = ""                # e.g. "365d": `mailnb purge` removes older detail
    unsubscribe_mailto: str = ""
    unsubscribe_url: str = ""
    dkim_selector: str = ""
    dkim_domain: str = ""
    dkim_key_file: str = ""
    # bounce mailbox
    imap_host: str = ""
    imap_port: int = 993
    imap_security: str = "tls"
    imap_username: str = ""
    imap_cafile: str = ""
    bounce_address: str = ""           # the envelope sender (Return-Path): where reports go
    verp: bool = False                 # a per-message bounce address (bounces+<id>@domain)
    protocol: str = "imap"             # the bounce mailbox: imap or pop3
    bounce_folder: str = "INBOX"
    bounce_threshold: int = 3
    processed_folder: str = ""
    replies_folder: str = ""           # where replies to Reply-To arrive (same server)
    replies_username: str = ""         # the replies mailbox's login, if not imap_username

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

    def transport_target(self) -> Relay | Pickup | Graph | Direct:
        """Where this profile's mail goes: the pickup folder, Microsoft Graph, each domain's MX,
        or the SMTP relay."""
        if self.pickup:
            return Pickup(self.pickup)
        if self.transport == "graph":
            return Graph(self.username, self.oauth(), self.graph_url or GRAPH_URL, self.timeout)
        if self.transport == "direct":
            return Direct(self.helo or None, timeout=self.timeout)
        if self.transport != "smtp":
            raise ConfigError(f"transport {self.transport!r}: use smtp, graph or direct")
        return self.relay()

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
        if self.transport not in TRANSPORTS:
            out["transport"] = f"one of {', '.join(TRANSPORTS)}"
        if self.graph_url and (problem := _url_problem(self.graph_url)):
            out["graph_url"] = problem
        if self.auth not in AUTH_METHODS:
            out["auth"] = f"one of {', '.join(AUTH_METHODS)}"
        elif self.auth == "oauth2" or self.transport == "graph":
            if not self.oauth_client_id:
                out["oauth_client_id"] = ("the client id of the app registered for your "
                                          "organisation (needed for OAuth2)")
            if self.oauth_provider not in OAUTH_PROVIDERS:
                out["oauth_provider"] = f"one of {', '.join(OAUTH_PROVIDERS)}"
            if self.oauth_authority and (problem := _url_problem(self.oauth_authority)):
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
        out: dict[str, str] = {}
        for name, check in (("rate", parse_rate), ("block_pause", parse_duration),
                            ("window", Window.parse), ("retention", parse_duration)):
            value = getattr(self, name)
            if value:
                try:
                    check(value)
                except ConfigError as err:
                    out[name] = str(err)
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


#: what the profile keys that are no campaign setting do (the README's settings table)
PROFILE_KEYS_HELP = {
    "name": "the profile's name (file `profiles/<name>.toml`); `$MAILNB_PROFILE` picks the default",
    "provider": "a preset (gmail, outlook, office365, ses, ...): host, port, security, daily cap",
    "pop_before_smtp": "log in to the bounce mailbox over POP3 before sending (older relays)",
    "timeout": "seconds to wait for the relay's answer before retrying",
    "alt_from_addr": "the alternate From address (used with `alternate_from`)",
    "alt_from_name": "the alternate From name",
    "footer": "text appended to every message (text and HTML)",
    "exclusion_policy": "`global`: an unsubscribe from any campaign excludes; `campaign`: only "
                        "from that one",
    "unsubscribe_mailto": "the `mailto:` of List-Unsubscribe (default: Reply-To or From)",
    "unsubscribe_url": "an https URL with `{token}`: one-click List-Unsubscribe (RFC 8058)",
    "dkim_selector": "the DKIM selector; with `dkim_key_file` every message is signed",
    "dkim_domain": "the DKIM signing domain (default: the From domain)",
    "dkim_key_file": "the DKIM private key (`mailnb dkim-key` makes one)",
    "imap_host": "the bounce mailbox's server",
    "imap_port": "its port (993 IMAPS, 995 POP3S)",
    "imap_security": "tls or starttls",
    "imap_username": "its login (the password from `MAILNB_IMAP_PASSWORD`)",
    "imap_cafile": "a private CA for the mailbox",
    "protocol": "the bounce mailbox's protocol: imap or pop3",
    "bounce_folder": "the folder `mailnb bounces` reads",
    "bounce_threshold": "soft bounces in 30 days before an address is suppressed",
    "processed_folder": "move processed reports there (else flag them)",
    "replies_folder": "the folder `mailnb replies` reads (on the bounce mailbox's server); "
                      "empty: replies are not read",
    "replies_username": "the replies mailbox's login, if not `imap_username` (password: the "
                        "keyring or `MAILNB_IMAP_PASSWORD`)",
    "retention": "how long per-message detail is kept (`365d`): `mailnb purge` (cron) removes "
                 "what is older; off when empty",
}


def list_profiles(folder: str | Path | None = None) -> list[str]:
    d = Path(folder or config_dir()) / "profiles"
    return sorted(p.stem for p in d.glob("*.toml")) if d.is_dir() else []
