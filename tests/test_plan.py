"""The plan stage is pure: who is due now, later, skipped or unreached, tested without a server or a
database. And the checks that come before anything else: options, pacing, windows."""
from datetime import datetime
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

import mailnb
from mailnb import ConfigError, Pacing
from mailnb.audience.recipients import Suppressions, Unsubscribes
from mailnb.config.pacing import Window
from mailnb.sending.plan import Item, make_plan


def items(n):
    return [Item(i, f"p{i}@example.com", f"p{i}@example.com", False, {}) for i in range(n)]


def test_due_later_done_and_skipped():
    states = {"p0@example.com": "sent", "p1@example.com": "failed", "p2@example.com": "deferred",
              "p3@example.com": "unknown"}
    plan = make_plan(items(8), states, campaign="c", pacing=Pacing.build(limit=2),
                     suppressions=Suppressions(["p4@example.com"]),
                     unsubscribes=Unsubscribes([("p5@example.com", "c")]), policy="campaign")
    assert [it.key for it in plan.due] == ["p2@example.com", "p6@example.com"]
    assert [it.key for it in plan.later] == ["p7@example.com"]
    assert plan.done_before == 3                       # sent, failed and unknown are not resent
    assert [(it.key, why.split(":")[0]) for it, why in plan.skipped] == [
        ("p4@example.com", "suppressed"), ("p5@example.com", "unsubscribed")]
    assert plan.stopped_by == "limit"
    again = make_plan(items(8), states, campaign="c", pacing=Pacing.build(), resend_unknown=True)
    assert "p3@example.com" in [it.key for it in again.due]


def test_daily_cap_counts_the_rolling_day_and_no_limit_is_zero():
    plan = make_plan(items(10), {}, campaign="c", pacing=Pacing.build(daily_cap=5, limit=0),
                     sent_last_24h=3)
    assert len(plan.due) == 2 and len(plan.later) == 8 and plan.stopped_by == "daily cap"
    full = make_plan(items(10), {}, campaign="c", pacing=Pacing.build(daily_cap=0, limit=None))
    assert len(full.due) == 10 and full.stopped_by is None


def test_reminder_goes_only_to_those_reached_and_is_threaded():
    plan = make_plan(items(3), {}, campaign="r", pacing=Pacing.build(),
                     threads={"p1@example.com": "<m1@example.org>"})
    assert [it.key for it in plan.due] == ["p1@example.com"]
    assert plan.due[0].thread == "<m1@example.org>"
    assert [it.key for it in plan.unreached] == ["p0@example.com", "p2@example.com"]


def test_dry_run_table_counts_the_window():
    start = pd.Timestamp("2026-11-23 16:59:58", tz="Europe/Berlin").tz_convert("UTC")
    pacing = Pacing.build(rate="1/s", window="Mon-Fri 09:00-17:00 Europe/Berlin")
    plan = make_plan(items(4), {}, campaign="c", pacing=pacing)
    table = plan.table(pacing, start)
    when = [t.tz_convert("Europe/Berlin") for t in table["planned_at"]]
    assert [t.strftime("%a %H:%M:%S") for t in when] == [
        "Mon 16:59:58", "Mon 16:59:59", "Tue 09:00:00", "Tue 09:00:01"]


def test_window_parsing_and_questions():
    w = Window.parse("Mon-Fri 09:00-17:00 Europe/Berlin")
    berlin = ZoneInfo("Europe/Berlin")
    sat = datetime(2026, 11, 28, 10, 0, tzinfo=berlin).timestamp()
    assert not w.is_open(sat)
    assert datetime.fromtimestamp(w.next_open(sat), berlin) == datetime(2026, 11, 30, 9, 0,
                                                                        tzinfo=berlin)
    night = Window.parse("22:00-06:00 UTC")
    assert night.is_open(datetime(2026, 11, 24, 23, 0, tzinfo=ZoneInfo("UTC")).timestamp())
    assert night.is_open(datetime(2026, 11, 24, 5, 0, tzinfo=ZoneInfo("UTC")).timestamp())
    assert not night.is_open(datetime(2026, 11, 24, 12, 0, tzinfo=ZoneInfo("UTC")).timestamp())
    for bad, says in [("Mon-Fry 09:00-17:00", "day range"), ("9-17", "not understood"),
                      ("09:00-17:00 Mars/Olympus", "unknown time zone"),
                      ("09:00-09:00", "empty")]:
        with pytest.raises(ConfigError, match=says):
            Window.parse(bad)


@pytest.mark.parametrize("kwargs, says", [
    (dict(rate="0/h"), "must be above 0"), (dict(rate="fast"), "not understood"),
    (dict(limit=-1), "0 for no limit"), (dict(block=50), "need a pause"),
    (dict(block_pause="2min"), "needs a block size"), (dict(concurrency=500), "1 to 100"),
])
def test_pacing_is_checked_in_one_place(kwargs, says):
    with pytest.raises(ConfigError, match=says):
        Pacing.build(**kwargs)


def test_unknown_option_names_the_closest(smtp, journal):
    df = pd.DataFrame({"email": ["a@example.com"]})
    c = mailnb.Campaign("x", mailnb.Audience(df), mailnb.Template("s", text="t"),
                        from_addr="news@example.org")
    relay = mailnb.Relay("127.0.0.1", smtp.port, security="none")
    with pytest.raises(ConfigError, match="unknown option 'dailycap'; did you mean 'daily_cap'"):
        mailnb.send(c, relay, journal=journal, dailycap=5)
    with pytest.raises(ConfigError, match="did you mean 'rate'"):
        mailnb.send(c, relay, journal=journal, rat="1/s")
    with pytest.raises(ConfigError, match="unknown setting 'recipient'; did you mean 'recipients'"):
        mailnb.Job.build(campaign="x", recipient="people.csv")
    assert smtp.recorder.messages == [] and journal.history("x").empty
    # the signature help() shows is typed and keyword-only
    import inspect
    sig = inspect.signature(mailnb.send)
    assert sig.parameters["daily_cap"].kind is inspect.Parameter.KEYWORD_ONLY
    assert "rate" in sig.parameters and "journal" in sig.parameters


def test_options_override_the_profile_in_one_place():
    from mailnb.config.options import SendOptions
    prof = mailnb.Profile(rate="600/h", daily_cap=500, limit=20, concurrency=3, retries=5)
    opts = SendOptions.resolve(prof, {"daily_cap": 0, "limit": None, "rate": "10/min"})
    pacing = opts.make_pacing()
    assert pacing.daily_cap is None                 # 0 given explicitly: no cap, over the profile's
    assert pacing.limit == 20                       # None: the profile's
    assert pacing.rate == pytest.approx(10 / 60) and pacing.concurrency == 3
    assert opts.retries == 5


def test_erased_addresses_leave_the_plan_entirely():
    from mailnb.journal.privacy import Forgotten, address_hash
    secret = b"s"
    erased = Forgotten([address_hash("p1@example.com", secret)], secret)
    plan = make_plan(items(3), {}, campaign="c", pacing=Pacing.build(), forgotten=erased)
    assert [it.key for it in plan.forgotten] == ["p1@example.com"]
    assert [it.key for it in plan.items] == ["p0@example.com", "p2@example.com"]
    assert [it.key for it in plan.due] == ["p0@example.com", "p2@example.com"]


def test_every_value_a_profile_sets_counts_zero_and_false_too():
    from mailnb.config.options import SendOptions
    opts = SendOptions.resolve(mailnb.Profile(retries=0, concurrency=2), {})
    assert opts.retries == 0 and opts.concurrency == 2       # retries = 0: no retry
    assert SendOptions.resolve(mailnb.Profile(retries=0), {"retries": 4}).retries == 4
