"""Temporal smoothing of tracked pose sequences: gap bridging, then a confidence-aware One-Euro filter.

The One-Euro filter (Casiez, Roussel, Vogel, CHI 2012) is a low-pass filter whose cutoff rises with speed:
``cutoff = min_cutoff + beta * |speed|``, so a still joint is smoothed hard (no jitter) and a fast one
lightly (little lag). Here it runs per person slot and joint on x and y, vectorised over all of them, with
the speed measured in *person heights per second* (each person's median box diagonal), so ``beta`` means the
same for a small and a large person. Confidence-aware: a joint below ``min_confidence`` is a gap, and a
present joint's update weight is scaled by its confidence, so an uncertain detection moves the estimate less.
Gaps of at most ``max_gap`` frames between two observations are bridged by linear interpolation (confidence
the smaller of the two ends); longer gaps stay missing and the filter restarts after them.

The filter is causal and so lags behind motion; a whole clip is known in advance, so :func:`smooth_poses` runs
it forwards and backwards in time and averages the two passes, whose lags cancel (exactly, for constant
velocity). Measured on a known path with 4 px jitter (``tests/test_pose_sequences.py``): mean error 5.05 px ->
under 2 px with the defaults.
"""

from __future__ import annotations

import itertools

import numpy as np

from .keypoints import VISIBILITY_THRESHOLD, check_finite
from .sequence import PoseSequence

DEFAULT_MIN_CUTOFF = 1.0  # Hz
DEFAULT_BETA = 1.0  # per (person height / s)
DEFAULT_DERIVATIVE_CUTOFF = 1.0  # Hz
DEFAULT_FPS = 30.0
DEFAULT_MAX_GAP = 5


def _alpha(cutoff: np.ndarray | float, fps: float) -> np.ndarray:
    """Smoothing factor of a first-order low-pass at ``cutoff`` Hz sampled at ``fps`` (One-Euro's α)."""
    tau = 1.0 / (2 * np.pi * np.asarray(cutoff, np.float64))
    return 1.0 / (1.0 + tau * fps)


def bridge_gaps(sequence: PoseSequence, max_gap: int, min_confidence: float = VISIBILITY_THRESHOLD) -> PoseSequence:
    """Fill runs of at most ``max_gap`` missing frames between two observations of a joint, linearly.

    Missing = confidence at most ``min_confidence``. Leading and trailing gaps, and longer ones, are left as
    they are. A bridged joint gets the smaller confidence of the two observations around the gap.
    """
    if max_gap < 0:
        raise ValueError(f"max_gap must be >= 0, got {max_gap}")
    points = sequence.keypoints.copy()
    present = points[..., 2] > min_confidence
    frames = np.arange(sequence.num_frames)
    for person, joint in zip(*np.nonzero(present.any(0)), strict=True):
        seen = np.flatnonzero(present[:, person, joint])
        for start, end in itertools.pairwise(seen):
            if 1 < end - start <= max_gap + 1:
                inside = frames[start + 1 : end]
                t = ((inside - start) / (end - start))[:, None]
                a, b = points[start, person, joint], points[end, person, joint]
                points[inside, person, joint, :2] = a[:2] * (1 - t) + b[:2] * t
                points[inside, person, joint, 2] = min(a[2], b[2])
    return sequence.replace(points)


def person_scale(sequence: PoseSequence, min_confidence: float = VISIBILITY_THRESHOLD) -> np.ndarray:
    """Each slot's size in pixels, ``(people,)``: the median over frames of its joints' box diagonal (>= 1)."""
    present = sequence.keypoints[..., 2] > min_confidence
    xy = sequence.keypoints[..., :2]
    high = np.where(present[..., None], xy, -np.inf).max(-2)
    low = np.where(present[..., None], xy, np.inf).min(-2)
    diagonal = np.where(present.any(-1), np.hypot(*np.moveaxis(high - low, -1, 0)), np.nan)
    scale = np.ones(sequence.num_people)
    for person in range(sequence.num_people):
        values = diagonal[:, person][np.isfinite(diagonal[:, person])]
        if values.size:
            scale[person] = max(float(np.median(values)), 1.0)
    return scale


def one_euro(
    sequence: PoseSequence,
    min_cutoff: float = DEFAULT_MIN_CUTOFF,
    beta: float = DEFAULT_BETA,
    fps: float = DEFAULT_FPS,
    derivative_cutoff: float = DEFAULT_DERIVATIVE_CUTOFF,
    min_confidence: float = VISIBILITY_THRESHOLD,
    confidence_weighted: bool = True,
) -> PoseSequence:
    """One-Euro filter per slot and joint (missing joints restart it; see the module docstring)."""
    check_finite(min_cutoff=min_cutoff, beta=beta, fps=fps, derivative_cutoff=derivative_cutoff)
    if min_cutoff <= 0 or derivative_cutoff <= 0 or fps <= 0 or beta < 0:
        raise ValueError(
            f"need min_cutoff > 0, derivative_cutoff > 0, fps > 0 and beta >= 0; got min_cutoff={min_cutoff}, "
            f"derivative_cutoff={derivative_cutoff}, fps={fps}, beta={beta}"
        )
    points = sequence.keypoints.astype(np.float64)
    present = points[..., 2] > min_confidence
    weight = np.clip(points[..., 2], 0, 1) if confidence_weighted else np.ones(points.shape[:-1])
    scale = person_scale(sequence, min_confidence)[:, None, None]  # (people, 1, 1)
    alpha_derivative = _alpha(derivative_cutoff, fps)
    out = points.copy()
    estimate = points[0, ..., :2].copy()
    derivative = np.zeros_like(estimate)
    running = present[0].copy()
    for frame in range(1, sequence.num_frames):
        observed = present[frame]
        value = points[frame, ..., :2]
        continuing = observed & running
        raw_derivative = (value - estimate) * fps / scale
        derivative = np.where(continuing[..., None], derivative + alpha_derivative * (raw_derivative - derivative), 0.0)
        cutoff = min_cutoff + beta * np.linalg.norm(derivative, axis=-1)
        alpha = _alpha(cutoff, fps) * weight[frame]
        smoothed = estimate + alpha[..., None] * (value - estimate)
        estimate = np.where(continuing[..., None], smoothed, value)
        running = observed
        out[frame, ..., :2] = np.where(observed[..., None], estimate, points[frame, ..., :2])
    return sequence.replace(out.astype(np.float32))


def smooth_poses(
    sequence: PoseSequence,
    min_cutoff: float = DEFAULT_MIN_CUTOFF,
    beta: float = DEFAULT_BETA,
    max_gap: int = DEFAULT_MAX_GAP,
    fps: float = DEFAULT_FPS,
    min_confidence: float = VISIBILITY_THRESHOLD,
) -> PoseSequence:
    """Bridge short gaps, then One-Euro filter every slot's joints forwards and backwards and average: the
    pack's pose smoother (zero lag for a whole clip)."""
    bridged = bridge_gaps(sequence, max_gap, min_confidence)
    forward = one_euro(bridged, min_cutoff, beta, fps, min_confidence=min_confidence).keypoints
    reversed_ = bridged.replace(bridged.keypoints[::-1])
    backward = one_euro(reversed_, min_cutoff, beta, fps, min_confidence=min_confidence).keypoints[::-1]
    return bridged.replace((forward + backward) / 2)
