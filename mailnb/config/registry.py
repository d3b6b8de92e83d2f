"""The settings registry: every setting of mailnb, declared once.

An entry says what a setting is (name, type, default, what it does, the group it belongs to, its
allowed values and the check of its text) and where it applies:

- ``profile``: a key of a saved profile (:class:`~mailnb.config.profile.Profile`);
- ``job``: a setting of a campaign, so a field of :class:`mailnb.Job`, a ``mailnb send`` flag and
  a parameter of ``campaign.ipynb``;
- ``send``: an option of :func:`mailnb.send` (:class:`~mailnb.config.options.SendOptions`), which
  takes the profile's value when it is not given.

Every door is made from this table: the dataclasses' fields (:func:`settings_fields`), the
command line's flags and their groups (:mod:`mailnb.cli`), the notebook's parameter cell
(:func:`parameter_cell`, checked by a test), the forms' labels and widgets (:mod:`mailnb.widgets`)
and the README's settings table (:func:`mailnb.job.settings_table`).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import FLAGS
from .pacing import Window, parse_duration, parse_rate
from .targets import AUTH_METHODS, OAUTH_PROVIDERS, SECURITY

PROFILE, JOB, SEND = "profile", "job", "send"
FORMATS = ("both", "text", "html")

#: the groups, in the order ``mailnb send --help`` shows them
GROUPS = {
    "campaign": "the campaign and its audience",
    "message": "the template and the message",
    "relay": "the sender, the relay and the sign-in (or --profile)",
    "pacing": "pacing",
    "journal": "the journal and the outcomes",
    "test": "a test first, or a dry run",
    "mailbox": "the bounce and replies mailbox",
}


@dataclass(frozen=True)
class Setting:
    """One setting: ``kind`` is its type (``object`` for Python values such as a DataFrame),
    ``default`` its value in a new profile (and when nothing sets it), ``doors`` where it
    applies. ``choices`` are its allowed values, ``check`` parses its text (raising ConfigError),
    ``flag`` replaces its command-line flag, ``label`` names it in the forms and ``notebook`` is
    its value in the notebook's parameter cell."""

    name: str
    kind: type[Any]
    default: Any
    help: str
    group: str
    doors: frozenset[str]
    choices: tuple[str, ...] = ()
    check: Callable[[Any], object] | None = None
    flag: str | None = None
    label: str | None = None
    notebook: Any = None

    @property
    def type_name(self) -> str:
        return "Any" if self.kind is object else self.kind.__name__

    @property
    def send_default(self) -> Any:
        """Its value in :class:`SendOptions` when nothing gives one: None ("no limit", "the
        default journal") where a profile's empty text or 0 means that."""
        if type(self.default) is not bool and self.default in ("", 0):
            return None
        return self.default


P, J, S = frozenset({PROFILE}), frozenset({JOB}), frozenset({SEND})
PJ, JS, PJS = P | J, J | S, P | J | S


def _s(name: str, kind: type[Any], default: Any, doors: frozenset[str], group: str, help: str,
       **more: Any) -> Setting:
    return Setting(name, kind, default, help, group, doors, **more)


SETTINGS: tuple[Setting, ...] = (
    # -- the campaign and its audience
    _s("campaign", str, None, J, "campaign", "campaign name: the journal's key; the same name "
       "resumes, never resends", notebook="my-campaign"),
    _s("recipients", object, None, J, "campaign", "CSV, TSV, Excel or Parquet file (or a "
       "DataFrame); required to send (a dry run shows the sample)", notebook=""),
    _s("template", object, None, J, "message", "template folder (subject.txt, body.txt, "
       "body.html) or a Template; required to send (a dry run shows the sample)", notebook=""),
    _s("sample", bool, None, J, "campaign", "the bundled sample participants and template "
       "where none are given, also when sending (what mailnb demo does)"),
    _s("profile", object, None, J, "relay", "a saved profile (relay, From, pacing); default "
       "$MAILNB_PROFILE"),
    _s("email_column", str, None, J, "campaign", "the column that holds the addresses (default "
       "email)"),
    _s("encoding", str, None, J, "campaign", "the recipients file's text encoding (default: "
       "detected)"),
    _s("unsubscribes", str, None, J, "campaign", "CSV of unsubscribed addresses "
       "(email[,campaign])"),
    _s("suppressions", str, None, J, "campaign", "CSV of suppressed addresses"),
    _s("blocklist", str, "", PJ, "campaign", "file of addresses and @domains not to mail, one "
       "per line"),
    _s("transactional", bool, None, J, "campaign", "vital messages (bookings): unsubscribes do "
       "not apply"),
    _s("key_column", str, "", PJ, "campaign", "the column that identifies a person (default: "
       "the address)"),
    _s("follow_up", str, None, J, "campaign", "an earlier campaign: this one is a reminder, "
       "threaded to it"),
    _s("follow_up_filter", str, None, J, "campaign", "who gets it: a pandas query on the "
       "recipients' table (with follow_up: also `not responded`)"),
    _s("attachment_column", str, "", PJ, "message", "the column of attachment paths"),
    _s("data", object, None, J, "message", "data for report templates, each a name and a file "
       "(CSV, TSV, Excel, Parquet or an image); repeat for more. In Python a dict of names to "
       "files, DataFrames, images or callables that take the row", notebook={}),
    _s("empty", str, None, J, "message", "a row whose report selection is empty: error "
       "(default), skip or send", choices=("error", "skip", "send")),
    # -- the message
    _s("from_addr", str, "", PJ, "message", "From address", flag="--from", label="From address"),
    _s("from_name", str, "", PJ, "message", "From name", label="From name"),
    _s("alternate_from", bool, False, PJ, "message", "send from the profile's alternate From "
       "(else the main one)"),
    _s("reply_to", str, "", PJ, "message", "Reply-To address", label="Reply-To"),
    _s("email_format", str, "both", PJ, "message", "both, text or html",
       choices=FORMATS, label="Format"),
    _s("bounce_address", str, "", PJ, "relay", "envelope sender (Return-Path): where delivery "
       "reports go", label="Bounce address"),
    _s("verp", bool, False, PJ, "relay", "a per-message bounce address, local+<id>@domain"),
    # -- the relay
    _s("host", str, "", PJ, "relay", "SMTP relay host", label="Server"),
    _s("port", int, 0, PJ, "relay", "SMTP port (default by security: 587, 465 or 25)",
       label="Port"),
    _s("security", str, "starttls", PJ, "relay", "starttls, tls or none",
       choices=SECURITY, label="Security"),
    _s("requires_auth", bool, True, PJ, "relay", "the relay needs a login (default: when a "
       "username is given)", label="Requires login"),
    _s("username", str, "", PJ, "relay", "SMTP login; the password comes from "
       "MAILNB_SMTP_PASSWORD", label="Username"),
    _s("auth", str, "password", PJ, "relay", "password or oauth2 (Microsoft 365: sign in once "
       "with mailnb login)", choices=AUTH_METHODS, label="Sign-in"),
    _s("oauth_provider", str, "microsoft", PJ, "relay", "who signs in with OAuth2: microsoft",
       choices=OAUTH_PROVIDERS, label="OAuth provider"),
    _s("oauth_client_id", str, "", PJ, "relay", "the client id of your organisation's app "
       "registration", label="OAuth client id"),
    _s("oauth_tenant", str, "", PJ, "relay", "the tenant id or domain (default: "
       "organizations)", label="OAuth tenant"),
    _s("oauth_authority", str, "", PJ, "relay", "replaces the provider's sign-in URL (own "
       "servers, tests)"),
    _s("transport", str, "smtp", PJ, "relay", "smtp (the relay), graph (Microsoft Graph) or "
       "direct (each domain's MX)"),
    _s("graph_url", str, "", PJ, "relay", "replaces Microsoft Graph's URL (national clouds, "
       "tests)"),
    _s("helo", str, "", PJ, "relay", "the name to say in EHLO", label="HELO name"),
    _s("cafile", str, "", PJ, "relay", "a PEM file of the CA that signed the relay's "
       "certificate", label="CA file"),
    _s("verify", bool, True, PJ, "relay", "verify the relay's TLS certificate (default yes)",
       flag="--insecure", label="Verify certificate"),
    _s("pickup", str, "", PJ, "relay", "write .eml files into this folder instead of sending"),
    # -- pacing
    _s("rate", str, "", PJS, "pacing", "e.g. 600/h, 10/min (0: no limit)", check=parse_rate,
       label="Rate (600/h)"),
    _s("daily_cap", int, 0, PJS, "pacing", "at most N a day for this relay account (0: no cap)",
       label="Daily cap"),
    _s("block_size", int, 0, PJS, "pacing", "messages per block ...", label="Block size"),
    _s("block_pause", str, "", PJS, "pacing", "... then a pause, e.g. 2min",
       check=parse_duration, label="Block pause"),
    _s("limit", int, 0, PJS, "pacing", "at most N messages this run (0: no limit)",
       label="Limit per run"),
    _s("concurrency", int, 1, PJS, "pacing", "parallel connections", label="Connections"),
    _s("window", str, "", PJS, "pacing", "send only inside, e.g. 'Mon-Fri 09:00-17:00 "
       "Europe/Berlin'", check=Window.parse),
    _s("wait", bool, False, PJS, "pacing", "at the daily cap or outside the window: wait, do "
       "not stop"),
    _s("retries", int, 3, PJS, "pacing", "retries of a temporary failure (default 3)"),
    # -- the journal and the run
    _s("journal", str, "", PJS, "journal", "journal file, or a postgresql:// URL that several "
       "workers share (default: the profile's, $MAILNB_JOURNAL or the user data folder)",
       label="Journal file"),
    _s("new_journal", bool, False, JS, "journal", "start a new journal at --journal if none is "
       "there"),
    _s("dry_run", bool, False, JS, "test", "render and plan, send nothing", notebook=True),
    _s("reset", bool, False, JS, "journal", "set every recipient to unsent first"),
    _s("requeue_errors", bool, False, PJS, "journal", "set failed and deferred to unsent after "
       "sending"),
    _s("resend_unknown", bool, False, PJS, "journal", "resend messages whose outcome a crash "
       "lost"),
    _s("backup", str, "", PJS, "journal", "keep a copy of each sent message, e.g. "
       "'sent/{campaign}/{date}'"),
    # -- "send me a test first", and the output
    _s("test_to", str, None, J, "test", "send the first messages to this address only, marked "
       "[TEST]"),
    _s("test_rows", int, None, J, "test", "how many messages the test sends (default 1)"),
    _s("results", str, None, J, "journal", "write the result table (every input row) to this "
       "CSV"),
    _s("progress", object, "auto", JS, "journal", "auto, text, or none"),
    # -- profile keys only
    _s("name", str, "default", P, "relay", "the profile's name (file `profiles/<name>.toml`); "
       "`$MAILNB_PROFILE` picks the default"),
    _s("provider", str, "custom", P, "relay", "a preset (gmail, outlook, office365, ses, ...): "
       "host, port, security, daily cap"),
    _s("pop_before_smtp", bool, False, P, "relay", "log in to the bounce mailbox over POP3 "
       "before sending (older relays)", label="POP before SMTP"),
    _s("timeout", float, 30.0, P, "relay", "seconds to wait for the relay's answer before "
       "retrying"),
    _s("alt_from_addr", str, "", P, "message", "the alternate From address (used with "
       "`alternate_from`)", label="Alternate From"),
    _s("alt_from_name", str, "", P, "message", "the alternate From name", label="Alternate name"),
    _s("footer", str, "", P, "message", "text appended to every message (text and HTML)",
       label="Default footer"),
    _s("exclusion_policy", str, "global", P, "campaign", "`global`: an unsubscribe from any "
       "campaign excludes; `campaign`: only from that one", choices=("global", "campaign"),
       label="Unsubscribes"),
    _s("unsubscribe_mailto", str, "", P, "message", "the `mailto:` of List-Unsubscribe "
       "(default: Reply-To or From)", label="Unsubscribe address"),
    _s("unsubscribe_url", str, "", P, "message", "an https URL with `{token}`: one-click "
       "List-Unsubscribe (RFC 8058)", label="Unsubscribe URL"),
    _s("dkim_selector", str, "", P, "message", "the DKIM selector; with `dkim_key_file` every "
       "message is signed", label="DKIM selector"),
    _s("dkim_domain", str, "", P, "message", "the DKIM signing domain (default: the From "
       "domain)", label="DKIM domain"),
    _s("dkim_key_file", str, "", P, "message", "the DKIM private key (`mailnb dkim-key` makes "
       "one)", label="DKIM key file"),
    _s("imap_host", str, "", P, "mailbox", "the bounce mailbox's server", label="IMAP server"),
    _s("imap_port", int, 993, P, "mailbox", "its port (993 IMAPS, 995 POP3S)", label="Port"),
    _s("imap_security", str, "tls", P, "mailbox", "tls or starttls", choices=("tls", "starttls"),
       label="Security"),
    _s("imap_username", str, "", P, "mailbox", "its login (the password from "
       "`MAILNB_IMAP_PASSWORD`)", label="Username"),
    _s("imap_cafile", str, "", P, "mailbox", "a private CA for the mailbox", label="CA file"),
    _s("protocol", str, "imap", P, "mailbox", "the bounce mailbox's protocol: imap or pop3",
       choices=("imap", "pop3")),
    _s("bounce_folder", str, "INBOX", P, "mailbox", "the folder `mailnb bounces` reads",
       label="Folder"),
    _s("bounce_threshold", int, 3, P, "mailbox", "soft bounces in 30 days before an address is "
       "suppressed", label="Soft bounces"),
    _s("processed_folder", str, "", P, "mailbox", "move processed reports there (else flag "
       "them)", label="Move processed to"),
    _s("replies_folder", str, "", P, "mailbox", "the folder `mailnb replies` reads (on the "
       "bounce mailbox's server); empty: replies are not read"),
    _s("replies_username", str, "", P, "mailbox", "the replies mailbox's login, if not "
       "`imap_username` (password: the keyring or `MAILNB_IMAP_PASSWORD`)"),
    _s("retention", str, "", P, "journal", "how long per-message detail is kept (`365d`): "
       "`mailnb purge` (cron) removes what is older; off when empty", check=parse_duration),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
FLAGS.update({s.name: s.flag for s in SETTINGS if s.flag})


def setting(name: str) -> Setting:
    return BY_NAME[name]


def in_door(door: str) -> list[Setting]:
    """The settings that apply in a door (``profile``, ``job`` or ``send``), in table order."""
    return [s for s in SETTINGS if door in s.doors]


def profile_defaults() -> list[Setting]:
    """The settings a profile holds in the order its file lists them (its name first)."""
    return sorted(in_door(PROFILE), key=lambda s: s.name != "name")


T = TypeVar("T")


def settings_fields(door: str, *, defaults: str, frozen: bool = False
                    ) -> Callable[[type[T]], type[T]]:
    """A class decorator: the class becomes a dataclass whose fields are the settings of
    ``door``, each with the registry's type, help and default: ``"profile"`` (a profile's
    default), ``"send"`` (:attr:`Setting.send_default`) or ``"none"`` (None: not given). Fields
    the class declares itself come after them."""
    def decorate(cls: type[T]) -> type[T]:
        own = dict(cls.__dict__.get("__annotations__", {}))
        made: dict[str, str] = {}
        for s in (profile_defaults() if door == PROFILE else in_door(door)):
            value = {"profile": s.default, "send": s.send_default, "none": None}[defaults]
            made[s.name] = s.type_name if defaults == "profile" else f"{s.type_name} | None"
            setattr(cls, s.name, dataclasses.field(default=value, metadata={"help": s.help,
                                                                             "setting": s}))
        cls.__annotations__ = {**made, **own}
        return dataclasses.dataclass(frozen=frozen)(cls)
    return decorate


def parameter_cell() -> str:
    """The parameters cell of ``campaign.ipynb``: every campaign setting, its default there and
    what it does (papermill replaces the values)."""
    lines = ["# Parameters (papermill replaces this cell's values). None: the profile's value, "
             "else the", "# default; 0: no limit (limit, daily_cap, rate). Passwords are never "
             "parameters."]
    for s in in_door(JOB):
        value = f"{s.name} = {s.notebook!r}".replace("'", '"')
        if "=" in s.help:           # papermill reads no line whose comment has one
            raise ValueError(f"the help of {s.name!r} has '=': papermill cannot read it")
        lines.append(f"{value:<28} # {s.help}")
    return "\n".join(lines)


__all__ = ["GROUPS", "JOB", "PROFILE", "SEND", "SETTINGS", "Setting", "in_door",
           "parameter_cell", "setting", "settings_fields"]
