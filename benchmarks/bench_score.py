"""Pose fidelity scoring speed on CPU: images scored per second with each detector backend.

    python benchmarks/bench_score.py [--images 20] [--size 512] [--weights-dir DIR ...] [--random-weights]

What ``StablePoseScore`` does per image: detect the people, match them to the target pose and score them
(``score_image``), draw the overlay. Rows: each runnable backend (blazepose always; DWPose / OpenPose when their
weights are in ``--weights-dir``; ``--random-weights`` runs them on the true networks with random weights, the
test models of ``harness/dwpose_models.py`` and controlnet_aux's OpenPose body model: right speed, meaningless
people), plus scoring and drawing alone (the ``detected`` input connected, no detector). The images are
``skimage.data.astronaut()`` resized to ``--size`` and shifted a little each, the target its own pose.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_extract import frames_per_second
from stablepose_core.detect.backends import BLAZEPOSE, OPENPOSE_FILE, backend_statuses, create_detector
from stablepose_core.evaluate.overlay import draw_score_overlay
from stablepose_core.evaluate.score import score_image
from stablepose_core.poses.keypoints import PoseKeypoints


def random_weight_roots(folder: Path) -> list[str]:
    """Folders holding DWPose and OpenPose files of the true networks with random weights."""
    import torch
    from controlnet_aux.open_pose.model import bodypose_model

    from harness.dwpose_models import export_dwpose_models

    detector, _ = export_dwpose_models()
    torch.manual_seed(0)
    state = {key.split(".", 1)[1]: value for key, value in bodypose_model().state_dict().items()}
    torch.save(state, folder / OPENPOSE_FILE)
    return [str(detector.parent), str(folder)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--weights-dir", action="append", default=[], help="folder with detector weights")
    parser.add_argument("--random-weights", action="store_true", help="also time DWPose/OpenPose on random weights")
    args = parser.parse_args()

    from skimage import data

    image = cv2.resize(data.astronaut(), (args.size, args.size), interpolation=cv2.INTER_AREA)
    frames = [np.ascontiguousarray(np.roll(image, shift, axis=1)) for shift in range(0, 16, 2)]
    with tempfile.TemporaryDirectory() as folder:
        roots = list(args.weights_dir) + (random_weight_roots(Path(folder)) if args.random_weights else [])
        backends = [status.name for status in backend_statuses(roots) if status.available]
        detector = create_detector(BLAZEPOSE, roots)
        detected = [detector(frame) for frame in frames]
        detector.close()
        target = PoseKeypoints.from_pose_keypoint(detected[0].to_pose_keypoint())

        def score(index: int, people: PoseKeypoints) -> np.ndarray:
            frame = frames[index % len(frames)]
            return draw_score_overlay(frame, target, people, score_image(target, people))

        rows = {
            "score + overlay, no detector": frames_per_second(
                lambda i: score(i, detected[i % len(detected)]), args.images * 10
            )
        }
        for backend in backends:
            detector = create_detector(backend, roots)
            try:
                people = detector(frames[0]).num_people
                rows[f"{backend} detection + score + overlay ({people} found)"] = frames_per_second(
                    lambda i, run=detector: score(i, run(frames[i % len(frames)])), args.images
                )
            finally:
                detector.close()
    weights = " (dwpose/openpose: random weights)" if args.random_weights else ""
    print(f"CPU threads: {os.cpu_count()}, images {args.size}x{args.size}, one person{weights}")
    for name, rate in rows.items():
        print(f"{name:50s} {rate:8.2f} images/s")


if __name__ == "__main__":
    main()
