"""Files that are never half-written: write a temp file in the same directory, fsync, then rename over the target."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from rlx.errors import RlxError


def atomic_write_bytes(path: str | os.PathLike, data: bytes, mode: int = 0o644) -> Path:
    """Write `data` to `path` atomically: readers see the old file or the new one, never a truncated one."""
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as e:
        raise RlxError(
            f"cannot write {target}: {e.strerror}",
            where=str(target),
            hint="check that the directory exists and is writable",
        ) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        hint = "free some disk space and retry" if e.errno == 28 else "check the path and its permissions"
        raise RlxError(f"cannot write {target}: {e.strerror}", where=str(target), hint=hint) from None
    return target


def atomic_write_text(path: str | os.PathLike, text: str, mode: int = 0o644) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), mode)
