"""Pose sequences: the frames of a clip as one array, and the ``POSE_KEYPOINT`` frame list they travel in.

A :class:`PoseSequence` is frames × people × 17 COCO joints × (x, y, confidence) on one canvas. Across the
sequence modules (tracking, smoothing, interpolation, transforms) a person's *slot* (its index on the people
axis) is its identity: slot k is the same person in every frame, and a frame where that person is not seen
holds an all-zero person there (not drawn, written as zeros in ``POSE_KEYPOINT``, as OpenPose writes absent
joints). A detector's raw output has no such guarantee until :func:`.tracking.track_people` orders it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .formats import PoseDataError
from .keypoints import COCO17_NAMES, VISIBILITY_THRESHOLD, PoseKeypoints, checked_keypoints, checked_world

JOINTS = len(COCO17_NAMES)


@dataclass(frozen=True, eq=False)
class PoseSequence:
    """``(frames, people, 17, 3)`` float32 keypoints in pixels of one ``width`` × ``height`` canvas, and the
    frames' 3D points (:attr:`PoseKeypoints.world`, ``(frames, people, 17, 4)``) when a detector gave any. Every
    change of the keypoints (:meth:`replace`, tracking, transforms) leaves the 3D points out."""

    keypoints: np.ndarray
    width: int
    height: int
    world: np.ndarray | None = None

    def __post_init__(self) -> None:
        points = checked_keypoints(self.keypoints, "frames, people", self.width, self.height)
        if points.shape[0] == 0:
            raise PoseDataError("a pose sequence needs at least one frame (got none)")
        object.__setattr__(self, "keypoints", points)
        object.__setattr__(self, "world", checked_world(self.world, points.shape[:2]))
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    @property
    def num_frames(self) -> int:
        return self.keypoints.shape[0]

    @property
    def num_people(self) -> int:
        return self.keypoints.shape[1]

    @property
    def present(self) -> np.ndarray:
        """Bool ``(frames, people, 17)``: joints confident enough to count (position not checked)."""
        return self.keypoints[..., 2] > VISIBILITY_THRESHOLD

    def replace(self, keypoints: np.ndarray) -> PoseSequence:
        """The same canvas with other keypoints."""
        return PoseSequence(keypoints, self.width, self.height)

    @classmethod
    def from_poses(cls, poses: Sequence[PoseKeypoints]) -> PoseSequence:
        """Stack per-frame poses; frames with fewer people are padded with absent (all-zero) people."""
        if not poses:
            raise ValueError("a pose sequence needs at least one frame (got none)")
        sizes = sorted({(pose.width, pose.height) for pose in poses})
        if len(sizes) > 1:
            first = {size: next(i for i, p in enumerate(poses) if (p.width, p.height) == size) for size in sizes}
            listing = ", ".join(f"{w}x{h} (first at frame {i})" for (w, h), i in first.items())
            raise ValueError(
                f"all frames of a pose sequence must share one canvas size, got {listing}; "
                "rescale them first (e.g. the Transform node's fit, or re-extract at one size)"
            )
        people = max(pose.num_people for pose in poses)
        points = np.zeros((len(poses), people, JOINTS, 3), np.float32)
        world = np.zeros((len(poses), people, JOINTS, 4), np.float32)  # confidence 0: no 3D point
        for index, pose in enumerate(poses):
            points[index, : pose.num_people] = pose.keypoints
            if pose.world is not None:
                world[index, : pose.num_people] = pose.world
        return cls(points, *sizes[0], world if any(pose.world is not None for pose in poses) else None)

    def poses(self) -> list[PoseKeypoints]:
        """One :class:`PoseKeypoints` per frame (slots kept, absent people included as zeros)."""
        return [
            PoseKeypoints(frame, self.width, self.height, None if self.world is None else self.world[index])
            for index, frame in enumerate(self.keypoints)
        ]

    @classmethod
    def from_pose_keypoint(cls, pose_keypoint: Any) -> PoseSequence:
        """Read ComfyUI ``POSE_KEYPOINT`` (one frame dict or a list of them); errors name the bad frame."""
        frames = pose_keypoint_frames(pose_keypoint)
        poses = []
        for index, frame in enumerate(frames):
            try:
                poses.append(PoseKeypoints.from_pose_keypoint(frame))
            except ValueError as error:
                raise ValueError(f"POSE_KEYPOINT frame {index}: {error}") from None
        return cls.from_poses(poses)

    def to_pose_keypoint(self) -> list[dict[str, Any]]:
        """The ``POSE_KEYPOINT`` frame list (OpenPose BODY-18, pixels), every slot written in every frame."""
        return [pose.to_pose_keypoint() for pose in self.poses()]


def pose_keypoint_frames(pose_keypoint: Any) -> list[Any]:
    """The frames of a ``POSE_KEYPOINT`` value (a lone frame dict counts as one); empty input is refused."""
    if pose_keypoint is None:
        raise ValueError("no POSE_KEYPOINT given")
    frames = [pose_keypoint] if isinstance(pose_keypoint, dict) else list(pose_keypoint)
    if not frames:
        raise ValueError("POSE_KEYPOINT is empty (no frames): connect poses from a detector, editor or file")
    return frames


def without_absent_people(pose: PoseKeypoints) -> PoseKeypoints:
    """The frame without its all-zero (absent) slots, e.g. before drawing: the renderer draws only the first
    ten people, which should be the ten present ones, not empty slots of people seen in other frames."""
    return PoseKeypoints(pose.keypoints[pose.keypoints.any(axis=(1, 2))], pose.width, pose.height)
