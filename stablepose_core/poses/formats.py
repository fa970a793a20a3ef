"""Keypoint layouts other tools use, and their index maps to and from COCO-17.

This module also names COCO-17 itself (re-exported by :mod:`.keypoints`). Every converter works on float
arrays shaped ``(people, joints, 3)`` holding ``(x, y, confidence)``, or ``(people, joints, 4)`` holding 3D
points ``(x, y, z, confidence)``; a joint a layout lacks is all zeros, as OpenPose writes it.

* OpenPose BODY-18 (ControlNet's and comfyui_controlnet_aux's ``pose_keypoints_2d``): COCO-17 plus a neck at
  index 1 and a different order (right side before left).
* OpenPose BODY-25: BODY-18 plus a mid-hip at index 8 and six foot points.
* BlazePose-33 (MediaPipe Pose): a superset of COCO-17's joints.

Going to COCO-17 drops the extra joints; coming back, the neck (and BODY-25's mid-hip) is the midpoint of the
two shoulders (hips), present only when both are (confidence = the smaller of the two), as ControlNet's
annotators derive it.
"""

from __future__ import annotations

import numpy as np


class PoseDataError(ValueError):
    """Pose data that cannot be used (a ``POSE_KEYPOINT`` frame, pose JSON, keypoint arrays); says what is wrong."""


# Stable-Pose's layout (HumanSD's MMPose COCO-17 detections, official ``ldm/data/dataset_pose.py``).
COCO17_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee",
    "left_ankle", "right_ankle",
)  # fmt: skip
# Official ``keypoint_thresh`` (configs/stable_pose/humanart.yaml): a joint is drawn only if confidence > this.
VISIBILITY_THRESHOLD = 0.02

OPENPOSE18_NAMES: tuple[str, ...] = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)  # fmt: skip
BODY25_NAMES: tuple[str, ...] = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "mid_hip", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear", "left_big_toe", "left_small_toe", "left_heel",
    "right_big_toe", "right_small_toe", "right_heel",
)  # fmt: skip
BLAZEPOSE33_NAMES: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle", "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)  # fmt: skip


def _index_of_coco17(names: tuple[str, ...]) -> np.ndarray:
    """For each COCO-17 joint, its index in a layout that names the same joints."""
    return np.array([names.index(name) for name in COCO17_NAMES])


OPENPOSE18_OF_COCO17 = _index_of_coco17(OPENPOSE18_NAMES)
BODY25_OF_COCO17 = _index_of_coco17(BODY25_NAMES)
BLAZEPOSE33_OF_COCO17 = _index_of_coco17(BLAZEPOSE33_NAMES)

_LAYOUTS: dict[str, tuple[str, ...]] = {
    "openpose18": OPENPOSE18_NAMES,
    "body25": BODY25_NAMES,
    "blazepose33": BLAZEPOSE33_NAMES,
}


def _check(points: np.ndarray, joints: int, layout: str) -> np.ndarray:
    points = np.asarray(points, dtype=np.float32)
    if points.ndim != 3 or points.shape[1] != joints or points.shape[2] not in (3, 4):
        raise PoseDataError(f"{layout} keypoints must be shaped (people, {joints}, 3 or 4), got {points.shape}")
    return points


def to_coco17(points: np.ndarray, layout: str) -> np.ndarray:
    """``(P, J, 3 or 4)`` in ``layout`` ('openpose18', 'body25' or 'blazepose33') -> ``(P, 17, 3 or 4)`` COCO-17."""
    if layout not in _LAYOUTS:
        raise ValueError(f"unknown keypoint layout {layout!r}; expected one of {sorted(_LAYOUTS)}")
    names = _LAYOUTS[layout]
    return _check(points, len(names), layout)[:, _index_of_coco17(names)].copy()


def _midpoint(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Midpoint of two ``(P, 3 or 4)`` joints (confidence last), present only where both are above the visibility
    threshold."""
    both = (a[:, -1] > VISIBILITY_THRESHOLD) & (b[:, -1] > VISIBILITY_THRESHOLD)
    mid = np.zeros_like(a)
    mid[:, :-1] = (a[:, :-1] + b[:, :-1]) / 2
    mid[:, -1] = np.minimum(a[:, -1], b[:, -1])
    return np.where(both[:, None], mid, 0.0)


def from_coco17(coco: np.ndarray, layout: str) -> np.ndarray:
    """``(P, 17, 3 or 4)`` COCO-17 -> ``(P, J, 3 or 4)`` in ``layout`` ('openpose18' or 'body25'), deriving
    neck/mid-hip."""
    if layout not in ("openpose18", "body25"):
        raise ValueError(f"cannot convert COCO-17 to {layout!r}; expected 'openpose18' or 'body25'")
    coco = _check(coco, len(COCO17_NAMES), "COCO-17")
    names = _LAYOUTS[layout]
    out = np.zeros((coco.shape[0], len(names), coco.shape[2]), dtype=np.float32)
    out[:, _index_of_coco17(names)] = coco
    joint = {name: coco[:, i] for i, name in enumerate(COCO17_NAMES)}
    out[:, names.index("neck")] = _midpoint(joint["left_shoulder"], joint["right_shoulder"])
    if "mid_hip" in names:
        out[:, names.index("mid_hip")] = _midpoint(joint["left_hip"], joint["right_hip"])
    return out


def layout_for_joint_count(joints: int) -> str:
    """The OpenPose layout a ``pose_keypoints_2d`` list of ``joints`` points is in (18 or 25)."""
    for layout in ("openpose18", "body25"):
        if len(_LAYOUTS[layout]) == joints:
            return layout
    raise PoseDataError(f"pose_keypoints_2d has {joints} points; expected 18 (OpenPose BODY-18) or 25 (BODY-25)")
