"""Audience: validation, normalisation, de-duplication and every exclusion, each with its reason."""
import pandas as pd
import pytest

from mailnb import Audience, Blocklist, RecipientError, Suppressions, Unsubscribes

# (raw cell, expected envelope address or None when invalid, needs SMTPUTF8)
ADDRESSES = [
    ("user@example.com", "user@example.com", False),
    ("  user2@example.com\t", "user2@example.com", False),            # whitespace stripped
    ("User3@EXAMPLE.com", "User3@example.com", False),                # domain lower-cased, local kept
    ("user+tag@example.com", "user+tag@example.com", False),
    ("o'brien@example.com", "o'brien@example.com", False),
    ("a@b.co", "a@b.co", False),
    ("user@bücher.de", "user@xn--bcher-kva.de", False),               # IDN domain -> punycode
    ("user4@xn--bcher-kva.de", "user4@xn--bcher-kva.de", False),
    ("jörg@bücher.de", "jörg@bücher.de", True),                       # internationalised: kept, flagged
    ("用户@例子.广告", "用户@例子.广告", True),
    ("ümlaut@example.com", "ümlaut@example.com", True),
    ("user5@example.com\n", "user5@example.com", False),
    ('"john doe"@example.com', None, False),                          # quoted local part
    ("user.@example.com", None, False),
    (".user@example.com", None, False),
    ("us..er@example.com", None, False),
    ("user@example", None, False),                                    # no TLD
    ("user@-example.com", None, False),
    ("user@exa_mple.com", None, False),
    ("user@[127.0.0.1]", None, False),                                # domain literal
    ("user@localhost", None, False),
    ("user@example.com.", None, False),
    ("user name@example.com", None, False),
    ("user@@example.com", None, False),
    ("@example.com", None, False),
    ("user@", None, False),
    ("Alice <alice@example.com>", None, False),                       # display name pasted in
    ("user@ex ample.com", None, False),
    ("user@example..com", None, False),
    ("user@example.invalid", None, False),                            # reserved TLD
    ("user@192.168.0.1", None, False),
    ("user@" + "a" * 64 + ".com", None, False),                       # DNS label too long
]


@pytest.mark.parametrize("raw,expected,utf8", ADDRESSES)
def test_address_table(raw, expected, utf8):
    aud = Audience(pd.DataFrame({"email": [raw, "other@example.org"]}))
    if expected is None:
        assert 0 not in aud.sendable.index
        row = aud.excluded.loc[0]
        assert row["reason"].startswith("invalid: ")
        assert len(row["reason"]) > len("invalid: ") + 5      # the library's explanation is kept
    else:
        assert aud.addresses[0] == expected
        assert bool(aud.smtputf8[0]) is utf8
        assert aud.sendable.loc[0, "email"] == raw             # the user's data is not changed


def frame():
    return pd.DataFrame({
        "email": ["ann@example.com", "bob@example.com", "ANN@example.com", "carl@blocked.example",
                  "dora@sub.blocked.example", "eve@example.com", "fred@example.com",
                  "gina@example.com", None, "hugo@example.com"],
        "name": list("ABCDEFGHIJ"),
        "subscribed": ["yes", "yes", "yes", "yes", "yes", "yes", "yes", "no", "yes", True],
    }, index=[10, 11, 12, 13, 14, 15, 16, 17, 18, 19])


def test_every_reason_once():
    aud = Audience(frame(), campaign="spring",
                   unsubscribes=Unsubscribes([("eve@example.com", None)]),
                   suppressions=Suppressions(["Fred@Example.com"]),
                   blocklist=["@blocked.example"])
    assert list(aud.sendable.index) == [10, 11, 19]
    reasons = dict(zip(aud.excluded.index, aud.excluded["reason"]))
    assert reasons == {12: "duplicate", 13: "blocked", 14: "blocked", 15: "unsubscribed",
                       16: "suppressed", 17: "not subscribed", 18: "invalid: no address"}
    assert aud.excluded.loc[12, "detail"] == "same address as row 10"
    assert list(aud.sendable.columns) == ["email", "name", "subscribed"]
    assert len(aud.sendable) + len(aud.excluded) == len(aud.data)
    counts = aud.counts()
    assert counts["sendable"] == 3 and counts["blocked"] == 2 and counts["invalid"] == 1
    html = aud._repr_html_()
    assert "sendable" in html and "not subscribed" in html
    assert "3 sendable" in aud.summary()


def test_results_join_back_by_index():
    df = frame()
    aud = Audience(df)
    joined = df.join(aud.excluded[["reason"]])
    assert joined.loc[12, "reason"] == "duplicate"
    assert pd.isna(joined.loc[10, "reason"])


def test_campaign_exclusion_policy():
    unsub = Unsubscribes([("ann@example.com", "autumn"), ("bob@example.com", None)])
    df = frame().drop(columns="subscribed")
    glob = Audience(df, campaign="spring", unsubscribes=unsub, exclusion_policy="global")
    assert {10, 11} <= set(glob.excluded.index)
    per = Audience(df, campaign="spring", unsubscribes=unsub, exclusion_policy="campaign")
    assert 10 in per.sendable.index                 # unsubscribed from autumn only
    assert per.excluded.loc[11, "reason"] == "unsubscribed"   # global entry applies everywhere
    autumn = Audience(df, campaign="autumn", unsubscribes=unsub, exclusion_policy="campaign")
    assert autumn.excluded.loc[10, "reason"] == "unsubscribed"


def test_transactional_ignores_unsubscribes_not_suppressions():
    aud = Audience(frame(), transactional=True, unsubscribes=["eve@example.com"],
                   suppressions=["fred@example.com"], blocklist=["blocked.example"])
    assert 15 in aud.sendable.index           # unsubscribed, but the message is transactional
    assert 17 in aud.sendable.index           # subscribed column ignored
    assert aud.excluded.loc[16, "reason"] == "suppressed"
    assert aud.excluded.loc[13, "reason"] == "blocked"


def test_lists_from_frames_and_csv(tmp_path):
    Unsubscribes(pd.DataFrame({"email": ["ann@example.com"], "campaign": ["spring"]})).to_csv(
        tmp_path / "u.csv")
    loaded = Unsubscribes.from_csv(tmp_path / "u.csv")
    assert "ANN@example.com" in loaded and len(loaded) == 1
    assert loaded.match("ann@example.com", "spring", policy="campaign") == ""
    assert loaded.match("ann@example.com", "other", policy="campaign") is None
    bl = Blocklist(["x@example.com", "spam.example"])
    assert bl.match("y@a.spam.example") and bl.match("x@example.com") and not bl.match("y@example.com")


def test_bad_subscribed_value_names_row_and_column():
    df = pd.DataFrame({"email": ["a@example.com"], "subscribed": ["maybe"]})
    with pytest.raises(RecipientError, match=r"row 0, column 'subscribed'.*'maybe'"):
        Audience(df)
    assert len(Audience(df, subscribed_column=None)) == 1


def test_missing_column_empty_frame_and_non_strings():
    with pytest.raises(RecipientError, match=r"no column 'email'.*\['mail'\].*email_column"):
        Audience(pd.DataFrame({"mail": ["a@example.com"]}))
    with pytest.raises(RecipientError, match="no rows"):
        Audience(pd.DataFrame({"email": []}))
    with pytest.raises(RecipientError, match=r"row 1, column 'email': 42 is a int"):
        Audience(pd.DataFrame({"email": ["a@example.com", 42]}, dtype=object))
    with pytest.raises(RecipientError, match="DataFrame"):
        Audience(["a@example.com"])
    with pytest.raises(RecipientError, match="duplicate labels"):
        Audience(pd.DataFrame({"email": ["a@example.com", "b@example.com"]}, index=[1, 1]))


def test_test_domains_only_on_request():
    df = pd.DataFrame({"email": ["a@example.test"]})
    assert len(Audience(df)) == 0
    assert len(Audience(df, allow_test_domains=True)) == 1


def test_fast_path_agrees_with_email_validator():
    """Plain addresses skip the full validation for speed; they must get exactly the result
    email-validator gives (20,000 random plain-looking addresses, fixed seed)."""
    import random
    import string

    import email_validator

    from mailnb.audience.recipients import _PLAIN, normalize
    rng = random.Random(7)
    alpha = string.ascii_letters + string.digits + "._%+-@"
    domains = ["example.com", "a.b.co", "x-y.org", "-a.com", "a-.com", "a..com", "ex.a1",
               "e.test", "q.localhost", "xn--bcher-kva.de", "Example.COM", "a.museum"]
    checked = 0
    for _ in range(40_000):
        s = "".join(rng.choice(alpha) for _ in range(rng.randint(1, 30)))
        if rng.random() < 0.6:
            s = s.replace("@", "") + "@" + rng.choice(domains)
        if not _PLAIN.fullmatch(s):
            continue
        checked += 1
        try:
            fast = normalize(s).address
        except email_validator.EmailNotValidError:
            fast = None
        try:
            info = email_validator.validate_email(s, check_deliverability=False,
                                                  allow_smtputf8=True)
            slow = info.ascii_email or info.normalized
        except email_validator.EmailNotValidError:
            slow = None
        assert fast == slow, s
    assert checked > 10_000
