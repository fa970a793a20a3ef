"""Rectify and dataset synthesis speed: images per minute of each stage (generate, detect, fit, rectify).

    python benchmarks/bench_rectify.py [--images 2] [--width 128] [--height 192] [--steps 4]

On a GPU, with real models (what ``python -m training.synthesize --rectify`` runs per image):

    python benchmarks/bench_rectify.py --models-dir ~/ComfyUI/models \\
        --checkpoint v1-5-pruned-emaonly-fp16.safetensors --adapter stable_pose_humanart.safetensors \\
        --controlnet control_v11f1p_sd15_depth_fp16.safetensors \\
        --width 512 --height 768 --steps 25 --images 8

Without ``--checkpoint`` it runs the random test weights of the true SD1.5 sizes (``harness/``), so the
timing is right and the pictures are noise. Noise shows nobody, so detect, fit and rectify then work on a real photo
(``skimage.data.astronaut()`` scaled to the image size) in place of the generated image: the detector runs both its
networks and the fit has a person (``--photo`` / ``--no-photo`` choose either way).
The stages are the graph of ``training.synthesis_graph`` run through
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

import numpy as np
import skimage.data
from PIL import Image

from stablepose_host.prompts import PromptRunner
from tools.workflow_samples import example_pose_keypoints
from training.synthesis_graph import Settings, body_of, generation, rectification

STAGES = ("generate", "detect", "fit", "rectify")


def save_photo(workdir: str, index: int) -> str:
    """The astronaut shifted by ``index`` pixels into ComfyUI's input folder: a new image each time, so ComfyUI's
    cache never answers detection or fit from an earlier image."""
    name = f"astronaut_{index}.png"
    Image.fromarray(np.roll(skimage.data.astronaut(), index, axis=1)).save(Path(workdir) / "input" / name)
    return name


def photo_in_place_of_generation(settings: Settings, photo: str) -> dict[str, dict]:
    """``decode`` (the generated image every later stage reads) replaced by ``photo`` from ComfyUI's input folder,
    scaled and cropped to the generation's size."""
    load = {"class_type": "LoadImage", "inputs": {"image": photo}}
    size = {"width": settings.width, "height": settings.height, "upscale_method": "bilinear", "crop": "center"}
    return {"photo": load, "decode": {"class_type": "ImageScale", "inputs": {"image": ["photo", 0], **size}}}


def stage_graphs(settings: Settings, seed: int, photo: str | None) -> list[dict]:
    """The cumulative prompt after each stage, each ending in an output node that needs the stage (with ``photo``
    the stages after generation read it instead of the generated image)."""
    pose = example_pose_keypoints()
    graph = generation(settings, pose, "a dancer on a stage, full body, photograph", seed)
    generate = graph | {"sink": {"class_type": "PreviewImage", "inputs": {"images": ["decode", 0]}}}
    if photo:
        graph |= photo_in_place_of_generation(settings, photo)
    detect = body_of(["decode", 0], Settings(**{**settings.to_dict(), "body": False}), "first_")
    fit = body_of(["decode", 0], settings, "first_")
    steps = [
        generate,
        graph | detect | {"sink": {"class_type": "PreviewImage", "inputs": {"images": ["first_extract", 0]}}},
        graph | fit | {"sink": {"class_type": "PreviewImage", "inputs": {"images": ["first_render", 0]}}},
    ]
    rectify = {key: node for key, node in rectification(settings, seed).items() if key != "gate"}
    steps.append(steps[2] | rectify | {"sink": {"class_type": "PreviewImage", "inputs": {"images": ["redecode", 0]}}})
    return steps


def time_image(runner: PromptRunner, settings: Settings, seed: int, stages: int, photo: str | None) -> list[float]:
    """Seconds of each stage for one image."""
    seconds = []
    for graph in stage_graphs(settings, seed, photo)[:stages]:
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
    parser.add_argument("--photo", action=argparse.BooleanOptionalAction, default=None, help="default: on test weights")
    args = parser.parse_args()
    photo = not args.checkpoint if args.photo is None else args.photo
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
        photos = [save_photo(workdir, index) if photo else None for index in range(max(1, args.images))]
        times = [time_image(runner, settings, 1000 + index, stages, name) for index, name in enumerate(photos)]
    measured = times[1:] or times
    print(f"{args.width}x{args.height}, {args.steps} steps, {len(measured)} image(s) timed ({settings.checkpoint})")
    if photo:
        print("detect, fit and rectify on skimage's astronaut photo in place of the generated image")
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
