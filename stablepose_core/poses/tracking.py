"""Person identities across frames: OKS matching with the Hungarian algorithm, and picking people by identity.

Each frame's detections are matched to the tracks alive so far by Object Keypoint Similarity (COCO's OKS,
with COCO's per-joint sigmas), maximised jointly with :func:`scipy.optimize.linear_sum_assignment` (the
Hungarian algorithm), as in PoseTrack-style top-down trackers. A track's pose is predicted forward at its last
velocity, so people crossing each other keep their identities; a track not matched for ``max_missed`` frames
ends, and a detection no track claims (OKS below ``min_similarity``) starts a new identity. The result is a
:class:`.sequence.PoseSequence` whose slot k holds one identity at a time (absent frames: all-zero people),
slots ordered by first appearance. An identity that ended frees its slot for the next newcomer (the slot free
longest first), so a clip costs as many slots as people tracked at once, not as people ever seen; at most
:data:`MAX_TRACKS` at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from .keypoints import VISIBILITY_THRESHOLD, PoseKeypoints
from .sequence import JOINTS, PoseSequence

# COCO keypoint sigmas (pycocotools ``COCOeval``), COCO-17 order.
COCO17_SIGMAS = (
    np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89])
    / 10.0
)
DEFAULT_MIN_SIMILARITY = 0.1
DEFAULT_MAX_MISSED = 10
MAX_TRACKS = 100  # people tracked at once (slots in the output)


def bbox_area(points: np.ndarray) -> np.ndarray:
    """Area of the box around each person's present joints, ``(..., 17, 3)`` -> ``(...)`` (0 when none)."""
    present = points[..., 2] > VISIBILITY_THRESHOLD
    extent = [
        np.where(present, points[..., axis], -np.inf).max(-1) - np.where(present, points[..., axis], np.inf).min(-1)
        for axis in (0, 1)
    ]
    return np.where(present.any(-1), extent[0] * extent[1], 0.0)


def object_keypoint_similarity(tracks: np.ndarray, detections: np.ndarray) -> np.ndarray:
    """COCO OKS between ``(M, 17, 3)`` tracks and ``(N, 17, 3)`` detections -> ``(M, N)`` in [0, 1].

    ``exp(-d² / (2 s² k²))`` averaged over the joints present in both, with ``s²`` the track's box area
    (COCO uses the annotated area; the keypoint box is its stand-in here) and ``k = 2σ``; 0 when they share
    no joint.
    """
    both = (tracks[:, None, :, 2] > VISIBILITY_THRESHOLD) & (detections[None, :, :, 2] > VISIBILITY_THRESHOLD)
    distance2 = ((tracks[:, None, :, :2] - detections[None, :, :, :2]) ** 2).sum(-1)
    scale2 = np.maximum(bbox_area(tracks), 1.0)[:, None, None]
    similarity = np.exp(-distance2 / (2 * scale2 * (2 * COCO17_SIGMAS) ** 2))
    count = both.sum(-1)
    return np.where(count > 0, (similarity * both).sum(-1) / np.maximum(count, 1), 0.0)


@dataclass
class _Track:
    identity: int
    last: np.ndarray  # (17, 3) last matched pose
    velocity: np.ndarray = field(default_factory=lambda: np.zeros((JOINTS, 2), np.float32))
    last_frame: int = 0

    def predict(self, frame: int) -> np.ndarray:
        predicted = self.last.copy()
        predicted[:, :2] += self.velocity * (frame - self.last_frame)
        return predicted

    def update(self, pose: np.ndarray, frame: int) -> None:
        both = (pose[:, 2] > VISIBILITY_THRESHOLD) & (self.last[:, 2] > VISIBILITY_THRESHOLD)
        step = (pose[:, :2] - self.last[:, :2]) / max(frame - self.last_frame, 1)
        self.velocity = np.where(both[:, None], step, 0.0).astype(np.float32)
        self.last, self.last_frame = pose, frame


def _real_people(pose: PoseKeypoints) -> np.ndarray:
    """The people of a frame with at least one present joint."""
    return pose.keypoints[(pose.keypoints[..., 2] > VISIBILITY_THRESHOLD).any(-1)]


def _free_slot(tracks: list[_Track], index: int, max_missed: int) -> int | None:
    """The slot of the track that ended longest ago (not matched for more than ``max_missed`` frames), or None."""
    ended = [track for track in tracks if index - track.last_frame > max_missed + 1]
    return min(ended, key=lambda track: track.last_frame).identity if ended else None


def _start_tracks(tracks: list[_Track], detections: np.ndarray, index: int, max_missed: int) -> list[_Track]:
    """New tracks for ``detections``, each in the slot of an ended track or else a new slot (at most
    :data:`MAX_TRACKS` slots)."""
    started = []
    for pose in detections:
        slot = _free_slot(tracks, index, max_missed)
        if slot is None:
            if len(tracks) >= MAX_TRACKS:
                raise ValueError(
                    f"more than {MAX_TRACKS} people tracked at once at frame {index}; lower max_missed (people "
                    "not seen for that many frames still hold their identity) or select fewer people first"
                )
            slot = len(tracks)
            tracks.append(_Track(slot, pose, last_frame=index))
        else:
            tracks[slot] = _Track(slot, pose, last_frame=index)
        started.append(tracks[slot])
    return started


def track_people(
    frames: Sequence[PoseKeypoints] | PoseSequence,
    min_similarity: float = DEFAULT_MIN_SIMILARITY,
    max_missed: int = DEFAULT_MAX_MISSED,
) -> PoseSequence:
    """Give every person a stable slot across frames (see the module docstring).

    ``min_similarity``: the OKS a detection needs to continue a track (higher: fewer wrong joins, more broken
    tracks). ``max_missed``: frames a track survives without a match (higher: bridges longer occlusions, but
    a newcomer may inherit an identity).
    """
    if not 0 <= min_similarity <= 1:
        raise ValueError(f"min_similarity must be in [0, 1], got {min_similarity}")
    if max_missed < 0:
        raise ValueError(f"max_missed must be >= 0, got {max_missed}")
    poses = frames.poses() if isinstance(frames, PoseSequence) else list(frames)
    canvas = PoseSequence.from_poses(poses)  # validates: frames present, one canvas size
    tracks: list[_Track] = []  # slot k holds the latest identity in slot k
    assigned: list[list[tuple[int, np.ndarray]]] = []
    for index, pose in enumerate(poses):
        detections = _real_people(pose)
        alive = [track for track in tracks if index - track.last_frame <= max_missed + 1]
        matched: set[int] = set()
        if alive and len(detections):
            predicted = np.stack([track.predict(index) for track in alive])
            similarity = object_keypoint_similarity(predicted, detections)
            rows, cols = linear_sum_assignment(similarity, maximize=True)
            for row, col in zip(rows, cols, strict=True):
                if similarity[row, col] >= min_similarity and similarity[row, col] > 0:
                    alive[row].update(detections[col], index)
                    matched.add(int(col))
        new = [col for col in range(len(detections)) if col not in matched]
        started = _start_tracks(tracks, detections[new], index, max_missed)
        updated = [track for track in alive if track.last_frame == index]
        assigned.append([(track.identity, track.last) for track in (*updated, *started)])
    points = np.zeros((len(poses), len(tracks), JOINTS, 3), np.float32)
    for index, matches in enumerate(assigned):
        for slot, pose in matches:
            points[index, slot] = pose
    return PoseSequence(points, canvas.width, canvas.height)


def select_people(sequence: PoseSequence, mode: str, count: int) -> PoseSequence:
    """Keep identities: ``mode="person"`` keeps slot ``count`` (0-based) alone; ``"largest"`` keeps the
    ``count`` people with the largest mean box area over the frames they appear in, in their slot order."""
    if mode == "person":
        if not 0 <= count < sequence.num_people:
            raise ValueError(f"person {count} does not exist: the sequence has {sequence.num_people} people (0-based)")
        keep = [count]
    elif mode == "largest":
        if count < 1:
            raise ValueError(f"count must be at least 1 to keep the largest people, got {count}")
        area = bbox_area(sequence.keypoints)  # (frames, people)
        seen = sequence.present.any(-1)
        mean_area = np.where(seen, area, 0).sum(0) / np.maximum(seen.sum(0), 1)
        keep = sorted(np.argsort(-mean_area, kind="stable")[:count].tolist())
    else:
        raise ValueError(f'mode must be "person" or "largest", got {mode!r}')
    return sequence.replace(sequence.keypoints[:, keep])
