"""Recipients: who gets the mail, who does not, and why.

An :class:`Audience` takes any pandas DataFrame and the name of its email column. It validates and
normalises each address with email-validator, collapses duplicates (the first row wins) and applies the
exclusion lists. ``audience.sendable`` keeps the user's rows as they were (same index, same columns),
so results join back; ``audience.excluded`` holds the others with a ``reason``.

Pure data: no network unless ``check_deliverability=True`` asks email-validator for DNS look-ups.
"""
from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import email_validator
import pandas as pd

from ..errors import RecipientError, arg

#: the reasons a row can be excluded, in the order they are checked
REASONS = ("invalid", "duplicate", "forgotten", "blocked", "suppressed", "unsubscribed",
           "not subscribed")

_TRUE = {"1", "true", "yes", "y", "t", "subscribed", "opt-in", "optin", "on", "x"}
_FALSE = {"0", "false", "no", "n", "f", "unsubscribed", "opt-out", "optout", "off", ""}


@dataclass(frozen=True)
class Address:
    """A validated address: ``address`` is what goes on the envelope, ``key`` what identifies the
    person (case-folded), ``smtputf8`` whether the relay must support SMTPUTF8 to carry it."""

    address: str
    key: str
    smtputf8: bool


# A conservative shape that email-validator always accepts unchanged (but for the domain's case):
# a plain dot-atom local part and an ASCII domain with an alphabetic TLD. Such addresses skip the
# full validation, which costs ~90 us each (a million-row audience is the use case); anything else,
# and every address when DNS checks are asked for, goes through email-validator.
_PLAIN = re.compile(r"(?=.{6,254}$)([A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*)@"
                    r"((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})")
_SPECIAL_TLDS = {"arpa", "invalid", "local", "localhost", "onion", "test"}


def normalize(address: str, *, check_deliverability: bool = False,
              allow_test_domains: bool = False) -> Address:
    """Validate one address and return its normalised form.

    Raises ``email_validator.EmailNotValidError`` with the library's explanation when it is invalid.
    The domain is lower-cased and IDNA-encoded where the local part is ASCII (so any relay can carry
    it); a non-ASCII local part is kept in Unicode and flagged ``smtputf8``.
    """
    text = address.strip()
    m = _PLAIN.fullmatch(text) if not check_deliverability else None
    if m and len(m.group(1)) <= 64 and not m.group(2).lower().startswith("xn--") and \
            "xn--" not in m.group(2).lower() and len(m.group(2)) <= 253 and \
            (m.group(2).rpartition(".")[2].lower() not in _SPECIAL_TLDS or
             (allow_test_domains and m.group(2).lower().endswith(".test"))):
        addr = f"{m.group(1)}@{m.group(2).lower()}"
        return Address(addr, addr.casefold(), False)
    info = email_validator.validate_email(
        address.strip(), check_deliverability=check_deliverability, allow_smtputf8=True,
        test_environment=allow_test_domains)
    addr = info.ascii_email or info.normalized
    return Address(addr, addr.casefold(), bool(info.smtputf8))


def address_key(address: str) -> str:
    """The identity used by the exclusion lists: normalised when valid, else stripped and folded."""
    try:
        return normalize(address, allow_test_domains=True).key
    except email_validator.EmailNotValidError:
        return address.strip().casefold()


class AddressList:
    """A reusable list of addresses, optionally per campaign, each with a note.

    Build it from an iterable of addresses, an iterable of ``(address, campaign)`` pairs, a DataFrame
    with an ``email`` column (and optionally ``campaign`` and ``note``), or a CSV file with those
    columns (:meth:`from_csv`). An entry without a campaign applies to every campaign.
    """

    kind = "address list"

    def __init__(self, entries: Any = ()) -> None:
        self._entries: dict[str, dict[str | None, str]] = {}
        if isinstance(entries, AddressList):
            for key, per in entries._entries.items():
                self._entries[key] = dict(per)
            return
        if isinstance(entries, pd.DataFrame):
            col = "email" if "email" in entries.columns else entries.columns[0]
            camp: Any = entries["campaign"] if "campaign" in entries.columns else None
            note: Any = entries["note"] if "note" in entries.columns else None
            for i, addr in entries[col].items():      # i: a label of the frame's index
                if not isinstance(addr, str):
                    continue
                c = camp[i] if camp is not None else None
                n = note[i] if note is not None else ""
                self.add(addr, None if _missing(c) else str(c), "" if _missing(n) else str(n))
            return
        for entry in entries:
            if isinstance(entry, str):
                self.add(entry)
            else:
                self.add(*entry)

    @classmethod
    def from_csv(cls, path: Any) -> AddressList:
        return cls(pd.read_csv(path, dtype=str))

    def add(self, address: str, campaign: str | None = None, note: str = "") -> None:
        campaign = None if _missing(campaign) else campaign
        self._entries.setdefault(address_key(address), {})[campaign] = note

    def entries(self) -> list[tuple[str, str | None, str]]:
        """``(address, campaign, note)`` of every entry: what the constructor takes back."""
        return [(k, c, n) for k, per in self._entries.items() for c, n in per.items()]

    def to_frame(self) -> pd.DataFrame:
        rows = [(k, c, n) for k, per in self._entries.items() for c, n in per.items()]
        return pd.DataFrame(rows, columns=["email", "campaign", "note"])

    def to_csv(self, path: Any) -> None:
        self.to_frame().to_csv(path, index=False)

    def match(self, key: str, campaign: str | None = None, *, policy: str = "global") -> str | None:
        """The note of the entry that applies to ``key`` (``""`` if it has none), or None.

        ``policy="global"``: an entry for any campaign applies. ``policy="campaign"``: only entries
        without a campaign and entries for ``campaign`` apply.
        """
        per = self._entries.get(key)
        if not per:
            return None
        if policy == "global" or None in per:
            return next(iter(per.values())) if policy == "global" else per[None]
        if campaign in per:
            return per[campaign]
        return None

    def __contains__(self, address: object) -> bool:
        return isinstance(address, str) and address_key(address) in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {len(self)} addresses>"


class Unsubscribes(AddressList):
    """People who asked not to get mail: globally, or for one campaign name."""


class Suppressions(AddressList):
    """Addresses that must not be mailed because they bounced (kept apart from unsubscribes)."""


class Blocklist:
    """Addresses and whole domains never to mail. A domain entry is ``example.com`` or ``@example.com``;
    it also blocks its subdomains."""

    def __init__(self, entries: Iterable[str] = ()) -> None:
        self.addresses: set[str] = set()
        self.domains: set[str] = set()
        for e in entries:
            self.add(e)

    def add(self, entry: str) -> None:
        e = entry.strip()
        if "@" in e.lstrip("@"):
            self.addresses.add(address_key(e))
        else:
            self.domains.add(e.lstrip("@").casefold().rstrip("."))

    def match(self, key: str) -> str | None:
        if key in self.addresses:
            return "address on the blocklist"
        domain = key.rpartition("@")[2]
        parts = domain.split(".")
        for i in range(len(parts)):
            if ".".join(parts[i:]) in self.domains:
                return f"domain {'.'.join(parts[i:])} on the blocklist"
        return None

    @property
    def entries(self) -> list[str]:
        return sorted(self.addresses) + [f"@{d}" for d in sorted(self.domains)]

    def __len__(self) -> int:
        return len(self.addresses) + len(self.domains)

    def __repr__(self) -> str:
        return f"<Blocklist: {len(self.addresses)} addresses, {len(self.domains)} domains>"


def _label(index: pd.Index, pos: int) -> Any:
    """The row label at a position, as iterating the index gives it (a Python int, not numpy's)."""
    label = index[pos]
    return label.item() if hasattr(label, "item") and not isinstance(label, str) else label


class _Kept:
    """The sendable rows as they are sorted: positions, addresses, keys and SMTPUTF8 flags."""

    def __init__(self) -> None:
        self.positions: list[int] = []
        self.addresses: list[str] = []
        self.keys: list[str] = []
        self.smtputf8: list[bool] = []

    @staticmethod
    def strings(addr: Address, raw: str) -> tuple[str, str]:
        """The address and the key, each the cell's own string where equal (one string a row,
        not three, for a million-row audience)."""
        address = raw if addr.address == raw else addr.address
        return address, address if addr.key == address else addr.key

    def add(self, pos: int, address: str, key: str, smtputf8: bool) -> None:
        self.positions.append(pos)
        self.addresses.append(address)
        self.keys.append(key)
        self.smtputf8.append(smtputf8)


def _check_input(data: Any, email_column: str, exclusion_policy: str) -> None:
    if not isinstance(data, pd.DataFrame):
        raise RecipientError(f"Audience needs a pandas DataFrame, not {type(data).__name__}; "
                             "load your file with pandas.read_csv (or read_excel) first.")
    if email_column not in data.columns:
        raise RecipientError(
            f"the DataFrame has no column {email_column!r}; its columns are "
            f"{list(map(str, data.columns))}. Name the column with the addresses: "
            f"{arg('email_column', 'COLUMN')}")
    if data.empty:
        raise RecipientError("the DataFrame has no rows: there is nobody to send to. "
                             "Check the file or the filter that produced it.")
    if exclusion_policy not in ("global", "campaign"):
        raise RecipientError(f"exclusion_policy must be 'global' or 'campaign', "
                             f"not {exclusion_policy!r}")
    if data.index.has_duplicates:
        raise RecipientError(
            "the DataFrame's index has duplicate labels, so results could not be joined back "
            "to it. Call df.reset_index(drop=True) (or set a unique index) first.")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA \
        or value is pd.NaT


def _subscribed(value: Any, row: Any, column: str) -> bool:
    if _missing(value):
        return False
    if isinstance(value, (bool,)) or type(value).__name__ == "bool_":
        return bool(value)
    if isinstance(value, (int, float)):
        return value != 0
    text = str(value).strip().casefold()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise RecipientError(
        f"row {row!r}, column {column!r}: {value!r} is not a yes/no value. Use True/False, yes/no "
        f"or 1/0 in that column, or pass subscribed_column=None to ignore it.")


class Audience:
    """The recipients of a campaign, validated, de-duplicated and filtered.

    >>> aud = Audience(df, "email", unsubscribes=["bob@example.com"], blocklist=["@spam.example"])
    >>> aud.sendable      # the rows that will get mail, original index and columns
    >>> aud.excluded      # the rows that will not, with a ``reason`` and a ``detail``

    Parameters
    ----------
    data: the recipients, one row each; every column becomes a template variable.
    email_column: the column holding the address.
    unsubscribes, suppressions: :class:`Unsubscribes` / :class:`Suppressions` or anything their
        constructors take.
    blocklist: a :class:`Blocklist` or an iterable of addresses and domains.
    campaign: the campaign name that per-campaign unsubscribes are matched against.
    exclusion_policy: ``"global"`` (an unsubscribe from any campaign excludes) or ``"campaign"``.
    subscribed_column: a yes/no column; rows that are not "yes" are excluded (``None``: ignore).
    transactional: a message vital to a registration or booking: unsubscribes and the subscribed
        column do not apply; suppressions and the blocklist still do.
    check_deliverability: also check that each domain accepts mail (DNS look-ups; slow).
    allow_test_domains: accept the reserved ``.test`` domain (for tests and demos).
    """

    def __init__(self, data: pd.DataFrame, email_column: str = "email", *,
                 unsubscribes: Any = None, suppressions: Any = None, blocklist: Any = None,
                 campaign: str | None = None, exclusion_policy: str = "global",
                 subscribed_column: str | None = "subscribed", transactional: bool = False,
                 check_deliverability: bool = False, allow_test_domains: bool = False,
                 forgotten: Any = None) -> None:
        _check_input(data, email_column, exclusion_policy)
        self.options = dict(unsubscribes=unsubscribes, suppressions=suppressions,
                            blocklist=blocklist, campaign=campaign,
                            exclusion_policy=exclusion_policy, subscribed_column=subscribed_column,
                            transactional=transactional,
                            check_deliverability=check_deliverability,
                            allow_test_domains=allow_test_domains, forgotten=forgotten)
        self.forgotten = forgotten
        self.data = data
        self.email_column = email_column
        self.campaign = campaign
        self.exclusion_policy = exclusion_policy
        self.transactional = transactional
        self.unsubscribes = Unsubscribes(unsubscribes or ())
        self.suppressions = Suppressions(suppressions or ())
        self.blocklist = blocklist if isinstance(blocklist, Blocklist) else Blocklist(blocklist or ())
        use_subscribed = (subscribed_column is not None and subscribed_column in data.columns
                          and not transactional)
        self.subscribed_column = subscribed_column if use_subscribed else None
        self._sort(check_deliverability, allow_test_domains)

    def _sort(self, check_deliverability: bool, allow_test_domains: bool) -> None:
        """Every row either sendable (with its normalised address) or excluded with a reason.
        Kept lean for big audiences: positions and strings, no object per row (a normalised
        address equal to the cell is the cell's own string, its key too when already folded)."""
        data, column = self.data, self.email_column
        kept = _Kept()
        excluded: list[tuple[Any, str, str, str]] = []
        first_row: dict[str, int] = {}       # key -> position of its first row
        failed: dict[str, str] = {}          # invalid cells seen before: validated once
        sub_values = data[self.subscribed_column] if self.subscribed_column else None
        for pos, (i, raw) in enumerate(data[column].items()):
            if _missing(raw) or (isinstance(raw, str) and not raw.strip()):
                excluded.append((i, "invalid: no address", "the cell is empty", ""))
                continue
            if not isinstance(raw, str):
                raise RecipientError(
                    f"row {i!r}, column {column!r}: {raw!r} is a {type(raw).__name__}, not "
                    f"an email address. Fix that cell, or read the file with dtype=str.")
            try:
                addr = failed.get(raw) or normalize(raw, check_deliverability=check_deliverability,
                                                    allow_test_domains=allow_test_domains)
            except email_validator.EmailNotValidError as err:
                addr = failed[raw] = str(err)
            if isinstance(addr, str):
                excluded.append((i, f"invalid: {addr}", addr, raw.strip()))
                continue
            address, key = kept.strings(addr, raw)
            if key in first_row:
                excluded.append((i, "duplicate",
                                 f"same address as row {_label(data.index, first_row[key])!r}",
                                 address))
                continue
            first_row[key] = pos
            why = self._exclusion(key, i, sub_values)
            if why is not None:
                excluded.append((i, *why, address))
                continue
            kept.add(pos, address, key, addr.smtputf8)
        self._store(kept, excluded)

    def _exclusion(self, key: str, row: Any, sub_values: Any) -> tuple[str, str] | None:
        """(reason, detail) when a valid, first-seen address is excluded by a list, else None."""
        if self.forgotten is not None and (why := self.forgotten.match(key)) is not None:
            return "forgotten", why
        why = self.blocklist.match(key)
        if why is not None:
            return "blocked", why
        note = self.suppressions.match(key)
        if note is not None:
            return "suppressed", note or "on the suppression list"
        if not self.transactional:
            note = self.unsubscribes.match(key, self.campaign, policy=self.exclusion_policy)
            if note is not None:
                return "unsubscribed", note or "on the unsubscribe list"
        if sub_values is not None and not _subscribed(sub_values[row], row,
                                                      str(self.subscribed_column)):
            return "not subscribed", f"{self.subscribed_column} = {sub_values[row]!r}"
        return None

    def _store(self, kept: _Kept, excluded: list[tuple[Any, str, str, str]]) -> None:
        # nobody excluded (the usual case): the rows as they are (a copy made only on a write)
        self.sendable: pd.DataFrame = self.data.copy(deep=False) if not excluded else \
            self.data.iloc[kept.positions]
        index = self.sendable.index
        #: the address each sendable row is mailed at (normalised), aligned with ``sendable``
        self.addresses = pd.Series(kept.addresses, index=index, dtype=object, name="address")
        #: the identity of each sendable row (case-folded address)
        self.keys = pd.Series(kept.keys, index=index, dtype=object, name="key")
        #: True where the address needs SMTPUTF8 (non-ASCII local part)
        self.smtputf8 = pd.Series(kept.smtputf8, index=index, dtype=bool, name="smtputf8")
        rows = self.data.loc[[e[0] for e in excluded]].copy()
        rows["address"] = [e[3] for e in excluded]
        rows["reason"] = [e[1] for e in excluded]
        rows["detail"] = [e[2] for e in excluded]
        self.excluded: pd.DataFrame = rows

    def extended(self, *, data: pd.DataFrame | None = None, unsubscribes: Any = None,
                 suppressions: Any = None, blocklist: Any = None, **changes: Any) -> Audience:
        """The same audience (or its rows in ``data``) with more exclusions, added to its own
        lists, or other options: validated once more, in one pass."""
        opts = {**self.options, **changes}
        opts["unsubscribes"] = Unsubscribes([*self.unsubscribes.entries(),
                                             *Unsubscribes(unsubscribes or ()).entries()])
        opts["suppressions"] = Suppressions([*self.suppressions.entries(),
                                             *Suppressions(suppressions or ()).entries()])
        block = Blocklist(self.blocklist.entries)
        for entry in (blocklist.entries if isinstance(blocklist, Blocklist) else blocklist or ()):
            block.add(entry)
        opts["blocklist"] = block
        return Audience(self.data if data is None else data, self.email_column, **opts)

    # -- summaries -----------------------------------------------------------------------------
    def counts(self) -> pd.Series:
        """Rows per outcome: ``sendable`` and one entry per exclusion reason."""
        reasons = self.excluded["reason"].map(lambda r: "invalid" if r.startswith("invalid") else r)
        out = {"sendable": len(self.sendable)}
        for r in REASONS:
            n = int((reasons == r).sum())
            if n:
                out[r] = n
        return pd.Series(out, name="rows")

    def summary(self) -> str:
        c = self.counts()
        parts = [f"{c['sendable']} sendable"] + [f"{n} {r}" for r, n in c.items() if r != "sendable"]
        extra = f", {int(self.smtputf8.sum())} need SMTPUTF8" if self.smtputf8.any() else ""
        return f"Audience of {len(self.data)} rows: " + ", ".join(parts) + extra

    def __len__(self) -> int:
        return len(self.sendable)

    def __repr__(self) -> str:
        return f"<{self.summary()}>"

    def _repr_html_(self) -> str:
        c = self.counts()
        rows = "".join(f"<tr><td>{html.escape(str(r))}</td><td style='text-align:right'>{n}</td></tr>"
                       for r, n in c.items())
        kind = "transactional " if self.transactional else ""
        return (f"<div><b>{kind}Audience</b> of {len(self.data)} rows"
                f"{' for campaign ' + html.escape(self.campaign) if self.campaign else ''}"
                f"<table><tr><th>outcome</th><th>rows</th></tr>{rows}</table></div>")


def detect_encoding(path: Any, sample: int = 1 << 20) -> str:
    """UTF-8 (with or without a BOM) when the file is; otherwise what charset-normalizer finds
    (Excel's "CSV" on Windows is cp1252 / Latin-1)."""
    import codecs
    raw = Path(path).read_bytes()[:sample]
    if raw.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        raw.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as err:
        if err.start >= len(raw) - 4 and len(raw) == sample:
            return "utf-8"                      # the sample ends inside a character
    import charset_normalizer
    best = charset_normalizer.from_bytes(raw).best()
    return best.encoding if best is not None else "latin-1"


def read_table(path: Any, *, encoding: str | None = None, text: bool = True,
               what: str = "recipients file", **options: Any) -> pd.DataFrame:
    """Read recipients from CSV, TSV, Excel (.xlsx, .xls) or Parquet, by the file's extension.
    Every column is read as text (so ZIP codes and IDs keep their leading zeros) unless
    ``text=False`` (a report's data: numbers stay numbers). A text file's encoding is detected
    unless given (``encoding="latin-1"``). Every error names the file, as ``what``."""
    p = Path(path).expanduser()
    nobody = ": there is nobody to send to" if what == "recipients file" else ""
    if not p.is_file():
        raise RecipientError(f"{what} {str(p)!r} does not exist")
    if p.stat().st_size == 0:
        raise RecipientError(f"{what} {p} is empty{nobody}")
    suffix = p.suffix.lower()
    if suffix not in (".csv", ".txt", ".tsv", ".xlsx", ".xlsm", ".xls", ".parquet", ".pq"):
        raise RecipientError(f"{p.name}: unknown file type {suffix!r}; use .csv, .tsv, .xlsx or "
                             ".parquet")
    try:
        df = _read(p, suffix, encoding, options, str if text else None)
    except ImportError as err:
        extra = "mailnb[excel]" if suffix.startswith(".xls") else "pyarrow"
        raise RecipientError(f"reading {p.name} needs an extra package ({err.name or err}): "
                             f"pip install '{extra}'") from None
    except UnicodeDecodeError as err:
        raise RecipientError(
            f"{p}: not readable as {err.encoding} text (byte {err.start}). Give the file's "
            f"encoding ({arg('encoding', 'latin-1')}), or save it as UTF-8") from None
    except LookupError as err:
        raise RecipientError(f"{p}: {err}; name an encoding such as utf-8 or latin-1") from None
    except pd.errors.EmptyDataError:
        raise RecipientError(f"{what} {p} has no columns: it is empty") from None
    except (pd.errors.ParserError, ValueError) as err:
        raise RecipientError(f"{what} {p} cannot be read: {err}") from None
    if df.empty:
        raise RecipientError(f"{what} {p} has a header but no rows{nobody}")
    return df


def _read(p: Path, suffix: str, encoding: str | None, options: dict[str, Any],
          dtype: Any) -> pd.DataFrame:
    if suffix in (".csv", ".txt", ".tsv"):
        enc = encoding or detect_encoding(p)
        sep = "\t" if suffix == ".tsv" else options.pop("sep", ",")
        df = cast(pd.DataFrame, pd.read_csv(p, sep=sep, dtype=dtype, encoding=enc, **options))
        df.attrs["source"] = {"path": str(p), "encoding": enc, "sep": sep}
        return df
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(p, **options)
    return cast(pd.DataFrame, pd.read_excel(p, dtype=dtype, **options))


def csv_lines(frame: pd.DataFrame) -> dict[Any, int]:
    """For a table read from CSV/TSV by ``read_table``, the file's line number of each row (its
    first physical line; quoted line breaks and blank lines counted as pandas counts them)."""
    import csv
    source = frame.attrs.get("source")
    if not source or not pd.api.types.is_integer_dtype(frame.index):
        return {}
    starts, prev = [], 0
    with open(source["path"], newline="", encoding=source["encoding"]) as f:
        reader = csv.reader(f, delimiter=source["sep"])
        for record in reader:
            if record:
                starts.append(prev + 1)
            prev = reader.line_num
    return dict(zip(range(len(starts) - 1), starts[1:]))
