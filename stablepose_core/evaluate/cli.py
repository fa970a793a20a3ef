"""Headless pose evaluation of generated images: ``python -m stablepose_core.evaluate``.

    python -m stablepose_core.evaluate --annotations GT.json --images DIR --out OUT [--backend NAME]
    python -m stablepose_core.evaluate --annotations GT.json --detections FILE --out OUT

``GT.json`` holds COCO person keypoints (``images`` with ``id``, ``file_name``, ``width``, ``height``;
``annotations`` with ``image_id`` and 17 ``[x, y, v]`` ``keypoints``; what is missing of ``bbox``, ``area``,
``iscrowd``, ``num_keypoints``, ``categories`` is filled in from the keypoints; ``python -m training.prepare``
writes such a file). Each ground-truth image is matched to the generated image ``DIR/<file_name>``, or else the
one file below ``DIR`` with the same name without extension. One of the pack's detectors finds the people
(``--backend``), or ``--detections`` takes COCO results from any other tool. Writes:

* ``OUT/detections.json``: the detections in COCO results format (re-run pycocotools' COCOeval on them);
* ``OUT/metrics.json``: ``AP``, ``AP50``, ``AP75`` (pycocotools COCOeval, keypoints), ``CAP``, ``PCE``, the mean
  per-image ``OKS`` (the ``StablePoseScore`` node's number), the detector and the counts.

The paper's detector (HigherHRNet-W48 of mmpose 0.x) is not one of the pack's; AP from another detector is not
comparable with the paper's table (``docs/evaluation.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from ..detect.backends import backend_statuses, create_detector
from ..poses.keypoints import COCO17_NAMES, PoseKeypoints
from .coco_metrics import AREA_CHOICES, check_detections, evaluate_keypoints, is_person, labelled_joints
from .score import score_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
PERSON_CATEGORY = {"id": 1, "name": "person", "keypoints": list(COCO17_NAMES)}
Item = TypeVar("Item")


class EvaluationError(ValueError):
    """Something in the inputs the user has to fix; the message says what."""


def progress(items: Iterable[Item], total: int, description: str) -> Iterator[Item]:
    """tqdm when it is installed (ComfyUI ships it), else a counter on stderr."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        for done, item in enumerate(items, start=1):
            print(f"\r{description}: {done}/{total}", end="\n" if done == total else "", file=sys.stderr, flush=True)
            yield item
        return
    yield from tqdm(items, total=total, desc=description, unit="image")


# ----- ground truth -----


def load_ground_truth(path: Path) -> dict[str, Any]:
    """The COCO keypoint file, checked, with ``bbox``/``area``/``iscrowd``/``num_keypoints``/``categories``
    filled in where missing (from the labelled keypoints)."""
    try:
        dataset = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise EvaluationError(f"--annotations {path}: cannot read a JSON file ({error})") from error
    if not isinstance(dataset, dict) or not isinstance(dataset.get("images"), list):
        raise EvaluationError(f"--annotations {path}: not a COCO file (no 'images' list)")
    for index, image in enumerate(dataset["images"]):
        missing = {"id", "file_name", "width", "height"} - set(image)
        if missing:
            raise EvaluationError(f"--annotations {path}: images[{index}] lacks {sorted(missing)}")
    images = {image["id"] for image in dataset["images"]}
    dataset.setdefault("annotations", [])
    dataset.setdefault("categories", [PERSON_CATEGORY])
    for index, annotation in enumerate(dataset["annotations"]):
        if annotation.get("image_id") not in images or len(annotation.get("keypoints", ())) != 3 * len(COCO17_NAMES):
            raise EvaluationError(
                f"--annotations {path}: annotations[{index}] needs an image_id of 'images' and 17 [x, y, v] keypoints"
            )
        _complete(annotation, index)
    return dataset


def _complete(annotation: dict[str, Any], index: int) -> None:
    labelled = labelled_joints(annotation)
    points = np.asarray(annotation["keypoints"], np.float64).reshape(-1, 3)[labelled, :2]
    low, high = (points.min(0), points.max(0)) if len(points) else (np.zeros(2), np.zeros(2))
    annotation.setdefault("id", index + 1)
    annotation.setdefault("category_id", PERSON_CATEGORY["id"])
    annotation.setdefault("iscrowd", 0)
    annotation.setdefault("num_keypoints", int(labelled.sum()))
    annotation.setdefault("bbox", [*low.tolist(), *(high - low).tolist()])
    annotation.setdefault("area", float(np.prod(high - low)))


def match_images(images: list[dict[str, Any]], folder: Path) -> dict[int, Path]:
    """Ground-truth image id -> generated file: ``folder/file_name``, else the only image file below ``folder``
    with the same stem. Every unmatched or ambiguous name is reported in one error."""
    if not folder.is_dir():
        raise EvaluationError(f"--images {folder}: no such folder")
    by_stem: dict[str, list[Path]] = {}
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            by_stem.setdefault(path.stem, []).append(path)
    matched, missing, ambiguous = {}, [], []
    for image in images:
        exact = folder / image["file_name"]
        candidates = [exact] if exact.is_file() else by_stem.get(Path(image["file_name"]).stem, [])
        if len(candidates) == 1:
            matched[image["id"]] = candidates[0]
        else:
            (ambiguous if candidates else missing).append(image["file_name"])
    problems = []
    if missing:
        problems.append(f"{len(missing)} of {len(images)} have no file in {folder}: {_some(missing)}")
    if ambiguous:
        problems.append(f"{len(ambiguous)} match several files by name without extension: {_some(ambiguous)}")
    if problems:
        raise EvaluationError(
            "generated images must be named like the ground truth's file_name (the extension may differ); "
            + "; ".join(problems)
        )
    return matched


def _some(names: list[str], shown: int = 5) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


# ----- detections -----


def detect(
    ground_truth: dict[str, Any], files: dict[int, Path], backend: str, roots: list[str], device: str
) -> list[dict[str, Any]]:
    """COCO results of ``backend`` on each generated image, in the ground truth's pixels (a generated image of
    another size is stretched onto the ground truth's)."""
    detector = create_detector(backend, roots, device)
    detections: list[dict[str, Any]] = []
    try:
        for image in progress(ground_truth["images"], len(ground_truth["images"]), f"detecting people ({backend})"):
            pose = detector(_read_rgb(files[image["id"]]))
            detections += pose_to_results(pose.scale_to(image["width"], image["height"]), image["id"])
    finally:
        detector.close()
    return detections


def _read_rgb(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as opened:
            return np.asarray(opened.convert("RGB"))
    except (OSError, ValueError) as error:
        raise EvaluationError(f"{path}: cannot read the image ({error})") from error


def pose_to_results(pose: PoseKeypoints, image_id: int) -> list[dict[str, Any]]:
    """COCO results entries, one per person with a visible joint; score = mean joint confidence."""
    return [
        {
            "image_id": image_id,
            "category_id": PERSON_CATEGORY["id"],
            "keypoints": [round(float(value), 3) for value in person.ravel()],
            "score": round(float(person[:, 2].mean()), 5),
        }
        for person, visible in zip(pose.keypoints, pose.visible, strict=True)
        if visible.any()
    ]


def load_detections(path: Path, ground_truth: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        detections = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise EvaluationError(f"--detections {path}: cannot read a JSON file ({error})") from error
    if not isinstance(detections, list) or not all(isinstance(entry, dict) for entry in detections):
        raise EvaluationError(f"--detections {path}: expected a COCO results list [{{image_id, keypoints, score}}]")
    for detection in detections:
        detection.setdefault("category_id", PERSON_CATEGORY["id"])
    try:
        check_detections(ground_truth, detections)
    except ValueError as error:
        raise EvaluationError(f"--detections {path}: {error}") from error
    return detections


# ----- per-image OKS -----


def mean_oks(ground_truth: dict[str, Any], detections: list[dict[str, Any]]) -> float | None:
    """Mean over ground-truth images with people of :func:`.pose_score.score_image` (None when there are none)."""
    people: dict[int, list[list[float]]] = {}
    for annotation in ground_truth["annotations"]:
        if is_person(annotation):
            people.setdefault(annotation["image_id"], []).append(annotation["keypoints"])
    found: dict[int, list[list[float]]] = {}
    for detection in detections:
        found.setdefault(detection["image_id"], []).append(detection["keypoints"])
    scores = []
    for image in ground_truth["images"]:
        if image["id"] in people:
            size = image["width"], image["height"]
            target = _pose(people[image["id"]], *size)
            scores.append(score_image(target, _pose(found.get(image["id"], []), *size)).oks)
    return float(np.mean(scores)) if scores else None


def _pose(people: list[list[float]], width: int, height: int) -> PoseKeypoints:
    array = np.asarray(people, np.float32).reshape(len(people), len(COCO17_NAMES), 3)
    return PoseKeypoints(array, width, height)


# ----- command line -----


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    ground_truth = load_ground_truth(args.annotations)
    if args.detections is not None:
        detections = load_detections(args.detections, ground_truth)
        detector = f"detections file {args.detections.name}"
    else:
        if args.images is None:
            raise EvaluationError("give --images DIR (generated images) or --detections FILE (COCO results)")
        roots = [*args.weights_dir, *filter(None, [os.environ.get("AUX_ANNOTATOR_CKPTS_PATH")])]
        statuses = backend_statuses(roots)
        backend = args.backend or next((status.name for status in statuses if status.available), None)
        if backend is None:
            raise EvaluationError("no pose detector can run: " + "; ".join(f"{s.name}: {s.detail}" for s in statuses))
        files = match_images(ground_truth["images"], args.images)
        detections = detect(ground_truth, files, backend, roots, args.device)
        detector = backend
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "detections.json").write_text(json.dumps(detections), encoding="utf-8")
    metrics: dict[str, Any] = evaluate_keypoints(ground_truth, detections, args.area, args.released_cap)
    metrics |= {
        "OKS": mean_oks(ground_truth, detections),
        "detector": detector,
        "images": len(ground_truth["images"]),
        "people": sum(map(is_person, ground_truth["annotations"])),
        "detections": len(detections),
        "area": args.area,
        "cap_variant": "released" if args.released_cap else "correct",
    }
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return metrics


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(
        prog="python -m stablepose_core.evaluate",
        description=__doc__.split("\n\n")[0],
        epilog="See docs/evaluation.md for what each number means.",
    )
    parse.add_argument("--annotations", type=Path, required=True, help="COCO person-keypoint ground truth (JSON)")
    parse.add_argument("--images", type=Path, help="folder of generated images, named like the ground truth's")
    parse.add_argument("--out", type=Path, required=True, help="folder for metrics.json and detections.json")
    parse.add_argument("--backend", default="", help="blazepose, dwpose or openpose (default: first usable)")
    parse.add_argument("--detections", type=Path, help="COCO results JSON from any detector, instead of --backend")
    parse.add_argument("--weights-dir", action="append", default=[], help="folder with detector weights (repeatable)")
    parse.add_argument("--device", default="cpu", help="device of the dwpose/openpose detector")
    parse.add_argument(
        "--area",
        choices=AREA_CHOICES,
        default="keypoints",
        help="OKS object scale: the keypoints' box as the released evaluation (default) or the file's 'area' (COCO)",
    )
    parse.add_argument(
        "--released-cap",
        action="store_true",
        help="CAP exactly as released (the detection's y overwritten with its x); default: corrected",
    )
    return parse


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        metrics = evaluate(args)
    except (EvaluationError, RuntimeError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    oks = "n/a" if metrics["OKS"] is None else f"{metrics['OKS']:.3f}"
    print(
        f"{metrics['images']} images, {metrics['people']} people, {metrics['detections']} detections "
        f"({metrics['detector']}): AP {metrics['AP']:.3f}  AP50 {metrics['AP50']:.3f}  AP75 {metrics['AP75']:.3f}  "
        f"CAP {metrics['CAP']:.3f}  PCE {metrics['PCE']:.3f}  OKS {oks}  -> {args.out / 'metrics.json'}"
    )
    return 0
