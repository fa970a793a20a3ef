"""Train a Stable-Pose adapter on your own data: ``python -m training.train --config my.yaml [--flag value ...]``.

Every option is a YAML key and a flag (flags win). Multi-GPU / multi-node: launch the same command through
``accelerate launch -m training.train ...`` (or ``torchrun -m``). See docs/training.md.
"""

from __future__ import annotations

import logging
import sys

from accelerate import PartialState

from stablepose_core.checkpoints import CheckpointError

from .config import parse_args
from .data import DatasetError
from .loop import train


def main(argv: list[str] | None = None) -> int:
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
