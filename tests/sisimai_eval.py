"""Run mailnb.bounces.parse over the shared Sisimai corpus and compare with its labels."""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from mailnb.bounces import parse

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


def evaluate(corpus: Path = CORPUS, crlf: bool = False) -> dict:
    stats = Counter()
    misses = []
    for file, rows in sorted(labels(corpus).items()):
        raw = (corpus / file).read_bytes()
        if crlf:
            raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        got = parse(raw)
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
    n = stats["labels"]
    return {"labels": n, "found": stats["found"] / n, "hard": stats["hard_ok"] / n,
            "reason": stats["reason_ok"] / n,
            "non_bounce_ok": f"{stats['non_bounce_ok']}/{stats['non_bounce']}",
            "misses": misses}


if __name__ == "__main__":
    import sys
    r = evaluate(crlf="--crlf" in sys.argv)
    for m in r.pop("misses"):
        print("\t".join(map(str, m)))
    print(r)
