"""Stable-Pose over a clip with ComfyUI's context windows vs a stock SD1.5 ControlNet under the same windows.

    heavy --exclusive .venv/bin/python benchmarks/bench_video.py [--frames 64 --size 512 --length 16 --overlap 4]
                                                                 [--rounds 3 --steps 2 --device cpu|cuda]

The windowed case of ``benchmarks/bench_step.py`` at clip sizes, in one real headless ComfyUI with the random
test weights of the true SD1.5, ControlNet and Stable-Pose sizes: same latents, noise, prompts, sampler and
``Context Windows (Manual)`` for the plain model, Apply ControlNet (one pose image per frame as hint) and Apply
Stable-Pose, in interleaved rounds. Prints, side by side from one run: seconds per steady sampling step of each,
the overheads over plain and their ratio (target: Stable-Pose ≤ 1.1× ControlNet), peak memory of each beside
the others, the bytes of the per-sampling pose state (features and regions of the whole clip; released when
sampling ends) and how often the pose features were computed in a sampling of 1 and of ``--steps`` steps (must
not grow with steps). The issue's setting (64 frames, 512², windows 16/4) is the default, for an accelerator;
on a CPU pass a smaller one (docs/video.md gives the one we measured).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.bench_step import SEED, Case, Models, boot, report, run_case, sample


def pose_work(models: Models, case: Case, steps: int) -> tuple[list[int], int]:
    """Pose feature computations in one Stable-Pose sampling of 1 and of ``steps`` steps, and the bytes of the
    pose state a sampling holds."""
    patch = models.host.pack_module("nodes.stable_pose_patch")
    adapter = models.adapter.model
    encodes: list[int] = []
    held: list[int] = []
    pose_inputs, encode_pose = patch.PoseSampling.pose_inputs, adapter.encode_pose

    def counted_pose_inputs(self, x: torch.Tensor):
        features, regions = pose_inputs(self, x)
        held.append(sum(f.nbytes for f in features) + regions.nbytes)
        return features, regions

    patch.PoseSampling.pose_inputs = counted_pose_inputs
    adapter.encode_pose = lambda pose: encodes.append(1) or encode_pose(pose)
    counts = []
    try:
        for n in (1, steps):
            encodes.clear()
            sample(models.variants(case)["stable_pose"], case, n)
            counts.append(len(encodes))
    finally:
        patch.PoseSampling.pose_inputs = pose_inputs
        del adapter.encode_pose
    return counts, max(held)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--size", type=int, default=512, help="frame side in px")
    parser.add_argument("--length", type=int, default=16, help="context window length")
    parser.add_argument("--overlap", type=int, default=4, help="context window overlap")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (min and median)")
    parser.add_argument("--steps", type=int, default=2, help="sampling steps per timed sampling (at least 2)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="skip the peak memory pass")
    args = parser.parse_args()
    torch.manual_seed(SEED)
    case = Case(args.size, args.size, args.frames, (args.length, args.overlap))
    with tempfile.TemporaryDirectory(prefix="bench_video_") as workdir:
        models = Models.load(boot(args.device, "comfy", Path(workdir)))
        threads = torch.get_num_threads()
        print(f"{args.device}, {threads} threads, euler, cfg 5, {args.steps} steps x {args.rounds} rounds")
        ratios = report(case, run_case(models, case, args))
        counts, held = pose_work(models, case, args.steps)
    print(f"  Stable-Pose / ControlNet overhead ratio per steady step: {ratios['step, min']:.3f} (target ≤ 1.1)")
    print(f"  pose state held during sampling: {held / 2**20:.1f} MiB (pose features + regions, whole clip)")
    print(f"  pose feature computations in a sampling of 1 / {args.steps} steps: {counts}")


if __name__ == "__main__":
    main()
