"""API-format ComfyUI prompts on the SD1.5-size test models: checkpoint, prompts, latent, Stable-Pose adapter and
pose image (``base_prompt``), Apply Stable-Pose, and KSamplers that save their latents."""

from __future__ import annotations

from typing import Any

STEPS = 1  # sampler steps: one, the whole schedule (tests of start/end percent ask for more)


def base_prompt(test_models, width: int = 64, height: int = 64, batch: int = 1) -> dict[str, dict[str, Any]]:
    return {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": test_models.checkpoint.name}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a dancer, side view", "clip": ["ckpt", 1]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["ckpt", 1]}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": height, "batch_size": batch}},
        "sp": {"class_type": "LoadStablePose", "inputs": {"adapter_name": test_models.adapter.name}},
        "pose": {"class_type": "LoadImage", "inputs": {"image": "pose.png"}},
    }


def sampler(
    name: str, model: list, seed: int, positive: list | None = None, negative: list | None = None, steps: int = STEPS
) -> dict:
    return {
        f"ks_{name}": {
            "class_type": "KSampler",
            "inputs": {
                "model": model,
                "seed": seed,
                "steps": steps,
                "cfg": 7.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "positive": positive or ["pos", 0],
                "negative": negative or ["neg", 0],
                "latent_image": ["latent", 0],
                "denoise": 1.0,
            },
        },
        f"save_{name}": {"class_type": "SaveLatent", "inputs": {"samples": [f"ks_{name}", 0], "filename_prefix": name}},
    }


def apply_node(strength: float = 1.0, start: float = 0.0, end: float = 1.0, pose: str = "pose", **extra) -> dict:
    inputs = {
        "model": ["ckpt", 0],
        "stable_pose": ["sp", 0],
        "pose_image": [pose, 0],
        "strength": strength,
        "start_percent": start,
        "end_percent": end,
        **extra,
    }
    return {"class_type": "ApplyStablePose", "inputs": inputs}
