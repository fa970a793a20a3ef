"""The ``stable_pose`` model folder (``models/stable_pose``), also settable in ``extra_model_paths.yaml``."""

from __future__ import annotations

import os

import folder_paths

FOLDER_NAME = "stable_pose"
EXTENSIONS = {".safetensors", ".pth", ".ckpt"}


def register_model_folder() -> None:
    """Add ``models/stable_pose`` to ComfyUI's folder list after the paths ``extra_model_paths.yaml`` set.

    ``is_default=False``: a user's ``stable_pose:`` entry stays first (where ComfyUI looks first and saves to).
    """
    default = os.path.join(folder_paths.models_dir, FOLDER_NAME)
    folder_paths.add_model_folder_path(FOLDER_NAME, default, is_default=False)
    paths, _ = folder_paths.folder_names_and_paths[FOLDER_NAME]
    folder_paths.folder_names_and_paths[FOLDER_NAME] = (paths, set(EXTENSIONS))
