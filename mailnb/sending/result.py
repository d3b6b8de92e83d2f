"""The summary: a result frame with a row per input row (joins back to the user's data), and a
line that says what happened and what is left, never "complete" while anyone is unaccounted for."""
from __future__ import annotations

import itertools
import time
from typing import Any, cast

import numpy as np
import pandas as pd

from ..config.pacing import Pacing
from ..errors import alt, arg
from ..journal.base import Journal
from .campaign import Campaign
from .plan import Item, Plan
from .progress import clock, say

RESULT_COLUMNS = ["address", "status", "reason", "code", "reply", "attempts", "message_id",
                  "sent_at", "this_run"]


def finish(campaign: Campaign, j: Journal, plan: Plan, run_id: str, summary: dict[str, Any],
            pacing: Pacing) -> pd.DataFrame:
    out = result_frame(campaign, j, run_id, plan)
    status = out["status"]
    left = int(status.isin(["pending", "deferred"]).sum())
    unknown = int((status == "unknown").sum())
    summary.update(left=left, unknown=unknown, complete=left == 0 and unknown == 0)
    out.attrs["summary"] = summary
    line = (f"{campaign.name!r}: {summary['sent']} sent, {summary['failed']} failed, "
            f"{summary['deferred']} deferred this run")
    if summary["stopped"]:
        line += f" (stopped: {summary['stopped']})"
    line += (f"; {int((status == 'sent').sum())} of {len(plan.items)} sent in all, "
             f"{int((status == 'excluded').sum())} excluded")
    if summary["complete"]:
        line += "; complete: everyone is accounted for"
    else:
        line += f"; NOT complete: {left} left" + ("; run again to continue" if left else "")
    say(line + f". Journal: {j.location}")
    if left and summary["stopped"] == "daily cap reached" and pacing.daily_cap:
        free = j.cap_frees_at(summary.get("account", ""), pacing.daily_cap, time.time())
        say(f"the daily cap of {pacing.daily_cap} is reached; {left} remain. The cap next allows "
             f"a message at {clock(free) if free else 'once the rolling 24 hours pass'}; run "
             f"again then, or pass {arg('wait')} to keep going")
    if unknown:
        say(f"{unknown} recipient(s) are 'unknown': in flight when a run stopped, so the relay "
             f"may or may not have them. List them with "
             + alt(f"mailnb.history({campaign.name!r}, status='unknown')",
                   f"mailnb history {campaign.name} --status unknown")
             + f"; resend them with {arg('resend_unknown')} if a duplicate is acceptable")
    return out


def result_frame(campaign: Campaign, journal: Journal, run_id: str | None,
                 plan: Plan | None = None) -> pd.DataFrame:
    """One row per row of the audience's input, in its order and with its index: the journal's
    outcome for those sent to, ``excluded`` with the reason for the others (the audience's
    exclusions, and for a reminder those the earlier campaign never reached)."""
    aud = campaign.audience
    items = plan.items if plan is not None else campaign.recipients()
    sent = outcome_frame(journal, campaign.name, items, run_id)
    ex = aud.excluded
    parts = [sent]
    if len(ex):
        parts.append(pd.DataFrame({"address": ex["address"], "status": "excluded",
                                   "reason": ex["reason"], "reply": ex["detail"], "attempts": 0,
                                   "this_run": False}, index=ex.index))
    if plan is not None and plan.forgotten:
        parts.append(pd.DataFrame({"address": [it.address for it in plan.forgotten],
                                   "status": "excluded", "attempts": 0, "this_run": False,
                                   "reason": "forgotten"},
                                  index=[it.row for it in plan.forgotten]))
    if plan is not None and plan.unreached:
        parts.append(pd.DataFrame({"address": [it.address for it in plan.unreached],
                                   "status": "excluded", "attempts": 0, "this_run": False,
                                   "reason": f"never got {campaign.follow_up!r}"},
                                  index=[it.row for it in plan.unreached]))
    if len(parts) == 1 and sent.index.equals(aud.data.index):
        out = sent          # already in order and typed: no copy of a million-row frame
    else:
        out = pd.concat(parts) if len(parts) > 1 else sent
        if not out.index.equals(aud.data.index):
            out = out.reindex([i for i in aud.data.index if i in out.index])
        out = out[RESULT_COLUMNS]
        out["code"] = out["code"].astype("Int64")
        out["attempts"] = out["attempts"].fillna(0).astype(int)
        out["this_run"] = out["this_run"].fillna(False).astype(bool)
        out["sent_at"] = pd.to_datetime(out["sent_at"], utc=True)
    out.index.name = aud.data.index.name
    return out


def outcome_frame(journal: Journal, campaign: str, items: list[Item],
                   run_id: str | None) -> pd.DataFrame:
    """The journal's outcome of each item, in the items' order, column by column (no frame of
    the whole journal: a million recipients' result costs its columns, and repeated texts such
    as the status are one string each)."""
    n = len(items)
    where = pd.Index([it.key for it in items])      # a hash table of the keys, not a dict
    status = np.full(n, "pending", dtype=object)
    reply, message_id = np.full(n, None, dtype=object), np.full(n, None, dtype=object)
    code, sent_at = np.full(n, np.nan), np.full(n, np.nan)
    attempts, this_run = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
    shared: dict[Any, Any] = {}
    rows = iter(journal.outcomes(campaign))
    # small chunks: a row's tuple and strings are freed before the next chunk is read (50,000 at a
    # time held +110 MB at 100,000 rows, 5,000 +60 MB, in the same time)
    while chunk := list(itertools.islice(rows, 5_000)):
        keys, *cols = zip(*chunk)
        at = where.get_indexer(cast(Any, keys))
        mine = at >= 0                      # rows of this campaign the audience no longer has
        at = at[mine]
        st, att, cd, rep, mid, when, rid = (np.array(c, dtype=object)[mine] for c in cols)
        status[at] = [shared.setdefault(v, v) for v in st]
        attempts[at] = [v or 0 for v in att]
        code[at] = [np.nan if v is None else v for v in cd]
        reply[at] = [shared.setdefault(v, v) for v in rep]
        message_id[at] = mid
        sent_at[at] = [np.nan if v is None else v for v in when]
        if run_id is not None:
            this_run[at] = rid == run_id
    return pd.DataFrame({
        "address": [it.address for it in items], "status": status,
        "reason": np.where(status == "skipped", reply, cast(Any, None)), "code": pd.array(
            code, dtype="Float64").astype("Int64"), "reply": reply, "attempts": attempts,
        "message_id": message_id, "sent_at": pd.to_datetime(sent_at, unit="s", utc=True),
        "this_run": this_run}, index=pd.Index([it.row for it in items]))


def dry_run_frame(campaign: Campaign, j: Journal, plan: Plan, pacing: Pacing) -> pd.DataFrame:
    out = result_frame(campaign, j, None, plan)
    table = plan.table(pacing, pd.Timestamp.now(tz="UTC"))
    planned = table["status"].reindex(out.index)
    out["status"] = planned.where(planned.notna() & (out["status"] != "excluded"),
                                  out["status"]).astype(object)
    out["planned_at"] = table["planned_at"].reindex(out.index)
    out.attrs["summary"] = {"campaign": campaign.name, "dry_run": True,
                            "would_send": len(plan.due), "later": len(plan.later)}
    return out
