"""Run mailnb.inbound.bounces.parse over the shared Sisimai corpus and compare with its labels; then check
that the rules generalise: for each family of samples (the MTA or provider prefix of a file name,
``lhost-postfix``, ``rhost-google``), measure agreement on that family with every rule that
matches only that family's samples switched off, so a family is judged by rules that other
families' mail also uses.

    python tests/sisimai_eval.py            # every disagreement, the per-family table, the totals
"""
from __future__ import annotations

import contextlib
import csv
import re
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

from mailnb.inbound import classify
from mailnb.inbound.bounce_rules import RULES
from mailnb.inbound.bounces import parse
from mailnb.inbound.classify import reviewing_rules

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "bounces" / "sisimai"
NON_BOUNCE = {"feedback": "feedback", "vacation": "auto-reply", "delivered": "delivered"}


def labels(corpus: Path = CORPUS) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    with open(corpus / "labels.tsv", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            out.setdefault(row["file"], []).append(row)
    for rows in out.values():
        rows.sort(key=lambda r: int(r["recipient_index"]))
        if len({r["recipient_index"] for r in rows}) < len(rows):
            # two files list every recipient under index 1; the rows are in message order
            for n, r in enumerate(rows, 1):
                r["recipient_index"] = str(n)
    return out


def family(file: str) -> str:
    """``samples/lhost-postfix-41.eml`` -> ``lhost-postfix``."""
    return re.sub(r"-\d+$", "", Path(file).stem)


def _raw(corpus: Path, file: str, crlf: bool) -> bytes:
    raw = (corpus / file).read_bytes()
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") if crlf else raw


def _score(stats: Counter, misses: list, file: str, rows: list[dict], got: list) -> None:
    for row in rows:
        i = int(row["recipient_index"]) - 1
        stats["labels"] += 1
        want = row["reason"]
        b = got[i] if i < len(got) else None
        if b is None:
            misses.append((file, i + 1, want, None, "missing"))
            continue
        stats["found"] += 1
        if want in NON_BOUNCE:
            stats["non_bounce"] += 1
            ok = b.kind == NON_BOUNCE[want]
            stats["non_bounce_ok"] += ok
            stats["hard_ok"] += (not b.hard) and ok
            stats["reason_ok"] += ok
            if not ok:
                misses.append((file, i + 1, want, f"{b.kind}/{b.reason}", b.diagnostic[:150]))
            continue
        stats["hard_ok"] += b.hard == (row["hardbounce"] == "1") and b.kind == "bounce"
        ok = b.reason == want
        stats["reason_ok"] += ok
        if not ok:
            misses.append((file, i + 1, want, b.reason, f"[{b.status}] " + b.diagnostic[:200]))


def evaluate(corpus: Path = CORPUS, crlf: bool = False, files: set[str] | None = None,
             off: frozenset[int] = frozenset()) -> dict:
    """Agreement with the labels (of ``files`` only, if given), with the rules ``off``."""
    stats: Counter = Counter()
    misses: list = []
    for file, rows in sorted(labels(corpus).items()):
        if files is None or file in files:
            with reviewing_rules(off):
                got = parse(_raw(corpus, file, crlf))
            _score(stats, misses, file, rows, got)
    n = stats["labels"]
    return {"labels": n, "found": stats["found"] / n, "hard": stats["hard_ok"] / n,
            "reason": stats["reason_ok"] / n, "hard_ok": stats["hard_ok"],
            "reason_ok": stats["reason_ok"],
            "non_bounce_ok": f"{stats['non_bounce_ok']}/{stats['non_bounce']}",
            "misses": misses}


def rule_families(corpus: Path = CORPUS) -> dict[int, set[str]]:
    """For each rule (its index in RULES), the families whose samples it matches."""
    found: dict[int, set[str]] = defaultdict(set)
    for file in labels(corpus):
        with reviewing_rules() as seen:
            parse(_raw(corpus, file, False))
        for i in seen:
            found[i].add(family(file))
    return found


def generalisation(corpus: Path = CORPUS) -> dict:
    """Per family: agreement with all rules, and with the rules only it uses switched off."""
    uses = rule_families(corpus)
    by_family: dict[str, set[str]] = defaultdict(set)
    for file in labels(corpus):
        by_family[family(file)].add(file)
    table, totals = [], Counter()
    for fam, files in sorted(by_family.items()):
        own = frozenset(i for i, fams in uses.items() if fams == {fam})
        full, held_out = evaluate(corpus, files=files), evaluate(corpus, files=files, off=own)
        table.append((fam, full["labels"], len(own), full["hard"], full["reason"],
                      held_out["hard"], held_out["reason"]))
        totals["labels"] += full["labels"]
        for key, r in (("", full), ("out_", held_out)):
            totals[key + "hard"] += r["hard_ok"]
            totals[key + "reason"] += r["reason_ok"]
    n = totals["labels"]
    unused = [i for i in range(len(RULES)) if i not in uses]
    return {"table": table, "hard": totals["hard"] / n, "reason": totals["reason"] / n,
            "held_out_hard": totals["out_hard"] / n, "held_out_reason": totals["out_reason"] / n,
            "family_only_rules": sum(1 for fams in uses.values() if len(fams) == 1),
            "unused_rules": len(unused), "rules": len(RULES)}


def alternatives(pattern: str) -> list[str]:
    """The top-level alternatives of a regular expression: ``a|b(c|d)`` -> ``a``, ``b(c|d)``."""
    out, depth, cur, i = [], 0, "", 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            cur, i = cur + pattern[i:i + 2], i + 2
            continue
        depth += (c == "(") - (c == ")")
        if c == "|" and depth == 0:
            out, cur = out + [cur], ""
        else:
            cur += c
        i += 1
    return out + [cur]


@contextlib.contextmanager
def each_alternative_a_rule():
    """Classify as if every alternative of every rule's pattern were a rule of its own, so that a
    rule grouping several wordings counts as shared only for the wordings that are."""
    global RULES
    saved, saved_rules = list(classify._COMPILED), RULES
    split = [(replace(rule, pattern=alt), re.compile(alt))
             for rule, _ in saved for alt in alternatives(rule.pattern)]
    classify._COMPILED[:], RULES = split, [rule for rule, _ in split]
    try:
        yield
    finally:
        classify._COMPILED[:], RULES = saved, saved_rules


def print_generalisation(g: dict) -> None:
    print(f"{'family':24} {'labels':>6} {'own rules':>9} {'hard':>6} {'reason':>7} "
          f"{'hard*':>6} {'reason*':>8}")
    for fam, n, own, hard, reason, o_hard, o_reason in g["table"]:
        print(f"{fam:24} {n:6d} {own:9d} {hard:6.0%} {reason:7.0%} {o_hard:6.0%} {o_reason:8.0%}")
    print(f"all rules: hard/soft {g['hard']:.1%}, reason {g['reason']:.1%}; with each family's "
          f"own rules off (*): hard/soft {g['held_out_hard']:.1%}, reason "
          f"{g['held_out_reason']:.1%}. {g['rules']} rules: {g['family_only_rules']} match one "
          f"family only, {g['unused_rules']} match no sample (kept for what they follow)")


if __name__ == "__main__":
    import sys
    r = evaluate(crlf="--crlf" in sys.argv)
    for m in r.pop("misses"):
        print("\t".join(map(str, m)))
    print(r)
    print_generalisation(generalisation())
    with each_alternative_a_rule():
        g = generalisation()
    print(f"each alternative of a pattern a rule of its own ({g['rules']}): own rules off, "
          f"hard/soft {g['held_out_hard']:.1%}, reason {g['held_out_reason']:.1%}")
