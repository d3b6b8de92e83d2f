"""Benchmark: personalised reports. 2,000 recipients in 40 regions; each message carries its
region's rows as a table and its region's chart. mailnb sends the whole campaign in a child process
(reading, preflight, drawing in worker processes, building, the journal, SMTP to a local
sink); Red Mail, installed by
this script into its own folder, builds the same messages one by one with its public API
(``EmailSender.get_message`` with ``body_tables`` and ``body_images``), drawing each region's chart
once as well, in the same run. Prints msg/s and the ratio.

    python bench/reports.py [--messages 2000] [--regions 40]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from _common import ROOT, Sink, table

REDMAIL = "redmail==0.6.0"

CHILD = textwrap.dedent("""
    import json, sys, time
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    import mailnb
    n, regions, port, journal = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    mailnb.compose.embeds.DRAW_WORKERS = int(sys.argv[5]) or None
    started = time.perf_counter()
    names = [f"Region {k}" for k in range(regions)]
    sales = pd.DataFrame([(r, m, 1000.0 + 37.5 * k + i) for i, r in enumerate(names)
                          for k, m in enumerate(["Jan", "Feb", "Mar", "Apr", "May", "Jun"])],
                         columns=["region", "month", "revenue"])
    drawn = journal + ".drawn"           # a line a drawing, whichever process draws it

    def trend(row):
        with open(drawn, "a") as f:
            f.write(row["region"] + "\\n")
        fig, ax = plt.subplots(figsize=(4, 2))
        sales[sales["region"] == row["region"]].plot(x="month", y="revenue", ax=ax, legend=False)
        return fig

    people = pd.DataFrame({"email": [f"m{i}@example.com" for i in range(n)],
                           "name": [f"Manager {i}" for i in range(n)],
                           "region": [names[i % regions] for i in range(n)]})
    tpl = mailnb.Template("{{ region }}: your figures", to_name="{{ name }}", html=(
        "<p>Dear {{ name }},</p><p>your region's revenue:</p>"
        "{{ sales | where(region=region) | table(caption='Revenue') }}"
        "{{ trend | chart(alt='Revenue by month', key=region) }}<p>The sales team</p>"))
    c = mailnb.Campaign("reports", mailnb.Audience(people), tpl, from_addr="sales@example.org",
                        from_name="Sales", data={"sales": sales, "trend": trend})
    r = mailnb.send(c, mailnb.Relay("127.0.0.1", port, security="none", timeout=60),
                    journal=journal, new_journal=True, concurrency=4, progress=None)
    print(json.dumps({"sent": int((r["status"] == "sent").sum()),
                      "drawn": len(open(drawn).read().splitlines()),
                      "seconds": time.perf_counter() - started}))
""")

REDMAIL_CHILD = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, sys.argv[3])
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    from redmail import EmailSender
    n, regions = int(sys.argv[1]), int(sys.argv[2])
    started = time.perf_counter()
    names = [f"Region {k}" for k in range(regions)]
    sales = pd.DataFrame([(r, m, 1000.0 + 37.5 * k + i) for i, r in enumerate(names)
                          for k, m in enumerate(["Jan", "Feb", "Mar", "Apr", "May", "Jun"])],
                         columns=["region", "month", "revenue"])
    sender = EmailSender(host="127.0.0.1", port=0)
    charts, size = {}, 0
    for i in range(n):
        region = names[i % regions]
        if region not in charts:                 # one drawing per region, as mailnb does
            fig, ax = plt.subplots(figsize=(4, 2))
            sales[sales["region"] == region].plot(x="month", y="revenue", ax=ax, legend=False)
            charts[region] = fig
        msg = sender.get_message(
            subject=f"{region}: your figures", sender="Sales <sales@example.org>",
            receivers=[f"m{i}@example.com"],
            html=("<p>Dear {{ name }},</p><p>your region's revenue:</p>{{ revenue }}"
                  "{{ trend }}<p>The sales team</p>"),
            body_params={"name": f"Manager {i}"},
            body_tables={"revenue": sales[sales["region"] == region]},
            body_images={"trend": charts[region]})
        size += len(msg.as_bytes())
    print(json.dumps({"built": n, "drawn": len(charts), "bytes": size,
                      "seconds": time.perf_counter() - started}))
""")


def install_redmail(folder: Path) -> Path:
    target = folder / "redmail"
    if not (target / "redmail").is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                        str(target), REDMAIL], check=True)
    return target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--regions", type=int, default=40)
    args = ap.parse_args()
    py = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").is_dir() else sys.executable
    with tempfile.TemporaryDirectory(prefix="mailnb-bench-") as tmp:
        folder = Path(tmp)
        target = install_redmail(Path(tempfile.gettempdir()) / "mailnb-bench-peers")
        rows = []
        for workers, label in ((0, "mailnb send (to a sink)"),
                               (1, "mailnb send, charts drawn in its own process")):
            sink = Sink()
            try:                 # whole processes: interpreter, imports, drawing, building
                started = time.perf_counter()
                out = subprocess.run([py, "-c", CHILD, str(args.messages), str(args.regions),
                                      str(sink.port), str(folder / f"j{workers}.sqlite"),
                                      str(workers)],
                                     capture_output=True, text=True, check=True, cwd=ROOT)
                seconds = time.perf_counter() - started
            finally:
                sink.close()
            got = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append({"tool": label, "messages": got["sent"], "charts_drawn": got["drawn"],
                         "seconds": round(seconds, 2),
                         "msgs_per_s": round(got["sent"] / seconds, 1)})
        started = time.perf_counter()
        out = subprocess.run([py, "-c", REDMAIL_CHILD, str(args.messages), str(args.regions),
                              str(target)], capture_output=True, text=True, check=True)
        seconds = time.perf_counter() - started
        red = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append({"tool": "Red Mail get_message (build only)", "messages": red["built"],
                     "charts_drawn": red["drawn"], "seconds": round(seconds, 2),
                     "msgs_per_s": round(red["built"] / seconds, 1)})
    for r in rows:
        r["vs_redmail"] = round(r["msgs_per_s"] / rows[-1]["msgs_per_s"], 2)
    print(json.dumps({"benchmark": "reports", "messages": args.messages,
                      "regions": args.regions, "results": rows}))
    print(table(rows, ["tool", "messages", "charts_drawn", "seconds", "msgs_per_s",
                       "vs_redmail"]))


if __name__ == "__main__":
    main()
