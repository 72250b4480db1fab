"""Atomic file writes: write to a temporary file beside the target, then rename over it."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

from engine.errors import CelebLookError


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it replaces `target`, on error it is removed.

    `suffix` keeps a file extension on the temporary name for writers that pick a format from it.
    """
    target = Path(target)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise CelebLookError(f"output folder does not exist: {folder}")
    if not os.access(folder, os.W_OK):
        raise CelebLookError(f"output folder is not writable: {folder}")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or target.suffix + ".tmp", dir=folder)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600 files; outputs get the usual permissions
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes_atomic(target: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `target` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(target: str | os.PathLike, obj, indent: int = 2, **dumps_kwargs) -> None:
    """Write `obj` as JSON (with a final newline) to `target` atomically: a reader never sees half a file."""
    write_bytes_atomic(target, (json.dumps(obj, indent=indent, **dumps_kwargs) + "\n").encode())
