"""``stablepose_core.atomic.atomic_write``: the old file or the whole new one, never a partial one, no leftovers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stablepose_core.atomic import atomic_write


def test_the_new_file_replaces_the_old_with_a_new_files_permissions(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "model.safetensors"
    with atomic_write(target) as tmp:
        assert tmp.parent.parent == target.parent and tmp != target
        tmp.write_bytes(b"first")
    with atomic_write(target) as tmp:
        tmp.write_bytes(b"second")
        assert target.read_bytes() == b"first"  # readers see the old file until the block ends
    assert target.read_bytes() == b"second"
    (tmp_path / "plain").write_bytes(b"")
    assert target.stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.safetensors"]


def test_an_error_keeps_the_old_file_and_removes_the_temporary_one(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"), atomic_write(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["state.json"]


def test_a_write_killed_mid_way_is_cleaned_by_the_next_write(tmp_path: Path) -> None:
    """``kill -9`` runs no ``finally``: what it leaves (as if killed inside the block) goes with the next write."""
    target = tmp_path / "adapter.safetensors"
    writing = atomic_write(target)
    tmp = writing.__enter__()  # never exited: the process "died" here
    tmp.write_bytes(b"half")
    (tmp.parent / ".tmp1234").write_bytes(b"safetensors' own temp file")
    with atomic_write(target) as again:
        again.write_bytes(b"whole")
    assert os.listdir(tmp_path) == ["adapter.safetensors"] and target.read_bytes() == b"whole"
