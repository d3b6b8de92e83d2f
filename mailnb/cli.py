"""The ``mailnb`` command: what the notebooks do, for shell scripts and cron.

    mailnb send --recipients people.csv --template invite/ --campaign spring --from me@example.org \\
                --host smtp.example.org --username me@example.org [--dry-run] [--limit N] ...
    mailnb send ... --profile work          # relay, From and pacing from a saved profile
    mailnb history spring --status unknown  # who got what, when
    mailnb check --profile work             # connect, TLS, login, quit: send nothing
    mailnb bounces --profile work           # read the bounce mailbox, suppress bad addresses
    mailnb replies --profile work           # STOP replies unsubscribe, answers count as responded
    mailnb sink --folder captured/          # a capture SMTP server on 127.0.0.1
    mailnb demo                             # the sample campaign through the sink, end to end

The SMTP password comes from MAILNB_SMTP_PASSWORD or the keyring, never from a flag.

Each command imports what it needs when it runs: the package's modules bring in pandas, so
``mailnb --help`` and a cron job's start stay fast.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from .errors import MailnbError

#: the settings `mailnb check` takes: where the relay is and how to log in
RELAY_SETTINGS = ("profile", "host", "port", "security", "username", "helo", "cafile", "verify",
                  "pickup")


def _relay_args(p: argparse.ArgumentParser) -> None:
    """The relay's flags, as `mailnb send` has them (help and type from the registry)."""
    from .config.registry import setting
    from .errors import flag_name
    g = p.add_argument_group("relay (or --profile)")
    for name in RELAY_SETTINGS:
        s = setting(name)
        kw: dict[str, Any] = {"dest": name, "help": s.help}
        if s.flag == "--insecure":
            kw.update(action="store_const", const=False, default=None,
                      help="do not verify the TLS certificate")
        elif s.choices:
            kw["choices"] = list(s.choices)
        elif s.kind is int:
            kw["type"] = int
        g.add_argument(flag_name(name), **kw)


def cmd_send(args: argparse.Namespace) -> int:
    from .job import Job
    from .sending.front import StoppedError
    settings = {name: getattr(args, name) for name in Job.setting_names()
                if getattr(args, name, None) is not None}
    settings.setdefault("progress", "auto")
    job = Job(**settings)
    try:
        job.run()
    except StoppedError as err:
        print(f"mailnb: {err}", file=sys.stderr)
        if job.results:
            job._result = err.result
            print(f"mailnb: results written to {job.write_results()}")
        return 143
    finally:
        job.close()
    return 0


def cmd_login(args: argparse.Namespace) -> int:
    """Sign in once with OAuth2 (the device code: open the URL, enter the code); later sends on
    this machine sign in silently."""
    from .config.oauth import login
    from .config.profile import Profile
    prof = Profile.load(args.profile)
    changes = {k: v for k, v in (("oauth_client_id", args.oauth_client_id),
                                 ("oauth_tenant", args.oauth_tenant),
                                 ("oauth_authority", args.oauth_authority),
                                 ("username", args.username)) if v}
    prof = __import__("dataclasses").replace(prof, auth="oauth2", **changes)
    oauth = prof.oauth()
    login(oauth, show=lambda text: print(f"mailnb: {text}", flush=True))
    print(f"mailnb: signed in as {oauth.username}; sends with profile {prof.name!r} now sign in "
          "by themselves")
    return 0


def _privacy_target(args: argparse.Namespace) -> tuple[Any, list[str]]:
    """The journal and the message folders of --journal / --profile."""
    from .config.profile import Profile
    from .journal.privacy import message_folders
    prof = Profile.load(args.profile) if args.profile or not args.journal else None
    journal = args.journal or (prof.journal if prof else None) or None
    folders = (message_folders(prof) if prof else []) + list(args.folder or [])
    return journal, folders


def _said(what: str, counts: dict[str, int]) -> str:
    return f"mailnb: {what}: " + ", ".join(f"{n} {kind}" for kind, n in counts.items())


def cmd_forget(args: argparse.Namespace) -> int:
    from .audience.recipients import read_table
    from .journal.privacy import forget
    addresses = list(args.address)
    if args.file:
        table = read_table(args.file)
        addresses += [a for a in table[table.columns[0] if "email" not in table.columns
                                       else "email"].dropna()]
    journal, folders = _privacy_target(args)
    print(_said("removed", forget(addresses, journal, folders=folders)))
    print("mailnb: only a keyed hash of each address is kept, so no later send mails it")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import json

    from .journal.privacy import export
    journal, _ = _privacy_target(args)
    held = export(args.address, journal)
    if args.json:
        print(json.dumps(held, indent=2, default=str))
        return 0
    print(f"mailnb: held about {held['address']}" + (" (erased on request)" if held["erased"]
                                                     else ""))
    for kind in ("campaigns", "events", "bounces", "suppressions", "unsubscribes"):
        rows = held[kind]
        print(f"  {kind}: {len(rows)}")
        for row in rows:
            print("    " + ", ".join(f"{k}={v}" for k, v in row.items() if v is not None))
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    from .config.profile import Profile
    from .journal.privacy import purge
    journal, folders = _privacy_target(args)
    older = args.older_than or (Profile.load(args.profile).retention if args.profile or
                                not args.journal else "")
    if not older:
        print("mailnb: error: say how old: --older-than 365d, or retention = \"365d\" in the "
              "profile", file=sys.stderr)
        return 2
    print(_said(f"purged what is older than {older}", purge(journal, older_than=older,
                                                            folders=folders)))
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from .config.profile import Profile
    from .journal.open import history
    journal = args.journal or (Profile.load(args.profile).journal if args.profile else None)
    df = history(args.campaign, journal or None, status=args.status)
    if args.csv:
        from .util.files import open_private
        with open_private(args.csv, newline="") as f:
            df.to_csv(f, index=False)
        print(f"mailnb: {len(df)} row(s) written to {args.csv}")
        return 0
    cols = ["campaign", "address", "status", "sent_at", "code", "reply", "message_id"]
    with __import__("pandas").option_context("display.max_rows", None, "display.width", 200,
                                             "display.max_colwidth", 60):
        print(df[cols].to_string(index=False) if len(df) else "no recipients")
    return 0


def _send_args(s: argparse.ArgumentParser) -> None:
    """One flag per campaign setting of the registry, named like it (--daily-cap for
    daily_cap), in the registry's groups."""
    from .config.registry import GROUPS, JOB, in_door
    from .errors import flag_name
    groups = {key: s.add_argument_group(title) for key, title in GROUPS.items()}
    for setting in in_door(JOB):
        kw: dict[str, Any] = {"dest": setting.name, "help": setting.help, "default": None}
        if setting.flag == "--insecure":     # the one flag that switches a setting off
            kw.update(action="store_const", const=False,
                      help="do not verify the relay's TLS certificate")
        elif setting.kind is bool:
            kw.update(action="store_const", const=True)
        elif setting.name == "data":          # --data sales=sales.csv --data logo=logo.png
            kw.update(action="append", metavar="NAME=FILE")
        else:
            kw["type"] = int if setting.kind is int else str
        groups[setting.group].add_argument(flag_name(setting.name), **kw)
    groups["relay"].add_argument("--direct", dest="transport", action="store_const",
                                 const="direct", help="deliver to each domain's MX yourself "
                                 "(same as --transport direct)")


def cmd_check(args: argparse.Namespace) -> int:
    """The relay as `mailnb send` would resolve it (Job.settings), checked without sending."""
    from .config.targets import Relay
    from .job import Job
    from .transports.check import check_relay
    given = {k: getattr(args, k) for k in RELAY_SETTINGS if getattr(args, k) not in (None, "")}
    relay = Job(campaign="check", **given).relay()
    if not isinstance(relay, Relay):
        print(f"mailnb: {relay.describe()}: nothing to check before sending")
        return 0
    report = check_relay(relay)
    print(repr(report))
    return 0 if report.ok else 1


def cmd_sink(args: argparse.Namespace) -> int:
    from .sink import Sink
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Sink(args.folder, port=args.port) as sink:
        print(f"mailnb sink: listening on 127.0.0.1:{sink.port}, saving to {sink.folder} "
              f"(Ctrl-C to stop)", flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        print(f"mailnb sink: captured {sink.count} message(s)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    return run_demo(Path(args.output), keep_sink=False)


def cmd_check_sender(args: argparse.Namespace) -> int:
    from .config.profile import Profile
    from .transports.dnscheck import check_sender
    report = check_sender(Profile.load(args.profile), nameserver=args.nameserver)
    print(repr(report))
    return 0 if report.ok else 1


def cmd_dkim_key(args: argparse.Namespace) -> int:
    from .compose.signing import generate_key
    generate_key(args.selector, args.domain, args.path, bits=args.bits)
    print(f"Set dkim_selector={args.selector!r}, dkim_domain={args.domain!r} and "
          f"dkim_key_file={args.path!r} in your profile.")
    return 0


def cmd_bounces(args: argparse.Namespace) -> int:
    from .config.profile import Profile
    from .inbound.bounces import process_bounces, process_replies, summary_line
    profile = Profile.load(args.profile)
    if args.command == "replies":
        found = process_replies(profile, folder=args.folder, since=args.since)
    else:
        found = process_bounces(profile, folder=args.folder, since=args.since,
                                threshold=args.threshold)
    print(f"mailnb: {args.command}: {summary_line(found)}")
    if args.results:
        from .util.files import open_private
        with open_private(args.results, newline="") as f:
            found.to_csv(f, index=False)
    return 0


def cmd_unsubscribes(args: argparse.Namespace) -> int:
    from .config.profile import Profile
    from .inbound.unsubscribes import from_hits, process_unsubscribe_mailbox
    from .journal.open import open_journal
    profile = Profile.load(args.profile)
    journal = open_journal(args.journal or profile.journal or None, new=True)
    if args.hits:
        out = from_hits(args.hits, journal, policy=profile.exclusion_policy)
    else:
        from .inbound.mailbox import Mailbox
        mb = Mailbox.from_profile(profile, folder=args.folder)
        out = process_unsubscribe_mailbox(mb, journal, policy=profile.exclusion_policy)
    counts = out["result"].map(lambda r: r.split(":")[0]).value_counts().to_dict() if len(out) \
        else {}
    print(f"mailnb: {len(out)} request(s): " + (", ".join(f"{n} {k}" for k, n in counts.items())
                                                 or "none"))
    return 0


def cmd_journal_copy(args: argparse.Namespace) -> int:
    from .journal.open import copy_journal
    out = copy_journal(args.source, args.target)
    print(out.to_string(index=False))
    print(f"mailnb: copied {int(out['source'].sum())} row(s); every table's count matches")
    return 0


def cmd_profiles(args: argparse.Namespace) -> int:
    from .config.profile import config_dir, list_profiles
    names = list_profiles()
    print(f"profiles in {config_dir() / 'profiles'}: {', '.join(names) or 'none'}")
    return 0


def cmd_profiles_show(args: argparse.Namespace) -> int:
    from .config.profile import Profile
    prof = Profile.load(args.name)
    for key, value in prof.to_dict().items():
        if value not in ("", None) and key != "name":
            print(f"{key} = {value!r}")
    return 0


def cmd_profiles_create(args: argparse.Namespace) -> int:
    """A profile from flags (what the setup notebook's forms save), checked before it is saved."""
    from dataclasses import fields, replace

    from .config.presets import apply_preset
    from .config.profile import Profile, config_dir
    from .errors import ConfigError
    given = {f.name: getattr(args, f.name) for f in fields(Profile)
             if f.name not in ("name", "provider") and getattr(args, f.name, None) is not None}
    prof = Profile(name=args.name)
    if args.preset:
        prof = apply_preset(prof, args.preset, args.region)
    if "requires_auth" not in given and not (args.preset and args.preset != "custom"):
        given["requires_auth"] = bool(given.get("username"))   # a login when there is a username
    prof = replace(prof, **given)
    path = config_dir() / "profiles" / f"{args.name}.toml"
    if path.exists() and not args.force:
        raise ConfigError(f"a profile {args.name!r} exists ({path}); --force replaces it")
    saved = prof.save()
    print(f"mailnb: saved {prof.describe()} to {saved}")
    print(f"mailnb: use it with --profile {args.name} (papermill: -p profile {args.name})")
    return 0


def _profile_args(c: argparse.ArgumentParser) -> None:
    """One flag per profile key, spelled as `mailnb send` spells it (--from for from_addr)."""
    from dataclasses import MISSING, fields

    from .config.presets import PRESETS
    from .config.profile import Profile
    from .errors import flag_name
    c.add_argument("name", help="the profile's name (letters, digits, '.', '_', '-')")
    c.add_argument("--preset", choices=sorted(PRESETS), help="a provider's host, port, security "
                   "and daily cap")
    c.add_argument("--region", default="us-east-1", help="the AWS region (--preset ses)")
    c.add_argument("--force", action="store_true", help="replace a profile of that name")
    for f in fields(Profile):
        if f.name in ("name", "provider"):
            continue
        kw: dict[str, Any] = {"dest": f.name, "default": None, "help": f.metadata["help"]}
        if isinstance(f.default, bool):      # --verify / --no-verify: a profile says both ways
            kw["action"] = argparse.BooleanOptionalAction
            c.add_argument("--" + f.name.replace("_", "-"), **kw)
            continue
        if f.default is not MISSING:
            kw["type"] = type(f.default)
        c.add_argument(flag_name(f.name), **kw)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mailnb", description="Personalised bulk email, paced and "
                                "journaled. The SMTP password comes from MAILNB_SMTP_PASSWORD or "
                                "the keyring, never from a flag.")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("send", help="send a campaign (what campaign.ipynb does)")
    _send_args(s)
    s.set_defaults(func=cmd_send)

    lg = sub.add_parser("login", help="sign in once with OAuth2 (Microsoft 365: device code)")
    lg.add_argument("--profile", help="the profile to sign in for (default $MAILNB_PROFILE)")
    lg.add_argument("--username", help="the mailbox (default: the profile's)")
    lg.add_argument("--oauth-client-id", help="default: the profile's")
    lg.add_argument("--oauth-tenant", help="default: the profile's")
    lg.add_argument("--oauth-authority", help="replaces the provider's sign-in URL")
    lg.set_defaults(func=cmd_login)

    for name, helptext, func in (
            ("forget", "erase addresses from everything mailnb holds; never mail them again",
             cmd_forget),
            ("export", "print everything held about an address", cmd_export),
            ("purge", "remove per-message detail older than the retention", cmd_purge)):
        pp = sub.add_parser(name, help=helptext)
        if name == "forget":
            pp.add_argument("address", nargs="*", help="the addresses to erase")
            pp.add_argument("--file", help="a CSV of addresses (an email column) to erase")
        elif name == "export":
            pp.add_argument("address")
            pp.add_argument("--json", action="store_true", help="JSON instead of a table")
        else:
            pp.add_argument("--older-than", help="e.g. 365d (default: the profile's retention)")
        pp.add_argument("--profile", help="its journal, pickup and backup folders")
        pp.add_argument("--journal", help="the journal (default: the profile's)")
        pp.add_argument("--folder", action="append", help="another folder of saved messages")
        pp.set_defaults(func=func)

    h = sub.add_parser("history", help="who got what, when: the journal of a campaign")
    h.add_argument("campaign", nargs="?", help="the campaign (default: all)")
    h.add_argument("--status", help="only this state, e.g. unknown, failed, deferred")
    h.add_argument("--journal", help="journal file (default: the profile's or the default)")
    h.add_argument("--profile")
    h.add_argument("--csv", help="write the rows to this CSV instead")
    h.set_defaults(func=cmd_history)

    c = sub.add_parser("check", help="check the relay: connect, TLS, login, quit")
    _relay_args(c)
    c.set_defaults(func=cmd_check)

    k = sub.add_parser("sink", help="a capture SMTP server on 127.0.0.1 that saves .eml files")
    k.add_argument("--folder", default="mailnb-sink")
    k.add_argument("--port", type=int, default=2525)
    k.set_defaults(func=cmd_sink)

    d = sub.add_parser("demo", help="run the sample campaign through a local sink")
    d.add_argument("--output", default="mailnb-demo", help="folder for everything the demo makes")
    d.set_defaults(func=cmd_demo)

    b = sub.add_parser("bounces", help="read the bounce mailbox and suppress bad addresses")
    b.add_argument("--profile")
    b.add_argument("--folder", help="the folder to read (default: the profile's)")
    b.add_argument("--since", help="only messages since this date (YYYY-MM-DD)")
    b.add_argument("--threshold", type=int, help="soft bounces before suppression")
    b.add_argument("--results", help="write the bounces to this CSV")
    b.set_defaults(func=cmd_bounces)

    r = sub.add_parser("replies", help="read the replies mailbox: requests to stop, answers, "
                       "out-of-office")
    r.add_argument("--profile")
    r.add_argument("--folder", help="the folder to read (default: the profile's replies_folder)")
    r.add_argument("--since", help="only messages since this date (YYYY-MM-DD)")
    r.add_argument("--results", help="write the replies to this CSV")
    r.set_defaults(func=cmd_bounces)

    u = sub.add_parser("unsubscribes", help="record unsubscribe requests (web hits or mailbox)")
    u.add_argument("--profile")
    u.add_argument("--hits", help="CSV of the web form's hits, with a token column")
    u.add_argument("--folder", help="mailbox folder with the mailto: requests (default: the "
                   "profile's bounce folder)")
    u.add_argument("--journal")
    u.set_defaults(func=cmd_unsubscribes)

    cs = sub.add_parser("check-sender", help="SPF, DKIM and DMARC of the profile's From domain")
    cs.add_argument("--profile")
    cs.add_argument("--nameserver", help="ask this DNS server (host:port) instead of the system's")
    cs.set_defaults(func=cmd_check_sender)

    dk = sub.add_parser("dkim-key", help="make a DKIM key pair and print the DNS record")
    dk.add_argument("--selector", required=True)
    dk.add_argument("--domain", required=True)
    dk.add_argument("--path", required=True, help="where to save the private key (mode 0600)")
    dk.add_argument("--bits", type=int, default=2048)
    dk.set_defaults(func=cmd_dkim_key)

    jr = sub.add_parser("journal", help="the journal itself: copy it between backends")
    jrs = jr.add_subparsers(dest="journal_command", required=True)
    jc = jrs.add_parser("copy", help="copy a journal's history into an empty one (SQLite file "
                        "or postgresql:// URL), checked by counts")
    jc.add_argument("--from", dest="source", required=True, help="a journal file or URL")
    jc.add_argument("--to", dest="target", required=True, help="a new file or an empty database")
    jc.set_defaults(func=cmd_journal_copy)
    pr = sub.add_parser("profiles", help="list, show or create the saved profiles")
    pr.set_defaults(func=cmd_profiles)
    prs = pr.add_subparsers(dest="action")
    prs.add_parser("list", help="the saved profiles").set_defaults(func=cmd_profiles)
    ps = prs.add_parser("show", help="one profile's settings")
    ps.add_argument("name")
    ps.set_defaults(func=cmd_profiles_show)
    pc = prs.add_parser("create", help="save a profile from flags (no password: see --username)")
    _profile_args(pc)
    pc.set_defaults(func=cmd_profiles_create)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one command. A user's mistake is one line with the fix in this command's flags and
    exit 1 (usage errors: 2); ``--debug`` shows the traceback instead."""
    import warnings

    from .errors import door
    from .util.files import private_umask
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):
        parser.print_help()          # `mailnb` alone: the commands and what each does
        return 0
    args = parser.parse_args(argv)
    with door("cli"), warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            with private_umask():   # journals, results, copies of messages: the user's alone
                return int(args.func(args) or 0)
        except KeyboardInterrupt as err:
            print(f"mailnb: interrupted: {err}", file=sys.stderr)
            return 130
        except Exception as err:
            if args.debug:
                raise
            print(_one_line(err), file=sys.stderr)
            return 1


def _one_line(err: Exception) -> str:
    """A mailnb error with its fix in flags; a file's error with its name and the system's
    reason; anything else is a bug, said so."""
    if isinstance(err, MailnbError):
        return f"mailnb: error: {err.phrased('cli')}"
    if isinstance(err, OSError):
        return f"mailnb: error: {err}"
    return (f"mailnb: unexpected error ({type(err).__name__}: {err}); run the same command with "
            "--debug for the traceback, and report it")


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    text = message.phrased("cli") if hasattr(message, "phrased") else str(message)
    print(f"mailnb: warning: {text}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
