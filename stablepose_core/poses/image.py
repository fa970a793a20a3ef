"""Pose images as they arrive from a graph (ComfyUI ``IMAGE``: float (B, H, W, C) in [0, 1]), checked and
brought to the RGB skeleton images Stable-Pose reads before anything samples with them.

- RGBA images (e.g. from ``JoinImageWithAlpha``) lose their alpha channel and grey (1-channel) images are
  repeated to RGB (as ``OpenPoseExtract`` reads its images): Stable-Pose's skeletons are RGB (the official
  ``pose_skeleton`` colours), and ComfyUI's stock ControlNet path has no such conversion, so without it such
  an image failed only inside the sampler.
- A NaN or infinite pixel would turn every latent of the batch into NaN (a black result the prompt reports as
  a success), so it is refused with the number of bad pixels.
"""

from __future__ import annotations

import torch

CHANNELS = {1: "grey", 3: "RGB", 4: "RGBA"}


def rgb_pose_images(images: torch.Tensor) -> torch.Tensor:
    """``(B, H, W, 3)`` pose images from a ``(B, H, W, C)`` batch with C = 1, 3 or 4; ``ValueError`` otherwise."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"pose_image must be an image batch (batch, height, width, channels), got {shape}")
    batch, height, width, channels = images.shape
    if batch == 0 or height == 0 or width == 0:
        raise ValueError(f"pose_image is empty: {batch} image(s) of {width}×{height} px")
    if channels not in CHANNELS:
        raise ValueError(f"pose_image has {channels} channels; expected RGB (3), RGBA (4) or grey (1)")
    bad = int((~torch.isfinite(images)).sum())
    if bad:
        raise ValueError(
            f"pose_image has {bad} NaN or infinite pixel value(s); fix the node that made it (a pose image "
            "is a skeleton drawn on black, values in [0, 1])"
        )
    if channels == 1:
        return images.expand(-1, -1, -1, 3)
    return images[..., :3]
