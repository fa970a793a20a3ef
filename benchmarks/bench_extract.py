"""Pose extraction speed on CPU: the embedded BlazePose backend, the skeleton drawing, and both together.

    python benchmarks/bench_extract.py [--frames 50] [--size 512]

The frames are ``skimage.data.astronaut()`` resized to ``--size`` squared; each frame is detected independently
(``static_image_mode``, as the node runs it). Prints frames per second, and where mediapipe 0.10.14 is installed
(Python <= 3.12) its own BlazePose measured alternately with the built-in one and the ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stablepose_core.detect.backends import BLAZEPOSE, create_detector
from stablepose_core.poses.skeleton import render_pose


def frames_per_second(step: Callable[[int], object], frames: int, warmup: int = 3) -> float:
    for index in range(warmup):
        step(index)
    start = time.perf_counter()
    for index in range(frames):
        step(index)
    return frames / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()

    from skimage import data

    image = cv2.resize(data.astronaut(), (args.size, args.size), interpolation=cv2.INTER_AREA)
    # slightly different frames, as in a video: a few pixels of horizontal shift each
    frames = [np.ascontiguousarray(np.roll(image, shift, axis=1)) for shift in range(0, 16, 2)]
    detector = create_detector(BLAZEPOSE, [])
    try:
        poses = [detector(frame) for frame in frames]
        detect = frames_per_second(lambda i: detector(frames[i % len(frames)]), args.frames)
        both = frames_per_second(lambda i: render_pose(detector(frames[i % len(frames)])), args.frames)
    finally:
        detector.close()
    draw = frames_per_second(lambda i: render_pose(poses[i % len(poses)]), args.frames * 10)
    print(f"CPU threads: {os.cpu_count()}, frames {args.size}x{args.size}, people found: {poses[0].num_people}")
    print(f"blazepose detection       {detect:8.1f} frames/s")
    print(f"skeleton drawing          {draw:8.1f} frames/s")
    print(f"detection + drawing       {both:8.1f} frames/s")
    compare_with_mediapipe(detector_fps=detect, frames=frames, count=args.frames)


def compare_with_mediapipe(detector_fps: float, frames: list[np.ndarray], count: int) -> None:
    """MediaPipe's own BlazePose (the backend the built-in one replaced) on the same frames, if installed."""
    try:
        import mediapipe as mp
    except ImportError:
        print("mediapipe not installed: no side-by-side figure")
        return
    with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1) as pose:
        reference = frames_per_second(lambda i: pose.process(frames[i % len(frames)]), count)
    ratio = reference / detector_fps
    print(f"mediapipe 0.10.14         {reference:8.1f} frames/s; built-in takes {ratio:.1f}x mediapipe's time")


if __name__ == "__main__":
    main()
