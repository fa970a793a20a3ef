"""Deterministic weights and inputs shared by the reference generator and the reference tests.

Every tensor depends only on its name, shape and a seed, so the official modules and ours receive the same
values whatever order they create parameters in.
"""

from __future__ import annotations

import zlib

import cv2
import numpy as np
import torch

from stablepose_core.model.adapter import AdapterConfig

# A small adapter of the true structure (two levels, attention, one inject block), for fast checkpoint tests.
SMALL_CONFIG = AdapterConfig(
    model_channels=32,
    channel_mult=(1, 2),
    num_res_blocks=2,
    attention_levels=(0, 1),
    context_dim=64,
    inject_channels=(32,),
)


def seeded_tensor(name: str, shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """~N(0, 1/fan_in) for weights, N(0, 0.05) for vectors, 1 + N(0, 0.05) for norm scales."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
    values = torch.randn(shape, generator=generator)
    if len(shape) >= 2:
        return values / float(np.prod(shape[1:])) ** 0.5
    if "norm" in name and name.endswith("weight"):
        return 1.0 + 0.05 * values
    return 0.05 * values


def seeded_state_dict(module: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    return {k: seeded_tensor(k, tuple(v.shape), seed) for k, v in module.state_dict().items()}


def sample_pose_image(height: int = 512, width: int = 512) -> torch.Tensor:
    """(1, 3, H, W) in [-1, 1]: a few thick coloured limbs on black, like a rendered skeleton."""
    canvas = np.zeros((height, width, 3), np.uint8)
    limbs = [
        ((0.5, 0.15), (0.5, 0.45), (255, 0, 0)),
        ((0.5, 0.45), (0.35, 0.8), (0, 255, 90)),
        ((0.5, 0.45), (0.62, 0.8), (30, 60, 255)),
        ((0.3, 0.3), (0.7, 0.28), (255, 200, 0)),
    ]
    for (x0, y0), (x1, y1), colour in limbs:
        a, b = (int(x0 * width), int(y0 * height)), (int(x1 * width), int(y1 * height))
        cv2.line(canvas, a, b, colour, 10)
        cv2.circle(canvas, a, 5, colour, -1)
        cv2.circle(canvas, b, 5, colour, -1)
    image = torch.from_numpy(canvas).permute(2, 0, 1)[None].float()
    return image / 127.5 - 1.0


def seeded_inputs(shapes: dict[str, tuple[int, ...]], seed: int = 1) -> dict[str, torch.Tensor]:
    return {
        k: seeded_tensor(f"input.{k}", shape, seed) * float(np.prod(shape[1:])) ** 0.5 for k, shape in shapes.items()
    }
