"""One campaign, every door: :class:`Job` holds every setting of a campaign, parsed once, and owns
its steps (audience, preview, preflight, test send, send, results). ``campaign.ipynb`` calls the
steps one cell at a time to show each, ``mailnb send`` calls them in a row (:meth:`Job.run`), the
forms fill the same profile, and ``mailnb demo`` runs the notebook.

A setting left at ``None`` is "not given": the profile's value, else the default. ``0`` is "no
limit" for the limit, the daily cap and the rate. Settings that a profile also holds override it
in one place, :meth:`Job.settings`.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import pandas as pd

from .demo import SAMPLE_RECIPIENTS, SAMPLE_TEMPLATE, SAMPLE_UNSUBSCRIBES
from .errors import ConfigError, PreflightError, alt, arg, flag_name
from .util.files import open_private
from .journal.open import open_journal
from .config.options import PACING_FROM_PROFILE, RUN_FROM_PROFILE, SendOptions, closest
from .journal.privacy import forgotten
from .audience.recipients import (Audience, Blocklist, RecipientError, Suppressions, Unsubscribes,
                         address_key, csv_lines, read_table)
from .sending.campaign import Campaign
from .sending.front import send
from .sending.preflight import check_campaign
from .sending.trial import send_test
from .config.profile import PROFILE_KEYS_HELP, Profile
from .config.targets import Relay
from .compose.templates import Template


def _s(help: str) -> Any:
    return field(default=None, metadata={"help": help})


@dataclass
class Job:
    """Every setting of a campaign. ``mailnb send --<name>`` and the notebook's parameters use
    the same names; see the README's settings table for what each does."""

    campaign: str = _s("campaign name: the journal's key; the same name resumes, never resends")
    recipients: Any = _s("CSV, TSV, Excel or Parquet file (or a DataFrame); empty: the sample")
    template: Any = _s("template folder (subject.txt, body.txt, body.html) or a Template; empty: "
                       "the sample")
    profile: Any = _s("a saved profile (relay, From, pacing); default $MAILNB_PROFILE")
    email_column: str | None = _s("the column that holds the addresses (default email)")
    encoding: str | None = _s("the recipients file's text encoding (default: detected)")
    # -- the audience
    unsubscribes: str | None = _s("CSV of unsubscribed addresses (email[,campaign])")
    suppressions: str | None = _s("CSV of suppressed addresses")
    blocklist: Any = _s("file of addresses and @domains not to mail, one per line")
    transactional: bool | None = _s("vital messages (bookings): unsubscribes do not apply")
    key_column: str | None = _s("the column that identifies a person (default: the address)")
    follow_up: str | None = _s("an earlier campaign: this one is a reminder, threaded to it")
    follow_up_filter: str | None = _s("who gets it: a pandas query on the recipients' table "
                                      "(with follow_up: also `not responded`)")
    attachment_column: str | None = _s("the column of attachment paths")
    data: Any = _s("data for report templates, name=file (CSV, TSV, Excel, Parquet or an "
                   "image); repeat for more. In Python a dict of names to files, DataFrames, "
                   "images or callables that take the row")
    empty: str | None = _s("a row whose report selection is empty: error (default), skip or "
                           "send")
    # -- the message
    from_addr: str | None = _s("From address")
    from_name: str | None = _s("From name")
    alternate_from: bool | None = _s("send from the profile's alternate From (else the main one)")
    reply_to: str | None = _s("Reply-To address")
    email_format: str | None = _s("both, text or html")
    bounce_address: str | None = _s("envelope sender (Return-Path): where delivery reports go")
    verp: bool | None = _s("a per-message bounce address, local+<id>@domain")
    # -- the relay
    host: str | None = _s("SMTP relay host")
    port: int | None = _s("SMTP port (default by security: 587, 465 or 25)")
    security: str | None = _s("starttls, tls or none")
    requires_auth: bool | None = _s("the relay needs a login (default: when a username is given)")
    username: str | None = _s("SMTP login; the password comes from MAILNB_SMTP_PASSWORD")
    auth: str | None = _s("password or oauth2 (Microsoft 365: sign in once with mailnb login)")
    oauth_provider: str | None = _s("who signs in with OAuth2: microsoft")
    oauth_client_id: str | None = _s("the client id of your organisation's app registration")
    oauth_tenant: str | None = _s("the tenant id or domain (default: organizations)")
    oauth_authority: str | None = _s("replaces the provider's sign-in URL (own servers, tests)")
    transport: str | None = _s("smtp (the relay), graph (Microsoft Graph) or direct (each "
                               "domain's MX)")
    graph_url: str | None = _s("replaces Microsoft Graph's URL (national clouds, tests)")
    helo: str | None = _s("the name to say in EHLO")
    cafile: str | None = _s("a PEM file of the CA that signed the relay's certificate")
    verify: bool | None = _s("verify the relay's TLS certificate (default yes)")
    pickup: str | None = _s("write .eml files into this folder instead of sending")
    # -- pacing
    rate: str | None = _s("e.g. 600/h, 10/min (0: no limit)")
    daily_cap: int | None = _s("at most N a day for this relay account (0: no cap)")
    block_size: int | None = _s("messages per block ...")
    block_pause: str | None = _s("... then a pause, e.g. 2min")
    limit: int | None = _s("at most N messages this run (0: no limit)")
    concurrency: int | None = _s("parallel connections")
    window: str | None = _s("send only inside, e.g. 'Mon-Fri 09:00-17:00 Europe/Berlin'")
    wait: bool | None = _s("at the daily cap or outside the window: wait, do not stop")
    retries: int | None = _s("retries of a temporary failure (default 3)")
    # -- the journal and the run
    journal: str | None = _s("journal file, or a postgresql:// URL that several workers share "
                             "(default: the profile's, $MAILNB_JOURNAL or the user data folder)")
    new_journal: bool | None = _s("start a new journal at --journal if none is there")
    dry_run: bool | None = _s("render and plan, send nothing")
    reset: bool | None = _s("set every recipient to unsent first")
    requeue_errors: bool | None = _s("set failed and deferred to unsent after sending")
    resend_unknown: bool | None = _s("resend messages whose outcome a crash lost")
    backup: str | None = _s("keep a copy of each sent message, e.g. 'sent/{campaign}/{date}'")
    # -- "send me a test first", and the output
    test_to: str | None = _s("send the first messages to this address only, marked [TEST]")
    test_rows: int | None = _s("how many messages the test sends (default 1)")
    results: str | None = _s("write the result table (every input row) to this CSV")
    progress: Any = _s("auto, text, or none")

    # -- building ------------------------------------------------------------------------------
    @classmethod
    def setting_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_parameters(cls, namespace: dict[str, Any]) -> Job:
        """A job from a notebook's parameters (its globals): every name that is a setting."""
        names = set(cls.setting_names())
        return cls(**{k: v for k, v in namespace.items() if k in names})

    @classmethod
    def build(cls, **settings: Any) -> Job:
        """Like ``Job(...)``, with an unknown setting named and the closest one suggested."""
        names = cls.setting_names()
        for name in settings:
            if name not in names:
                raise closest(name, names, "setting")
        return cls(**settings)

    def __post_init__(self) -> None:
        if not self.campaign or not str(self.campaign).strip():
            raise ConfigError(f"a campaign needs a name ({arg('campaign', 'spring-invite')}): "
                              "the journal knows it by that name")

    @functools.cached_property
    def settings(self) -> Profile:
        """The profile with every setting given here applied: the one place where an explicit
        setting overrides the profile."""
        prof = self.profile
        if isinstance(prof, Profile):
            base = prof
        elif prof or not (self.host or self.pickup or self.transport in ("graph", "direct")):
            base = Profile.load(prof or None)
        else:
            base = Profile(name="command-line", requires_auth=bool(self.username))
        keys = {f.name for f in fields(Profile)}
        given = {f.name: getattr(self, f.name) for f in fields(self)
                 if f.name in keys and getattr(self, f.name) is not None}
        if self.host and self.port is None and base.host != self.host:
            given["port"] = 0          # another host: its port follows the security
        return replace(base, **given)

    @functools.cached_property
    def journal_obj(self) -> Any:
        return open_journal(self.settings.journal or None, new=bool(self.new_journal),
                            create=not self.dry_run)

    # -- the steps -----------------------------------------------------------------------------
    @property
    def uses_sample(self) -> bool:
        """No recipients given: the bundled sample participants (and their unsubscribes)."""
        return self.recipients is None or (isinstance(self.recipients, str)
                                           and not self.recipients.strip())

    @functools.cached_property
    def table(self) -> pd.DataFrame:
        """The recipients' table as read (and filtered by ``follow_up_filter``)."""
        if isinstance(self.recipients, Audience):
            df = self.recipients.data
        elif isinstance(self.recipients, pd.DataFrame):
            df = self.recipients
        else:
            df = read_table(SAMPLE_RECIPIENTS if self.uses_sample else self.recipients,
                            encoding=self.encoding or None)
        if self.follow_up:
            df = self._with_responded(df)
        elif "responded" in (self.follow_up_filter or ""):
            raise ConfigError(f"{arg('follow_up_filter', self.follow_up_filter)} asks who "
                              f"responded, which needs the campaign they answered: add "
                              f"{arg('follow_up', 'earlier-campaign')}")
        return df.query(self.follow_up_filter) if self.follow_up_filter else df

    def _with_responded(self, df: pd.DataFrame) -> pd.DataFrame:
        """The table with ``responded`` (bool) and ``responded_at`` for the campaign followed
        up, so ``follow_up_filter="not responded"`` reminds only those who did not answer."""
        answered = self.journal_obj.responded(self.follow_up)
        key_col = self.key_column or self.settings.key_column or None
        email_col = self.email_column or "email"
        if key_col and key_col in df.columns:
            mine, theirs = df[key_col].astype(str), answered["key"].astype(str)
        elif email_col in df.columns:
            mine = df[email_col].astype(str).map(address_key)
            theirs = answered["address"].astype(str).map(address_key)
        else:
            return df
        when = dict(zip(theirs, answered["responded_at"]))
        return df.assign(responded=mine.isin(when), responded_at=mine.map(when))

    @functools.cached_property
    def audience(self) -> Audience:
        """Who gets the mail and who does not, and why: the files given, and the journal's
        unsubscribes and suppressions, so the numbers shown are the numbers sent. ``recipients``
        may be an Audience built with options of its own (``check_deliverability``, ...)."""
        j = self.journal_obj
        unsub = Unsubscribes(j.unsubscribes()).entries()
        unsub_file = self.unsubscribes or (SAMPLE_UNSUBSCRIBES if self.uses_sample else None)
        if unsub_file:
            unsub += Unsubscribes.from_csv(unsub_file).entries()
        sup = Suppressions(j.suppressions()).entries()
        if self.suppressions:
            sup += Suppressions.from_csv(self.suppressions).entries()
        lists = dict(unsubscribes=unsub, suppressions=sup, blocklist=self._blocklist(),
                     campaign=self.campaign, exclusion_policy=self.settings.exclusion_policy,
                     forgotten=forgotten(j))
        if isinstance(self.recipients, Audience):      # its own options and lists, and these
            changes = {"transactional": True} if self.transactional else {}
            return self.recipients.extended(data=self.table, **lists, **changes)
        return Audience(self.table, self.email_column or "email",
                        transactional=bool(self.transactional), **lists)

    def _blocklist(self) -> Blocklist | None:
        source = self.blocklist if self.blocklist is not None else (self.settings.blocklist or None)
        if source is None or isinstance(source, Blocklist):
            return source
        if isinstance(source, (str, Path)):
            p = Path(source).expanduser()
            if not p.is_file():
                raise ConfigError(f"blocklist file {str(p)!r} does not exist")
            source = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines()
                      if ln.strip() and not ln.lstrip().startswith("#")]
        return Blocklist(source)

    @functools.cached_property
    def template_obj(self) -> Template:
        if isinstance(self.template, Template):
            return self.template
        column = self.attachment_column or self.settings.attachment_column or None
        return Template.from_folder(self.template or SAMPLE_TEMPLATE,
                                    **({"attachment_column": column} if column else {}))

    @functools.cached_property
    def data_obj(self) -> dict[str, Any]:
        """``data`` as a dict: ``name=file`` texts (the command line) split, table files read
        into DataFrames, image files left as paths for the image filter."""
        given = self.data
        if given is None or given == "" or given == []:
            return {}
        if isinstance(given, str):
            given = [given]
        if isinstance(given, (list, tuple)):
            pairs = {}
            for item in given:
                name, sep, value = str(item).partition("=")
                if not sep or not name.strip() or not value.strip():
                    raise ConfigError(f"data {item!r} is not name=file; write e.g. " + alt(
                        "data={'sales': 'sales.csv'}", "--data sales=sales.csv"))
                pairs[name.strip()] = value.strip()
            given = pairs
        if not isinstance(given, dict):
            raise ConfigError("data must be a dict of names to files, DataFrames, images or "
                              "callables")
        return {name: _data_value(name, value) for name, value in given.items()}

    @functools.cached_property
    def campaign_obj(self) -> Campaign:
        return Campaign.from_profile(self.settings, self.campaign, self.audience,
                                     self.template_obj, follow_up=self.follow_up or None,
                                     data=self.data_obj, empty=self.empty or None)

    def relay(self) -> Any:
        """Where the mail goes: the SMTP relay, Microsoft Graph, each domain's MX or a folder."""
        return self.settings.transport_target()

    def preview(self, n: int = 3) -> Any:
        return self.template_obj.preview(self.audience, n=n, context=self.campaign_obj.data)

    def preflight(self) -> pd.DataFrame:
        """Every problem, each with its row and, for a CSV, the file's line: the send's own
        preflight, run once. :meth:`send` reuses what it found and rendered, so the messages
        are not rendered again."""
        self._preflighted = check_campaign(self.campaign_obj)
        return self._with_lines(self._preflighted.frame())

    def _with_lines(self, problems: pd.DataFrame) -> pd.DataFrame:
        lines = csv_lines(self.table)
        if lines and len(problems):
            problems = problems.copy()
            problems.insert(1, "line", problems["row"].map(lines).astype("Int64"))
        return problems

    def send_test(self, to: str | None = None, rows: int | None = None) -> pd.DataFrame:
        """The first messages exactly as they will go out, to ``to`` only, marked [TEST]."""
        address = to or self.test_to
        if not address:
            raise ConfigError("a test send needs your address: "
                              f"{arg('test_to', 'you@example.org')}")
        return send_test(self.campaign_obj, self.relay(), address, rows=rows or self.test_rows
                         or 1)

    def send_options(self) -> dict[str, Any]:
        """What ``send()`` gets: this run's own options, and the profile's pacing and run
        settings as ``SendOptions.resolve`` reads them (the settings given here already in it)."""
        opts: dict[str, Any] = {"journal": self.journal_obj, "dry_run": bool(self.dry_run),
                                "reset": bool(self.reset),
                                "preflight": getattr(self, "_preflighted", None)}
        if self.progress is not None:
            off = str(self.progress).strip().lower() in ("false", "no", "none", "0", "off", "")
            opts["progress"] = False if off else self.progress
        resolved = SendOptions.resolve(self.settings, opts)
        return {**{k: getattr(resolved, k) for k in (*PACING_FROM_PROFILE, *RUN_FROM_PROFILE)},
                **opts}

    def send(self) -> pd.DataFrame:
        """Send (or, with dry_run, plan) the campaign; the result has a row per input row."""
        try:
            self._result = send(self.campaign_obj, self.relay(), **self.send_options())
        except PreflightError as err:
            problems = self._with_lines(err.problems)
            if "line" in problems:
                where = ", ".join(f"row {r} is line {n}" for r, n in
                                  problems.dropna(subset=["line"])[["row", "line"]]
                                  .drop_duplicates().head(10).itertuples(index=False))
                raise PreflightError(f"{err} ({where} of {self.recipients})", problems) \
                    from None
            raise
        return self._result

    def write_results(self, path: str | Path | None = None) -> Path:
        """The input table joined with the result, as CSV (default results-<campaign>.csv)."""
        result = getattr(self, "_result", None)
        if result is None:
            raise ConfigError("nothing has been sent or planned yet: call send() first")
        clash = set(self.table.columns) & set(result.columns)
        joined = self.table.join(result.rename(columns={c: f"{c}_result" for c in clash}),
                                 how="left")
        target = Path(path or self.results or f"results-{self.campaign}.csv")
        with open_private(target, newline="") as f:
            joined.to_csv(f)
        return target

    def run(self) -> pd.DataFrame:
        """Every step in a row (what ``mailnb send`` does): the audience, then a test send if
        ``test_to`` is given (and nothing else), else the send and the results file."""
        print(f"mailnb: {self.audience.summary()}", flush=True)
        if self.test_to:
            out = self.send_test()
            print(f"mailnb: test: {len(out)} message(s) to {self.test_to}, "
                  f"{int((out['status'] == 'sent').sum())} accepted; nothing was journaled")
            return out
        result = self.send()
        if self.results:
            print(f"mailnb: results written to {self.write_results()}")
        return result

    def close(self) -> None:
        if "journal_obj" in self.__dict__:
            self.journal_obj.close()


_TABLE_FILES = (".csv", ".tsv", ".txt", ".xlsx", ".xlsm", ".xls", ".parquet", ".pq")


def _data_value(name: str, value: Any) -> Any:
    """A table file read into a DataFrame (numbers kept as numbers); anything else (an image's
    path, a DataFrame, a callable) as it is."""
    if isinstance(value, (str, Path)) and str(value).lower().endswith(_TABLE_FILES):
        try:
            return read_table(value, text=False, what=f"data {name}: the file")
        except RecipientError as err:
            raise ConfigError(str(err)) from None
    return value


def settings_table() -> str:
    """The README's table: every setting with its profile key, notebook parameter, CLI flag, API
    and effect, generated from the code (a test holds the README to it)."""
    from .config.options import SendOptions
    from .sending.campaign import Campaign
    job = {f.name: f for f in fields(Job)}
    prof = {f.name for f in fields(Profile)}
    places = [("send()", {f.name for f in fields(SendOptions)}),
              ("Campaign", {f.name for f in fields(Campaign)}),
              ("Relay", {f.name for f in fields(Relay)})]
    rows = ["| setting | profile key | notebook parameter | CLI flag (`mailnb send`) | API | "
            "effect |", "|---|---|---|---|---|---|"]
    for name in [*job, *(n for n in PROFILE_KEYS_HELP if n not in job)]:
        f = job.get(name)
        flag = f"`{flag_name(name)}`" if f else ""
        api = ", ".join((["Job"] if f else []) + [p for p, names in places if name in names])
        effect = f.metadata["help"] if f else PROFILE_KEYS_HELP[name]
        rows.append(f"| `{name}` | {'yes' if name in prof else ''} | {'yes' if f else ''} | "
                    f"{flag} | {api} | {effect} |")
    return "\n".join(rows) + "\n"


__all__ = ["Job", "settings_table"]
