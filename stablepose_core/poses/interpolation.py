"""Key poses -> a clip: in-betweens of key poses placed on frame numbers.

People are matched by identity (slot k of every key is the same person, as after tracking or in the editor).
Between two keys at frames ``a < b``, frame ``f`` takes ``t = curve((f - a) / (b - a))``:

* a joint present in both keys moves ``(1 - t) * p_a + t * p_b``, its confidence likewise;
* a joint present in only one key *fades*: it stays attached to the body (moved by the mean displacement of
  the person's joints present in both keys) while its confidence goes linearly to 0, so it disappears (the
  renderer drops it below 0.02) instead of jumping in or out at a full-confidence place;
* frames before the first key and after the last hold those keys.

Curves: ``linear`` and ``ease_in_out`` (smoothstep, ``3t² - 2t³``: zero speed at each key). The editor's
timeline calls the same function through the pack's server route, so what it plays is what the node outputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .keypoints import VISIBILITY_THRESHOLD
from .sequence import PoseSequence

CURVES = ("linear", "ease_in_out")
# The most poses (frames × people) one clip may hold: ~6 MB of keypoints, ~30 MB as the editor route's JSON.
# An unchecked request of a few KB could ask for gigabytes (100,000 frames × 50 people).
MAX_CLIP_POSES = 50_000


def check_clip_size(frames: int, people: int) -> None:
    """Refuse a clip of more than :data:`MAX_CLIP_POSES` poses (frames × people), before any work."""
    if frames * people > MAX_CLIP_POSES:
        raise ValueError(
            f"{frames} frames × {people} people = {frames * people} poses, more than the {MAX_CLIP_POSES} one clip "
            "may hold; use fewer frames or people (or interpolate the clip in parts)"
        )


def ease(t: np.ndarray, curve: str) -> np.ndarray:
    """Map linear progress ``t`` in [0, 1] through ``curve``."""
    if curve == "linear":
        return t
    if curve == "ease_in_out":
        return t * t * (3 - 2 * t)
    raise ValueError(f"curve must be one of {CURVES}, got {curve!r}")


def _check_keys(keys: PoseSequence, key_frames: Sequence[int], num_frames: int) -> np.ndarray:
    frames = np.asarray([int(frame) for frame in key_frames])
    if len(frames) != keys.num_frames:
        raise ValueError(f"got {keys.num_frames} key poses but {len(frames)} frame numbers: give one frame per key")
    if num_frames < 1:
        raise ValueError(f"the clip needs at least 1 frame, got {num_frames}")
    if (np.diff(frames) <= 0).any():
        raise ValueError(f"key frame numbers must be strictly increasing, got {frames.tolist()}")
    if frames[0] < 0 or frames[-1] >= num_frames:
        raise ValueError(f"key frame numbers must lie in 0..{num_frames - 1}, got {frames.tolist()}")
    check_clip_size(num_frames, keys.num_people)
    return frames


def blend(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """In-between of two key frames ``(people, 17, 3)`` at eased progress ``t`` (rules in the module doc)."""
    in_a, in_b = a[..., 2] > VISIBILITY_THRESHOLD, b[..., 2] > VISIBILITY_THRESHOLD
    both = in_a & in_b
    shift = np.where(both[..., None], b[..., :2] - a[..., :2], 0.0).sum(-2) / np.maximum(both.sum(-1), 1)[..., None]
    out = np.zeros_like(a)
    out[..., :2] = np.where(
        both[..., None],
        (1 - t) * a[..., :2] + t * b[..., :2],
        np.where(in_a[..., None], a[..., :2] + t * shift[:, None], b[..., :2] - (1 - t) * shift[:, None]),
    )
    confidence = np.where(both, (1 - t) * a[..., 2] + t * b[..., 2], np.where(in_a, (1 - t) * a[..., 2], t * b[..., 2]))
    out[..., 2] = confidence
    return np.where((in_a | in_b)[..., None], out, 0.0)


def interpolate_keys(
    keys: PoseSequence, key_frames: Sequence[int], num_frames: int, curve: str = "linear"
) -> PoseSequence:
    """A ``num_frames`` clip through the key poses (one key per frame number, increasing)."""
    frames = _check_keys(keys, key_frames, num_frames)
    ease(np.zeros(1), curve)  # validates the curve name before any work
    out = np.empty((num_frames, keys.num_people, *keys.keypoints.shape[2:]), np.float32)
    for frame in range(num_frames):
        after = int(np.searchsorted(frames, frame, side="right"))
        if after == 0:
            out[frame] = keys.keypoints[0]
        elif after == len(frames) or frames[after - 1] == frame:
            out[frame] = keys.keypoints[after - 1]
        else:
            start, end = frames[after - 1], frames[after]
            t = float(ease(np.float64((frame - start) / (end - start)), curve))
            out[frame] = blend(keys.keypoints[after - 1], keys.keypoints[after], t)
    return keys.replace(out)
