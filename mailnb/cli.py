"""The ``mailnb`` command: what the notebooks do, for shell scripts and cron.

    mailnb send --recipients people.csv --template invite/ --campaign spring --from me@example.org \\
                --host smtp.example.org --username me@example.org [--dry-run] [--limit N] ...
    mailnb send ... --profile work          # relay, From and pacing from a saved profile
    mailnb check --profile work             # connect, TLS, login, quit: send nothing
    mailnb bounces --profile work           # read the bounce mailbox, suppress bad addresses
    mailnb sink --folder captured/          # a capture SMTP server on 127.0.0.1
    mailnb demo                             # the sample campaign through the sink, end to end

The SMTP password comes from MAILNB_SMTP_PASSWORD or the keyring, never from a flag.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from .errors import MailnbError


def _relay_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("relay (or --profile)")
    g.add_argument("--profile", help="a saved profile (relay, From, pacing); default $MAILNB_PROFILE")
    g.add_argument("--host", help="SMTP relay host")
    g.add_argument("--port", type=int, help="SMTP port (default by security: 587, 465 or 25)")
    g.add_argument("--security", choices=["starttls", "tls", "none"], help="default starttls")
    g.add_argument("--username", help="SMTP login; the password comes from MAILNB_SMTP_PASSWORD")
    g.add_argument("--helo", help="the name to say in EHLO")
    g.add_argument("--cafile", help="a PEM file of the CA that signed the relay's certificate")
    g.add_argument("--insecure", action="store_true", help="do not verify the TLS certificate")
    g.add_argument("--pickup", metavar="DIR", help="write .eml files into DIR instead of sending")


def _relay(args: argparse.Namespace) -> tuple[Any, Any]:
    from .settings import Pickup, Profile, Relay
    profile = None
    if args.profile or (not args.host and not getattr(args, "pickup", None)):
        profile = Profile.load(args.profile)
    if getattr(args, "pickup", None):
        return Pickup(args.pickup), profile
    if args.host:
        kw: dict[str, Any] = {"security": args.security or "starttls"}
        if args.port:
            kw["port"] = args.port
        return Relay(args.host, username=args.username, helo=args.helo, cafile=args.cafile,
                     verify=not args.insecure, **kw), profile
    assert profile is not None
    relay = profile.relay()
    changes = {k: v for k, v in (("port", args.port), ("security", args.security),
                                 ("username", args.username), ("helo", args.helo),
                                 ("cafile", args.cafile)) if v}
    if args.insecure:
        changes["verify"] = False
    return (relay.with_(**changes) if changes else relay), profile


def cmd_send(args: argparse.Namespace) -> int:
    from .recipients import Audience, Blocklist, Suppressions, Unsubscribes, read_table
    from .sender import Campaign, send
    from .templates import Template

    relay, profile = _relay(args)
    df = read_table(args.recipients)
    blocklist = None
    if args.blocklist:
        blocklist = Blocklist(line.strip() for line in Path(args.blocklist).read_text().splitlines()
                              if line.strip() and not line.startswith("#"))
    audience = Audience(df, args.email_column, campaign=args.campaign,
                        unsubscribes=Unsubscribes.from_csv(args.unsubscribes) if args.unsubscribes
                        else None,
                        suppressions=Suppressions.from_csv(args.suppressions) if args.suppressions
                        else None, blocklist=blocklist, transactional=args.transactional,
                        exclusion_policy=profile.exclusion_policy if profile else "global")
    print(f"mailnb: {audience.summary()}")
    template = Template.from_folder(args.template)
    extra = {k: v for k, v in (("from_name", args.from_name), ("reply_to", args.reply_to)) if v}
    if profile is not None:
        if args.from_addr:
            extra["from_addr"] = args.from_addr
        campaign = Campaign.from_profile(profile, args.campaign, audience, template, **extra)
    else:
        if not args.from_addr:
            print("mailnb: --from is required without a profile", file=sys.stderr)
            return 2
        campaign = Campaign(args.campaign, audience, template, from_addr=args.from_addr, **extra)
    options: dict[str, Any] = {"dry_run": args.dry_run, "progress": "auto"}
    if profile is not None:
        options.update(profile.pacing_options())
    for name in ("limit", "rate", "daily_cap", "concurrency", "retries", "journal", "backup"):
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    if args.block:
        options["block"] = (args.block, args.block_pause or 0)
    options["resend_unknown"] = args.resend_unknown
    options["reset"] = args.reset
    options["requeue_errors"] = args.requeue_errors
    result = send(campaign, relay, **options)
    if args.results:
        result.to_csv(args.results)
        print(f"mailnb: results written to {args.results}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .settings import Pickup
    from .transports import check_relay
    relay, _ = _relay(args)
    if isinstance(relay, Pickup):
        print("mailnb: a pickup folder needs no check")
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
    from .dnscheck import check_sender
    from .settings import Profile
    report = check_sender(Profile.load(args.profile), nameserver=args.nameserver)
    print(repr(report))
    return 0 if report.ok else 1


def cmd_dkim_key(args: argparse.Namespace) -> int:
    from .signing import generate_key
    generate_key(args.selector, args.domain, args.path, bits=args.bits)
    print(f"Set dkim_selector={args.selector!r}, dkim_domain={args.domain!r} and "
          f"dkim_key_file={args.path!r} in your profile.")
    return 0


def cmd_bounces(args: argparse.Namespace) -> int:
    from .bounces import process_bounces
    from .settings import Profile
    found = process_bounces(Profile.load(args.profile), folder=args.folder, since=args.since,
                            threshold=args.threshold)
    bounced = found[found["kind"] == "bounce"] if len(found) else found
    print(f"mailnb: {len(found)} report(s), {len(bounced)} bounce(s), "
          f"{int(bounced['hard'].sum()) if len(bounced) else 0} hard, "
          f"{int(found['suppressed'].sum()) if len(found) else 0} address(es) newly suppressed")
    if args.results:
        found.to_csv(args.results, index=False)
    return 0


def cmd_unsubscribes(args: argparse.Namespace) -> int:
    from .journal import SQLiteJournal
    from .settings import Profile
    from .unsubscribes import from_hits, process_unsubscribe_mailbox
    profile = Profile.load(args.profile)
    journal = SQLiteJournal(args.journal or profile.journal or None)
    if args.hits:
        out = from_hits(args.hits, journal, policy=profile.exclusion_policy)
    else:
        from .mailbox import Mailbox
        mb = Mailbox.from_profile(profile, folder=args.folder)
        out = process_unsubscribe_mailbox(mb, journal, policy=profile.exclusion_policy)
    counts = out["result"].map(lambda r: r.split(":")[0]).value_counts().to_dict() if len(out) \
        else {}
    print(f"mailnb: {len(out)} request(s): " + (", ".join(f"{n} {k}" for k, n in counts.items())
                                                 or "none"))
    return 0


def cmd_profiles(args: argparse.Namespace) -> int:
    from .settings import Profile, config_dir, list_profiles
    names = list_profiles()
    if args.name:
        print(Profile.load(args.name).to_dict())
        return 0
    print(f"profiles in {config_dir() / 'profiles'}: {', '.join(names) or 'none'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mailnb", description="Personalised bulk email, paced and "
                                "journaled. The SMTP password comes from MAILNB_SMTP_PASSWORD or "
                                "the keyring, never from a flag.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("send", help="send a campaign (what campaign.ipynb does)")
    s.add_argument("--recipients", required=True, help="CSV, TSV, Excel or Parquet file")
    s.add_argument("--email-column", default="email")
    s.add_argument("--template", required=True, help="template folder (subject.txt, body.*) ")
    s.add_argument("--campaign", required=True, help="campaign name: the same name resumes")
    s.add_argument("--from", dest="from_addr", help="From address (default: the profile's)")
    s.add_argument("--from-name")
    s.add_argument("--reply-to")
    s.add_argument("--dry-run", action="store_true", help="render and plan, send nothing")
    s.add_argument("--limit", type=int, help="at most N messages this run")
    s.add_argument("--rate", help="e.g. 600/h, 10/min")
    s.add_argument("--daily-cap", type=int, help="at most N a day for this relay account")
    s.add_argument("--block", type=int, help="messages per block ...")
    s.add_argument("--block-pause", help="... then a pause, e.g. 2min")
    s.add_argument("--concurrency", type=int, help="parallel connections")
    s.add_argument("--retries", type=int, help="retries of temporary failures (default 3)")
    s.add_argument("--journal", help="journal file (default: the profile's, or the user data dir)")
    s.add_argument("--backup", help="save each sent message, e.g. 'sent/{campaign}/{date}'")
    s.add_argument("--unsubscribes", help="CSV of unsubscribed addresses (email[,campaign])")
    s.add_argument("--suppressions", help="CSV of suppressed addresses")
    s.add_argument("--blocklist", help="file of addresses and domains, one per line")
    s.add_argument("--transactional", action="store_true")
    s.add_argument("--resend-unknown", action="store_true",
                   help="resend messages whose outcome was lost in a crash")
    s.add_argument("--reset", action="store_true", help="set all recipients to unsent first")
    s.add_argument("--requeue-errors", action="store_true",
                   help="set failed and deferred recipients to unsent after sending")
    s.add_argument("--results", help="write the result table to this CSV")
    _relay_args(s)
    s.set_defaults(func=cmd_send)

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

    pr = sub.add_parser("profiles", help="list the saved profiles, or show one")
    pr.add_argument("name", nargs="?")
    pr.set_defaults(func=cmd_profiles)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MailnbError as err:
        print(f"mailnb: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        print(f"mailnb: interrupted: {err}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
