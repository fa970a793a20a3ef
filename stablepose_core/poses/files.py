"""Save and load ``POSE_KEYPOINT`` as JSON files, in comfyui_controlnet_aux's layout, inside one folder only.

The file layout is what comfyui_controlnet_aux's ``SavePoseKpsAsJsonFile`` writes: a JSON list of frames,
each ``{"people": [{"pose_keypoints_2d": [...], ...}], "canvas_width", "canvas_height"}``. A clip is saved as
``<prefix>_<counter>.json`` (all frames), or per frame as ``<prefix>_<counter>/frame_<index>.json`` (each a
list of one frame, the same layout). Loading takes one such file, or a folder of them (files in name order,
frames concatenated); a lone frame object is accepted too.

Every name is relative to a *root* the caller chooses (the nodes use ComfyUI's output and input folders):
each part must be a plain name (letters, digits, space, ``.``, ``_``, ``-``, not starting with ``.``), and
the resolved path (symlinks followed) must stay inside the root, so nothing is read or written elsewhere.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..atomic import atomic_create
from .sequence import PoseSequence, pose_keypoint_frames

NAME_PART = re.compile(r"^[A-Za-z0-9_\- ][A-Za-z0-9_\-. ]*$")
MAX_TEXT_BYTES = 64 * 2**20  # the largest single JSON file read (a body file of a long clip fits)
COUNTER_DIGITS = 5  # at least: pose_00001.json ... pose_99999.json, pose_100000.json, ...
MAX_PART_LENGTH = 200  # characters per folder or file name (file systems allow 255; the counter needs room)
MAX_NAME_LENGTH = 1000  # characters in all
SAVE_ATTEMPTS = 100  # counters tried when other writers take them meanwhile


def _check_name(name: str) -> list[str]:
    if not isinstance(name, str) or not name.strip():
        raise ValueError("a file name is needed (e.g. poses/clip_00001.json)")
    parts = re.split(r"[\\/]", name.strip())
    bad = [part for part in parts if not NAME_PART.match(part)]
    if bad or name.strip().startswith(("/", "\\")):
        raise ValueError(
            f"invalid file name {name[:80]!r}: use relative names of letters, digits, space, '.', '_' and '-' "
            "separated by '/', none starting with '.' (no absolute paths, no '..')"
        )
    if len(name) > MAX_NAME_LENGTH or max(map(len, parts)) > MAX_PART_LENGTH:
        raise ValueError(
            f"the name {name[:40]!r}... is too long: at most {MAX_PART_LENGTH} characters per folder or file name "
            f"and {MAX_NAME_LENGTH} in all"
        )
    return parts


def _inside(base: Path, path: Path, name: str) -> Path:
    """``path`` with every link followed, refused unless it lies in ``base`` (named by ``name``, not its path)."""
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        raise ValueError(f"{name!r} cannot be resolved (a link that points to itself?)") from None
    if resolved != base and base not in resolved.parents:
        raise ValueError(f"{name!r} leads outside the folder (a link to elsewhere?): only files inside it are used")
    return resolved


def safe_path(root: str | os.PathLike, name: str) -> Path:
    """``root/name`` after checking ``name`` is a relative path of plain parts that stays inside ``root``
    (symlinks followed)."""
    parts = _check_name(name)
    base = Path(root).resolve()
    return _inside(base, base.joinpath(*parts), name)


def _next_counter(folder: Path, stem: str) -> int:
    pattern = re.compile(rf"^{re.escape(stem)}_(\d{{{COUNTER_DIGITS},}})(\.json)?$")
    used = [int(match.group(1)) for entry in folder.iterdir() if (match := pattern.match(entry.name))]
    return max(used, default=0) + 1


def _write_new(folder: Path, stem: str, write: Callable[[Path], None], suffix: str) -> Path:
    """Write the next free ``<stem>_<counter><suffix>`` in ``folder`` atomically with ``write(temporary path)``,
    never replacing anything: a counter taken meanwhile (by another writer, a link or a folder) moves on."""
    counter = _next_counter(folder, stem)
    for _ in range(SAVE_ATTEMPTS):
        path = folder / f"{stem}_{counter:0{COUNTER_DIGITS}d}{suffix}"
        try:
            with atomic_create(path) as tmp:
                write(tmp)
            return path
        except FileExistsError:
            counter = max(counter + 1, _next_counter(folder, stem))
    raise ValueError(f"no free name for {stem!r} after {SAVE_ATTEMPTS} tries: other saves keep taking them")


def _frames_writer(frames: list[Any], per_frame: bool) -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        if not per_frame:
            tmp.write_text(json.dumps(frames))
            return
        tmp.mkdir()
        for index, frame in enumerate(frames):
            (tmp / f"frame_{index:0{COUNTER_DIGITS}d}.json").write_text(json.dumps([frame]))

    return write


def _target_folder(root: str | os.PathLike, prefix: str) -> Path:
    target = safe_path(root, prefix)
    if target == Path(root).resolve():
        raise ValueError("the file prefix must name a file, not the folder itself")
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def save_new_text(text: str, root: str | os.PathLike, prefix: str) -> Path:
    """Write ``text`` as the next free ``<prefix>_<counter>.json`` under ``root``, as poses are saved (never
    replacing a file, never outside ``root``, appearing whole)."""
    target = _target_folder(root, prefix)
    return _write_new(target.parent, target.name, lambda tmp: tmp.write_text(text, encoding="utf-8"), ".json")


def save_pose_keypoint(pose_keypoint: Any, root: str | os.PathLike, prefix: str, per_frame: bool = False) -> list[Path]:
    """Write the frames under ``root`` as ``<prefix>_<counter>.json`` or per frame in ``<prefix>_<counter>/``.

    The frames are checked first (they must parse as poses on one canvas); they are written as given.
    Returns the files written. Never overwrites (nor follows a link out of ``root``): the counter is one past
    the highest already there, and the file or folder appears whole (:func:`..atomic.atomic_create`).
    """
    frames = pose_keypoint_frames(pose_keypoint)
    PoseSequence.from_pose_keypoint(frames)  # refuse what could not be loaded back
    target = _target_folder(root, prefix)
    written = _write_new(target.parent, target.name, _frames_writer(frames, per_frame), "" if per_frame else ".json")
    return sorted(written.iterdir()) if per_frame else [written]


def _read_frames(path: Path, shown: str) -> list[Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}"
        raise ValueError(f"{shown} is not valid JSON ({where}: {error.msg})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{shown} is not a UTF-8 text file") from None
    except RecursionError:
        raise ValueError(f"{shown} is nested too deeply to be poses") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(frame, dict) for frame in data):
        raise ValueError(
            f"{shown} is not POSE_KEYPOINT JSON: expected a list of frames like "
            '{"people": [{"pose_keypoints_2d": [...]}], "canvas_width": W, "canvas_height": H}'
        )
    return data


def load_pose_keypoint(root: str | os.PathLike, name: str) -> list[dict[str, Any]]:
    """The frames of file (or folder of files) ``name`` under ``root``; errors say which file and what."""
    path, base = safe_path(root, name), Path(root).resolve()
    if path.is_dir():
        entries = sorted(entry for entry in path.iterdir() if entry.suffix == ".json")
        files = [_inside(base, entry, f"{name.strip()}/{entry.name}") for entry in entries]
        files = [file for file in files if file.is_file()]
        if not files:
            raise ValueError(f"folder {name!r} holds no .json files")
    elif path.is_file():
        files = [path]
    else:
        raise ValueError(f"no file or folder {name!r} in the {Path(root).name} folder")
    frames: list[Any] = []
    for file in files:
        shown = repr(str(file.relative_to(base)))
        read = _read_frames(file, shown)
        try:
            PoseSequence.from_pose_keypoint(read)
        except ValueError as error:
            raise ValueError(f"{shown}: {error}") from None
        frames += read
    if not frames:
        raise ValueError(f"{name!r} holds no frames")
    PoseSequence.from_pose_keypoint(frames)  # one canvas across files
    return frames


def load_text(root: str | os.PathLike, name: str, limit: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of file ``name`` under ``root`` (no link out of it, at most ``limit`` bytes)."""
    path = safe_path(root, name)
    if not path.is_file():
        raise ValueError(f"no file {name!r} in the {Path(root).name} folder")
    if path.stat().st_size > limit:
        raise ValueError(f"{name!r} is larger than {limit // 2**20} MB")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{name!r} is not a UTF-8 text file") from None
