"""Pose extraction speed: the embedded BlazePose frame by frame and on a batched clip, the skeleton drawing, and
DWPose (multi-person) with its networks in PyTorch and in onnxruntime.

    python benchmarks/bench_extract.py [--frames 50] [--size 512] [--clip 16] [--threads N] [--dwpose DIR]
    python benchmarks/bench_extract.py --device cuda      # on a GPU: PyTorch float16 vs onnxruntime-gpu

The frames are ``skimage.data.astronaut()`` resized to ``--size`` squared, a grey level brighter each, as in a
video; each frame is detected independently (``static_image_mode``, as the node runs it). Prints frames per second,
where mediapipe 0.10.14 is installed (Python <= 3.12) its own BlazePose on the same frames and the ratio, and, where
DWPose files are found (``--dwpose``, default: the random-weight test files of ``harness/dwpose_models.py``,
which cost what the trained ones cost), DWPose's frames/s per runtime on a ``--clip``-frame clip and the ratio.
``--threads`` sets PyTorch's and onnxruntime's CPU threads alike for DWPose (default: each library's own choice);
BlazePose's clip is timed on PyTorch's threads and on one thread.
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
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stablepose_core.detect.backends import BLAZEPOSE, DWPOSE_SUBFOLDERS, create_detector, find_first
from stablepose_core.detect.dwpose import (
    DETECTOR_FILES,
    POSE_FILES,
    DWPosePipeline,
    OnnxRuntimeNetwork,
    TorchNetwork,
)
from stablepose_core.poses.skeleton import render_pose

TEST_CKPTS = Path(__file__).resolve().parents[1] / ".cache" / "test-models" / "ckpts"


def frames_per_second(step: Callable[[int], object], frames: int, warmup: int = 3) -> float:
    for index in range(warmup):
        step(index)
    start = time.perf_counter()
    for index in range(frames):
        step(index)
    return frames / (time.perf_counter() - start)


def clip_frames_per_second(detect: Callable[[list], object], clip: list[np.ndarray], rounds: int) -> float:
    """Frames per second of ``detect`` on the whole clip (one batch), after a warm-up call on two frames."""
    detect(clip[:2])
    start = time.perf_counter()
    for _ in range(rounds):
        detect(clip)
    return rounds * len(clip) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--clip", type=int, default=16, help="frames per batched clip")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads of both runtimes (0: their default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dwpose", type=Path, default=TEST_CKPTS, help="folder holding the DWPose ONNX files")
    args = parser.parse_args()

    from skimage import data

    image = cv2.resize(data.astronaut(), (args.size, args.size), interpolation=cv2.INTER_AREA)
    # slightly different frames, as in a video: the light flickers by a grey level per frame
    frames = [
        np.clip(image.astype(np.int16) + level - args.clip // 2, 0, 255).astype(np.uint8) for level in range(args.clip)
    ]
    print(f"CPU threads: {os.cpu_count()} (torch uses {torch.get_num_threads()}), frames {args.size}x{args.size}")
    clips = bench_blazepose(frames, args)
    compare_with_mediapipe(clips, frames=frames, count=args.frames)
    if args.threads:
        torch.set_num_threads(args.threads)
    bench_dwpose(frames, args)


def bench_blazepose(frames: list[np.ndarray], args: argparse.Namespace) -> dict[str, float]:
    """Prints BlazePose frame by frame, on the batched clip (PyTorch's threads, then one), and with drawing;
    returns the clips' frames/s."""
    detector = create_detector(BLAZEPOSE, [], args.device)
    threads = torch.get_num_threads()
    clips = {}
    try:
        poses = detector.detect(frames)
        single = frames_per_second(lambda i: detector(frames[i % len(frames)]), args.frames)
        rounds = max(1, args.frames // len(frames))
        for name, count in ((f"{threads} threads", threads), ("1 thread", 1)):
            torch.set_num_threads(count)
            clips[name] = clip_frames_per_second(detector.detect, frames, rounds)
        torch.set_num_threads(threads)
        both = frames_per_second(lambda i: render_pose(detector(frames[i % len(frames)])), args.frames)
    finally:
        detector.close()
    draw = frames_per_second(lambda i: render_pose(poses[i % len(poses)]), args.frames * 10)
    print(f"blazepose, frame by frame  {single:8.1f} frames/s  (people found: {poses[0].num_people})")
    for name, speed in clips.items():
        print(f"blazepose, {len(frames)}-frame clip   {speed:8.1f} frames/s  ({name}; one call per network)")
    print(f"skeleton drawing           {draw:8.1f} frames/s")
    print(f"detection + drawing        {both:8.1f} frames/s")
    return clips


def compare_with_mediapipe(clips: dict[str, float], frames: list[np.ndarray], count: int) -> None:
    """MediaPipe's own BlazePose (the backend the built-in one replaced) on the same frames, if installed, with
    the CPU time it used per second (its threads)."""
    try:
        import mediapipe as mp
    except ImportError:
        print("mediapipe not installed: no side-by-side figure")
        return
    with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1) as pose:
        cpu = time.process_time()
        start = time.perf_counter()
        reference = frames_per_second(lambda i: pose.process(frames[i % len(frames)]), count)
        cores = (time.process_time() - cpu) / (time.perf_counter() - start)
    print(f"mediapipe 0.10.14          {reference:8.1f} frames/s  ({cores:.1f} CPU cores busy on average)")
    for name, speed in clips.items():
        print(f"blazepose clip ({name}) runs at {speed / reference:.2f}x mediapipe's frames/s")


def bench_dwpose(frames: list[np.ndarray], args: argparse.Namespace) -> None:
    """DWPose on the clip with the networks in PyTorch (float16 on a GPU) and in onnxruntime, side by side."""
    roots = [args.dwpose]
    detector_file, pose_file = (find_first(files, roots, DWPOSE_SUBFOLDERS) for files in (DETECTOR_FILES, POSE_FILES))
    if detector_file is None or pose_file is None:
        print(f"no DWPose files under {args.dwpose} (python -m harness.dwpose_models writes test ones)")
        return
    device = torch.device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    runtimes = {f"pytorch-{device.type} ({str(dtype)[6:]})": lambda path: TorchNetwork(path, device, dtype)}
    try:
        import onnxruntime  # noqa: F401 (only to know whether it is there)

        runtimes[f"onnxruntime-{device.type}"] = lambda path: OnnxRuntimeNetwork(path, device, args.threads)
    except ImportError:
        print("onnxruntime not installed: PyTorch only")
    speeds = {}
    for name, network in runtimes.items():
        pipeline = DWPosePipeline(network(detector_file), network(pose_file), device)
        found: list = []
        speeds[name] = clip_frames_per_second(lambda clip, p=pipeline, f=found: f.append(p.detect(clip)), frames, 1)
        people = sum(pose.num_people for pose in found[-1])
        print(f"dwpose, {name:24s} {speeds[name]:8.2f} frames/s  ({people} people in {len(frames)} frames)")
    if len(speeds) == 2:
        ours, reference = speeds.values()
        print(f"dwpose: PyTorch takes {reference / ours:.2f}x onnxruntime's time")


if __name__ == "__main__":
    main()
