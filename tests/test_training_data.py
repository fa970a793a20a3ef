"""Training data: layouts, the released augmentation with keypoints, caption dropout, skipping, the sampler,
and the option parsing of ``python -m training.train``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from harness.synthetic_data import random_people, write_synthetic_dataset
from stablepose_core.model.masks import MaskSettings
from stablepose_core.poses.keypoints import COCO17_FLIP_PAIRS, PoseKeypoints
from training.augment import FLIP_P, augment_sample, build_pipeline
from training.config import TrainConfig, build_parser, parse_args
from training.data import (
    DatasetError,
    PoseDataset,
    ResumableBatchSampler,
    Skipped,
    collate,
    index_dataset,
)

REPO = Path(__file__).resolve().parents[1]


# --- augmentation ---------------------------------------------------------------------------------------------
def _dot_image(points: np.ndarray, width: int, height: int) -> np.ndarray:
    image = np.zeros((height, width, 3), np.uint8)
    for x, y in points[0, :, :2].astype(int):
        image[y - 1 : y + 2, x - 1 : x + 2] = 255
    return image


def test_flip_mirrors_the_image_and_swaps_left_and_right_joints():
    rng = np.random.default_rng(3)
    points = random_people(rng, 64, 64)
    points[..., 2] = 0.9
    image = _dot_image(points, 64, 64)
    pose = PoseKeypoints(points, 64, 64)
    seed = next(s for s in range(100) if np.random.default_rng(s).random() < FLIP_P)
    # a square image at the training size: the resize and crop are identities, only the flip acts
    out_image, out_pose = augment_sample(image, pose, build_pipeline(64, False), np.random.default_rng(seed), True)
    assert np.array_equal(out_image, image[:, ::-1])
    for left, right in COCO17_FLIP_PAIRS:
        for a, b in ((left, right), (right, left)):
            np.testing.assert_allclose(out_pose.keypoints[0, a, 0], 63 - points[0, b, 0], atol=1e-4)
            np.testing.assert_allclose(out_pose.keypoints[0, a, 1], points[0, b, 1], atol=1e-4)
    np.testing.assert_allclose(out_pose.keypoints[0, 0, 0], 63 - points[0, 0, 0], atol=1e-4)  # nose stays nose
    flips = [np.random.default_rng(s).random() < FLIP_P for s in range(2000)]
    assert 0.17 < np.mean(flips) < 0.23


def test_keypoints_move_with_the_image_through_the_released_augmentation():
    rng = np.random.default_rng(0)
    points = random_people(rng, 120, 90)
    points[..., 2] = 0.9
    image = _dot_image(points, 120, 90)
    pose = PoseKeypoints(points, 120, 90)
    pipeline = build_pipeline(64, True)
    checked = 0
    for seed in range(60):
        out_image, out_pose = augment_sample(image, pose, pipeline, np.random.default_rng(seed), True)
        assert out_image.shape == (64, 64, 3) and (out_pose.width, out_pose.height) == (64, 64)
        for x, y in out_pose.keypoints[0][out_pose.visible[0], :2]:
            patch = out_image[max(0, round(y) - 2) : round(y) + 3, max(0, round(x) - 2) : round(x) + 3]
            checked += 1
            assert patch.max() > 40, f"seed {seed}: joint at ({x:.1f}, {y:.1f}) is not on its dot"
    assert checked > 500
    again = augment_sample(image, pose, pipeline, np.random.default_rng(7), True)
    first = augment_sample(image, pose, pipeline, np.random.default_rng(7), True)
    assert np.array_equal(again[0], first[0]) and np.array_equal(again[1].keypoints, first[1].keypoints)


# --- layouts ------------------------------------------------------------------------------------------------------
def test_folder_dataset_with_coco_keypoints_and_captions(tmp_path):
    root = write_synthetic_dataset(tmp_path / "data", count=5, no_keypoints=2)
    index = index_dataset(root)
    assert len(index.records) == 5
    assert index.skipped["no keypoints"] == 2
    record = index.records[1]
    assert record.caption == "a photo of 2 dancers, number 1"
    assert record.keypoints.num_people == 2 and record.keypoints.visible.all()
    sample = PoseDataset(index.records, 64, True, 0.0, seed=1)[(0, 1)]
    assert sample["pixels"].shape == sample["pose"].shape == (3, 64, 64)
    assert sample["pixels"].dtype == torch.uint8 and sample["pose"].max() > 0
    assert sample["caption"] == record.caption and sample["skipped"] == []


def test_folder_dataset_with_a_json_and_a_caption_beside_each_image(tmp_path):
    rng = np.random.default_rng(1)
    points = random_people(rng, 70, 60)
    points[..., 2] = 0.8
    Image.new("RGB", (70, 60)).save(tmp_path / "a.jpg")
    (tmp_path / "a.json").write_text(PoseKeypoints(points, 70, 60).to_json())
    (tmp_path / "a.txt").write_text("a dancer (on stage)\n")
    Image.new("RGB", (70, 60)).save(tmp_path / "b.png")
    (tmp_path / "b.json").write_text(json.dumps(PoseKeypoints(points, 70, 60).to_pose_keypoint()))
    Image.new("RGB", (70, 60)).save(tmp_path / "c.png")  # no keypoints file
    index = index_dataset(tmp_path)
    assert [r.image.name for r in index.records] == ["a.jpg", "b.png"]
    assert index.records[0].caption == "a dancer (on stage)" and index.records[1].caption == ""
    np.testing.assert_allclose(index.records[1].keypoints.keypoints[..., :2], points[..., :2], atol=1e-3)
    assert index.skipped["no keypoints"] == 1


def test_humanart_mapping_format(tmp_path):
    rng = np.random.default_rng(2)
    mapping = {}
    for i in range(3):
        Image.new("RGB", (96, 64), (i * 40, 0, 0)).save(tmp_path / f"{i}.jpg")
        detections = [] if i == 2 else [{"keypoints": random_people(rng, 96, 64)[0] * [1, 1, 0.4]}]
        np.savez(tmp_path / f"{i}.npz", np.array(detections, dtype=object))
        mapping[f"k{i}"] = {"img_path": f"{i}.jpg", "pose_path": f"{i}.npz", "prompt": f"prompt {i}"}
    (tmp_path / "mapping_file_training.json").write_text(json.dumps(mapping))
    index = index_dataset(tmp_path / "mapping_file_training.json")
    assert [r.caption for r in index.records] == ["prompt 0", "prompt 1", "prompt 2"]
    dataset = PoseDataset(index.records, 64, False, 0.0, seed=0)
    assert dataset[(0, 0)]["caption"] == "prompt 0"
    replaced = dataset[(0, 2)]  # no detections: replaced by the next usable sample (index 0), and reported
    assert replaced["caption"] == "prompt 0"
    assert [s.reason for s in replaced["skipped"]] == ["no keypoints"]


def test_unusable_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="no images"):
        index_dataset(tmp_path)
    write_synthetic_dataset(tmp_path / "none", count=0, no_keypoints=2)
    with pytest.raises(DatasetError, match="no usable samples"):
        index_dataset(tmp_path / "none")


def test_corrupt_sample_is_skipped_and_counted(tmp_path):
    root = write_synthetic_dataset(tmp_path / "data", count=4, corrupt=1)
    index = index_dataset(root)
    corrupt = next(i for i, r in enumerate(index.records) if r.image.name == "img004.png")
    dataset = PoseDataset(index.records, 64, True, 0.5, seed=0)
    batch = collate([dataset[(0, i)] for i in range(len(dataset))])
    assert batch["pixels"].shape == (5, 3, 64, 64)  # the batch keeps its size
    assert [s.reason for s in batch["skipped"]] == ["unreadable image"]
    assert "img004.png" in batch["skipped"][0].path
    assert isinstance(dataset.load(0, corrupt), Skipped)


def test_caption_dropout_rate_and_determinism(tmp_path):
    index = index_dataset(write_synthetic_dataset(tmp_path / "data", count=4))

    def dropped(p: float, draws: int) -> list[bool]:
        dataset = PoseDataset(index.records, 64, False, p, seed=5)
        return [dataset.load(e, i)["caption"] == "" for e in range(draws // 4) for i in range(4)]

    half = dropped(0.5, 400)
    assert 0.42 < np.mean(half) < 0.58
    assert half == dropped(0.5, 400)  # a function of (seed, epoch, index)
    assert not any(dropped(0.0, 40)) and all(dropped(1.0, 40))


# --- prepare -----------------------------------------------------------------------------------------------------
def test_prepare_builds_a_folder_dataset_with_the_pack_detector(tmp_path):
    from skimage import data as skimage_data

    from training.prepare import main as prepare_main

    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    Image.fromarray(skimage_data.astronaut()).save(photos / "sub" / "astronaut.png")
    Image.new("RGB", (96, 64)).save(photos / "empty.png")
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "captions.json").write_text(json.dumps({"astronaut.png": "an astronaut in a white suit"}))
    out = tmp_path / "dataset"
    (out / ".keypoints.json.partial").mkdir(parents=True)  # what a run killed while writing leaves
    (out / ".keypoints.json.partial" / "keypoints.json").write_text("{")
    assert (
        prepare_main([str(photos), str(out), "--captions", str(tmp_path / "captions.json"), "--backend", "blazepose"])
        == 0
    )
    assert (out / "images" / "sub" / "astronaut.png").is_file() and not (out / "images" / "empty.png").exists()
    assert sorted(path.name for path in out.iterdir()) == ["images", "keypoints.json"]  # written atomically
    index = index_dataset(out)
    assert [(r.image.name, r.caption) for r in index.records] == [("astronaut.png", "an astronaut in a white suit")]
    assert index.records[0].keypoints.visible.sum() >= 8  # head and shoulders at least
    sample = PoseDataset(index.records, 64, True, 0.0, seed=0)[(0, 0)]
    assert sample["pose"].max() > 0


# --- sampler ------------------------------------------------------------------------------------------------------
def test_sampler_resumes_mid_epoch_and_shards_between_processes():
    def take(sampler: ResumableBatchSampler, n: int) -> list:
        iterator = iter(sampler)
        return [next(iterator) for _ in range(n)]

    full = take(ResumableBatchSampler(10, 2, seed=3), 12)
    assert take(ResumableBatchSampler(10, 2, seed=3, start=7), 5) == full[7:]
    assert sorted(i for batch in full[:5] for _, i in batch) == list(range(10))  # one epoch = one permutation
    assert {e for e, _ in full[5][:1]} == {1} and full[:5] != full[5:10]
    rank0, rank1 = take(ResumableBatchSampler(10, 2, 3, 0, 2), 2), take(ResumableBatchSampler(10, 2, 3, 1, 2), 2)
    first_epoch = [i for batch in rank0 + rank1 for _, i in batch]
    assert len(set(first_epoch)) == 8  # 2 global batches of 4: no sample twice
    with pytest.raises(DatasetError, match="fewer than one global batch"):
        ResumableBatchSampler(3, 2, 0, 0, 2)


# --- options ------------------------------------------------------------------------------------------------------
def test_yaml_then_flags(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("batch_size: 3\nlr: 2.0e-5\naugment: false\nmask_schedule: unmasked\n")
    cfg = parse_args(["--config", str(config), "--lr", "3e-5", "--grad-accum", "2"])
    assert (cfg.batch_size, cfg.lr, cfg.grad_accum, cfg.augment, cfg.mask_schedule) == (3, 3e-5, 2, False, "unmasked")
    assert parse_args([]) == TrainConfig()
    example = parse_args(["--config", str(REPO / "training" / "example_config.yaml")])
    assert (example.lr, example.alpha, example.caption_dropout, example.grad_accum) == (1e-5, 5.0, 0.5, 4)
    config.write_text("batch_sise: 3\n")
    with pytest.raises(SystemExit):
        parse_args(["--config", str(config)])
    with pytest.raises(SystemExit):
        parse_args(["--precision", "fp8"])


def test_mask_schedules_are_named_as_in_the_nodes(tmp_path):
    """Training offers the core's schedule names (those of the nodes); the earlier names stay accepted with
    the meaning they had in training ('released' was the official training masks there)."""
    assert TrainConfig().mask_schedule == "training"
    assert MaskSettings.for_schedule("training").threshold == -1.0  # official get_input: "> -1"
    assert MaskSettings.for_schedule("evaluation") == MaskSettings()  # the nodes' defaults
    assert "{evaluation,training,unmasked}" in build_parser("x").format_help()
    config = tmp_path / "old.yaml"
    for old, today in (("released", "training"), ("released_train", "training"), ("paper", "evaluation")):
        config.write_text(f"mask_schedule: {old}\n")
        assert parse_args(["--config", str(config)]).mask_schedule == today
        assert parse_args(["--mask-schedule", old]).mask_schedule == today
    with pytest.raises(SystemExit):
        parse_args(["--mask-schedule", "relased"])


def test_help_documents_every_option():
    help_text = build_parser("x").format_help()
    for name in TrainConfig.__dataclass_fields__:
        assert "--" + name.replace("_", "-") in help_text
    result = subprocess.run(
        [sys.executable, "-m", "training.train", "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and "--resume" in result.stdout and "--grad-accum" in result.stdout
