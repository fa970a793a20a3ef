"""Rectify and dataset synthesis speed: images per minute of each stage (generate, detect, fit, rectify).

    python benchmarks/bench_rectify.py [--images 2] [--width 128] [--height 192] [--steps 4]

On a GPU, with real models (what ``python -m training.synthesize --rectify`` runs per image):

    python benchmarks/bench_rectify.py --models-dir ~/ComfyUI/models \\
        --checkpoint v1-5-pruned-emaonly-fp16.safetensors --adapter stable_pose_humanart.safetensors \\
        --controlnet control_v11f1p_sd15_depth_fp16.safetensors \\
        --width 512 --height 768 --steps 25 --images 8

Without ``--checkpoint`` it runs the random test weights of the true SD1.5 sizes (``harness/``), so the
timing is right and the pictures are noise. The stages are the graph of ``training.synthesis_graph`` run through
ComfyUI in this process, one stage added per prompt so ComfyUI's cache keeps the earlier ones: generate (text ->
image with Stable-Pose), detect (the built-in BlazePose), fit (the body fit and its render), rectify (mask, VAE
encode, depth ControlNet + Stable-Pose sampling at denoise 0.7, decode; forced, whatever the gate would decide).
Each image has its own seed, so nothing is cached across images. The first image also loads the models: it is
left out of the figures unless it is the only one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stablepose_host.prompts import PromptRunner
from tools.workflow_samples import example_pose_keypoints
from training.synthesis_graph import Settings, body_of, generation, rectification

STAGES = ("generate", "detect", "fit", "rectify")


def stage_graphs(settings: Settings, seed: int) -> list[dict]:
    """The cumulative prompt after each stage, each ending in an output node that needs the stage."""
    pose = example_pose_keypoints()
    graph = generation(settings, pose, "a dancer on a stage, full body, photograph", seed)
    detect = body_of(["decode", 0], Settings(**{**settings.to_dict(), "body": False}), "first_")
    fit = body_of(["decode", 0], settings, "first_")
    steps = [
        graph | {"sink": {"class_type": "PreviewImage", "inputs": {"images": ["decode", 0]}}},
        graph | detect | {"sink": {"class_type": "PreviewImage", "inputs": {"images": ["first_extract", 0]}}},
        graph | fit | {"sink": {"class_type": "PreviewImage", "inputs": {"images": ["first_render", 0]}}},
    ]
    rectify = {key: node for key, node in rectification(settings, seed).items() if key != "gate"}
    steps.append(steps[2] | rectify | {"sink": {"class_type": "PreviewImage", "inputs": {"images": ["redecode", 0]}}})
    return steps


def time_image(runner: PromptRunner, settings: Settings, seed: int, stages: int) -> list[float]:
    """Seconds of each stage for one image."""
    seconds = []
    for graph in stage_graphs(settings, seed)[:stages]:
        start = time.perf_counter()
        runner.run(runner.with_defaults(graph))
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--models-dir", type=Path, action="append", default=[])
    parser.add_argument("--checkpoint", default="")
    parser.add_argument("--adapter", default="")
    parser.add_argument("--controlnet", default="")
    args = parser.parse_args()
    models = args.models_dir
    if not args.checkpoint:
        from harness.make_test_models import ensure_test_models

        files = ensure_test_models()
        models = [files.checkpoint.parent.parent]
        args.checkpoint, args.adapter, args.controlnet = (
            files.checkpoint.name,
            files.adapter.name,
            files.controlnet.name,
        )
    settings = Settings(
        args.checkpoint, args.adapter, args.width, args.height, steps=args.steps, controlnet=args.controlnet
    )
    with tempfile.TemporaryDirectory(prefix="bench-rectify-") as workdir:
        runner = PromptRunner.start(Path(workdir), models)
        body = {"StablePoseFitBody", "StablePoseRenderBody"} <= PromptRunner.node_types()
        stages = len(STAGES) if body else 2
        times = [time_image(runner, settings, 1000 + index, stages) for index in range(max(1, args.images))]
    measured = times[1:] or times
    print(f"{args.width}x{args.height}, {args.steps} steps, {len(measured)} image(s) timed ({settings.checkpoint})")
    for index, name in enumerate(STAGES):
        if index >= stages:
            print(f"{name:>9}: body nodes unavailable (pip install anny)")
            continue
        mean = sum(seconds[index] for seconds in measured) / len(measured)
        print(f"{name:>9}: {mean:7.2f} s/image  {60 / mean:8.2f} images/min")
    total = sum(sum(seconds) for seconds in measured) / len(measured)
    print(f"{'all':>9}: {total:7.2f} s/image  {60 / total:8.2f} images/min")


if __name__ == "__main__":
    main()
