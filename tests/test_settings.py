"""Profiles: TOML in the config folder (0600, never a password), presets, password look-up order."""
import os
import stat

import pytest

import mailnb
from mailnb import ConfigError, Profile, SecretMissingError
from mailnb.config.presets import preset
from mailnb.config.secrets import find_password


def test_save_and_load_round_trip(config_dir):
    p = Profile(name="work", host="smtp.example.org", username="me@example.org",
                from_addr="me@example.org", from_name="Me", rate="600/h", daily_cap=500,
                block_size=50, block_pause="2min", imap_host="imap.example.org",
                imap_username="bounces@example.org")
    path = p.save()
    assert path == config_dir / "profiles" / "work.toml"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    loaded = Profile.load("work")
    assert loaded == p
    assert mailnb.list_profiles() == ["work"]
    assert mailnb.SendOptions.resolve(loaded, {}).make_pacing() == mailnb.Pacing.build(
        concurrency=1, rate="600/h", daily_cap=500, block=(50, "2min"))
    import re
    assert not re.search(r"^\w*(password|secret|token)\w*\s*=", path.read_text(), re.M | re.I)


def test_profile_env_selects_default(config_dir, monkeypatch):
    Profile(name="other", host="smtp.example.org", requires_auth=False).save()
    monkeypatch.setenv("MAILNB_PROFILE", "other")
    assert Profile.load().name == "other"
    with pytest.raises(ConfigError, match=r"no profile 'nope'.*other"):
        Profile.load("nope")


def test_invalid_profile_is_not_saved(config_dir):
    with pytest.raises(ConfigError, match="host: not a valid host"):
        Profile(host="bad host!").save()
    with pytest.raises(ConfigError, match="from_addr"):
        Profile(host="smtp.example.org", from_addr="not-an-address").save()
    problems = Profile(port=70000, rate="fast", imap_port=99999).problems()
    assert set(problems) >= {"port", "rate", "imap_port"}


def test_password_order_env_profile_env_keyring(monkeypatch):
    monkeypatch.delenv("MAILNB_SMTP_PASSWORD", raising=False)
    with pytest.raises(SecretMissingError) as info:
        find_password(kind="smtp", username="u", host="h", env="MAILNB_SMTP_PASSWORD")
    assert "MAILNB_SMTP_PASSWORD" in str(info.value) and "keyring" in str(info.value)
    monkeypatch.setenv("MAILNB_SMTP_PASSWORD", "from-env")
    assert find_password(kind="smtp", username="u", host="h",
                         env="MAILNB_SMTP_PASSWORD").reveal() == "from-env"
    p = Profile(name="lab", host="smtp.example.org", username="u")
    assert p.relay().resolve_password().reveal() == "from-env"
    monkeypatch.setenv("MAILNB_SMTP_PASSWORD_LAB", "per-profile")
    assert p.relay().resolve_password().reveal() == "per-profile"
    assert "per-profile" not in repr(p.relay())


def test_presets():
    g = preset("gmail")
    assert (g.host, g.port, g.security, g.daily_cap) == ("smtp.gmail.com", 587, "starttls", 500)
    assert "app password" in g.note
    assert preset("ses", "eu-west-1").host == "email-smtp.eu-west-1.amazonaws.com"
    with pytest.raises(ConfigError):
        preset("ses", "moon")
    with pytest.raises(ConfigError, match="unknown provider"):
        preset("aol-1999")
    from mailnb.widgets import apply_preset
    with pytest.warns(UserWarning, match="500 messages a day"):
        p = apply_preset(Profile(), "gmail")
    assert p.host == "smtp.gmail.com" and p.daily_cap == 500


def test_alternate_from_falls_back():
    p = Profile(from_addr="main@example.org", from_name="Main")
    assert p.sender(alternate=True) == ("main@example.org", "Main")
    p.alt_from_addr = "alt@example.org"
    assert p.sender(alternate=True) == ("alt@example.org", "Main")
