"""Synthetic training data for the training tests: folder datasets whose images are drawn from their keypoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from stablepose_core.poses.keypoints import PoseKeypoints
from stablepose_core.poses.skeleton import render_pose


def random_people(rng: np.random.Generator, width: int, height: int, people: int = 1) -> np.ndarray:
    """(people, 17, 3) keypoints spread over the canvas, all visible (COCO v = 2)."""
    points = np.zeros((people, 17, 3), np.float32)
    points[..., 0] = rng.uniform(4, width - 4, (people, 17))
    points[..., 1] = rng.uniform(4, height - 4, (people, 17))
    points[..., 2] = 2
    return points


def write_synthetic_dataset(
    root: Path,
    count: int = 12,
    size: tuple[int, int] = (80, 64),
    seed: int = 0,
    corrupt: int = 0,
    no_keypoints: int = 0,
) -> Path:
    """A folder dataset (COCO keypoints.json + captions.json) whose images depend on their keypoints: the
    rendered skeleton over a noisy background. ``corrupt`` images are garbage bytes; ``no_keypoints`` images
    have only unlabeled joints."""
    rng = np.random.default_rng(seed)
    width, height = size
    root.mkdir(parents=True, exist_ok=True)
    images, annotations, captions = [], [], {}
    for i in range(count + corrupt + no_keypoints):
        name = f"img{i:03d}.png"
        people = random_people(rng, width, height, people=1 + i % 2)
        if i >= count + corrupt:
            people[..., 2] = 0
        skeleton = render_pose(PoseKeypoints(np.minimum(people, [1e9, 1e9, 1.0]), width, height))
        image = (0.8 * skeleton + rng.uniform(0, 60, skeleton.shape)).clip(0, 255).astype(np.uint8)
        if count <= i < count + corrupt:
            (root / name).write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
        else:
            Image.fromarray(image).save(root / name)
        images.append({"id": i, "file_name": name, "width": width, "height": height})
        annotations += [
            {"id": 100 * i + p, "image_id": i, "keypoints": person.reshape(-1).tolist()}
            for p, person in enumerate(people)
        ]
        captions[name] = f"a photo of {1 + i % 2} dancers, number {i}"
    (root / "keypoints.json").write_text(json.dumps({"images": images, "annotations": annotations}))
    (root / "captions.json").write_text(json.dumps(captions))
    return root
