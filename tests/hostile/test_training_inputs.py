"""Training on hostile data and damaged run folders (issue 16, item 6): a decompression bomb or a corrupt image
is skipped by name with the right label, a corrupt newest checkpoint falls back to the newest intact one, and a
run killed between a checkpoint and its adapter export writes that export when it resumes."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from PIL import Image

from stablepose_core.poses.keypoints import PoseKeypoints
from training.data import index_folder
from training.loop import train
from training.state import list_checkpoints
from training.tiny import tiny_components

from .corpus import png_header_only


def sidecar_dataset(root: Path, count: int = 3) -> Path:
    """Images with a pose JSON beside each (the layout that reads the image size while indexing)."""
    root.mkdir(parents=True)
    points = np.zeros((1, 17, 3), np.float32)
    points[0, :, :2] = np.linspace(8, 56, 34).reshape(17, 2)
    points[0, :, 2] = 1.0
    for i in range(count):
        Image.fromarray(np.full((64, 64, 3), 40 * i, np.uint8)).save(root / f"ok{i}.png")
        (root / f"ok{i}.json").write_text(PoseKeypoints(points, 64, 64).to_json())
    return root


def add_sample(root: Path, name: str) -> Path:
    (root / f"{name}.json").write_text((root / "ok0.json").read_text())
    return root / f"{name}.png"


def test_bombs_and_corrupt_images_are_skipped_by_name_as_unreadable_images(tmp_path, caplog):
    root = sidecar_dataset(tmp_path / "data")
    png_header_only(add_sample(root, "bomb"), 30_000, 30_000)
    add_sample(root, "corrupt").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    with caplog.at_level(logging.WARNING, logger="stable_pose.training"):
        index = index_folder(root)
    assert sorted(r.image.name for r in index.records) == ["ok0.png", "ok1.png", "ok2.png"]
    assert index.skipped == {"unreadable image": 2}
    assert any("bomb.png" in m and "unreadable image" in m for m in caplog.messages)
    assert any("corrupt.png" in m and "unreadable image" in m for m in caplog.messages)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_run(dataset: Path, output: Path, **overrides):
    from training.config import TrainConfig

    base = TrainConfig(
        base_model="tiny",
        data=str(dataset),
        output_dir=str(output),
        resolution=64,
        batch_size=1,
        grad_accum=1,
        lr=1e-3,
        precision="fp32",
        save_every=2,
        sample_every=0,
        log_every=1,
        num_workers=0,
        max_steps=6,
    )
    return replace(base, **overrides)


@pytest.mark.slow
def test_resume_latest_skips_a_corrupt_checkpoint_and_rewrites_a_lost_export(tmp_path, caplog):
    dataset = sidecar_dataset(tmp_path / "data", count=4)
    run = tmp_path / "run"
    cfg = tiny_run(dataset, run, stop_after=4)
    assert train(cfg, sd=tiny_components(0)) is None
    assert [step for step, _ in list_checkpoints(run)] == [2, 4]
    step4 = run / "adapter-step-00000004.safetensors"
    exported = safetensors.torch.load_file(str(step4))

    # killed after the step-4 checkpoint, before its adapter export: the resumed run writes that export
    step4.unlink()
    assert train(replace(cfg, resume="latest", stop_after=1), sd=tiny_components(0)) is None
    again = safetensors.torch.load_file(str(step4))
    assert again.keys() == exported.keys() and all(torch.equal(again[k], v) for k, v in exported.items())

    # the newest checkpoint (step 5) damaged: named, and the run continues from step 4
    newest = list_checkpoints(run)[-1][1]
    weights = next(newest.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="stable_pose.training"):
        final = train(replace(cfg, resume="latest", stop_after=0), sd=tiny_components(0))
    assert final == run / "adapter-final.safetensors"
    assert any(str(newest) in m and "cannot be read" in m for m in caplog.messages)
    assert json.loads((list_checkpoints(run)[-1][1] / "trainer_state.json").read_text())["step"] == 6
