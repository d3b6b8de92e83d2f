"""The preflight on every core: rows rendered in forked worker processes give exactly what one
process gives (problems, warnings once, skips), and the messages sent after it are the same."""
import email
import os
from email import policy

import pandas as pd
import pytest
from conftest import campaign, people

import mailnb
from mailnb import PreflightError
from mailnb.compose.unsubscribe import Unsubscribe, verify_token
from mailnb.util import fanout

SECRET = b"test-secret-for-unsubscribe-tokens"


def test_ranges_cover_every_row_once_in_order_shared_with_workers():
    got = list(fanout.ranges(lambda a, b: (os.getpid(), a, b), 20_001, workers=2, min_rows=10))
    assert [r[1] for r in got] == [0] + [r[2] for r in got[:-1]]     # consecutive
    assert got[-1][2] == 20_001 and len(got) > 2                      # several ranges a worker
    mine = [r for r in got if r[0] == os.getpid()]
    assert mine == got[::2]                         # this process does every other one
    others = [r[0] for r in got[1::2]]
    assert len(set(others)) == len(others)          # a fresh worker a range: its copies go with it
    small = list(fanout.ranges(lambda a, b: (os.getpid(), a, b), 50, workers=2, min_rows=100))
    assert small == [(os.getpid(), 0, 50)]                            # few rows: this process


def test_an_error_in_a_worker_reaches_the_caller():
    def task(a, b):
        if a <= 7_000 < b:
            raise ValueError(f"row {7_000} is bad")
        return b - a
    with pytest.raises(ValueError, match="row 7000 is bad"):
        list(fanout.ranges(task, 10_000, workers=2, min_rows=10))
    assert sum(fanout.ranges(lambda a, b: b - a, 10_000, workers=2, min_rows=10)) == 10_000


def audience(n):
    df = pd.DataFrame({"email": [f"p{i}@example.com" for i in range(n)],
                       "name": [f"N{i}" for i in range(n)],
                       "link": ["https://ok.example/"] * n})
    df.loc[[10, 4_500, 8_999], "name"] = None                         # missing: errors
    df.loc[3_000, "name"] = "Eve\r\nBcc: all@example.org"             # a forged header
    df.loc[[5_000, 7_000], "link"] = "javascript:alert(1)"            # a warning, said once
    return mailnb.Audience(df)


def test_preflight_on_two_cores_finds_what_one_finds(monkeypatch):
    t = mailnb.Template("Hi {{ name }}", text="Dear {{ name }}",
                        html='<p>Dear {{ name }}, <a href="{{ link }}">more</a></p>')
    aud = audience(9_000)
    monkeypatch.setattr(fanout, "WORKERS", 1)
    one = t.preflight(aud)
    monkeypatch.setattr(fanout, "WORKERS", 2)
    two = t.preflight(aud)
    pd.testing.assert_frame_equal(one, two)
    assert list(two["row"]) == [10, 3_000, 4_500, 5_000, 8_999]
    assert list(two["severity"]) == ["error"] * 3 + ["warning", "error"]


def test_a_send_after_a_preflight_in_workers(smtp, journal, monkeypatch):
    """Rendered in worker processes, the messages carry each recipient's own merge fields,
    unsubscribe token and List-Unsubscribe header, as after a preflight in one process."""
    monkeypatch.setattr(fanout, "MIN_ROWS", 10)
    monkeypatch.setattr(fanout, "WORKERS", 2)
    c = campaign(people(40))
    c.unsubscribe = Unsubscribe(mailto="leave@example.org", url="https://example.org/u?t={token}")
    c.template = mailnb.Template("Hello {{ first_name }}",
                                 text="Dear {{ first_name }}: {{ unsubscribe_url }}")
    res = mailnb.send(c, mailnb.Relay("127.0.0.1", smtp.port, security="none", timeout=5),
                      journal=journal, progress=None)
    assert (res["status"] == "sent").all()
    assert smtp.recorder.addresses() == {f"user{i}@example.com": 1 for i in range(40)}
    for m in smtp.recorder.messages:
        msg = email.message_from_bytes(m.data, policy=policy.default)
        i = int(m.rcpt_tos[0][4:].split("@")[0])
        token = msg["List-Unsubscribe"].split("https://example.org/u?t=")[1].rstrip(">")
        assert verify_token(SECRET, token) == (m.rcpt_tos[0], "test")
        assert msg.get_body(("plain",)).get_content().strip() == \
            f"Dear Name{i}: https://example.org/u?t={token}"


def test_problems_found_in_workers_stop_the_send(smtp, journal, monkeypatch):
    monkeypatch.setattr(fanout, "MIN_ROWS", 10)
    monkeypatch.setattr(fanout, "WORKERS", 2)
    df = people(3_000)
    df.loc[[5, 2_990], "first_name"] = None
    with pytest.raises(PreflightError) as info:
        mailnb.send(campaign(df), mailnb.Relay("127.0.0.1", smtp.port, security="none"),
                    journal=journal, progress=None)
    assert list(info.value.problems["row"]) == [5, 2_990]
    assert smtp.recorder.messages == [] and journal.history("test").empty
