"""Synthetic poses shared by the pose-sequence tests, the hostile tests and the robustness benchmark."""

from __future__ import annotations

import numpy as np

from stablepose_core.poses.keyframes import KEYFRAMES_FORMAT
from stablepose_core.poses.keypoints import PoseKeypoints
from stablepose_core.poses.sequence import PoseSequence

# A standing person (COCO-17, pixels) about 200 px tall, centred at x = 0.
PERSON = np.array(
    [
        [0, 0], [-6, -6], [6, -6], [-14, -2], [14, -2], [-30, 30], [30, 30], [-40, 70], [40, 70], [-45, 105],
        [45, 105], [-20, 110], [20, 110], [-22, 160], [22, 160], [-24, 205], [24, 205],
    ],
    np.float32,
)  # fmt: skip
# A person as a hostile request would send it: 17 joints on a diagonal line.
LINE_PERSON = [[100 + j, 50 + 10 * j, 1.0] for j in range(17)]


def person_at(x: float, y: float, confidence: float = 1.0) -> np.ndarray:
    """:data:`PERSON` moved to (x, y), every joint at ``confidence``: ``(17, 3)``."""
    points = np.ones((17, 3), np.float32) * confidence
    points[:, :2] = PERSON + np.array([x, y], np.float32)
    return points


def sequence_of(*frames: list[np.ndarray], width: int = 640, height: int = 480) -> PoseSequence:
    """A sequence whose frame i holds the people of ``frames[i]`` (``(17, 3)`` arrays, none for an empty frame)."""
    people = [np.stack(f) if f else np.zeros((0, 17, 3)) for f in frames]
    return PoseSequence.from_poses([PoseKeypoints(p, width, height) for p in people])


def keyframes(frames: int, people: int, last: int | None = None) -> dict:
    """A pose-keyframes document of ``frames`` frames with ``people`` :data:`LINE_PERSON` keys at 0 and ``last``."""
    key = [LINE_PERSON] * people
    last = frames - 1 if last is None else last
    return {
        "format": KEYFRAMES_FORMAT,
        "width": 256,
        "height": 256,
        "frames": frames,
        "keys": [{"frame": 0, "people": key}, {"frame": last, "people": key}],
    }
