"""Atomic file writes: a reader (or a run killed mid-write) sees the old file or the complete new one, never a part,
and nothing is left beside it. :func:`atomic_write` replaces the file; :func:`atomic_create` never replaces
anything (a file, a folder or a link already at the name)."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _finish(tmp: Path) -> None:
    """Flush ``tmp`` (a file, or a folder of files) to disk and give it a new file's permissions."""
    umask = os.umask(0)
    os.umask(umask)
    for file in [tmp] if tmp.is_file() else sorted(tmp.iterdir()):
        fd = os.open(file, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(file, 0o666 & ~umask)  # whatever the writer made, the file is as readable as any other new file


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
        _finish(tmp)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def atomic_create(path: str | os.PathLike) -> Iterator[Path]:
    """Like :func:`atomic_write`, but the new file (or folder of files: make a folder at the yielded path) only
    ever appears at a free name: ``FileExistsError`` when anything is there, a dangling link included (it is
    never followed). Several writers (processes) may race for one name: exactly one gets it. Each writer stages
    in its own hidden ``.<name>.<random>.partial`` folder beside ``path``, removed on any exit. A file appears by
    a hard link (``os.link``, which never replaces); a folder by a rename checked against an existing name."""
    path = Path(path)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    tmp = staging / path.name
    try:
        yield tmp
        _finish(tmp)
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, "already exists", path.name)
        try:
            if tmp.is_dir():
                os.rename(tmp, path)  # onto a file, a link or a non-empty folder this fails
            else:
                os.link(tmp, path)
        except OSError as error:
            if error.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                raise FileExistsError(errno.EEXIST, "already exists", path.name) from None
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
