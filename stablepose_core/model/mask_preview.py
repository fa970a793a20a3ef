"""Pictures of what PMSA attends to: per-layer pose masks at the latent and the patch grid over the pose."""

from __future__ import annotations

import torch

from .masks import LATENT_SCALE
from .pmsa import patch_grid_masks

TINT = torch.tensor([0.15, 0.55, 1.0])  # masked-out area is darkened, the pose mask tinted blue
GRID_COLOUR = torch.tensor([0.35, 0.35, 0.35])


def upsample_masks(masks: torch.Tensor, factor: int, height: int, width: int) -> torch.Tensor:
    """(…, h, w) bool -> (…, height, width) float, each cell a ``factor``-pixel block, cropped to the image."""
    big = masks.float().repeat_interleave(factor, -2).repeat_interleave(factor, -1)
    return big[..., :height, :width]


def overlay(pose: torch.Tensor, mask: torch.Tensor, cell: int) -> torch.Tensor:
    """(H, W, 3) pose in [0, 1] with ``mask`` (H, W) tinted and the grid of ``cell`` px drawn."""
    out = torch.where(mask[..., None] > 0, 0.45 * pose + 0.55 * TINT, 0.35 * pose)
    lines = torch.zeros(mask.shape, dtype=torch.bool)
    lines[::cell, :] = True
    lines[:, ::cell] = True
    out[lines] = 0.5 * out[lines] + 0.5 * GRID_COLOUR
    return torch.maximum(out, pose * (pose.amax(-1, keepdim=True) > 0.1))


def mask_previews(pose_rgb: torch.Tensor, masks: torch.Tensor, patch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Preview images and image-size masks.

    pose_rgb: (N, H, W, 3) in [0, 1]; masks: (depth, N, H/8, W/8) bool. Returns images (N·depth, H, 2W, 3):
    per pose and ViT layer, [latent-grid mask | patch-grid mask] side by side, and masks (N·depth, H, W)
    float at the latent grid.
    """
    n, height, width, _ = pose_rgb.shape
    latent = upsample_masks(masks, LATENT_SCALE, height, width)
    patches = upsample_masks(patch_grid_masks(masks, patch), LATENT_SCALE * patch, height, width)
    images, flat = [], []
    for i in range(n):
        for layer in range(masks.shape[0]):
            left = overlay(pose_rgb[i], latent[layer, i], LATENT_SCALE)
            right = overlay(pose_rgb[i], patches[layer, i], LATENT_SCALE * patch)
            images.append(torch.cat([left, right], dim=1))
            flat.append(latent[layer, i])
    return torch.stack(images), torch.stack(flat)
