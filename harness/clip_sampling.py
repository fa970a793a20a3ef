"""Sampling short clips through ComfyUI's own path (``comfy.sample.sample``: CFGGuider, OUTER_SAMPLE wrappers,
context handler) with the random SD1.5 test weights, for the clip tests (``tests/test_video*.py``)."""

from __future__ import annotations

import inspect
from typing import Any

import torch

from harness.comfy_host import ComfyHost
from harness.reference_weights import sample_pose_image

FRAMES = 3
SIZE = 64
LENGTH, OVERLAP = 2, 1  # context windows
# ComfyUI 0.3.75's context windows find the step by comparing the schedule's sigmas with the per-frame timesteps
# elementwise (fixed in 0.8.x: ``timestep[0]``), which only broadcasts when frames = steps + 1.
STEPS = FRAMES - 1


def clip_poses(frames: int = FRAMES) -> torch.Tensor:
    """(frames, H, W, 3) IMAGE: a skeleton moving (rolled) and mirrored frame by frame, one empty frame."""
    pose = (sample_pose_image(SIZE, SIZE)[0].permute(1, 2, 0) + 1) / 2
    images = [pose.roll(4 * i, dims=1).flip(1) if i % 2 else pose.roll(4 * i, dims=1) for i in range(frames)]
    images[-1] = torch.zeros_like(pose)
    return torch.stack(images)


def comfy_windows(comfy_host: ComfyHost, model, length: int, overlap: int, schedule: str, **extra) -> Any:
    """ComfyUI's own ``Context Windows (Manual)`` node on ``model``."""
    node = comfy_host.node_class("ContextWindowsManual")
    options = {"context_stride": 1, "closed_loop": False, "fuse_method": "pyramid", "dim": 0} | extra
    if "freenoise" in inspect.signature(node.execute).parameters:  # ComfyUI 0.8.x
        options["freenoise"] = False
    return node.execute(model, length, overlap, schedule, **options).result[0]


def apply(comfy_host: ComfyHost, loaded: dict, poses: torch.Tensor | None = None, **options) -> Any:
    node = comfy_host.node_class("ApplyStablePose")()
    pose = clip_poses() if poses is None else poses
    return node.apply(loaded["model"], loaded["stable_pose"], pose, 1.0, 0.0, 1.0, **options)[0]


def sample(loaded: dict, model, frames: int = FRAMES, cfg: float = 5.0, seed: int = 3) -> torch.Tensor:
    import comfy.sample

    latent = torch.zeros(frames, 4, SIZE // 8, SIZE // 8)
    with torch.inference_mode():
        noise = comfy.sample.prepare_noise(latent, seed)
        return comfy.sample.sample(
            model, noise, STEPS, cfg, "euler", "normal", loaded["positive"], loaded["negative"], latent, seed=seed
        )


def assert_frames_equal(windowed: torch.Tensor, whole: torch.Tensor) -> None:
    """Per frame equal to float tolerance (batched convolutions round differently by batch size; the random
    weights make latents of magnitude ~100)."""
    torch.testing.assert_close(windowed, whole, rtol=1e-4, atol=1e-5 * float(whole.abs().max()))


def capture(model, seen: list[dict]) -> Any:
    """A DIFFUSION_MODEL wrapper after ours recording what reaches the UNet."""
    import comfy.patcher_extension

    def wrapper(executor, x, timesteps, context, y, control, transformer_options, **kwargs):
        seen.append(
            {
                "control": {key: [v.clone() for v in values] for key, values in control.items()},
                "cond_or_uncond": list(transformer_options["cond_or_uncond"]),
                "sigma": float(transformer_options["sigmas"].max()),
            }
        )
        return executor(x, timesteps, context, y, control, transformer_options, **kwargs)

    model = model.clone()
    model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test_capture", wrapper)
    return model


def residual_rows(call: dict) -> torch.Tensor:
    """(rows,) largest |residual| of each row over the 13 residuals."""
    values = [*call["control"]["output"], *call["control"]["middle"]]
    return torch.stack([v.abs().flatten(1).amax(1) for v in values]).amax(0)
