"""The README's quick start, run exactly as written: its shell blocks, in a fresh folder, against
the sink it starts, with the `mailnb` and `papermill` commands of this environment."""
from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def quick_start() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Quick start"):]
    section = section[:section.index("\n## ", 1)]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert blocks, "the quick start has no ```bash block"
    return "\n".join(blocks)


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILNB_")}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
               HOME=str(tmp_path / "home"), XDG_DATA_HOME=str(tmp_path / "data"),
               MAILNB_CONFIG_DIR=str(tmp_path / "config"), PYTHON_KEYRING_BACKEND=
               "keyring.backends.null.Keyring")
    return env


@pytest.mark.timeout(240)
def test_the_quick_start_works_as_written(tmp_path: Path) -> None:
    (tmp_path / "notebooks").symlink_to(ROOT / "notebooks")     # "run from this folder"
    script = quick_start()
    env = _env(tmp_path)
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=200)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "Traceback" not in out
    # step 4 and step 5 each delivered both messages to the sink
    captured = sorted((tmp_path / "captured").glob("*.eml"))
    assert len(captured) == 4, out
    assert "Dear Ada,\n\nyour slot is Monday 10:00." in (
        b"".join(p.read_bytes() for p in captured).decode().replace("\r\n", "\n"))
    assert "2 sent, 0 failed" in out and "complete: everyone is accounted for" in out
    # the history names both recipients as sent; the results file joins the rows
    history = [ln for ln in done.stdout.splitlines() if ln.startswith("first-try ")]
    assert len(history) == 2 and all(" sent " in ln for ln in history), out
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert [(r["first_name"], r["status"]) for r in rows] == [("Ada", "sent"), ("Alan", "sent")]
    assert (tmp_path / "config" / "profiles" / "local.toml").is_file()
    # "Run step 4 again: it sends nothing"
    step4 = script[script.index("# 4."):script.index("ls captured/")]
    sink = subprocess.Popen(["mailnb", "sink", "--folder", "captured/"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert "listening" in (sink.stdout.readline() if sink.stdout else "")
        again = subprocess.run(["bash", "-euo", "pipefail", "-c", step4], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=60)
    finally:
        sink.terminate()
        sink.wait(10)
    assert again.returncode == 0, again.stderr
    assert "0 to send now" in again.stdout and "2 done before" in again.stdout, again.stdout
    assert len(list((tmp_path / "captured").glob("*.eml"))) == 4
