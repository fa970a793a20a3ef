"""Where people are in an image, as masks: the region a pose covers, and the noise mask of a rectification pass.

Diffusion-HPC (Weng et al., 3DV 2024) regenerates a person from the first image's noised latents, guided by the
depth of a fitted body whose silhouette is cut by the objects in front of it (its Mask R-CNN step). Here only the
person is noised: the body's silhouette, united with the region the person's pose covers (where the implausible
limbs are now, and where a target pose wants them), grown by a margin, minus the occluders. ``docs/rectify.md``.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

from .keypoints import COCO17_LIMBS, COCO17_NAMES, PoseKeypoints

# Limb thickness as a fraction of the person's size (the diagonal of the box around its visible joints): about an
# upper arm's width, so the region holds the arms and legs around their bones, not just the bones.
LIMB_FRACTION = 0.12
TORSO = tuple(COCO17_NAMES.index(name) for name in ("left_shoulder", "right_shoulder", "right_hip", "left_hip"))
NOSE = COCO17_NAMES.index("nose")


def person_size(points: np.ndarray) -> float:
    """The diagonal (px) of the box around ``points`` ``(n, 2)``."""
    if len(points) == 0:
        return 0.0
    return float(np.hypot(*(points.max(axis=0) - points.min(axis=0))))


def pose_region(pose: PoseKeypoints) -> np.ndarray:
    """Bool ``(height, width)``: the limbs of every person as thick lines, the torso filled, a disc for the head.

    A person with one visible joint gets a small disc there; people without visible joints add nothing.
    """
    region = np.zeros((pose.height, pose.width), np.uint8)
    visible = pose.visible
    for person in range(pose.num_people):
        seen = visible[person]
        if not seen.any():
            continue
        points = pose.keypoints[person, :, :2]
        thickness = max(3, round(LIMB_FRACTION * person_size(points[seen])))
        pixels = [(round(x), round(y)) for x, y in points.tolist()]
        for a, b in COCO17_LIMBS:
            if seen[a] and seen[b]:
                cv2.line(region, pixels[a], pixels[b], 1, thickness)
        for joint in np.flatnonzero(seen):
            cv2.circle(region, pixels[joint], thickness // 2, 1, -1)
        if seen[list(TORSO)].all():
            cv2.fillPoly(region, [np.array([pixels[j] for j in TORSO], np.int32)], 1)
        if seen[NOSE]:
            cv2.circle(region, pixels[NOSE], thickness, 1, -1)
    return region.astype(bool)


def rectify_mask(
    height: int,
    width: int,
    poses: Iterable[PoseKeypoints],
    silhouette: np.ndarray | None = None,
    occluders: np.ndarray | None = None,
    grow: int = 16,
) -> np.ndarray:
    """Float32 ``(height, width)`` in {0, 1}: where a rectification pass may repaint.

    The union of the region of each pose (:func:`pose_region`, each on this canvas already) and the body
    ``silhouette`` (values above 0.5), dilated by ``grow`` px (an ellipse), then zero wherever ``occluders`` is above
    0.5 (objects in front of the person keep their pixels).
    """
    mask = np.zeros((height, width), bool)
    for pose in poses:
        if (pose.width, pose.height) != (width, height):
            raise ValueError(f"pose canvas {pose.width}x{pose.height} differs from the mask size {width}x{height}")
        mask |= pose_region(pose)
    if silhouette is not None:
        mask |= _binary(silhouette, height, width, "silhouette")
    if grow > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        mask = cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)
    if occluders is not None:
        mask &= ~_binary(occluders, height, width, "occluders")
    return mask.astype(np.float32)


def _binary(mask: np.ndarray, height: int, width: int, name: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != (height, width):
        raise ValueError(f"{name} mask is {mask.shape[1]}x{mask.shape[0]} but the image is {width}x{height}")
    return mask > 0.5
