"""Real poses for the body-prior tests and benchmarks: the bundled photos' poses and generation failures edited
into them.

The photos' poses come from the built-in BlazePose (with its 3D world landmarks). Each failure is edited into both
the 2D keypoints and the 3D landmarks, as a detector would see that body in a generated image:
- :func:`swap_legs`: the legs' left and right swapped (hips turned 180 degrees under a chest facing as before);
- :func:`stretch_forearm`: the more confident forearm stretched to 2.5 times its length;
- :func:`bend_knees_forward`: each shank turned 60-70 degrees forward about its knee (against its hinge).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import skimage.data

from stablepose_core.detect.backends import BLAZEPOSE, create_detector
from stablepose_core.poses.keypoints import COCO17_FLIP_PAIRS, PoseKeypoints

LEGS = ((11, 12), (13, 14), (15, 16))


@functools.cache
def photo_poses() -> dict[str, PoseKeypoints]:
    """BlazePose on ``skimage.data.astronaut()`` (legs out of frame) and ``camera()`` (a man side-on, whole)."""
    detector = create_detector(BLAZEPOSE, [])
    camera = np.repeat(skimage.data.camera()[..., None], 3, -1)
    return {"astronaut": detector(skimage.data.astronaut()), "camera": detector(camera)}


def _edited(pose: PoseKeypoints, points: np.ndarray, world: np.ndarray | None) -> PoseKeypoints:
    return PoseKeypoints(points[None], pose.width, pose.height, None if world is None else world[None])


def swap_legs(pose: PoseKeypoints) -> PoseKeypoints:
    points, world = pose.keypoints[0].copy(), pose.world[0].copy()
    for left, right in LEGS:
        points[[left, right]], world[[left, right]] = points[[right, left]], world[[right, left]]
    points[11:13, 2] = 1.0  # the edited hips are what the image shows
    return _edited(pose, points, world)


def stretch_forearm(pose: PoseKeypoints) -> PoseKeypoints:
    points, world = pose.keypoints[0].copy(), pose.world[0].copy()
    wrist = 9 if points[9, 2] > points[10, 2] else 10
    points[wrist, :2] = points[wrist - 2, :2] + 2.5 * (points[wrist, :2] - points[wrist - 2, :2])
    world[wrist, :3] = world[wrist - 2, :3] + 2.5 * (world[wrist, :3] - world[wrist - 2, :3])
    points[wrist, 2] = 1.0
    return _edited(pose, points, world)


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * cross + (1 - math.cos(angle)) * cross @ cross


def bend_knees_forward(pose: PoseKeypoints) -> PoseKeypoints:
    """Turn each shank about its knee toward the side the face looks to (2D) and toward the camera (3D)."""
    points, world = pose.keypoints[0].copy(), pose.world[0].copy()
    front = np.sign(points[0, 0] - points[11:13, 0].mean())
    for knee in (13, 14):
        shank = points[knee + 2, :2] - points[knee, :2]
        turned = [_rotation(np.array([0.0, 0.0, s]), math.radians(60))[:2, :2] @ shank for s in (1, -1)]
        points[knee + 2, :2] = points[knee, :2] + max(turned, key=lambda v: v[0] * front)
        points[knee + 2, 2] = 1.0
        thigh = world[knee, :3] - world[knee - 2, :3]
        bend = _rotation(np.cross(thigh, [0.0, 0.0, -1.0]), math.radians(-70))
        world[knee + 2, :3] = world[knee, :3] + bend @ (world[knee + 2, :3] - world[knee, :3])
    return _edited(pose, points, world)


def back_view(pose: PoseKeypoints) -> PoseKeypoints:
    """The same drawing with left and right swapped: a person seen from behind (no 3D points, as from the editor)."""
    order = np.arange(17)
    for left, right in COCO17_FLIP_PAIRS:
        order[left], order[right] = right, left
    return PoseKeypoints(pose.keypoints[:, order], pose.width, pose.height)
