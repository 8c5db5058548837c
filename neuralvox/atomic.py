"""Atomic output: write to a temporary file beside the target, rename on success, remove on failure."""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


class OutputExistsError(FileExistsError):
    """The output exists and overwriting was not asked for."""


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; move it onto ``path`` when the block succeeds.

    Without ``force`` the target is created exclusively: if another run created it meanwhile, this one fails rather
    than replace it. Temporary files that a killed run left for the same target are removed first.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputExistsError(f"{path}: is a folder")
    if path.exists() and not force:
        raise OutputExistsError(f"{path}: exists (use --force to overwrite)")
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
        _move(tmp, path, force)
    finally:
        tmp.unlink(missing_ok=True)


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove the temporary files of ``path`` whose writing process is gone (killed before it could clean up)."""
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = tmp.name[len(path.name) + 2:].partition(".")[0]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _move(tmp: Path, path: Path, force: bool) -> None:
    if force:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # fails if the target appeared meanwhile: never a silent replace
    except FileExistsError:
        raise OutputExistsError(f"{path}: exists (another run made it meanwhile; use --force to overwrite)") from None
    except OSError:  # a file system without hard links: the check at the start is all there is
        os.replace(tmp, path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
