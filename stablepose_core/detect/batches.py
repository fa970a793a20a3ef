"""How many images a pose network takes per call, by device.

A GPU runs a batch as one launch per layer, so DWPose gives it 16 frames per YOLOX call and 64 person crops per
DWPose call. A CPU gains nothing from such batches and loses time to them: with 16 frames (64 crops) per call,
YOLOX-L and DWPose-L in PyTorch took 15-25 % longer per image than with 4 frames (8 crops), their activations
outgrowing the caches; so CPUs get 4 and 8. The built-in BlazePose takes the node's 16 frames in one call on every
device: its small networks ran no faster end to end in CPU batches of 4 (``benchmarks/bench_extract.py``)."""

from __future__ import annotations

import torch

FRAME_BATCH, CROP_BATCH = 16, 64  # frames per detector call, person crops per pose-network call (GPUs)
CPU_FRAME_BATCH, CPU_CROP_BATCH = 4, 8  # the same on CPUs


def batch_sizes(device: torch.device) -> tuple[int, int]:
    """Frames per detector call and person crops per pose-network call on ``device``."""
    return (CPU_FRAME_BATCH, CPU_CROP_BATCH) if device.type == "cpu" else (FRAME_BATCH, CROP_BATCH)
