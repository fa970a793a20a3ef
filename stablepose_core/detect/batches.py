"""How many images a pose network takes per call, by device.

A GPU runs a batch as one launch per layer, so the detectors give it 16 frames (and DWPose 64 person crops) per
call. A CPU gains nothing from such batches and loses time to them: with 16 frames (64 crops) per call BlazePose,
YOLOX-L and DWPose-L took 15-30 % longer per image than with 4 frames (8 crops), their activations outgrowing the
caches (``benchmarks/bench_extract.py``, docs/poses.md).
"""

from __future__ import annotations

import torch

FRAME_BATCH, CROP_BATCH = 16, 64  # frames per detector call, person crops per pose-network call (GPUs)
CPU_FRAME_BATCH, CPU_CROP_BATCH = 4, 8  # the same on CPUs


def batch_sizes(device: torch.device) -> tuple[int, int]:
    """Frames per detector call and person crops per pose-network call on ``device``."""
    return (CPU_FRAME_BATCH, CPU_CROP_BATCH) if device.type == "cpu" else (FRAME_BATCH, CROP_BATCH)
