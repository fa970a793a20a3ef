"""Node registry of the pack.

Each node module is imported on its own: a module whose optional dependency is missing is skipped with
one log line saying how to enable it, so the rest of the pack (and ComfyUI's start-up) is unaffected.
Importing never downloads anything; it copies the bundled workflows' sample inputs into ComfyUI's input folder
when they are not there yet (``sample_inputs``).
"""

from __future__ import annotations

import importlib
import logging

from .model_folder import register_model_folder
from .sample_inputs import install_sample_inputs

log = logging.getLogger("stable_pose")

# module name -> how to enable it when an import fails
_NODE_MODULES: dict[str, str] = {
    "stable_pose_nodes": "pip install -r requirements.txt in the Stable-Pose pack folder",
    "extract": "pip install -r requirements.txt in the Stable-Pose pack folder",
    "editor": "pip install -r requirements.txt in the Stable-Pose pack folder",
    "pose_sequence": "pip install -r requirements.txt in the Stable-Pose pack folder (needs scipy)",
    "score": "pip install -r requirements.txt in the Stable-Pose pack folder",
    "strengths": "pip install -r requirements.txt in the Stable-Pose pack folder",
    "body": "pip install anny (the open 3D body model, about 450 MB with warp-lang; see docs/body.md)",
    "rectify": "pip install -r requirements.txt in the Stable-Pose pack folder",
}

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}


def _load_node_modules() -> None:
    for name, how_to_enable in _NODE_MODULES.items():
        try:
            module = importlib.import_module(f".{name}", __name__)
        except ImportError as error:
            log.warning("Stable-Pose: %s nodes disabled (%s); to enable: %s", name, error, how_to_enable)
            continue
        NODE_CLASS_MAPPINGS.update(module.NODE_CLASS_MAPPINGS)
        NODE_DISPLAY_NAME_MAPPINGS.update(module.NODE_DISPLAY_NAME_MAPPINGS)


register_model_folder()
install_sample_inputs()
_load_node_modules()
