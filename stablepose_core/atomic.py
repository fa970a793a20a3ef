"""Atomic file writes: a reader (or a run killed mid-write) sees the old file or the complete new one, never a part."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write the file to; when the block ends without an error the file
    is flushed to disk (``fsync``), given the permissions a new file gets and renamed over ``path``
    (``os.replace``, atomic within a folder). On any error the temporary file is removed and ``path`` is untouched.
    Missing parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the file is as readable as any other new file
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
