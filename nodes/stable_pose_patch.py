"""How Stable-Pose joins ComfyUI's sampling: a diffusion-model wrapper on a clone of the MODEL.

Why this mechanism (ComfyUI 0.3.75 and 0.8.x alike):

- ``ApplyStablePose`` takes and returns a ``MODEL`` (the adapter needs the noisy latent, the timestep and the
  text conditioning of each row, cond and uncond alike, as the official ``apply_model`` feeds it), so the
  patch lives in the model's ``model_options`` rather than in a conditioning's ``control`` chain.
- A ``WrappersMP.DIFFUSION_MODEL`` wrapper (``patcher_extension``) sees exactly what the UNet sees: the
  scaled input ``x``, the model timestep, the per-row ``context``, ``transformer_options["cond_or_uncond"]``
  and the ``control`` dict that stock ControlNets produced. It adds the adapter's 13 residuals to that dict
  index by index (ControlNet's merge rule) and calls the next wrapper, so Apply ControlNet, LoRAs, other
  packs' wrappers and ``set_model_unet_function_wrapper`` users all keep working; nothing is replaced.
- The adapter is a ``ModelPatcher`` registered with ``set_additional_models``: the memory manager loads it
  with the UNet, offloads it, and handles ``--lowvram`` through the cast-aware ``comfy.ops`` layers it is
  built from (as ControlNet loaders do).
- Timestep-independent work (pose resize, pose features, blurred pose regions) is computed once per
  latent size/device and reused at every step; only the cheap per-row mask assembly runs per call.
"""

from __future__ import annotations

import comfy.utils
import torch

from ..stablepose_core.adapter import StablePoseAdapter, control_dict
from ..stablepose_core.masks import MaskSettings, assemble_masks

UPSCALE_METHOD = "nearest-exact"  # how ComfyUI's ControlNet resizes hints


def merge_control(previous: dict | None, ours: dict[str, list[torch.Tensor]]) -> dict:
    """Add ``ours`` to the control dict other controls produced, entry by entry (ControlNet's merge)."""
    if previous is None:
        return ours
    merged = {key: list(values) for key, values in previous.items()}
    for key, values in ours.items():
        prev = merged.get(key, [])
        combined = [v if i >= len(prev) or prev[i] is None else prev[i] + v for i, v in enumerate(values)]
        merged[key] = combined + prev[len(values) :]
    return merged


def pose_rows(pose_count: int, rows: int, chunks: int) -> torch.Tensor:
    """Index of the pose image for each of ``rows`` rows made of ``chunks`` equal latent batches."""
    batch = rows // chunks
    if pose_count == 1:
        return torch.zeros(rows, dtype=torch.long)
    if pose_count != batch:
        raise ValueError(
            f"Stable-Pose: the pose batch has {pose_count} images but the latent batch has {batch}; "
            "use one pose for every latent or exactly one pose per latent (e.g. video frames)"
        )
    return torch.arange(rows) % batch


class StablePosePatch:
    """The DIFFUSION_MODEL wrapper: adapter residuals for every row, within the sigma range, times strength."""

    def __init__(
        self,
        adapter: StablePoseAdapter,
        pose_images: torch.Tensor,
        strength: float,
        sigma_range: tuple[float, float],
        settings: MaskSettings,
    ):
        self.adapter = adapter
        self.pose_images = pose_images  # (N, H, W, 3) in [0, 1], ComfyUI IMAGE layout
        self.strength = strength
        self.sigma_start, self.sigma_end = sigma_range
        self.settings = settings
        self._cache: tuple[tuple, list[torch.Tensor], torch.Tensor] | None = None

    def __deepcopy__(self, memo: dict) -> StablePosePatch:
        return self  # immutable; ModelPatcher.clone() deep-copies model_options

    def __call__(
        self, executor, x, timesteps=None, context=None, y=None, control=None, transformer_options=None, **kwargs
    ):
        options = transformer_options if transformer_options is not None else {}
        if self.active(options.get("sigmas")):
            control = merge_control(control, self.residuals(x, timesteps, context, options))
        return executor(x, timesteps, context, y, control, transformer_options, **kwargs)

    def active(self, sigmas: torch.Tensor | None) -> bool:
        """Inside [start, end] percent, by sigma, as ControlNet's ``timestep_range`` check."""
        if sigmas is None:
            return True
        sigma = float(sigmas.max())
        return self.sigma_end <= sigma <= self.sigma_start

    def residuals(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor, options: dict) -> dict:
        cond_or_uncond = options.get("cond_or_uncond") or [0]
        chunks = len(cond_or_uncond)
        index = pose_rows(self.pose_images.shape[0], x.shape[0], chunks)
        is_uncond = torch.tensor([c == 1 for c in cond_or_uncond]).repeat_interleave(x.shape[0] // chunks)
        features, regions = self._pose_inputs(x)
        index = index.to(x.device)
        masks = assemble_masks(regions[:, index], is_uncond, self.settings)
        outs = self.adapter(x, timesteps, context, pose_terms=[f[index] for f in features], masks=masks)
        return control_dict([(o * self.strength).to(x.dtype) for o in outs])

    def _pose_inputs(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Pose features and blurred pose regions at this latent size, computed once and reused."""
        key = (x.shape[-2], x.shape[-1], x.device, self.adapter.dtype)
        if self._cache is None or self._cache[0] != key:
            height, width = x.shape[-2] * 8, x.shape[-1] * 8
            pose = self.pose_images.movedim(-1, 1).to(x.device, torch.float32)
            pose = comfy.utils.common_upscale(pose, width, height, UPSCALE_METHOD, "center") * 2.0 - 1.0
            self._cache = (key, self.adapter.encode_pose(pose), self.settings.pose_regions(pose))
        return self._cache[1], self._cache[2]
