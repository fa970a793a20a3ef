"""A trained adapter runs in ComfyUI: one real training step on the full-size random SD1.5 test checkpoint
(loaded through ComfyUI's model code, as users' checkpoints are), then LoadStablePose -> ApplyStablePose ->
KSampler in the headless host. Slow-ish (a full-size SD1.5 step on the CPU)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from harness.synthetic_data import random_people, write_synthetic_dataset
from stablepose_core.poses.keypoints import PoseKeypoints
from stablepose_core.poses.skeleton import render_pose
from training.config import TrainConfig
from training.loop import train

ADAPTER_NAME = "trained_by_test_training_node.safetensors"


def prompt(checkpoint: str, model: list) -> dict:
    return {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a dancer", "clip": ["ckpt", 1]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["ckpt", 1]}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "sp": {"class_type": "LoadStablePose", "inputs": {"adapter_name": ADAPTER_NAME}},
        "pose": {"class_type": "LoadImage", "inputs": {"image": "training_pose.png"}},
        "apply": {
            "class_type": "ApplyStablePose",
            "inputs": {
                "model": ["ckpt", 0],
                "stable_pose": ["sp", 0],
                "pose_image": ["pose", 0],
                "strength": 1.0,
                "start_percent": 0.0,
                "end_percent": 1.0,
            },
        },
        "ks": {
            "class_type": "KSampler",
            "inputs": {
                "model": model,
                "seed": 3,
                "steps": 2,
                "cfg": 5.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "positive": ["pos", 0],
                "negative": ["neg", 0],
                "latent_image": ["latent", 0],
                "denoise": 1.0,
            },
        },
        "save": {"class_type": "SaveLatent", "inputs": {"samples": ["ks", 0], "filename_prefix": "training"}},
    }


@pytest.mark.slow
def test_trained_adapter_loads_and_samples_in_comfyui(comfy_host, test_models, models_dir, tmp_path):
    cfg = TrainConfig(
        base_model=str(test_models.checkpoint),
        data=str(write_synthetic_dataset(tmp_path / "data", count=2)),
        output_dir=str(tmp_path / "run"),
        resolution=64,
        batch_size=1,
        grad_accum=1,
        max_steps=1,
        lr=1e-3,
        precision="bf16",
        sample_every=0,
        save_every=0,
        num_workers=0,
    )
    final = train(cfg)
    shutil.copy(final, models_dir / "stable_pose" / ADAPTER_NAME)
    skeleton = render_pose(PoseKeypoints(np.minimum(random_people(np.random.default_rng(0), 64, 64), 1e9), 64, 64))
    Image.fromarray(skeleton).save(comfy_host.workdir / "input" / "training_pose.png")

    checkpoint = test_models.checkpoint.name
    posed = comfy_host.execute(prompt(checkpoint, ["apply", 0]))
    plain = comfy_host.execute(prompt(checkpoint, ["ckpt", 0]))
    assert posed.ok, posed.error_messages()
    assert plain.ok, plain.error_messages()
    posed_latent, plain_latent = posed.output("ks")["samples"], plain.output("ks")["samples"]
    assert torch.isfinite(posed_latent).all()
    assert not torch.equal(posed_latent, plain_latent), "one training step moved the zero convs off zero"
