"""Pose-sequence speed on CPU: tracking and smoothing a synthetic multi-person clip, side by side.

    python benchmarks/bench_pose_sequence.py [--frames 1000] [--people 5] [--repeats 3]

Each person walks a seeded random smooth path with 3 px detector jitter; each frame's detections come in a
random order and 2 % of them are missed, so tracking has real matching to do. Prints frames per second of
tracking, smoothing (gap bridging + forward/backward One-Euro) and both, best of ``--repeats``, and the share
of frames where every person kept their identity.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stablepose_core.poses.keypoints import PoseKeypoints
from stablepose_core.poses.sequence import PoseSequence
from stablepose_core.poses.smoothing import smooth_poses
from stablepose_core.poses.tracking import track_people

WIDTH, HEIGHT = 1920, 1080
# A standing person, offsets from the nose in pixels (COCO-17 order), about 200 px tall.
BODY = np.array(
    [[0, 0], [-6, -6], [6, -6], [-14, -2], [14, -2], [-30, 30], [30, 30], [-40, 70], [40, 70], [-45, 105],
     [45, 105], [-20, 110], [20, 110], [-22, 160], [22, 160], [-24, 205], [24, 205]],
    np.float32,
)  # fmt: skip


def synthetic_clip(frames: int, people: int, seed: int = 0) -> tuple[list[PoseKeypoints], np.ndarray]:
    """Shuffled, jittered detections per frame, and each detection's true identity ``(frames, people)``."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None]
    start = rng.uniform([200, 100], [WIDTH - 200, HEIGHT - 300], (people, 2))
    phase = rng.uniform(0, 2 * np.pi, (people, 2))
    path = start + 150 * np.sin(t[..., None] / 60 + phase)  # (frames, people, 2)
    poses, identities = [], np.full((frames, people), -1)
    for frame in range(frames):
        order = rng.permutation(people)
        kept = order[rng.random(people) > 0.02]
        points = np.ones((len(kept), 17, 3), np.float32)
        points[..., :2] = BODY + path[frame, kept, None] + rng.normal(0, 3, (len(kept), 17, 2))
        poses.append(PoseKeypoints(points, WIDTH, HEIGHT))
        identities[frame, : len(kept)] = kept
    return poses, identities


def best_rate(step: Callable[[], object], frames: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return frames / min(times)


def identities_kept(tracked: PoseSequence, poses: list[PoseKeypoints], identities: np.ndarray) -> float:
    """Share of frames where every slot holds the detection of one fixed true person."""
    slot_person: dict[int, int] = {}
    good = 0
    for frame, pose in enumerate(poses):
        ok = True
        for index, detection in enumerate(pose.keypoints):
            slot = int(np.flatnonzero((tracked.keypoints[frame] == detection).all(axis=(1, 2)))[0])
            ok &= slot_person.setdefault(slot, int(identities[frame, index])) == identities[frame, index]
        good += ok
    return good / len(poses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--people", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    poses, identities = synthetic_clip(args.frames, args.people)
    tracked = track_people(poses)
    track_rate = best_rate(lambda: track_people(poses), args.frames, args.repeats)
    smooth_rate = best_rate(lambda: smooth_poses(tracked), args.frames, args.repeats)
    both_rate = best_rate(lambda: smooth_poses(track_people(poses)), args.frames, args.repeats)
    print(f"{args.frames} frames x {args.people} people, {WIDTH}x{HEIGHT}, best of {args.repeats}")
    print(f"  tracking             {track_rate:10.0f} frames/s")
    print(f"  smoothing            {smooth_rate:10.0f} frames/s")
    print(f"  tracking + smoothing {both_rate:10.0f} frames/s")
    print(f"  identities kept in {100 * identities_kept(tracked, poses, identities):.1f} % of frames")
    print(f"  tracked slots: {tracked.num_people} (true people: {args.people})")


if __name__ == "__main__":
    main()
