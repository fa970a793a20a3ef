"""Stable-Pose over a clip with ComfyUI's context windows vs a stock SD1.5 ControlNet under the same windows.

    heavy --exclusive .venv/bin/python benchmarks/bench_video.py [--frames 64 --size 512 --length 16 --overlap 4]

Runs in a real headless ComfyUI (``tools/comfy_host.py``) with the random test weights of the true SD1.5,
ControlNet and Stable-Pose sizes (``tools/make_test_models.py``). Same latents, noise, prompts, sampler and
``Context Windows (Manual)`` for: the plain model, Apply ControlNet (the pose images as hint) and Apply
Stable-Pose. Prints, side by side from one run: seconds per sampling step of each, the overheads over plain
and their ratio (target: Stable-Pose ≤ 1.1× ControlNet), the bytes of the per-sampling pose state (features,
regions; released when sampling ends) and how often the pose features were computed at two step counts
(must not grow with steps). The issue's setting (64 frames, 512², windows 16/4) is the default on an
accelerator; on a CPU pass a smaller one (the docs give the one we measured).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.make_test_models import ensure_test_models
from tests.support.reference_weights import sample_pose_image
from tools.comfy_host import REPO_ROOT, ComfyHost


def clip_poses(frames: int, size: int) -> torch.Tensor:
    pose = (sample_pose_image(size, size)[0].permute(1, 2, 0) + 1) / 2
    return torch.stack([pose.roll(size // 32 * i, dims=1) for i in range(frames)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--size", type=int, default=512, help="frame side in px")
    parser.add_argument("--length", type=int, default=16, help="context window length")
    parser.add_argument("--overlap", type=int, default=4, help="context window overlap")
    parser.add_argument("--steps", type=int, nargs=2, default=(2, 4), help="two step counts")
    args = parser.parse_args()
    torch.manual_seed(0)
    models = ensure_test_models()
    with tempfile.TemporaryDirectory(prefix="bench-video-") as workdir:
        root = Path(workdir) / "models"
        for folder, path in models.by_folder().items():
            (root / folder).mkdir(parents=True)
            (root / folder / path.name).symlink_to(path)
        host = ComfyHost.boot(Path(workdir), models_dir=root)
        run(host, models, args)


def use_context_step_fix() -> None:
    """ComfyUI 0.3.75's context windows compare the schedule with every frame's timestep (a batch of N frames
    only works at N - 1 steps); use 0.8's comparison with the first, as 0.8.x does, so both hosts run here."""
    import comfy.context_windows

    def set_step(self, timestep, model_options):
        sigmas = model_options["transformer_options"]["sample_sigmas"]
        self._step = int(torch.nonzero(torch.isclose(sigmas, timestep[0], rtol=0.0001))[0].item())

    comfy.context_windows.IndexListContextHandler.set_step = set_step


def run(host: ComfyHost, models, args) -> None:
    import importlib

    import comfy.sample

    use_context_step_fix()
    nodes = host.nodes
    model, clip, _ = nodes.CheckpointLoaderSimple().load_checkpoint(models.checkpoint.name)
    stable_pose = host.node_class("LoadStablePose")().load(models.adapter.name)[0]
    controlnet = nodes.ControlNetLoader().load_controlnet(models.controlnet.name)[0]
    positive, negative = (nodes.CLIPTextEncode().encode(clip, text)[0] for text in ("a dancer", "blurry"))
    poses = clip_poses(args.frames, args.size)
    windows = host.node_class("ContextWindowsManual")

    def windowed(m):
        options = {"context_stride": 1, "closed_loop": False, "fuse_method": "pyramid", "dim": 0}
        return windows.execute(m, args.length, args.overlap, "standard_static", **options).result[0]

    cn_pos, cn_neg = nodes.ControlNetApplyAdvanced().apply_controlnet(
        positive, negative, controlnet, poses, 1.0, 0.0, 1.0
    )[:2]
    posed = host.node_class("ApplyStablePose")().apply(model, stable_pose, poses, 1.0, 0.0, 1.0)[0]
    configs = {
        "plain": (windowed(model), positive, negative),
        "controlnet": (windowed(model), cn_pos, cn_neg),
        "stable_pose": (windowed(posed), positive, negative),
    }
    patch_module = importlib.import_module(f"{host.pack_modules[REPO_ROOT].__name__}.nodes.stable_pose_patch")
    held: list[int] = []
    encodes: list[int] = []
    pose_inputs = patch_module.PoseSampling.pose_inputs
    adapter = stable_pose.model
    encode_pose = adapter.encode_pose

    def measured_pose_inputs(self, x):
        features, regions = pose_inputs(self, x)
        held.append(sum(f.nbytes for f in features) + regions.nbytes)
        return features, regions

    patch_module.PoseSampling.pose_inputs = measured_pose_inputs
    adapter.encode_pose = lambda pose: encodes.append(1) or encode_pose(pose)

    latent = torch.zeros(args.frames, 4, args.size // 8, args.size // 8)
    noise = comfy.sample.prepare_noise(latent, 1)
    per_step: dict[str, float] = {}
    encode_counts = []
    for name, (m, pos, neg) in configs.items():
        times = []
        for steps in args.steps:
            encodes.clear()
            start = time.perf_counter()
            with torch.inference_mode():
                comfy.sample.sample(m, noise, steps, 5.0, "euler", "normal", pos, neg, latent)
            times.append(time.perf_counter() - start)
            if name == "stable_pose":
                encode_counts.append(len(encodes))
        # per step from the difference of two step counts: start-up (loading, pose state) cancels out
        per_step[name] = (times[1] - times[0]) / (args.steps[1] - args.steps[0])
        print(f"{name:12s} total {times[0]:.1f}s ({args.steps[0]} steps), {times[1]:.1f}s ({args.steps[1]} steps)")
    print(
        f"\n{args.frames} frames, {args.size}x{args.size} px, windows {args.length}/{args.overlap}, euler, cfg 5, "
        f"{torch.get_num_threads()} threads"
    )
    for name, seconds in per_step.items():
        print(f"  {name:12s} {seconds:7.2f} s/step")
    cn_over = per_step["controlnet"] - per_step["plain"]
    sp_over = per_step["stable_pose"] - per_step["plain"]
    print(f"  overhead per step: ControlNet {cn_over:.2f}s, Stable-Pose {sp_over:.2f}s")
    print(f"  Stable-Pose / ControlNet overhead ratio: {sp_over / cn_over:.2f} (target ≤ 1.1)")
    print(f"  Stable-Pose / ControlNet step time ratio: {per_step['stable_pose'] / per_step['controlnet']:.2f}")
    print(f"  pose state held during sampling: {max(held) / 2**20:.1f} MiB (pose features + regions, whole clip)")
    print(f"  pose feature computations at {args.steps[0]} / {args.steps[1]} steps: {encode_counts}")


if __name__ == "__main__":
    main()
