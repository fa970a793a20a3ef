"""Train a Stable-Pose adapter on your own data: ``python -m training.train --config my.yaml [--flag value ...]``.

Every option is a YAML key and a flag (flags win). Multi-GPU / multi-node: launch the same command through
``accelerate launch -m training.train ...`` (or ``torchrun -m``). See docs/training.md.
"""

from __future__ import annotations

import importlib.util
import logging
import sys

# import name -> distribution in training/requirements.txt (what ComfyUI itself does not bring)
TRAINING_MODULES = {"accelerate": "accelerate", "albumentations": "albumentations", "yaml": "PyYAML", "tqdm": "tqdm"}


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a finder that refuses the module (or a broken install) counts as missing
        return False


def missing_training_requirements() -> list[str]:
    """Distributions of training/requirements.txt that are not installed."""
    return [dist for module, dist in TRAINING_MODULES.items() if not _importable(module)]


def main(argv: list[str] | None = None) -> int:
    missing = missing_training_requirements()
    if missing:  # one line instead of an ImportError traceback (the node pack itself does not need these)
        print(f"training needs {', '.join(missing)}: pip install -r training/requirements.txt", file=sys.stderr)
        return 1
    from accelerate import PartialState

    from stablepose_core.model.checkpoints import CheckpointError

    from .config import parse_args
    from .data import DatasetError
    from .loop import train

    cfg = parse_args(argv, description=__doc__ or "")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        final = train(cfg)
    except (DatasetError, CheckpointError, FileNotFoundError, ValueError) as error:
        logging.getLogger("stable_pose.training").error("%s", error)
        return 2
    if final is not None and PartialState().is_main_process:
        print(f"adapter written to {final}; copy it to ComfyUI/models/stable_pose to use it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
