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
import os
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

from .audience.recipients import (
    Audience,
    Blocklist,
    Suppressions,
    Unsubscribes,
    address_key,
    csv_lines,
    read_table,
)
from .compose.templates import Template
from .config.options import SendOptions, closest, from_profile
from .config.profile import PROFILE_ENV, Profile, list_profiles
from .config.registry import JOB, PROFILE, SETTINGS, settings_fields
from .config.targets import Nowhere, Relay
from .demo import SAMPLE_RECIPIENTS, SAMPLE_TEMPLATE, SAMPLE_UNSUBSCRIBES
from .errors import ConfigError, PreflightError, RecipientError, alt, arg, flag_name
from .journal.base import Journal
from .journal.open import open_journal
from .journal.privacy import forgotten
from .sending.campaign import Campaign
from .sending.front import send
from .sending.preflight import check_campaign
from .sending.progress import say
from .sending.trial import send_test
from .util.files import open_private


@settings_fields(JOB, defaults="none")
class Job:
    """Every setting of a campaign: the registry's ``job`` settings (:mod:`mailnb.config.registry`).
    ``mailnb send --<name>`` and the notebook's parameters use the same names; see the README's
    settings table for what each does. None: not given (the profile's value, else the default).
    """

    if TYPE_CHECKING:        # the fields come from the registry: typed there, checked at runtime
        __dataclass_fields__: ClassVar[dict[str, Any]]

        def __init__(self, **settings: Any) -> None: ...

        def __getattr__(self, name: str) -> Any: ...

        def __setattr__(self, name: str, value: Any) -> None: ...

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
            base = _dry_run_profile() if _plans_only(self, prof) else Profile.load(prof or None)
        else:
            base = Profile(name="command-line", requires_auth=bool(self.username))
        keys = {f.name for f in fields(Profile)}
        given = {f.name: getattr(self, f.name) for f in fields(self)
                 if f.name in keys and getattr(self, f.name) is not None}
        if self.host and self.port is None and base.host != self.host:
            given["port"] = 0          # another host: its port follows the security
        return replace(base, **given)

    @functools.cached_property
    def journal_obj(self) -> Journal:
        return open_journal(self.settings.journal or None, new=bool(self.new_journal),
                            create=not self.dry_run)

    # -- the steps -----------------------------------------------------------------------------
    @property
    def uses_sample(self) -> bool:
        """No recipients given, and the bundled sample participants (and their unsubscribes)
        stand in for them (:func:`_sample_stands_in`)."""
        return _not_given(self.recipients) and _sample_stands_in(self)

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
            if self.uses_sample:
                print(f"mailnb: no recipients given: the bundled sample participants "
                      f"({SAMPLE_RECIPIENTS})", flush=True)
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
        folder = self.template
        if _not_given(folder) and _sample_stands_in(self):
            print(f"mailnb: no template given: the bundled sample template ({SAMPLE_TEMPLATE})",
                  flush=True)
            folder = SAMPLE_TEMPLATE
        return Template.from_folder(folder, **({"attachment_column": column} if column else {}))

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
        """Where the mail goes: the SMTP relay, Microsoft Graph, each domain's MX or a folder;
        a dry run that names none plans without one."""
        s = self.settings
        if self.dry_run and not (s.host or s.pickup or s.transport != "smtp"):
            return Nowhere()
        return s.transport_target()

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
        _check_inputs(self)
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
        return {**{k: getattr(resolved, k) for k in from_profile()}, **opts}

    def send(self) -> pd.DataFrame:
        """Send (or, with dry_run, plan) the campaign; the result has a row per input row."""
        _check_inputs(self)
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
        _check_inputs(self)
        print(f"mailnb: {self.audience.summary()}", flush=True)
        _say_excluded(self.audience)
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
    and effect, generated from the registry (a test holds the README to it)."""
    from .config.options import SendOptions
    from .sending.campaign import Campaign
    places = [("send()", {f.name for f in fields(SendOptions)}),
              ("Campaign", {f.name for f in fields(Campaign)}),
              ("Relay", {f.name for f in fields(Relay)})]
    rows = ["| setting | profile key | notebook parameter | CLI flag (`mailnb send`) | API | "
            "effect |", "|---|---|---|---|---|---|"]
    for s in SETTINGS:
        job = JOB in s.doors
        flag = f"`{flag_name(s.name)}`" if job else ""
        api = ", ".join((["Job"] if job else []) + [p for p, names in places if s.name in names])
        rows.append(f"| `{s.name}` | {'yes' if PROFILE in s.doors else ''} | "
                    f"{'yes' if job else ''} | {flag} | {api} | {s.help} |")
    return "\n".join(rows) + "\n"


def _plans_only(job: Job, prof: Any) -> bool:
    """A dry run that names no profile, where the default profile does not exist: it plans
    without one (it needs no relay)."""
    default = os.environ.get(PROFILE_ENV) or "default"
    return bool(job.dry_run) and not prof and default not in list_profiles()



def _dry_run_profile() -> Profile:
    say("no profile: a dry run plans without a relay (a send needs one: "
        f"{arg('profile', 'work')} or {arg('host', 'smtp.example.org')})")
    return Profile(name="dry-run", requires_auth=False, from_addr="you@example.org")



def _check_inputs(job: Job) -> None:
    """What a send needs from the user, checked before any file is read or written."""
    if any(_not_given(getattr(job, n)) for n in ("recipients", "template")):
        _sample_stands_in(job)



def _sample_stands_in(job: Job) -> bool:
    """The bundled sample stands in for the recipients or the template not given only with
    ``sample=True`` or in a dry run: a send through a relay with either missing is an error
    that names it, never the sample mailed to the relay by a forgotten flag."""
    if job.sample or (job.sample is None and job.dry_run):
        return True
    missing = [n for n in ("recipients", "template") if _not_given(getattr(job, n))]
    raise ConfigError(
        f"no {' and no '.join(missing)} given, so nothing to send: give "
        + " and ".join(arg(n, {"recipients": "people.csv", "template": "invite/"}[n])
                       for n in missing)
        + f". The bundled sample is for trying mailnb out: {arg('dry_run')} shows it, "
        f"{arg('sample')} sends it (mailnb demo sends it to a capture server)")



def _say_excluded(audience: Audience, most: int = 20) -> None:
    """The rows left out, each with its row, address and reason (the first ``most``), and
    where to find them all."""
    ex = audience.excluded
    for idx, address, reason in zip(ex.index[:most], ex["address"][:most],
                                    ex["reason"][:most]):
        say(f"  excluded row {idx}: {address or '(no address)'}: {reason}")
    if len(ex) > most:
        say(f"  ... and {len(ex) - most} more; "
            + alt("job.audience.excluded", f"{flag_name('results')} FILE")
            + " lists every row with its reason")


def _not_given(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


__all__ = ["Job", "settings_table"]
