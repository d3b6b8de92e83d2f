"""The preflight: every row to send is rendered and checked once, before the first message leaves;
any problem stops the send with all of them, and nothing is sent."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..compose import embeds
from ..compose.checks import Problem, check_rendered, once_each
from ..compose.rendered import Rendered
from ..compose.templates import DEFAULT_MAX_SIZE
from ..errors import PreflightError, TemplateError, alt
from ..util import fanout
from .campaign import Campaign
from .message import links
from .plan import Item
from .progress import say

#: rendered messages kept from the preflight for sending (beyond this, rows are rendered again)
KEEP_RENDERED = 20_000
#: the reason of a row skipped because its report selection is empty (``empty="skip"``)
EMPTY_REPORT = "empty report: "


@dataclass
class Preflighted:
    """What a preflight found, kept so that a send of the same campaign renders nothing again:
    the problems (:meth:`frame` shows them), the rows to skip and why, and the rendered
    messages (up to :data:`KEEP_RENDERED`), by recipient key."""

    campaign: Campaign
    max_size: int
    keys: frozenset[str]
    problems: list[Problem]
    skip: dict[str, str]
    rendered: dict[str, Rendered] = field(default_factory=dict, repr=False)

    def covers(self, campaign: Campaign, items: list[Item], max_size: int) -> bool:
        return campaign is self.campaign and max_size == self.max_size and \
            all(it.key in self.keys for it in items)

    def frame(self) -> pd.DataFrame:
        """The problems as a DataFrame (``row``, ``field``, ``error``, ``severity``)."""
        return pd.DataFrame(self.problems, columns=["row", "field", "error", "severity"])


def check_campaign(campaign: Campaign, max_size: int = DEFAULT_MAX_SIZE) -> Preflighted:
    """The preflight of every sendable row, raising nothing: what a send of this campaign would
    find, kept for that send (:func:`preflight` with ``done=``)."""
    campaign.validate()
    items = campaign.recipients()
    problems, skip = _find(campaign, items, max_size)
    return Preflighted(campaign, max_size, frozenset(it.key for it in items), problems,
                       {it.key: why for it, why in skip},
                       {it.key: it.rendered for it in items if it.rendered is not None})


def preflight(campaign: Campaign, items: list[Item], max_size: int, *,
              done: Preflighted | None = None) -> list[tuple[Item, str]]:
    """Render every row to send (kept for sending, up to KEEP_RENDERED); any problem raises
    PreflightError with all of them, and nothing is sent. Returns the rows to skip (an empty
    report with ``empty="skip"``) and why. ``done``: a preflight of this campaign that already
    ran (:func:`check_campaign`), whose findings and messages are used instead when it covers
    every item."""
    if done is not None and done.covers(campaign, items, max_size):
        for it in items:
            it.rendered = done.rendered.get(it.key)
        problems = done.problems
        skip = [(it, done.skip[it.key]) for it in items if it.key in done.skip]
    else:
        problems, skip = _find(campaign, items, max_size)
    _raise_problems(problems)
    if skip:
        say(f"{len(skip)} recipient(s) skipped: their report's selection is empty")
    return skip


def _find(campaign: Campaign, items: list[Item], max_size: int
          ) -> tuple[list[Problem], list[tuple[Item, str]]]:
    """Every problem of the rows, and the rows to skip. The rows are rendered on every core
    (:mod:`mailnb.util.fanout`), but for a campaign with report ``data``, whose charts are drawn
    in worker processes of their own."""
    problems: list[Problem] = []
    skip: list[tuple[Item, str]] = []
    if _template_checked(campaign, items, problems):
        if campaign.data:
            _render_reports(campaign, items, max_size, problems, skip)
        else:
            problems.extend(once_each(_render_fanned(campaign, items, max_size, skip)))
    if campaign.email_format == "html":
        problems.append(Problem(None, "email_format", "email_format='html' sends one HTML part "
                                "without a plain-text alternative: spam filters score such mail "
                                "worse", "warning"))
    return problems, skip


def _template_checked(campaign: Campaign, items: list[Item],
                      problems: list[Problem]) -> bool:
    """The template compiles and knows every field it uses; else every row would fail alike:
    each problem is said once, and False."""
    try:
        campaign.template.compile()
        columns = [str(c) for c in campaign.audience.sendable.columns]
        unknown = campaign.template.field_problems(
            columns, items[0].values if items else None,
            {**campaign.data, "unsubscribe_url": "https://x.invalid/"})
    except TemplateError as err:
        problems.append(Problem(None, err.field or "", str(err), "error"))
        return False
    problems.extend(unknown)
    return not unknown


def _render_fanned(campaign: Campaign, items: list[Item], max_size: int,
                   skip: list[tuple[Item, str]]) -> Iterator[list[Problem]]:
    """Each range of rows rendered and checked in a worker process; its problems are yielded,
    its rendered messages (up to KEEP_RENDERED) kept on the items, its empty reports skipped."""
    def task(start: int, stop: int) -> tuple[list[Any], list[tuple[int, str]],
                                             list[tuple[int, Rendered]]]:
        found: list[Problem] = []
        advised: set[tuple[str, str]] = set()
        skipped, kept = [], []
        for pos in range(start, stop):
            it = items[pos]
            r = render_one(campaign, it, found)
            if r is None:
                continue
            checked = check_rendered(r, it.row, max_size, advised, campaign.empty)
            found.extend(checked)
            if any(p.severity == "skip" for p in checked):
                skipped.append((pos, EMPTY_REPORT + ", ".join(r.empty)))
            elif pos < KEEP_RENDERED:
                kept.append((pos, r))
        return found, skipped, kept

    for found, skipped, kept in fanout.ranges(task, len(items)):
        skip.extend((items[pos], why) for pos, why in skipped)
        for pos, r in kept:
            items[pos].rendered = r
        yield found


def _render_reports(campaign: Campaign, items: list[Item], max_size: int,
                    problems: list[Problem],
                    skip: list[tuple[Item, str]]) -> None:
    """The rows of a campaign with report data, in this process: its keyed charts are left as
    placeholders, drawn in worker processes once, then put into the kept messages."""
    advised: set[tuple[str, str]] = set()
    kept = items[:KEEP_RENDERED]
    with embeds.drawing_later() as later:       # keyed charts: drawn below, in worker processes
        rendered = [render_one(campaign, it, problems) for it in kept]
    later.draw()
    for it, r in zip(kept, rendered):
        if r is not None:
            check_one(campaign, it, later.patch(r), max_size, advised, problems, skip, keep=True)
    for it in items[KEEP_RENDERED:]:            # beyond: checked, rendered again when sent
        r = render_one(campaign, it, problems)
        if r is not None:
            check_one(campaign, it, r, max_size, advised, problems, skip, keep=False)


def render_one(campaign: Campaign, it: Item, problems: list[Problem]
                ) -> Rendered | None:
    """The item's message parts with its own unsubscribe link (not kept on the item: the link
    and headers are made again when it is sent, :func:`build`)."""
    context, _ = links(campaign, it.address)
    try:
        return campaign.template.render(it.values, row_id=it.row, context=context,
                                        default_footer=campaign.footer,
                                        default_footer_html=campaign.footer_html)
    except TemplateError as err:
        problems.append(Problem(it.row, err.field or "", str(err), "error"))
        return None


def check_one(campaign: Campaign, it: Item, r: Rendered, max_size: int,
               advised: set[tuple[str, str]], problems: list[Problem],
               skip: list[tuple[Item, str]], *, keep: bool) -> None:
    found = check_rendered(r, it.row, max_size, advised, campaign.empty)
    problems.extend(found)
    if any(p.severity == "skip" for p in found):
        skip.append((it, EMPTY_REPORT + ", ".join(r.empty)))
    elif keep:
        it.rendered = r


def _raise_problems(problems: list[Problem]) -> None:
    for _, _, advice, _ in (p for p in problems if p.severity == "warning"):
        say(f"warning: {advice}")
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        frame = pd.DataFrame(errors, columns=["row", "field", "error", "severity"])
        shown = "\n".join(f"  {e}" for e in frame["error"].head(10))
        more = f"\n  ... and {len(frame) - 10} more" if len(frame) > 10 else ""
        raise PreflightError(f"the preflight found {len(frame)} problem(s); nothing was sent. "
                             "Fix them and run again ("
                             f"{alt('err.problems has them all', 'all of them below')}):"
                             f"\n{shown}{more}",
                             frame)
