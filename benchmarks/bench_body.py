"""Body fitting speed: seconds per person for one photo, and per frame for a clip fitted as one batch.

    python benchmarks/bench_body.py [--frames 16] [--iterations 250] [--device cpu]
    python benchmarks/bench_body.py --device cuda          # on a GPU

The person is ``skimage.data.astronaut()``'s, from the built-in BlazePose (with its 3D points). The clip repeats
that pose shifted by a few pixels per frame, one person per frame, fitted in one ``fit_bodies`` call (people are
optimised together, each from two starting orientations). Also prints the render time of one 512² depth map.
Anny's model data is built first if missing (once, about 1–2 minutes on a CPU) into ``$ANNY_CACHE_DIR``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import skimage.data

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stablepose_core.body.fit import fit_bodies
from stablepose_core.body.model import load_body_model
from stablepose_core.body.render import render_bodies
from stablepose_core.body.smplify import FitSettings
from stablepose_core.detect.backends import BLAZEPOSE, create_detector
from stablepose_core.poses.keypoints import PoseKeypoints


def timed(call):
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--iterations", type=int, default=FitSettings().pose_iterations)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    pose = create_detector(BLAZEPOSE, [])(skimage.data.astronaut())
    model = load_body_model(args.device)
    settings = FitSettings(pose_iterations=args.iterations)
    single, batch = timed(lambda: fit_bodies(model, [pose], settings))
    clip = [
        PoseKeypoints(pose.keypoints + np.float32([2 * i, i, 0]), pose.width, pose.height, pose.world)
        for i in range(args.frames)
    ]
    whole, _ = timed(lambda: fit_bodies(model, clip, settings))
    render_bodies(model, batch, 64, 64)  # compiles the ray-casting kernel once
    draw, _ = timed(lambda: render_bodies(model, batch, 512, 512))
    print(f"device {args.device}, pose iterations {args.iterations}")
    print(f"one person:           {single:7.2f} s")
    print(
        f"clip of {args.frames:3d} frames:   {whole:7.2f} s  = {whole / args.frames:.2f} s per frame "
        f"({single * args.frames / whole:.1f}x faster than one by one)"
    )
    print(f"render 512x512 depth: {draw:7.3f} s")


if __name__ == "__main__":
    main()
