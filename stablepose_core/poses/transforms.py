"""Geometric transforms of pose sequences: scale, translate, rotate, mirror, fit, and limb-length retargeting.

All act on every frame of a :class:`.sequence.PoseSequence` alike (so a clip moves as one) and move
absent joints' stored positions too, except that all-zero (never seen) joints stay ``(0, 0, 0)``. Mirroring
swaps left and right joints (:data:`.keypoints.COCO17_FLIP_PAIRS`) so limb colours stay anatomical, with
``x -> width - 1 - x`` as :meth:`.keypoints.PoseKeypoints.flip_horizontal`. Retargeting keeps every limb's
direction (hence every joint angle) and gives it the reference person's length, walking the official
skeleton's tree (:data:`.keypoints.COCO17_LIMBS`) outwards from the shoulders; the result is placed so its
torso centre (mid-hips, else mid-shoulders) stays where the original's was.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from .keypoints import COCO17_FLIP_PAIRS, COCO17_LIMBS, COCO17_NAMES, VISIBILITY_THRESHOLD, check_finite
from .sequence import PoseSequence

LEFT_SHOULDER = COCO17_NAMES.index("left_shoulder")
HIPS = (COCO17_NAMES.index("left_hip"), COCO17_NAMES.index("right_hip"))
SHOULDERS = (LEFT_SHOULDER, COCO17_NAMES.index("right_shoulder"))
MIN_LIMB_PX = 0.01  # a reference limb shorter than this has no length to copy


def _never_seen(points: np.ndarray) -> np.ndarray:
    return ~points.any(-1)


def affine(sequence: PoseSequence, matrix: np.ndarray, width: int | None = None, height: int | None = None):
    """Apply a 2 × 3 matrix ``[A | b]`` to every joint (``p -> A p + b``); optionally a new canvas size."""
    matrix = np.asarray(matrix, np.float64)
    if not np.isfinite(matrix).all():
        raise ValueError("the transform is not finite (a NaN or infinite parameter)")
    points = sequence.keypoints.copy()
    moved = points[..., :2].astype(np.float64) @ matrix[:, :2].T + matrix[:, 2]
    points[..., :2] = np.where(_never_seen(points)[..., None], 0.0, moved)
    return PoseSequence(points, width or sequence.width, height or sequence.height)


def _about(center: tuple[float, float], linear: np.ndarray) -> np.ndarray:
    """The 2 × 3 matrix of ``linear`` applied about ``center``."""
    center = np.asarray(center, np.float64)
    return np.concatenate([linear, (center - linear @ center)[:, None]], axis=1)


def canvas_center(sequence: PoseSequence) -> tuple[float, float]:
    return ((sequence.width - 1) / 2, (sequence.height - 1) / 2)


def scale(sequence: PoseSequence, factor: float, center: tuple[float, float] | None = None) -> PoseSequence:
    """Scale by ``factor`` about ``center`` (default: the canvas centre)."""
    check_finite(scale=factor)
    if factor <= 0:
        raise ValueError(f"scale factor must be positive, got {factor}")
    return affine(sequence, _about(center or canvas_center(sequence), np.eye(2) * factor))


def translate(sequence: PoseSequence, dx: float, dy: float) -> PoseSequence:
    """Move by ``(dx, dy)`` pixels."""
    check_finite(translate_x=dx, translate_y=dy)
    return affine(sequence, np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]]))


def rotate(sequence: PoseSequence, degrees: float, center: tuple[float, float] | None = None) -> PoseSequence:
    """Rotate by ``degrees`` clockwise on screen (y points down) about ``center`` (default: canvas centre)."""
    check_finite(rotate_degrees=degrees)
    angle = np.deg2rad(degrees)
    linear = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return affine(sequence, _about(center or canvas_center(sequence), linear))


def _flip_order() -> np.ndarray:
    order = np.arange(len(COCO17_NAMES))
    for left, right in COCO17_FLIP_PAIRS:
        order[left], order[right] = right, left
    return order


def mirror(sequence: PoseSequence) -> PoseSequence:
    """Mirror left-right with left and right joints swapped (an involution: twice is the identity)."""
    flipped = affine(sequence, np.array([[-1.0, 0.0, sequence.width - 1], [0.0, 1.0, 0.0]]))
    return flipped.replace(flipped.keypoints[:, :, _flip_order()])


def fit_to_canvas(sequence: PoseSequence, width: int, height: int, mode: str = "fit") -> PoseSequence:
    """Move the sequence onto a ``width`` × ``height`` canvas.

    ``fit``: scale uniformly and centre (letterbox, aspect kept); ``stretch``: scale x and y independently;
    ``fill``: scale uniformly and centre so the canvas is covered (joints beyond the edges are not drawn).
    """
    if width < 1 or height < 1:
        raise ValueError(f"canvas size must be positive, got {width}x{height}")
    sx, sy = width / sequence.width, height / sequence.height
    if mode == "stretch":
        linear = np.diag([sx, sy])
    elif mode in ("fit", "fill"):
        linear = np.eye(2) * (min(sx, sy) if mode == "fit" else max(sx, sy))
    else:
        raise ValueError(f'mode must be "fit", "stretch" or "fill", got {mode!r}')
    shift = np.array([width, height]) / 2 - linear @ np.array([sequence.width, sequence.height]) / 2
    return affine(sequence, np.concatenate([linear, shift[:, None]], axis=1), width, height)


def _tree_order() -> list[tuple[int, int]]:
    """The official limbs as (parent, child), breadth first from the left shoulder."""
    neighbours: dict[int, list[int]] = {joint: [] for joint in range(len(COCO17_NAMES))}
    for a, b in COCO17_LIMBS:
        neighbours[a].append(b)
        neighbours[b].append(a)
    order, seen, queue = [], {LEFT_SHOULDER}, deque([LEFT_SHOULDER])
    while queue:
        parent = queue.popleft()
        for child in neighbours[parent]:
            if child not in seen:
                seen.add(child)
                order.append((parent, child))
                queue.append(child)
    return order


TREE = _tree_order()


def _torso_center(points: np.ndarray) -> np.ndarray | None:
    for pair in (HIPS, SHOULDERS):
        present = [joint for joint in pair if points[joint, 2] > VISIBILITY_THRESHOLD]
        if present:
            return points[present, :2].mean(0)
    return None


def limb_lengths(person: np.ndarray) -> dict[tuple[int, int], float]:
    """Lengths of the tree limbs whose both joints are present, of one ``(17, 3)`` person."""
    present = person[:, 2] > VISIBILITY_THRESHOLD
    return {(a, b): float(np.hypot(*(person[b, :2] - person[a, :2]))) for a, b in TREE if present[a] and present[b]}


def retarget_person(person: np.ndarray, lengths: dict[tuple[int, int], float]) -> np.ndarray:
    """One ``(17, 3)`` person with each limb in ``lengths`` set to that length, its direction kept.

    A joint whose limb cannot be retargeted (a joint missing, or no reference length) moves with its parent.
    """
    present = person[:, 2] > VISIBILITY_THRESHOLD
    if not present.any():
        return person.copy()
    out = person.astype(np.float64).copy()
    offset = np.zeros((len(COCO17_NAMES), 2))
    for a, b in TREE:
        direction = person[b, :2].astype(np.float64) - person[a, :2]
        norm = np.hypot(*direction)
        if present[a] and present[b] and (a, b) in lengths and norm > 0:
            out[b, :2] = out[a, :2] + direction / norm * lengths[(a, b)]
            offset[b] = out[b, :2] - person[b, :2]
        else:
            offset[b] = offset[a]
            out[b, :2] = person[b, :2] + offset[b]
    before, after = _torso_center(person), _torso_center(out)
    if before is not None and after is not None:
        out[:, :2] += before - after
    out[~person.any(-1)] = 0.0
    return out.astype(np.float32)


def retarget(sequence: PoseSequence, reference: np.ndarray) -> PoseSequence:
    """Every person of every frame gets the limb lengths of ``reference`` (one ``(17, 3)`` person); a reference
    with a limb of (almost) no length is refused by name, as it would collapse that limb of every person."""
    lengths = limb_lengths(np.asarray(reference, np.float32))
    if not lengths:
        raise ValueError("the reference person has no limb with both joints present: nothing to take lengths from")
    collapsed = [f"{COCO17_NAMES[a]}-{COCO17_NAMES[b]}" for (a, b), length in lengths.items() if length < MIN_LIMB_PX]
    if collapsed:
        shown = ", ".join(collapsed[:4]) + (f" and {len(collapsed) - 4} more" if len(collapsed) > 4 else "")
        raise ValueError(
            f"the reference person has limbs of no length ({shown}: both joints on one point); pick a reference "
            "frame or person whose body is fully drawn"
        )
    points = sequence.keypoints.copy()
    for frame in range(sequence.num_frames):
        for person in range(sequence.num_people):
            points[frame, person] = retarget_person(points[frame, person], lengths)
    return sequence.replace(points)
