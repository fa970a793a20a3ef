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
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path, PureWindowsPath
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from ..atomic import atomic_create
from ..detect.backends import backend_statuses, create_detector
from ..poses.keypoints import COCO17_NAMES, MAX_CANVAS_SIZE, PoseKeypoints
from .coco_metrics import (
    AREA_CHOICES,
    check_detections,
    evaluate_keypoints,
    finite_numbers,
    is_person,
    labelled_joints,
)
from .score import MAX_PEOPLE_PER_IMAGE, score_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
PERSON_CATEGORY = {"id": 1, "name": "person", "keypoints": list(COCO17_NAMES)}
JOINTS = len(COCO17_NAMES)
MAX_IMAGE_SIDE = MAX_CANVAS_SIZE  # a ground-truth image side, in pixels
RESULT_FILES = ("detections.json", "metrics.json")  # written by write_results, as one set
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


def _read_json(path: Path, flag: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise EvaluationError(f"{flag} {path}: nested too deeply to be COCO JSON") from None
    except (OSError, ValueError) as error:  # ValueError: not JSON, or not UTF-8
        raise EvaluationError(f"{flag} {path}: cannot read a JSON file ({error})") from None


def load_ground_truth(path: Path) -> dict[str, Any]:
    """The COCO keypoint file, checked, with ``bbox``/``area``/``iscrowd``/``num_keypoints``/``categories``
    filled in where missing (from the labelled keypoints)."""
    dataset = _read_json(path, "--annotations")
    if not isinstance(dataset, dict) or not isinstance(dataset.get("images"), list):
        raise EvaluationError(f"--annotations {path}: not a COCO file (no 'images' list)")
    if not isinstance(dataset.setdefault("annotations", []), list):
        raise EvaluationError(f"--annotations {path}: 'annotations' must be a list")
    try:
        _check_images(dataset["images"])
        _check_annotations(dataset["annotations"], {image["id"] for image in dataset["images"]})
    except EvaluationError as error:
        raise EvaluationError(f"--annotations {path}: {error}") from None
    dataset.setdefault("categories", [PERSON_CATEGORY])
    for index, annotation in enumerate(dataset["annotations"]):
        _complete(annotation, index)
    return dataset


def _whole(value: Any, low: int = -(2**63), high: int = 2**63 - 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _inside_folder(name: Any) -> bool:
    """A relative file name that stays inside its folder (no absolute path, drive or ``..``)."""
    if not isinstance(name, str) or not name.strip() or "\0" in name:
        return False
    windows = PureWindowsPath(name)  # splits on both separators
    return not (windows.is_absolute() or windows.drive or windows.root or ".." in windows.parts)


def _check_images(images: list[Any]) -> None:
    """Each image an object with a unique whole-number id, a relative file_name and a size in pixels."""
    seen: set[int] = set()
    for index, image in enumerate(images):
        if not isinstance(image, dict):
            raise EvaluationError(f"images[{index}] must be an object {{id, file_name, width, height}}")
        missing = {"id", "file_name", "width", "height"} - set(image)
        if missing:
            raise EvaluationError(f"images[{index}] lacks {sorted(missing)}")
        if not _whole(image["id"]):
            raise EvaluationError(f"images[{index}]: id must be a whole number, got {image['id']!r:.60}")
        if image["id"] in seen:
            raise EvaluationError(f"images[{index}]: id {image['id']} appears twice; image ids must be unique")
        seen.add(image["id"])
        if not _inside_folder(image["file_name"]):
            raise EvaluationError(
                f"images[{index}]: file_name must be a relative name inside --images (no '..', not absolute), "
                f"got {image['file_name']!r:.80}"
            )
        for side in ("width", "height"):
            if not _whole(image[side], 1, MAX_IMAGE_SIDE):
                raise EvaluationError(
                    f"images[{index}]: {side} must be a whole number of pixels in 1..{MAX_IMAGE_SIDE}, "
                    f"got {image[side]!r:.60}"
                )


def _check_annotations(annotations: list[Any], images: set[int]) -> None:
    """Each annotation an object naming an image, with 17 ``[x, y, v]`` finite numbers; a cap per image."""
    people: Counter[int] = Counter()
    for index, annotation in enumerate(annotations):
        if not isinstance(annotation, dict) or not _whole(annotation.get("image_id")):
            raise EvaluationError(f"annotations[{index}] must be an object with an image_id of 'images'")
        if annotation["image_id"] not in images or not finite_numbers(annotation.get("keypoints"), 3 * JOINTS):
            raise EvaluationError(
                f"annotations[{index}] needs an image_id of 'images' and 17 [x, y, v] keypoints (finite numbers)"
            )
        people[annotation["image_id"]] += 1
    _check_people_per_image(people, "annotations")


def _check_people_per_image(people: Counter[int], what: str) -> None:
    crowded = [(image, count) for image, count in people.items() if count > MAX_PEOPLE_PER_IMAGE]
    if crowded:
        image, count = crowded[0]
        raise EvaluationError(
            f"image {image} has {count} {what}; at most {MAX_PEOPLE_PER_IMAGE} people per image are scored"
        )


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
    except (OSError, ValueError, Image.DecompressionBombError) as error:  # the bomb error is neither
        raise EvaluationError(f"{path}: cannot read the image ({error})") from None


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
    detections = _read_json(path, "--detections")
    if not isinstance(detections, list) or not all(isinstance(entry, dict) for entry in detections):
        raise EvaluationError(f"--detections {path}: expected a COCO results list [{{image_id, keypoints, score}}]")
    for detection in detections:
        detection.setdefault("category_id", PERSON_CATEGORY["id"])
    try:
        check_detections(ground_truth, detections)
        _check_people_per_image(Counter(detection["image_id"] for detection in detections), "detections")
    except ValueError as error:
        raise EvaluationError(f"--detections {path}: {error}") from None
    return detections


# ----- per-image OKS -----


def mean_oks(ground_truth: dict[str, Any], detections: list[dict[str, Any]]) -> float | None:
    """Mean over ground-truth images with people of :func:`.score.score_image` (None when there are none)."""
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


def check_out(args: argparse.Namespace) -> None:
    """Refuse, before any work, an ``--out`` that is a file, holds an input, or holds an earlier run's results."""
    out = args.out.resolve()
    if args.out.exists() and not args.out.is_dir():
        raise EvaluationError(f"--out {args.out}: is a file; give a folder for the results")
    for flag, given in (
        ("--annotations", args.annotations),
        ("--detections", args.detections),
        ("--images", args.images),
    ):
        if given is not None and (given.resolve() == out or out in given.resolve().parents):
            raise EvaluationError(f"--out {args.out} holds the {flag} input; write the results to another folder")
    earlier = [name for name in RESULT_FILES if os.path.lexists(args.out / name)]
    if earlier:
        raise EvaluationError(
            f"--out {args.out} already holds {' and '.join(earlier)} of an earlier run; choose a new folder "
            "(results are never overwritten)"
        )


def write_results(out: Path, results: dict[str, str]) -> None:
    """Write ``{file name: text}`` into ``out`` as one set: each file whole, never replacing one, and on any
    failure none of them is left."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        for name, text in results.items():
            with atomic_create(out / name) as tmp:
                tmp.write_text(text, encoding="utf-8")
            written.append(out / name)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    check_out(args)
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
    texts = (json.dumps(detections), json.dumps(metrics, indent=2) + "\n")
    write_results(args.out, dict(zip(RESULT_FILES, texts, strict=True)))
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
    except (EvaluationError, RuntimeError, ImportError, OSError) as error:  # OSError: e.g. --out not writable
        print(f"error: {error}", file=sys.stderr)
        return 2
    oks = "n/a" if metrics["OKS"] is None else f"{metrics['OKS']:.3f}"
    print(
        f"{metrics['images']} images, {metrics['people']} people, {metrics['detections']} detections "
        f"({metrics['detector']}): AP {metrics['AP']:.3f}  AP50 {metrics['AP50']:.3f}  AP75 {metrics['AP75']:.3f}  "
        f"CAP {metrics['CAP']:.3f}  PCE {metrics['PCE']:.3f}  OKS {oks}  -> {args.out / 'metrics.json'}"
    )
    return 0
