"""Make a pose dataset with ground truth: ``python -m training.synthesize --poses POSES --prompts PROMPTS --out DIR``.

Every pose × prompt × seed becomes one image generated with Stable-Pose (optionally rectified: ``--rectify``)
through your ComfyUI and SD1.5 checkpoint, run in this process. The people in it are detected and a body is fitted
to them; the image is kept when its pose fidelity (OKS against the target pose) reaches ``--min-oks`` and every
person is plausible. The dataset is COCO keypoints (``DIR/annotations.json``: the target keypoints as ground truth,
the detected keypoints, the OKS, the fitted body and camera) with the images, body depths and masks beside it.

Seeds are deterministic (the k-th seed is ``--seed + k``); a killed run resumes where it stopped (each finished
image leaves a record; files are written atomically); ``accelerate launch synthesize ...`` shards the images over
processes and machines (each its own device), the first process merges. ``docs/rectify.md`` has the details.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from stablepose_core.atomic import atomic_write
from stablepose_core.poses.keypoints import PoseKeypoints
from stablepose_host import HostError
from stablepose_host.prompts import PromptRunner

from .synthesis_graph import BODY, DEPTH, DETECTED, FINAL_IMAGE, SILHOUETTE, Settings, job_prompt
from .synthesis_records import (
    Job,
    SynthesisError,
    done_jobs,
    make_jobs,
    merge,
    person_entries,
    read_poses,
    write_record,
)

log = logging.getLogger("stable_pose.training")
SETTINGS_FILE = "settings.json"
MERGE_WAIT_HOURS = 12


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--poses", type=Path, required=True, help="COCO keypoints file, pose sequence, pose JSON or folder")
    p.add_argument("--prompts", type=Path, help="text file, one prompt per line")
    p.add_argument("--prompt", action="append", default=[], help="a prompt (repeatable; after --prompts' lines)")
    p.add_argument("--seeds", type=int, default=1, help="images per pose and prompt")
    p.add_argument("--seed", type=int, default=0, help="the first seed")
    p.add_argument("--out", type=Path, required=True, help="dataset folder (a run resumes in it)")
    p.add_argument("--checkpoint", required=True, help="SD1.5 checkpoint in ComfyUI's models/checkpoints")
    p.add_argument("--adapter", required=True, help="Stable-Pose adapter in models/stable_pose")
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--height", type=int, default=768)
    defaults = Settings("", "", 0, 0)
    for name in ("negative", "steps", "cfg", "sampler", "scheduler", "backend", "denoise", "grow"):
        value = getattr(defaults, name)
        p.add_argument(f"--{name}", type=type(value), default=value, help=f"default {value!r}")
    p.add_argument(
        "--no-body",
        dest="body",
        action="store_false",
        help="no body fit (without the optional anny): no plausibility check, depth, masks or body parameters",
    )
    p.add_argument("--rectify", action="store_true", help="regenerate implausible people (needs --controlnet)")
    p.add_argument("--controlnet", default="", help="SD1.5 depth ControlNet in models/controlnet, for --rectify")
    p.add_argument("--rectify-negative", default=defaults.rectify_negative)
    p.add_argument("--min-oks", type=float, default=0.5, help="keep images whose OKS is at least this (0 to 1)")
    p.add_argument("--keep-implausible", action="store_true", help="keep images with implausible people too")
    p.add_argument("--models-dir", type=Path, action="append", default=[], help="extra models folder (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="print what would be made, make nothing")
    return p


def settings_of(args: argparse.Namespace) -> Settings:
    if min(args.width, args.height) < 64 or args.width % 8 or args.height % 8:
        raise SynthesisError("--width and --height must be multiples of 8, at least 64")
    if args.rectify and not args.controlnet:
        raise SynthesisError("--rectify needs --controlnet: an SD1.5 depth ControlNet in models/controlnet")
    if args.rectify and not args.body:
        raise SynthesisError("--rectify needs the body fit: leave out --no-body")
    names = [name for name in Settings.__dataclass_fields__ if hasattr(args, name)]
    return Settings(**{name: getattr(args, name) for name in names})


def prompts_of(args: argparse.Namespace) -> list[str]:
    lines = []
    if args.prompts is not None:
        try:
            lines = [line.strip() for line in args.prompts.read_text(encoding="utf-8").splitlines()]
        except (OSError, UnicodeDecodeError) as error:
            raise SynthesisError(f"--prompts {args.prompts}: {error}") from None
    prompts = [line for line in [*lines, *args.prompt] if line]
    if not prompts:
        raise SynthesisError("no prompt: give --prompts FILE or --prompt TEXT")
    if args.seeds < 1:
        raise SynthesisError("--seeds must be at least 1")
    return prompts


def run_info(args: argparse.Namespace, settings: Settings, prompts: list[str]) -> dict[str, Any]:
    """What decides the dataset; stored in ``settings.json`` and the dataset's ``info``."""
    return {
        "description": "Stable-Pose synthetic pose dataset (python -m training.synthesize)",
        "settings": settings.to_dict(),
        "poses": str(args.poses.resolve()),
        "prompts": prompts,
        "seeds": args.seeds,
        "first_seed": args.seed,
        "min_oks": args.min_oks,
        "keep_implausible": args.keep_implausible,
    }


def claim_folder(out: Path, info: dict[str, Any]) -> None:
    """Start a run in ``out`` or resume the one there; a run with other settings is never overwritten."""
    path = out / SETTINGS_FILE
    if path.is_file():
        if json.loads(path.read_text()) != info:
            raise SynthesisError(f"{out} holds a run with other settings ({path}): resume it as it was, or use --out")
        return
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(info, indent=1, sort_keys=True))


# ----- one image -----


def save_png(path: Path, pixels: np.ndarray) -> None:
    with atomic_write(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")


def body_people(body: Any) -> list[dict[str, Any]]:
    """The fitted people of the body's only frame, as their JSON (fitted joints, parameters, camera, score)."""
    (frame,) = json.loads(body.to_json())["frames"]
    return frame["people"]


def save_files(out: Path, job: Job, image: torch.Tensor, body: tuple[torch.Tensor, torch.Tensor] | None) -> dict:
    """The image (8-bit RGB) and, with a ``body`` (depth, silhouette), its depth (16-bit grey, near bright) and
    silhouette (8-bit) as PNG; their names relative to ``out``."""
    names = {"file_name": f"images/{job.name}.png"}
    save_png(out / names["file_name"], (image.clamp(0, 1) * 255).round().byte().cpu().numpy())
    if body is not None:
        depth, mask = body
        names |= {"depth_file": f"depth/{job.name}.png", "mask_file": f"masks/{job.name}.png"}
        save_png(out / names["depth_file"], (depth[..., 0].clamp(0, 1) * 65535).round().cpu().numpy().astype(np.uint16))
        save_png(out / names["mask_file"], ((mask > 0.5) * 255).byte().cpu().numpy())
    return names


def make_record(runner: PromptRunner, args: argparse.Namespace, settings: Settings, job: Job, pose: PoseKeypoints):
    """Generate one image, judge it and write its files when it is kept; the record of the job."""
    graph, where = job_prompt(settings, pose, job.prompt, job.seed)
    outputs = runner.run(runner.with_defaults(graph))

    def result(role: str) -> Any:
        node, slot = where[role]
        return outputs[node][slot][0]

    image = result(FINAL_IMAGE)[0]
    height, width = int(image.shape[0]), int(image.shape[1])
    detected = PoseKeypoints.from_pose_keypoint(result(DETECTED)[0])
    people = body_people(result(BODY)) if settings.body else []
    entries = person_entries(pose.crop_to_canvas(width, height), detected, people)
    oks = float(np.mean([entry["oks"] for entry in entries]))
    plausible = all(person["plausible"] for person in people) if settings.body else None
    rejected = "low OKS" if oks < args.min_oks else None
    if rejected is None and plausible is False and not args.keep_implausible:
        rejected = "implausible"
    described = {
        "width": width,
        "height": height,
        "caption": job.prompt,
        "seed": job.seed,
        "pose_index": job.pose_index,
    }
    described |= {"oks": round(oks, 6), "plausible": plausible}
    if settings.rectify:
        described["rectified"] = bool(outputs["gate"][1][0])
    if rejected is None:
        body = (result(DEPTH)[0], result(SILHOUETTE)[0]) if settings.body else None
        described |= save_files(args.out, job, image, body)
    return {"rejected": rejected, "image": described, "people": entries}


# ----- the run -----


def print_plan(args: argparse.Namespace, jobs: list[Job], pose_count: int, prompts: list[str]) -> None:
    done = done_jobs(args.out) if args.out.is_dir() else set()
    print(
        f"{pose_count} poses x {len(prompts)} prompts x {args.seeds} seeds = {len(jobs)} images "
        f"(seeds {args.seed}..{args.seed + args.seeds - 1}); {len(done & {job.name for job in jobs})} already made "
        f"in {args.out}; kept when OKS >= {args.min_oks}"
        + ("" if args.keep_implausible or not args.body else " and every person is plausible")
    )
    for job in jobs[:5]:
        print(f"  {job.name}: pose {job.pose_index}, seed {job.seed}, {job.prompt!r}")
    made = "images/, depth/, masks/" if args.body else "images/"
    print(f"writes {args.out}/annotations.json, {made} (records/: one per finished image)")


def start_runner(device: torch.device, models_dirs: list[Path], workdir: Path) -> PromptRunner:
    """ComfyUI in this process, on this process's device (``accelerate launch`` gives each its own)."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return PromptRunner.start(workdir, models_dirs, cpu=device.type != "cuda")


def process_state() -> Any:
    """This process's place under ``accelerate launch`` (or torchrun): index, count, device. On CPUs
    (``ACCELERATE_USE_CPU=1`` or no GPU) the processes meet over gloo. A process that finishes its shard early waits
    for the others before the merge, hence the long timeout."""
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    cpu = parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available()
    return PartialState(cpu=cpu, timeout=datetime.timedelta(hours=MERGE_WAIT_HOURS))


def synthesize(args: argparse.Namespace) -> dict[str, int] | None:
    settings, prompts, poses = settings_of(args), prompts_of(args), read_poses(args.poses)
    jobs = make_jobs(len(poses), prompts, args.seeds, args.seed)
    if args.dry_run:
        print_plan(args, jobs, len(poses), prompts)
        return None
    state = process_state()
    info = run_info(args, settings, prompts)
    if state.is_main_process:
        claim_folder(args.out, info)
    state.wait_for_everyone()
    done = done_jobs(args.out)
    mine = [job for job in jobs[state.process_index :: state.num_processes] if job.name not in done]
    if mine:
        with tempfile.TemporaryDirectory(prefix="stablepose-synthesize-") as workdir:
            runner = start_runner(state.device, args.models_dir, Path(workdir))
            shown = f"images (process {state.process_index})" if state.num_processes > 1 else "images"
            for job in tqdm(mine, desc=shown, unit="image", position=state.process_index):
                write_record(args.out, job, make_record(runner, args, settings, job, poses[job.pose_index]))
    state.wait_for_everyone()
    return merge(args.out, jobs, info) if state.is_main_process else None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        counts = synthesize(args)
    except (SynthesisError, HostError) as error:
        log.error("%s", error)
        return 2
    if counts is not None:
        print(
            f"{args.out}/annotations.json: {counts['kept']} images kept; left out: {counts['low OKS']} below "
            f"--min-oks, {counts['implausible']} implausible"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
