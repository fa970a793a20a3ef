"""Atomic file writes: a reader (or a run killed mid-write) sees the old file or the complete new one, never a part,
and nothing is left beside it."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write the file to, in a folder ``.<name>.partial`` beside ``path`` (where writers
    such as safetensors put their own temporary files too); when the block ends without an error the file is
    flushed to disk (``fsync``), given the permissions a new file gets and renamed over ``path`` (``os.replace``,
    atomic within a file system). The folder is removed on any exit, and one left by a killed run (``kill -9``)
    when the next write of ``path`` starts, so nothing accumulates. One writer per path at a time (the training
    loop writes from its main process only). Missing parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = path.with_name(f".{path.name}.partial")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    tmp = folder / path.name
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # whatever the writer made, the file is as readable as any other new file
        os.replace(tmp, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
