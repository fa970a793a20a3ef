"""Before/after picture of a rectification: image, depth, skeleton and result side by side, the numbers below.

``docs/rectify.md`` says how to read the numbers: the Stable-Pose Score (OKS against the target pose, higher is
better) and the plausibility score of the least plausible person (lower is better) of the first and the
corrected image.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .overlay import draw_caption

TILE_LABELS = ("image", "body depth", "skeleton", "result")


def number_line(name: str, before: float | None, after: float | None) -> str | None:
    """``"name 0.41 -> 0.78"`` (a missing side shown as ``?``), or None when both are missing."""
    if before is None and after is None:
        return None
    shown = ["?" if value is None else f"{value:.2f}" for value in (before, after)]
    return f"{name} {shown[0]} -> {shown[1]}"


def tile_preview(tiles: Sequence[np.ndarray], labels: Sequence[str], caption: str) -> np.ndarray:
    """uint8 RGB: the ``tiles`` (uint8 RGB, resized to the first one's size) in a row, each labelled in its corner,
    above a black band holding ``caption``."""
    height, width = tiles[0].shape[:2]
    row = []
    for tile, label in zip(tiles, labels, strict=True):
        if tile.shape[:2] != (height, width):
            tile = cv2.resize(tile, (width, height), interpolation=cv2.INTER_AREA)
        tile = np.ascontiguousarray(tile[..., :3])
        draw_caption(tile, label)
        row.append(tile)
    band = np.zeros((max(24, height // 8), width * len(row), 3), np.uint8)
    if caption:
        draw_caption(band, caption)
    return np.concatenate([np.concatenate(row, axis=1), band], axis=0)
