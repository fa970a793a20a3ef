"""Draw COCO-17 keypoints the way Stable-Pose's training images were drawn.

Reproduces ``plot_kpts`` of the official ``ldm/data/dataset_pose.py`` (HumanSD's drawing) with the
``humanart.yaml`` settings: black canvas; for each of the first 10 people, and for each of the 16 limbs in order,
a ``cv2.line`` of width 10 in colour *i* of seaborn's ``hls`` palette (``int(255 * c)`` per channel), then filled
circles of radius ``10 // 2`` at both ends; later drawing overwrites earlier. The colour tuple goes into the
array's channels unchanged and that array is the model's ``hint``, so the colours are RGB.

At 512 × 512 the output is pixel-equal to the official drawing (``tests/test_skeleton.py`` checks references
made by the official code). At other sizes the line width scales with the short side,
``max(1, round(10 * min(width, height) / 512))``, and the radius stays ``width // 2``.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import cv2
import numpy as np

from .keypoints import COCO17_LIMBS, PoseKeypoints

MAX_PEOPLE = 10  # official max_person_num
REFERENCE_SIZE = 512  # official image_size
REFERENCE_LINE_WIDTH = 10  # official skeleton_width


def hls_palette(n_colors: int, hue: float = 0.01, lightness: float = 0.6, saturation: float = 0.65) -> np.ndarray:
    """seaborn's ``hls_palette`` (the default behind ``color_palette("hls", n)``): evenly spaced hues, float RGB."""
    hues = np.linspace(0, 1, int(n_colors) + 1)[:-1]
    hues = (hues + hue) % 1
    return np.array([colorsys.hls_to_rgb(h, lightness, saturation) for h in hues])


LIMB_COLORS: tuple[tuple[int, int, int], ...] = tuple(
    (int(255 * r), int(255 * g), int(255 * b)) for r, g, b in hls_palette(len(COCO17_LIMBS))
)


def line_width(width: int, height: int) -> int:
    """Limb width in pixels for a canvas: 10 at a 512 short side, proportional to the short side elsewhere."""
    return max(1, int(np.floor(REFERENCE_LINE_WIDTH * min(width, height) / REFERENCE_SIZE + 0.5)))


def drawn_people(keypoints: PoseKeypoints) -> list[int]:
    """Indices of the people the official pipeline draws.

    The first :data:`MAX_PEOPLE`, each skipped when the sum of its pose array is not positive, where absent
    joints are the official ``(-1, -1, 0)`` (so someone with only a couple of joints near the top-left corner
    is skipped too, exactly as in training).
    """
    visible = keypoints.visible[:MAX_PEOPLE]
    official = np.where(visible[..., None], keypoints.keypoints[:MAX_PEOPLE].astype(np.float64), [-1.0, -1.0, 0.0])
    return [int(i) for i in np.flatnonzero(official.sum(axis=(1, 2)) > 0)]


def render_pose(keypoints: PoseKeypoints, width: int | None = None, height: int | None = None) -> np.ndarray:
    """Pose image, uint8 ``(height, width, 3)`` RGB, as Stable-Pose saw it in training.

    The canvas defaults to the keypoints' own; a different ``width`` × ``height`` stretches the keypoints onto
    it (use :meth:`PoseKeypoints.fit_to_canvas` first to keep proportions). Giving only one of the two keeps
    the keypoints' aspect ratio. At most the first :data:`MAX_PEOPLE` people are drawn.
    """
    if width is None and height is None:
        width, height = keypoints.width, keypoints.height
    elif height is None:
        height = max(1, round(keypoints.height * width / keypoints.width))
    elif width is None:
        width = max(1, round(keypoints.width * height / keypoints.height))
    if (width, height) != (keypoints.width, keypoints.height):
        keypoints = keypoints.scale_to(width, height)

    canvas = np.zeros((height, width, 3), np.uint8)
    draw_limbs(canvas, keypoints, drawn_people(keypoints), line_width(width, height))
    return canvas


def draw_limbs(
    canvas: np.ndarray,
    keypoints: PoseKeypoints,
    people: Sequence[int],
    thickness: int,
    colors: Sequence[tuple[int, int, int]] = LIMB_COLORS,
) -> None:
    """Draw ``people``'s visible limbs onto ``canvas`` (uint8 RGB, the keypoints' size) in place, in the official
    order: per limb a line of ``thickness`` px in ``colors[limb]``, then filled circles at both ends."""
    visible = keypoints.visible
    for person in people:
        # int() truncates like the official int(kpts[k, 0]); present joints are on the canvas, so x, y >= 0.
        points = [(int(x), int(y)) for x, y in keypoints.keypoints[person, :, :2].tolist()]
        for (a, b), color in zip(COCO17_LIMBS, colors, strict=True):
            if visible[person, a] and visible[person, b]:
                cv2.line(canvas, points[a], points[b], color, thickness)
                cv2.circle(canvas, points[a], thickness // 2, color, -1)
                cv2.circle(canvas, points[b], thickness // 2, color, -1)
