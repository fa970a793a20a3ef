"""Discovery of the ComfyUI this pack runs against, and import of its modules as a library.

Order (the first that applies wins; docs/development.md):

1. ``$COMFYUI_PATH`` when set (an error if it is not a ComfyUI: an explicit choice never falls through);
2. the ComfyUI this pack is installed in (``ComfyUI/custom_nodes/<pack>``);
3. the development copy ``tools/bootstrap.sh`` extracts to ``<pack>/.cache/comfyui``.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

PACK_ROOT = Path(__file__).absolute().parents[1]  # not resolved: a pack linked into custom_nodes/ keeps its place
DEV_CACHE = PACK_ROOT / ".cache" / "comfyui"
ENV_VAR = "COMFYUI_PATH"


class HostError(RuntimeError):
    """ComfyUI cannot be imported as asked, or a headless host cannot do what was asked."""


class ComfyUINotFound(HostError, FileNotFoundError):
    """No ComfyUI where this pack looks for one."""


def is_comfyui(path: Path) -> bool:
    return (path / "nodes.py").is_file() and (path / "comfy" / "sd.py").is_file()


def _containing_comfyui() -> Path | None:
    """``ComfyUI/`` when this pack's folder sits in ``ComfyUI/custom_nodes/`` (as a folder or a link)."""
    for pack in dict.fromkeys((PACK_ROOT, PACK_ROOT.resolve())):
        if pack.parent.name == "custom_nodes" and is_comfyui(pack.parent.parent):
            return pack.parent.parent
    return None


def find_comfyui() -> Path:
    """The ComfyUI folder to use, in the order of the module docstring; raises ``ComfyUINotFound`` with the fix."""
    configured = os.environ.get(ENV_VAR)
    if configured:
        path = Path(configured).expanduser()
        if not is_comfyui(path):
            raise ComfyUINotFound(f"{ENV_VAR}={configured} is not a ComfyUI folder (no nodes.py and comfy/sd.py)")
        return path.resolve()
    path = _containing_comfyui() or (DEV_CACHE if is_comfyui(DEV_CACHE) else None)
    if path is None:
        raise ComfyUINotFound(
            f"no ComfyUI found: set {ENV_VAR} to a ComfyUI folder, install this pack in ComfyUI/custom_nodes, "
            "or run tools/bootstrap.sh (development copy in .cache/comfyui)"
        )
    return path.resolve()


def _put_first_on_path(path: Path, cpu: bool) -> None:
    """ComfyUI first on ``sys.path``, ``--cpu`` set before ``comfy.model_management`` is imported.

    ComfyUI reads its options once, from ``comfy.cli_args.args`` (parsed from ``[]`` unless
    ``comfy.options.enable_args_parsing()`` ran, as in ``main.py``); ``model_management`` picks its device from
    ``args.cpu`` at import time, so the flag must be set first.
    """
    loaded = sys.modules.get("nodes")
    if loaded is not None and Path(getattr(loaded, "__file__", "")).resolve() != path / "nodes.py":
        raise HostError(
            f"a module 'nodes' from {getattr(loaded, '__file__', '?')} is already imported, not {path / 'nodes.py'}: "
            "one ComfyUI per process (and the pack's own nodes/ package must not be imported as top-level 'nodes')"
        )
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
    # main.py's import order: ComfyUI's utils package before nodes.py puts comfy/ (holding comfy/utils.py) on sys.path
    importlib.import_module("utils.extra_config")
    args = importlib.import_module("comfy.cli_args").args
    if cpu and not args.cpu:
        if "comfy.model_management" in sys.modules:
            raise HostError("comfy.model_management was imported before CPU mode could be set")
        args.cpu = True


def import_comfy(module: str, cpu: bool | None = None) -> ModuleType:
    """Import the ComfyUI module ``module`` (``"comfy.sd"``, ``"folder_paths"``, ...) from :func:`find_comfyui`.

    ``cpu``: run ComfyUI in CPU mode; default: when torch sees no CUDA device.
    """
    if cpu is None:
        import torch

        cpu = not torch.cuda.is_available()
    _put_first_on_path(find_comfyui(), cpu)
    return importlib.import_module(module)
