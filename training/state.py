"""Never lose work: atomic resumable checkpoints and adapter exports.

A checkpoint is a folder ``checkpoints/step_00001000`` written by ``accelerate``'s ``save_state`` (trainable
weights, optimizer, scheduler, gradient scaler, every process's RNG states, its step counter) plus
``trainer_state.json`` (training step, data position, skip counts, config). It is first written to
``checkpoints/.tmp-step_…`` and renamed into place once complete, so a run killed at any moment leaves either
the previous checkpoint or the new one, never a half-written folder that ``--resume`` could pick up. A
checkpoint damaged afterwards (disk error, a copy cut short) is named by ``--resume latest``, which falls back to
the newest one that reads.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import shutil
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from safetensors import SafetensorError

from stablepose_core.atomic import atomic_write

log = logging.getLogger("stable_pose.training")

CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "trainer_state.json"
_STEP_DIR = re.compile(r"^step_(\d+)$")


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return run_dir / CHECKPOINT_DIR / f"step_{step:08d}"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run, oldest first (temporary folders of interrupted saves are ignored)."""
    root = run_dir / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _STEP_DIR.match(path.name)
        if match and (path / STATE_FILE).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def resolve_resume(resume: str, run_dir: Path) -> Path | None:
    """'' -> None; 'latest' -> the newest checkpoint of the run (None if it has none yet); else a folder."""
    if not resume:
        return None
    if resume == "latest":
        found = list_checkpoints(run_dir)
        return found[-1][1] if found else None
    path = Path(resume).expanduser()
    if not (path / STATE_FILE).is_file():
        raise FileNotFoundError(f"--resume {resume}: not a complete checkpoint folder (no {STATE_FILE})")
    return path


def save_checkpoint(accelerator: Accelerator, run_dir: Path, step: int, state: dict[str, Any], keep: int) -> Path:
    """Write the checkpoint of ``step`` atomically (collective: every process calls it), keep the newest ``keep``."""
    final = checkpoint_path(run_dir, step)
    tmp = final.with_name(f".tmp-{final.name}")
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with atomic_write(tmp / STATE_FILE) as state_file:
            state_file.write_text(json.dumps(state, indent=2), encoding="utf-8")
        if final.exists():  # re-saving a step (a resumed run stopping where it started): replace it
            old = final.with_name(f".old-{final.name}")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old)
        else:
            os.replace(tmp, final)
        for _, stale in list_checkpoints(run_dir)[: -keep or None] if keep else []:
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


class UnreadableCheckpoint(RuntimeError):
    """A checkpoint folder whose files cannot be read back; the message names the folder and the error."""


def load_checkpoint(accelerator: Accelerator, path: Path) -> dict[str, Any]:
    """Restore weights, optimizer, scheduler, scaler and RNG states; return the trainer state."""
    try:
        accelerator.load_state(str(path))
        return json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, EOFError, RuntimeError, pickle.UnpicklingError, SafetensorError) as error:
        raise UnreadableCheckpoint(f"checkpoint {path} cannot be read ({type(error).__name__}: {error})") from error


def load_newest_intact(accelerator: Accelerator, run_dir: Path) -> tuple[Path, dict[str, Any]]:
    """``--resume latest``: the newest checkpoint that reads back, naming (in a warning) each newer one that does
    not; every one is loaded in full, so a failed attempt leaves nothing of it behind."""
    for _, path in reversed(list_checkpoints(run_dir)):
        try:
            return path, load_checkpoint(accelerator, path)
        except UnreadableCheckpoint as error:
            log.warning("%s; trying the previous checkpoint", error)
    raise UnreadableCheckpoint(f"no checkpoint of {run_dir} can be read; start again without --resume")
