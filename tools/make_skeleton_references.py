"""Regenerate ``tests/data/skeleton/*``: pose images drawn by the official Stable-Pose data pipeline.

This script contains no official code. It takes ``ldm/data/dataset_pose.py`` and
``configs/stable_pose/humanart.yaml`` out of a git mirror of the official repository
(https://github.com/ai-med/StablePose), imports that file as is (only ``torch.utils.data.Dataset``, its base
class, is replaced by ``object`` so torch need not be installed) and asks ``PoseDataset(phase="eval")`` with
the test-split settings for its ``hint`` on a 512 × 512 image, for fixed keypoints. The hint, scaled back from
[-1, 1] to 0..255, is saved as an RGB PNG (channel order as the model receives it), next to the keypoints fed
in, in the pack's ``stable-pose-coco17`` JSON. ``palette.json`` records seaborn's ``hls`` palette.

Run it with the library versions the official ``requirements.txt`` pins (OpenCV 4.3, albumentations 1.3.0)::

    pyenv install 3.8.18   # any Python 3.8
    python3.8 -m venv /tmp/refenv
    /tmp/refenv/bin/pip install "numpy<1.25" opencv-contrib-python==4.3.0.36 seaborn Pillow PyYAML \\
        scipy scikit-learn "scikit-image<0.22"
    /tmp/refenv/bin/pip install --no-deps albumentations==1.3.0 qudida
    /tmp/refenv/bin/python tools/make_skeleton_references.py --mirror /path/to/StablePose.git

Keypoints are multiples of 1/64, so float32 (the pack) and float64 (the official arrays) hold them exactly.
The official pipeline moves an out-of-image joint to (0, 0) before augmenting and can draw it there; the pack
drops such joints instead, so no case puts a confident joint off the image.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 512
OUT_DIR = Path(__file__).resolve().parents[1] / "tests" / "data" / "skeleton"

# A standing person facing the viewer (their left on the image's right), COCO-17 order.
STANDING = [
    (256, 80), (266, 70), (246, 70), (280, 76), (232, 76), (300, 130), (212, 130), (320, 200),
    (192, 200), (330, 265), (182, 265), (288, 270), (224, 270), (292, 370), (220, 370), (296, 460), (216, 460),
]  # fmt: skip


def quantise(values: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(values, np.float64) * 64) / 64


def person_from_template(rng: np.random.RandomState, scale: float, centre: tuple[float, float]) -> np.ndarray:
    xy = (np.array(STANDING, np.float64) - 256) * scale + centre + rng.normal(0, 6, (17, 2))
    confidence = rng.uniform(0.3, 1.0, 17)
    return np.concatenate([quantise(np.clip(xy, 0, SIZE - 1 / 64)), quantise(confidence)[:, None]], axis=1)


def cases() -> dict[str, np.ndarray]:
    rng = np.random.RandomState(20240602)
    single = np.concatenate([np.array(STANDING, np.float64) + 0.421875, np.full((17, 1), 0.9)], axis=1)

    crowd = []
    for _ in range(12):  # more than max_person_num: only the first 10 are drawn
        person = np.concatenate(
            [quantise(rng.uniform(0, SIZE - 1 / 64, (17, 2))), quantise(rng.uniform(0, 1, (17, 1)))], axis=1
        )
        person[rng.rand(17) < 0.15, 2] = 0.015625  # below the 0.02 threshold
        crowd.append(person)

    thresholds = person_from_template(rng, 0.9, (200, 250))
    thresholds[[5, 9], 2] = 0.0  # an absent shoulder and wrist
    thresholds[11, 2] = 0.0234375  # just above 0.02: drawn
    thresholds[13, 2] = 0.015625  # below: not drawn
    off_image = person_from_template(rng, 0.8, (420, 300))
    off_image[[10, 16], :] = [[540.5, 300.25, 0.0], [-20.0, 600.0, 0.0]]  # off the image, zero confidence
    edges = np.concatenate(
        [quantise([[0, 0], [511.984375, 0], [511.984375, 511.984375], [0, 511.984375]]), np.full((4, 1), 0.8)], 1
    )
    border = np.zeros((17, 3))
    border[[5, 6, 12, 11]] = edges  # shoulders and hips on the four corners
    near_origin = np.zeros((17, 3))
    near_origin[:, :2] = -1
    near_origin[[0, 1]] = [[3.0, 4.0, 0.9], [5.0, 2.0, 0.9]]  # official sum of its array < 0: not drawn
    mixed = np.stack([thresholds, off_image, border, near_origin])
    templated = np.stack([person_from_template(rng, s, c) for s, c in [(1.0, (256, 256)), (0.6, (120, 330))]])
    return {"single_person": single[None], "crowd_12": np.stack(crowd), "edge_cases": mixed, "two_people": templated}


def load_official(mirror: str, workdir: Path) -> tuple[type, dict]:
    """Import the official dataset module from the mirror and read the test split's parameters."""
    import yaml

    def show(path: str) -> str:
        return subprocess.run(["git", "-C", mirror, "show", f"HEAD:{path}"], capture_output=True, text=True,
                              check=True).stdout  # fmt: skip

    (workdir / "dataset_pose.py").write_text(show("ldm/data/dataset_pose.py"))
    params = yaml.safe_load(show("configs/stable_pose/humanart.yaml"))["data"]["params"]["test"]["params"]
    torch_stub = types.ModuleType("torch")
    torch_stub.utils = types.ModuleType("torch.utils")
    torch_stub.utils.data = types.ModuleType("torch.utils.data")
    torch_stub.utils.data.Dataset = object
    sys.modules.update(
        {"torch": torch_stub, "torch.utils": torch_stub.utils, "torch.utils.data": torch_stub.utils.data}
    )
    sys.path.insert(0, str(workdir))
    import dataset_pose

    return dataset_pose.PoseDataset, params


def official_hint(dataset_class: type, params: dict, people: np.ndarray, workdir: Path) -> np.ndarray:
    """Run the official ``__getitem__`` on a black 512² image with ``people`` as the detections."""
    Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(workdir / "image.png")
    detections = np.empty(len(people), dtype=object)
    for i, person in enumerate(people):
        detections[i] = {"keypoints": np.asarray(person, np.float64)}
    np.savez(workdir / "pose.npz", detections)
    (workdir / "map.json").write_text(json.dumps({"0": {"img_path": "image.png", "pose_path": "pose.npz",
                                                        "prompt": ""}}))  # fmt: skip
    settings = {**params, "map_file": str(workdir / "map.json"), "base_path": str(workdir), "phase": "eval"}
    hint = dataset_class(**settings)[0]["hint"]
    pixels = np.round((hint.astype(np.float64) + 1) / 2 * 255)
    assert pixels.min() >= 0 and pixels.max() <= 255
    return pixels.astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mirror", default="/work/.mirror/ai-med+StablePose/repo", help="official repo (git dir)")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    import albumentations
    import cv2
    import seaborn

    with tempfile.TemporaryDirectory() as tmp:
        dataset_class, params = load_official(args.mirror, Path(tmp))
        for name, people in cases().items():
            hint = official_hint(dataset_class, params, people, Path(tmp))
            Image.fromarray(hint).save(args.out / f"{name}.png")
            document = {"format": "stable-pose-coco17", "width": SIZE, "height": SIZE, "people": people.tolist()}
            (args.out / f"{name}.json").write_text(json.dumps(document))
            print(f"{name}: {len(people)} people, {int((hint.sum(-1) > 0).sum())} drawn pixels")

    palette = seaborn.color_palette("hls", len(params["pose_skeleton"]))
    (args.out / "palette.json").write_text(json.dumps({
        "hls16": [list(map(float, color)) for color in palette],
        "hls16_uint8": [[int(255 * c) for c in color] for color in palette],
        "versions": {"opencv": cv2.__version__, "albumentations": albumentations.__version__,
                     "seaborn": seaborn.__version__, "numpy": np.__version__},
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
