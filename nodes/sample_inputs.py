"""The bundled workflows' sample inputs, copied into ComfyUI's input folder when the pack loads.

ComfyUI's Load Image lists only the input folder, so a bundled workflow dragged onto the canvas would show a Load
Image without its file. Each sample (``workflows/``) is copied there when absent; a file, folder or link the user
already has under that name is never replaced (:func:`..stablepose_core.atomic.atomic_create`).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from ..stablepose_core.atomic import atomic_create

log = logging.getLogger("stable_pose")

WORKFLOWS_DIR = Path(__file__).resolve().parent.parent / "workflows"
SAMPLE_INPUTS = ("stable_pose_astronaut.jpg", "stable_pose_example_pose.png", "stable_pose_pose_sequence.webp")


def install_sample_inputs(input_dir: str | Path | None = None) -> list[str]:
    """Copy the samples missing from ``input_dir`` (default: ComfyUI's input folder); returns the names copied.
    A failure (e.g. a read-only folder) is logged, never raised: the pack loads anyway."""
    if input_dir is None:
        import folder_paths

        input_dir = folder_paths.get_input_directory()
    copied = []
    for name in SAMPLE_INPUTS:
        try:
            Path(input_dir).mkdir(parents=True, exist_ok=True)
            with atomic_create(Path(input_dir) / name) as tmp:
                shutil.copyfile(WORKFLOWS_DIR / name, tmp)
        except FileExistsError:
            continue
        except OSError as error:
            log.warning("Stable-Pose: could not copy the sample input %s to the input folder (%s)", name, error)
            continue
        copied.append(name)
    return copied
