"""Build a training folder from plain images: ``python -m training.prepare IMAGES OUTPUT [--captions FILE]``.

Each image goes through one of the pack's pose detectors (``stablepose_core.detect.backends``: MediaPipe
BlazePose built in; DWPose / OpenPose with local weights); images where nobody is found are left out. The
output is the folder layout ``python -m training.train --data OUTPUT`` reads::

    OUTPUT/images/...        the images (copied, or symlinked with --link), same sub-folders
    OUTPUT/keypoints.json    COCO person keypoints (detector confidence in the visibility slot), with each
                             image's caption in its ``images`` entry

Captions come from ``--captions`` (``{file: caption}`` JSON or JSON lines) or a ``.txt`` beside each image.
Images are read as the training reads them (no EXIF rotation), so keypoints and pixels agree.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from stablepose_core.atomic import atomic_write
from stablepose_core.detect.backends import PoseDetector, backend_statuses, create_detector
from stablepose_core.poses.keypoints import COCO17_LIMBS, COCO17_NAMES, PoseKeypoints
from stablepose_host import find_comfyui

from .data import IMAGE_EXTENSIONS, CaptionLookup, DatasetError, has_pose

log = logging.getLogger("stable_pose.training")


def weight_roots(extra: list[str]) -> list[str]:
    """Detector weight folders: ``--weights-dir``, ``$AUX_ANNOTATOR_CKPTS_PATH``, ComfyUI's
    ``models/pose_detectors`` and comfyui_controlnet_aux's ``ckpts`` when ComfyUI is found."""
    roots = list(extra)
    if os.environ.get("AUX_ANNOTATOR_CKPTS_PATH"):
        roots.append(os.environ["AUX_ANNOTATOR_CKPTS_PATH"])
    try:
        comfyui = find_comfyui()
    except FileNotFoundError:
        return roots
    roots.append(str(comfyui / "models" / "pose_detectors"))
    roots += [str(p / "ckpts") for p in sorted((comfyui / "custom_nodes").glob("comfyui_controlnet_aux*"))]
    return roots


def _place(source: Path, target: Path, link: bool) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() or target.is_symlink():
        target.unlink()
    if link:
        target.symlink_to(source.resolve())
    else:
        shutil.copy2(source, target)


def prepare(
    images_dir: Path,
    output_dir: Path,
    captions: Path | None = None,
    backend: str = "",
    weights_dirs: list[str] | None = None,
    link: bool = False,
    device: str = "cpu",
) -> Counter:
    """Detect, copy and write ``keypoints.json``; returns counts (``kept``, ``no person``, ``unreadable``,
    ``no caption``)."""
    images = sorted(p for p in images_dir.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not images:
        raise DatasetError(f"{images_dir}: no images ({', '.join(IMAGE_EXTENSIONS)}) found")
    if output_dir.resolve() == images_dir.resolve():
        raise DatasetError("the output folder must differ from the images folder")
    lookup = CaptionLookup(images_dir, captions)
    detector = _detector(backend, weights_dirs or [], device)
    counts: Counter = Counter()
    coco: dict[str, list] = {"images": [], "annotations": [], "categories": [COCO_PERSON]}
    try:
        for image_id, path in enumerate(tqdm(images, unit="image")):
            pose = _detect(detector, path, counts)
            if pose is None:
                continue
            relative = Path("images") / path.relative_to(images_dir)
            _place(path, output_dir / relative, link)
            caption = lookup(path)
            counts["no caption"] += caption is None
            _add_image(coco, image_id, relative, pose, caption or "")
            counts["kept"] += 1
    finally:
        detector.close()
    with atomic_write(output_dir / "keypoints.json") as tmp:
        tmp.write_text(json.dumps(coco), encoding="utf-8")
    return counts


# COCO's person category; its skeleton is 1-based
COCO_PERSON = {
    "id": 1,
    "name": "person",
    "keypoints": list(COCO17_NAMES),
    "skeleton": [[a + 1, b + 1] for a, b in COCO17_LIMBS],
}


def _detector(backend: str, weights_dirs: list[str], device: str) -> PoseDetector:
    roots = weight_roots(weights_dirs)
    available = [s.name for s in backend_statuses(roots) if s.available]
    if not available:
        raise RuntimeError("no pose detector can run: the built-in BlazePose files are missing (reinstall the pack)")
    return create_detector(backend or available[0], roots, device)


def _detect(detector: PoseDetector, path: Path, counts: Counter) -> PoseKeypoints | None:
    """The image's people, or None (counted as ``unreadable`` or ``no person``)."""
    try:
        with Image.open(path) as opened:
            pixels = np.asarray(opened.convert("RGB"))
    except (OSError, ValueError) as error:
        log.warning("skipping %s: unreadable (%s)", path, error)
        counts["unreadable"] += 1
        return None
    pose = detector(pixels)
    if not has_pose(pose):
        counts["no person"] += 1
        return None
    return pose


def _add_image(coco: dict[str, list], image_id: int, relative: Path, pose: PoseKeypoints, caption: str) -> None:
    """Append the image and one annotation per person to the COCO ``images`` and ``annotations`` lists."""
    size = {"width": pose.width, "height": pose.height}
    coco["images"].append({"id": image_id, "file_name": relative.as_posix(), **size, "caption": caption})
    annotations = coco["annotations"]
    for person, visible in zip(pose.keypoints, pose.visible, strict=True):
        annotations.append(
            {
                "id": len(annotations),
                "image_id": image_id,
                "category_id": 1,
                "iscrowd": 0,
                "num_keypoints": int(visible.sum()),
                "keypoints": [round(float(v), 3) for v in person.ravel()],
            }
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", type=Path, help="folder of images (searched recursively)")
    parser.add_argument("output", type=Path, help="dataset folder to write")
    parser.add_argument(
        "--captions",
        type=Path,
        help="captions file ({file: caption} .json or .jsonl); default: a .txt beside each image",
    )
    parser.add_argument(
        "--backend", default="", help="pose detector: blazepose, dwpose or openpose (default: the first available)"
    )
    parser.add_argument("--weights-dir", action="append", default=[], help="folder with detector weights (repeatable)")
    parser.add_argument("--link", action="store_true", help="symlink the images instead of copying them")
    parser.add_argument("--device", default="cpu", help="device of the detector (dwpose/openpose)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        counts = prepare(
            args.images, args.output, args.captions, args.backend, args.weights_dir, args.link, args.device
        )
    except (DatasetError, RuntimeError, ValueError) as error:
        log.error("%s", error)
        return 2
    print(
        f"{args.output}: {counts['kept']} images with people; left out: {counts['no person']} without a "
        f"person, {counts['unreadable']} unreadable; {counts['no caption']} without a caption"
    )
    return 0 if counts["kept"] else 1


if __name__ == "__main__":
    sys.exit(main())
