"""How Stable-Pose joins ComfyUI's sampling: wrappers on a clone of the MODEL, state that lives for one sampling.

Why this mechanism (ComfyUI 0.3.75 and 0.8.x alike):

- ``ApplyStablePose`` takes and returns a ``MODEL`` (the adapter needs the noisy latent, the timestep and the
  text conditioning of each row, cond and uncond alike, as the official ``apply_model`` feeds it), so the
  patch lives in the model's wrappers rather than in a conditioning's ``control`` chain.
- A ``WrappersMP.DIFFUSION_MODEL`` wrapper (``patcher_extension``) sees exactly what the UNet sees: the
  scaled input ``x``, the model timestep, the per-row ``context``, ``transformer_options["cond_or_uncond"]``
  and the ``control`` dict that stock ControlNets produced. It adds the adapter's 13 residuals to that dict
  index by index (ControlNet's merge rule) and calls the next wrapper, so Apply ControlNet, LoRAs, other
  packs' wrappers and ``set_model_unet_function_wrapper`` users all keep working; nothing is replaced.
- The adapter is a ``ModelPatcher`` registered with ``set_additional_models``: the memory manager loads it
  with the UNet, offloads it, and handles ``--lowvram`` through the cast-aware ``comfy.ops`` layers it is
  built from (as ControlNet loaders do).
- Lifecycle (as ComfyUI's ControlNets with ``pre_run``/``cleanup``): the patch itself is immutable and shared
  by every clone of the MODEL. A ``WrappersMP.OUTER_SAMPLE`` wrapper checks the clip against the inputs
  before the first step and puts a :class:`PoseSampling` into that sampling's own ``transformer_options``;
  it holds the timestep-independent work for the *whole clip* (pose features, pose masks,
  resized region masks), computed at the first model call and dropped when sampling ends.
- Context windows (ComfyUI's ``transformer_options["context_window"].index_list``, AnimateDiff-Evolved's
  ``transformer_options["ad_params"]["sub_idxs"]``): each call's rows are mapped to their frames of the
  clip and index the per-sampling state, so every frame gets its own pose, mask and strength, and the
  adapter's PMSA fill is scoped per frame (``row_latents``): a frame's residuals do not depend on the window.
"""

from __future__ import annotations

from dataclasses import dataclass

import comfy.patcher_extension
import comfy.utils
import numpy as np
import torch
import torch.nn.functional as F

from ..stablepose_core.model.adapter import StablePoseAdapter, control_dict
from ..stablepose_core.model.masks import MaskSettings, assemble_masks
from ..stablepose_core.model.strengths import FrameStrengths, TimestepStrengths

UPSCALE_METHOD = "nearest-exact"  # how ComfyUI's ControlNet resizes hints
SAMPLING_KEY = "stable_pose_sampling"  # transformer_options entry: {patch: PoseSampling} of the running sampling


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


@dataclass(frozen=True)
class SchedulePercent:
    """Sigma -> ComfyUI's schedule percent (inverse of ``model_sampling.percent_to_sigma``, tabulated)."""

    sigmas: np.ndarray  # ascending
    percents: np.ndarray

    @classmethod
    def of(cls, model_sampling, points: int = 1001) -> SchedulePercent:
        percents = np.linspace(1.0, 0.0, points)  # sigma grows as percent falls
        sigmas = np.array([float(model_sampling.percent_to_sigma(float(p))) for p in percents])
        return cls(sigmas, percents)

    def __call__(self, sigma: float) -> float:
        return float(np.interp(sigma, self.sigmas, self.percents))


@dataclass(frozen=True, eq=False)
class PoseControl:
    """What ``ApplyStablePose`` asks for. Immutable: shared by every clone of the patched MODEL."""

    adapter: StablePoseAdapter
    pose_images: torch.Tensor  # (N, H, W, 3) in [0, 1], ComfyUI IMAGE layout; N = 1 or one per frame
    strength: float
    sigma_range: tuple[float, float]  # (start, end) sigmas, start >= end
    settings: MaskSettings
    region: torch.Tensor | None = None  # (M, H, W) MASK in [0, 1]; M = 1 or one per frame
    uncond_multiplier: float = 1.0
    frame_strengths: FrameStrengths | None = None
    timestep_strengths: TimestepStrengths | None = None
    schedule_percent: SchedulePercent | None = None  # needed with timestep_strengths

    def frame_scale(self, frames: int) -> torch.Tensor:
        """(frames,) strength × per-frame strength; raises a clear error when an input does not fit the clip."""
        poses = self.pose_images.shape[0]
        if poses not in (1, frames):
            raise ValueError(
                f"Stable-Pose: the pose batch has {poses} images but the latent batch has {frames}; "
                "use one pose for every latent or exactly one pose per latent (e.g. video frames)"
            )
        if self.region is not None and self.region.shape[0] not in (1, frames):
            raise ValueError(
                f"Stable-Pose: the mask batch has {self.region.shape[0]} masks but the latent batch has {frames} "
                "frames; give one mask for every frame or exactly one mask per frame"
            )
        scale = torch.full((frames,), float(self.strength))
        return scale if self.frame_strengths is None else scale * self.frame_strengths.values(frames)

    def step_scale(self, sigma: float) -> float:
        if self.timestep_strengths is None or self.schedule_percent is None:
            return 1.0
        return self.timestep_strengths.at(self.schedule_percent(sigma))


def call_frames(options: dict, rows: int, frames: int) -> torch.Tensor:
    """(rows,) the clip frames of one prompt's ``rows`` latents in this model call: ComfyUI's context window,
    AnimateDiff-Evolved's ``ad_params["sub_idxs"]``, or the whole clip."""
    window = options.get("context_window")
    ad_params = options.get("ad_params") or {}
    if window is not None and getattr(window, "dim", 0) == 0:
        index, source = list(window.index_list), "ComfyUI context window"
    elif ad_params.get("sub_idxs") is not None:
        index, source = list(ad_params["sub_idxs"]), "AnimateDiff-Evolved context window"
    else:
        index, source = list(range(frames)), "whole batch"
    if len(index) != rows or max(index) >= frames:
        raise ValueError(
            f"Stable-Pose: a model call has {rows} latents per prompt, but the {source} names frames "
            f"{index[:8]}{'...' if len(index) > 8 else ''} ({len(index)}) of a clip of {frames}; "
            "context windows must split the latent batch along its first dimension (dim 0)"
        )
    return torch.tensor(index, dtype=torch.long)


class PoseSampling:
    """One sampling's state for one patch: whole-clip pose features, pose masks and resized region masks,
    computed at the first model call and indexed per call (window); :meth:`release` drops them."""

    def __init__(self, control: PoseControl, frames: int):
        self.control = control
        self.frames = frames
        self.frame_scale = control.frame_scale(frames)
        self._pose: tuple[tuple, list[torch.Tensor], torch.Tensor] | None = None
        self._regions: dict[tuple, torch.Tensor] = {}

    def pose_inputs(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Pose features and pose masks of every pose at this latent size (once per sampling)."""
        adapter = self.control.adapter
        key = (x.shape[-2], x.shape[-1], x.device, adapter.dtype)
        if self._pose is None or self._pose[0] != key:
            height, width = x.shape[-2] * 8, x.shape[-1] * 8
            pose = self.control.pose_images.movedim(-1, 1).to(x.device, torch.float32)
            pose = comfy.utils.common_upscale(pose, width, height, UPSCALE_METHOD, "center") * 2.0 - 1.0
            self._pose = (key, adapter.encode_pose(pose), self.control.settings.pose_masks(pose))
        return self._pose[1], self._pose[2]

    def region(self, size: tuple[int, int], like: torch.Tensor) -> torch.Tensor | None:
        """(M, 1, h, w) the region mask bilinearly resized to a residual's grid (soft edges), once per size."""
        if self.control.region is None:
            return None
        key = (*size, like.device, like.dtype)
        if key not in self._regions:
            mask = self.control.region.to(like.device, torch.float32)[:, None]
            self._regions[key] = F.interpolate(mask, size=size, mode="bilinear", align_corners=False).to(like.dtype)
        return self._regions[key]

    def release(self) -> None:
        self._pose = None
        self._regions = {}


class StablePosePatch:
    """Adapter residuals for every row, within the sigma range, weighted by strengths and the region mask."""

    def __init__(self, control: PoseControl):
        self.control = control

    def __deepcopy__(self, memo: dict) -> StablePosePatch:
        return self  # immutable: the per-sampling state lives in each sampling's transformer_options

    def register(self, model, key: str) -> None:
        """Install on a (cloned) ModelPatcher: the OUTER_SAMPLE lifecycle and the DIFFUSION_MODEL residuals."""
        model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, key, self.outer_sample)
        model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, key, self)

    def outer_sample(self, executor, noise: torch.Tensor, latent_image: torch.Tensor, *args, **kwargs):
        """Check the inputs against the clip before the first step; hold :class:`PoseSampling` for this sampling."""
        sampling = PoseSampling(self.control, latent_image.shape[0])
        options = executor.class_obj.model_options.setdefault("transformer_options", {})
        states = options.setdefault(SAMPLING_KEY, {})
        states[self] = sampling
        try:
            return executor(noise, latent_image, *args, **kwargs)
        finally:
            states.pop(self, None)
            sampling.release()

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
        start, end = self.control.sigma_range
        return end <= sigma <= start

    def residuals(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor, options: dict) -> dict:
        cond_or_uncond = options.get("cond_or_uncond") or [0]
        chunks = len(cond_or_uncond)
        rows = x.shape[0] // chunks
        sampling = options.get(SAMPLING_KEY, {}).get(self)
        if sampling is None:  # called outside ComfyUI's sampler (no OUTER_SAMPLE): state for this call only
            sampling = PoseSampling(self.control, rows)
        row_latents = call_frames(options, rows, sampling.frames).repeat(chunks)  # the clip frame of every row
        is_uncond = torch.tensor([c == 1 for c in cond_or_uncond]).repeat_interleave(rows)
        features, pose_masks = sampling.pose_inputs(x)
        pose = row_latents if pose_masks.shape[1] > 1 else torch.zeros_like(row_latents)
        pose = pose.to(x.device)
        masks = assemble_masks(pose_masks[:, pose], is_uncond, self.control.settings)
        outs = self.control.adapter(
            x, timesteps, context, pose_terms=[f[pose] for f in features], masks=masks, row_latents=row_latents
        )
        return control_dict([self._weigh(o.to(x.dtype), sampling, row_latents, is_uncond, options) for o in outs])

    def _weigh(
        self,
        out: torch.Tensor,
        sampling: PoseSampling,
        row_latents: torch.Tensor,
        is_uncond: torch.Tensor,
        options: dict,
    ) -> torch.Tensor:
        """out × strength × frame strength × timestep strength × (uncond_multiplier on uncond rows) × region mask."""
        sigmas = options.get("sigmas")
        step = 1.0 if sigmas is None else self.control.step_scale(float(sigmas.max()))
        scale = sampling.frame_scale[row_latents] * step
        scale = torch.where(is_uncond, scale * self.control.uncond_multiplier, scale)
        out = out.mul_(scale.to(out.device, out.dtype)[:, None, None, None])  # in place: the adapter's fresh output
        region = sampling.region(tuple(out.shape[-2:]), out)
        if region is not None:
            out = out.mul_(region[row_latents.to(region.device)] if region.shape[0] > 1 else region)
        return out
