"""``mailnb demo``: the sample campaign, end to end, on this machine only.

Starts the capture sink on a free loopback port, writes a demo profile pointing at it, runs
``campaign.ipynb`` through papermill with the bundled participants and template, prints what happened
and where everything is, and stops the sink. The sample data ships inside the package.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).parent / "demo"
SAMPLE_RECIPIENTS = str(HERE / "participants.csv")
SAMPLE_TEMPLATE = str(HERE / "template")
SAMPLE_UNSUBSCRIBES = str(HERE / "unsubscribed.csv")
#: a report for the same participants: each one's scores as a table and a chart
SAMPLE_RESULTS = str(HERE / "results.csv")
SAMPLE_REPORT_TEMPLATE = str(HERE / "report-template")
CAMPAIGN = "demo-study-invite"


def notebook_path(name: str) -> Path:
    """A bundled notebook: ``notebooks/<name>.ipynb`` beside the package in a checkout, or the copy
    installed inside the package."""
    for base in (Path(__file__).parent / "notebooks", Path(__file__).parent.parent / "notebooks"):
        if (base / f"{name}.ipynb").is_file():
            return base / f"{name}.ipynb"
    raise FileNotFoundError(f"{name}.ipynb is not installed with mailnb")


def quiet_kernel_manager() -> type:
    """A kernel manager that talks to the kernel over unix sockets in a private folder rather than
    TCP on loopback (so the kernel has nothing to warn about, and no port is opened)."""
    import tempfile

    from jupyter_client.manager import KernelManager
    folder = tempfile.mkdtemp(prefix="mailnb-kernel-")

    class IPCKernelManager(KernelManager):
        def __init__(self, **kwargs: object) -> None:
            kwargs.setdefault("transport", "ipc")
            kwargs.setdefault("ip", os.path.join(folder, "kernel"))
            super().__init__(**kwargs)

    return IPCKernelManager


def run_demo(output: Path, *, keep_sink: bool = False) -> int:
    import pandas as pd
    import papermill

    from .config.profile import CONFIG_DIR_ENV, Profile
    from .journal.sqlite import SQLiteJournal
    from .sink import Sink
    from .util.files import private_dir
    output = private_dir(output.resolve())
    os.environ[CONFIG_DIR_ENV] = str(output / "config")      # the kernel inherits it
    captured = output / "captured"
    journal_path = output / "journal.sqlite"
    out_nb = output / "campaign-output.ipynb"
    results = output / f"results-{CAMPAIGN}.csv"
    with Sink(captured) as sink:
        Profile(name="demo", host="127.0.0.1", port=sink.port, security="none",
                requires_auth=False, from_addr="study-team@example.org",
                from_name="The study team", reply_to="study-help@example.org",
                concurrency=2, journal=str(journal_path)).save()
        print(f"mailnb demo: capture sink on 127.0.0.1:{sink.port}; running campaign.ipynb "
              "through papermill ...", flush=True)
        papermill.execute_notebook(
            str(notebook_path("campaign")), str(out_nb), cwd=str(output), progress_bar=False,
            kernel_manager_class=quiet_kernel_manager(),
            parameters={"profile": "demo", "campaign": CAMPAIGN, "dry_run": False, "sample": True,
                        "new_journal": True, "results": str(results)})
        captured_now = sink.count
    with SQLiteJournal(journal_path) as j:
        hist = j.history(CAMPAIGN)
    table = pd.read_csv(results)
    excluded = table[table["status"] == "excluded"]
    lines = [
        "",
        f"mailnb demo: campaign {CAMPAIGN!r}",
        f"  sent this run:      {captured_now}  (sent in all: {int((hist['status'] == 'sent').sum())}"
        f"; a second run sends nothing: the journal remembers)",
        f"  excluded:           {len(excluded)}",
    ]
    for _, row in excluded.iterrows():
        lines.append(f"    - {row['email']}: {row['reason']}")
    lines += [
        f"  output notebook:    {out_nb}",
        f"  results CSV:        {results}",
        f"  captured .eml:      {captured}  ({len(list(captured.glob('*.eml')))} files)",
        f"  journal:            {journal_path}",
        "",
        f"Open {out_nb.name} in JupyterLab to see each step, or an .eml file in your mail program.",
    ]
    print("\n".join(lines))
    sys.stdout.flush()
    return 0
