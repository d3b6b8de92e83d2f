"""Files that hold personal data (addresses, replies, messages) are the user's alone: folders 0700,
files 0600, whatever the umask. An existing file or folder that other users can read is warned
about, with the command that fixes it. Standard library only: every module can use it.
"""
from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

FILE_MODE, DIR_MODE = 0o600, 0o700


def private_dir(path: str | Path) -> Path:
    """Make ``path`` (and each missing parent) as a folder only the user can enter; an existing
    folder is left as it is, with a warning if others can read it."""
    path = Path(path).expanduser()
    missing = []
    p = path
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for folder in reversed(missing):
        folder.mkdir(mode=DIR_MODE, exist_ok=True)
        os.chmod(folder, DIR_MODE)
    if not missing:
        warn_if_shared(path)
    return path


def write_private(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, mode 0600."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


@contextmanager
def open_private(path: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """``open(path, mode)`` for writing, the file created 0600 (an existing one made 0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    with os.fdopen(fd, mode, **kwargs) as f:
        yield f


def touch_private(path: str | Path) -> None:
    """Create an empty file 0600 if it does not exist (a database about to be made there)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    os.close(fd)


def warn_if_shared(path: str | Path) -> bool:
    """Warn, in one line with the fix, when other users of this machine can read ``path``."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    if not st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        return False
    is_dir = stat.S_ISDIR(st.st_mode)
    warnings.warn(f"{path} can be read by other users of this machine (it holds addresses); "
                  f"make it private with: chmod {'700' if is_dir else '600'} {path}",
                  stacklevel=3)
    return True


@contextmanager
def private_umask() -> Iterator[None]:
    """Within the block, whatever is created (by mailnb or the libraries it calls) is private."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)
