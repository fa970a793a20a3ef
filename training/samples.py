"""Preview grids during training: each row is a pose image and what the adapter generates from it.

Generation as the official ``log_images`` with guidance: DDIM (η = 0) with classifier-free guidance against
the empty caption, PMSA masks on the conditional half and unmasked on the unconditional half (the released
sampling schedule).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from stablepose_core.atomic import atomic_write
from stablepose_core.model.adapter import StablePoseAdapter
from stablepose_core.model.masks import MaskSettings, pmsa_masks

from .diffusion import alphas_cumprod, ddim_sample
from .model import unet_eps
from .sd_loader import SDComponents


@torch.no_grad()
def generate(
    adapter: StablePoseAdapter,
    sd: SDComponents,
    pose: torch.Tensor,
    caption: str,
    steps: int,
    guidance: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """One image (1, 3, H, W) in [-1, 1] for a (1, 3, H, W) pose image in [-1, 1]."""
    device = pose.device
    unet_dtype = sd.unet_dtype
    context = sd.encode_text([caption, ""]).to(device)
    poses = pose.expand(2, -1, -1, -1)
    with torch.autocast(device.type, enabled=False):
        masks = pmsa_masks(poses.float(), torch.tensor([False, True], device=device), MaskSettings())
    pose_terms = adapter.encode_pose(poses)
    h, w = pose.shape[-2] // 8, pose.shape[-1] // 8
    noise = torch.randn((1, 4, h, w), generator=generator, device=device)

    def guided_eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x2, t2 = x.expand(2, -1, -1, -1), t.expand(2)
        residuals = adapter(x2, t2, context, masks=masks, pose_terms=pose_terms)
        eps_cond, eps_uncond = unet_eps(sd.unet, x2.to(unet_dtype), t2, context.to(unet_dtype), residuals).chunk(2)
        return eps_uncond.float() + guidance * (eps_cond.float() - eps_uncond.float())

    latents = ddim_sample(guided_eps, noise, steps, alphas_cumprod())
    with torch.autocast(device.type, enabled=False):  # the VAE in its own dtype: SD's VAE overflows in fp16
        return sd.decode_latents(latents)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def save_grid(path: Path, poses: torch.Tensor, images: torch.Tensor) -> None:
    """PNG with one row per sample: pose | generated."""
    rows = [np.concatenate([p, g], axis=1) for p, g in zip(to_uint8(poses), to_uint8(images), strict=True)]
    with atomic_write(path) as tmp:
        Image.fromarray(np.concatenate(rows, axis=0)).save(tmp, format="PNG")
