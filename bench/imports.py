"""Benchmark: the time of `python -c "import mailnb"`, against `python -c "import pandas"` (which
mailnb needs anyway) and a bare interpreter, in the same run: the median of 7 fresh processes
each. Prints the seconds and each one's ratio to pandas.

    python bench/imports.py
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

from _common import ROOT, table


def timed(code: str, runs: int = 7) -> float:
    py = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").is_dir() else sys.executable
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([py, "-c", code], check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    rows = [{"import": label, "seconds": round(timed(code), 3)}
            for label, code in (("(nothing)", "pass"), ("pandas", "import pandas"),
                                ("mailnb", "import mailnb"))]
    base = rows[1]["seconds"]
    for r in rows:
        r["vs_pandas"] = round(r["seconds"] / base, 2)
    print(json.dumps({"benchmark": "imports", "results": rows}))
    print(table(rows, ["import", "seconds", "vs_pandas"]))


if __name__ == "__main__":
    main()
