"""COCO object keypoint similarity (OKS) between people, and one-to-one matching of people by it.

OKS is COCO's keypoint similarity (pycocotools ``COCOeval.computeOks``) with the COCO-17 per-joint sigmas: for a
target (ground-truth) person with labelled joints *i* and a detected person,

    OKS = mean_i exp(-d_i² / (2 · area · (2 σ_i)²))

where ``d_i`` is the joint's distance in pixels and ``area`` the target person's object scale. The scale is the
one the released Stable-Pose / HumanSD evaluation chose (``utils/metrics/pose_metrics.py``): the width × height of
the box around the target person's keypoints, not a segmentation area (COCO) nor 0.53 × box (xtcocotools
without ``use_area``). The released code took that box over all 17 slots including the ``(-1, -1)`` placeholders
of absent joints; :func:`keypoint_area` takes it over the labelled joints only (``docs/evaluation.md``).

One difference from ``computeOks``, which reads every detected coordinate: a detected joint that is absent
(not visible, e.g. written as ``(0, 0, 0)``) contributes 0 instead of its distance to ``(0, 0)``.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

# pycocotools' kpt_oks_sigmas (COCO-17 order).
COCO17_SIGMAS = (
    np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89])
    / 10.0
)


def keypoint_area(points: np.ndarray, labelled: np.ndarray) -> np.ndarray:
    """Object scale (px²) per person: width × height of the box around its labelled joints.

    ``points`` ``(people, 17, ≥2)``, ``labelled`` bool ``(people, 17)``; a person without labelled joints gets 0.
    """
    points = np.asarray(points, np.float64)[..., :2]
    labelled = np.asarray(labelled, bool)
    low = np.where(labelled[..., None], points, np.inf).min(axis=1)
    high = np.where(labelled[..., None], points, -np.inf).max(axis=1)
    extent = np.where(labelled.any(axis=1)[:, None], high - low, 0.0)
    return extent[:, 0] * extent[:, 1]


def joint_similarity(
    target: np.ndarray,
    target_labelled: np.ndarray,
    detected: np.ndarray,
    detected_present: np.ndarray,
    area: np.ndarray | None = None,
) -> np.ndarray:
    """Per-joint similarity ``exp(-d² / (2 · area · (2σ)²))``, shaped ``(targets, detections, 17)``.

    0 where the detected joint is absent, NaN where the target joint is not labelled (it does not count).
    ``area`` defaults to :func:`keypoint_area` of the targets.
    """
    target = np.asarray(target, np.float64)[..., :2]
    detected = np.asarray(detected, np.float64)[..., :2]
    if area is None:
        area = keypoint_area(target, target_labelled)
    squared = ((target[:, None] - detected[None]) ** 2).sum(-1)
    scale = (2 * COCO17_SIGMAS) ** 2 * (np.asarray(area, np.float64)[:, None, None] + np.spacing(1)) * 2
    similarity = np.exp(-squared / scale)
    similarity = np.where(np.asarray(detected_present, bool)[None], similarity, 0.0)
    return np.where(np.asarray(target_labelled, bool)[:, None], similarity, np.nan)


def oks_matrix(joint_similarities: np.ndarray) -> np.ndarray:
    """OKS ``(targets, detections)``: the mean of :func:`joint_similarity` over each target's labelled joints
    (0 for a target without labelled joints)."""
    labelled = ~np.isnan(joint_similarities)
    count = labelled.sum(-1)
    total = np.where(labelled, joint_similarities, 0.0).sum(-1)
    return np.divide(total, count, out=np.zeros(total.shape), where=count > 0)


def match_people(oks: np.ndarray) -> list[tuple[int, int]]:
    """One-to-one (target, detection) pairs maximising the summed OKS (``scipy.optimize.linear_sum_assignment``);
    pairs with OKS 0 are left unmatched."""
    oks = np.asarray(oks, np.float64)
    if oks.size == 0:
        return []
    rows, cols = linear_sum_assignment(oks, maximize=True)
    return [(int(row), int(col)) for row, col in zip(rows, cols, strict=True) if oks[row, col] > 0]
