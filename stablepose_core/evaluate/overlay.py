"""Picture of a pose score: the target and the detected skeletons over the image, per-joint error visible.

* the image, dimmed;
* the target pose as Stable-Pose saw it (:func:`..poses.skeleton.render_pose`, HumanSD colours), half transparent;
* the detected people as thin white skeletons;
* per labelled target joint of a matched person, a line from the target joint to the detected one and a dot at
  the detected joint, coloured by the joint's similarity (green 1 → yellow → red 0); a target joint the
  matched person lacks, and every joint of an unmatched target person, gets a red cross;
* the image's OKS and people count in the top-left corner.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..poses.keypoints import COCO17_LIMBS, COCO17_NAMES, PoseKeypoints
from ..poses.skeleton import draw_limbs, line_width, render_pose
from .score import ImageScore

DIM = 0.45  # image brightness under the drawing
TARGET_OPACITY = 0.6
DETECTED_COLOR = (255, 255, 255)
MISSING_COLOR = (255, 0, 0)


def similarity_color(similarity: float) -> tuple[int, int, int]:
    """RGB from red (0) through yellow (0.5) to green (1)."""
    value = float(np.clip(similarity, 0.0, 1.0))
    return int(255 * min(1.0, 2 * (1 - value))), int(255 * min(1.0, 2 * value)), 0


def draw_score_overlay(
    image: np.ndarray, target: PoseKeypoints, detected: PoseKeypoints, score: ImageScore
) -> np.ndarray:
    """uint8 RGB ``(H, W, 3)`` overlay; ``target`` and ``detected`` are on the image's canvas."""
    height, width = image.shape[:2]
    if (target.width, target.height) != (width, height) or (detected.width, detected.height) != (width, height):
        raise ValueError("target and detected poses must be on the image's canvas")
    thickness = line_width(width, height)
    canvas = image.astype(np.float32) * DIM
    pose = render_pose(target)
    drawn = pose.any(-1)
    canvas[drawn] = (1 - TARGET_OPACITY) * canvas[drawn] + TARGET_OPACITY * pose[drawn]
    canvas = np.ascontiguousarray(canvas.round().clip(0, 255).astype(np.uint8))
    found = [index for index in range(detected.num_people) if detected.visible[index].any()]
    draw_limbs(canvas, detected, found, max(1, thickness // 3), [DETECTED_COLOR] * len(COCO17_LIMBS))
    for person in score.people:
        for joint in person.joints:
            index = COCO17_NAMES.index(joint.name)
            start = _pixel(target.keypoints[person.target, index])
            if joint.error_px is None:
                _cross(canvas, start, max(3, thickness), max(1, thickness // 3))
                continue
            end = _pixel(detected.keypoints[person.detected, index])
            color = similarity_color(joint.similarity)
            cv2.line(canvas, start, end, color, max(1, thickness // 3), cv2.LINE_AA)
            cv2.circle(canvas, end, max(2, thickness // 2), color, -1, cv2.LINE_AA)
    draw_caption(canvas, f"OKS {score.oks:.2f}  people {score.people_found}/{score.people_target}")
    return canvas


def _pixel(point: np.ndarray) -> tuple[int, int]:
    return round(float(point[0])), round(float(point[1]))


def _cross(canvas: np.ndarray, centre: tuple[int, int], size: int, thickness: int) -> None:
    x, y = centre
    for dx in (-size, size):
        cv2.line(canvas, (x - dx, y - size), (x + dx, y + size), MISSING_COLOR, thickness, cv2.LINE_AA)


def draw_caption(canvas: np.ndarray, text: str) -> None:
    """White ``text`` on a black box in the top-left corner of ``canvas`` (uint8 RGB), in place; sized to the canvas."""
    scale = max(0.4, min(canvas.shape[:2]) / 700)
    weight = max(1, round(scale * 2))
    (text_width, text_height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, weight)
    margin = max(2, text_height // 3)
    cv2.rectangle(canvas, (0, 0), (text_width + 2 * margin, text_height + baseline + 2 * margin), (0, 0, 0), -1)
    origin = (margin, text_height + margin)
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), weight, cv2.LINE_AA)
