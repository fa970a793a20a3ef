"""The editor's keyframe document: key poses on a timeline, and the clip they make.

``{"format": "stable-pose-coco17-keyframes", "width", "height", "joints", "frames": N, "curve": "linear",
"keys": [{"frame": f, "people": [[[x, y, c] × 17], ...]}, ...]}`` — the ``pose_json`` of a
``StablePoseEditor`` node whose edit spans several frames (a single pose stays a ``stable-pose-coco17``
document). The clip is :func:`.interpolation.interpolate_keys` of the keys; the node and the editor's
``/stable_pose/interpolate`` route both call :func:`clip_from_keyframes`, so what the editor plays is what
the node outputs. Person k of every key is the same person (keys with fewer people get absent slots).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .interpolation import CURVES, check_clip_size, interpolate_keys
from .keypoints import COCO17_NAMES, PoseDataError, canvas_side, coco17_people
from .sequence import JOINTS, PoseSequence

KEYFRAMES_FORMAT = "stable-pose-coco17-keyframes"
MAX_FRAMES = 100_000  # and at most MAX_CLIP_POSES poses (frames × people) in all


def key_people(key: dict[str, Any]) -> np.ndarray:
    """``(P, 17, 3)`` people of one key; :class:`PoseDataError` names the key's frame and the bad person or joint."""
    try:
        return coco17_people(key.get("people"))
    except PoseDataError as error:
        raise PoseDataError(f"key at frame {key['frame']}: {error}") from None


def _positive_int(data: dict[str, Any], key: str, limit: int) -> int:
    value = data.get(key)
    if not (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= limit):
        raise ValueError(f"keyframe document needs {key!r}: a whole number in 1..{limit}, got {value!r}")
    return value


class Keyframes(NamedTuple):
    """A keyframe document read and checked: :func:`.interpolation.interpolate_keys`' arguments."""

    keys: PoseSequence
    key_frames: list[int]
    frames: int
    curve: str


def clip_from_keyframes(data: Any) -> PoseSequence:
    """The clip of a keyframe document (a parsed JSON object); ``ValueError`` says what is wrong with it."""
    return interpolate_keys(*read_keyframes(data))


def read_keyframes(data: Any) -> Keyframes:
    """The keys of a keyframe document, checked (the clip's size within :data:`.interpolation.MAX_CLIP_POSES`
    included) but not interpolated: quick, in time linear in the document's size."""
    if not isinstance(data, dict) or data.get("format") != KEYFRAMES_FORMAT:
        raise ValueError(f'not a "{KEYFRAMES_FORMAT}" document')
    if list(data.get("joints", COCO17_NAMES)) != list(COCO17_NAMES):
        raise ValueError("joints must be the COCO-17 names in COCO order")
    width, height = canvas_side("width", data.get("width")), canvas_side("height", data.get("height"))
    frames = _positive_int(data, "frames", MAX_FRAMES)
    curve = data.get("curve", "linear")
    if curve not in CURVES:
        raise ValueError(f"curve must be one of {CURVES}, got {curve!r}")
    keys = data.get("keys")
    if not isinstance(keys, list) or not keys:
        raise ValueError('keyframe document needs "keys": a non-empty list of {"frame", "people"}')
    for index, key in enumerate(keys):
        if not isinstance(key, dict) or not isinstance(key.get("frame"), int) or isinstance(key.get("frame"), bool):
            raise ValueError(f'key {index} must be {{"frame": whole number, "people": [...]}}')
    if len(keys) > frames:
        raise ValueError(f"{len(keys)} keys do not fit a clip of {frames} frames: give at most one key per frame")
    check_clip_size(frames, max(len(key["people"]) if isinstance(key.get("people"), list) else 0 for key in keys))
    keys = sorted(keys, key=lambda key: key["frame"])
    people = [key_people(key) for key in keys]
    points = np.zeros((len(keys), max(len(p) for p in people), JOINTS, 3), np.float32)
    for index, key_points in enumerate(people):
        points[index, : len(key_points)] = key_points
    return Keyframes(PoseSequence(points, width, height), [key["frame"] for key in keys], frames, curve)


def keyframes_document(keys: dict[int, np.ndarray], frames: int, width: int, height: int, curve: str) -> dict:
    """A keyframe document from ``{frame: (people, 17, 3)}`` (the inverse of :func:`clip_from_keyframes`' input)."""
    return {
        "format": KEYFRAMES_FORMAT,
        "width": width,
        "height": height,
        "joints": list(COCO17_NAMES),
        "frames": frames,
        "curve": curve,
        "keys": [{"frame": int(frame), "people": np.asarray(keys[frame]).tolist()} for frame in sorted(keys)],
    }
