"""Training data: dataset layouts, the per-sample pipeline, a resumable sampler and skip-counting collation.

Layouts (``docs/training.md``):

* **folder**: images anywhere under a folder, keypoints either in one COCO person-keypoints JSON at its top
  level (``images`` + ``annotations``) or in a JSON beside each image (``photo.jpg`` + ``photo.json``: the
  pack's ``stable-pose-coco17`` format or an OpenPose/ComfyUI ``POSE_KEYPOINT`` frame); captions from a
  ``.txt`` beside the image, a ``captions.json``/``.jsonl`` (or ``--captions``), or a ``caption`` field of
  the COCO image entry.
* **humanart**: the Human-Art/HumanSD mapping JSON the official code reads, ``{key: {"img_path",
  "pose_path", "prompt"}}`` with ``.npz`` detections (``arr_0``: a list of ``{"keypoints": (17, 3)}``).

A sample is drawn as the official ``PoseDataset`` draws it (augmentation, skeleton rendered afterwards, caption
dropped to "" with probability p). A sample that cannot be used (unreadable image or keypoints, no keypoints) is
replaced by the next usable one and reported as :class:`Skipped`, which the training loop counts; it never
stops a run.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from stablepose_core.poses.keypoints import COCO17_NAMES, JSON_FORMAT, PoseKeypoints, parse_json
from stablepose_core.poses.skeleton import MAX_PEOPLE, render_pose

from .augment import augment_sample, build_pipeline

log = logging.getLogger("stable_pose.training")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
CAPTION_FILES = ("captions.json", "captions.jsonl")
JOINTS = len(COCO17_NAMES)
MAX_CONSECUTIVE_SKIPS = 100


class DatasetError(ValueError):
    """A dataset that cannot be used at all (wrong path, unknown layout, nothing usable); says what to fix."""


@dataclass(frozen=True)
class Record:
    """One training image: its caption and either its keypoints or the file they are read from."""

    image: Path
    caption: str
    keypoints: PoseKeypoints | None = None
    pose_file: Path | None = None


@dataclass(frozen=True)
class Skipped:
    """A sample left out of its batch, with the reason (counted and logged by the training loop)."""

    reason: str
    path: str


@dataclass
class DatasetIndex:
    records: list[Record]
    skipped: Counter  # reason -> count, found while indexing


# --- keypoint readers ---------------------------------------------------------------------------------------
def coco_people(annotations: list[dict], width: int, height: int) -> PoseKeypoints:
    """People of COCO keypoint annotations (flat ``[x, y, v] × 17``); crowd regions are ignored.

    COCO's visibility v (0 unlabeled, 1 occluded, 2 visible) or a detector confidence in [0, 1] is used as
    the confidence, capped at 1: a labeled joint is drawn, as in the official data.
    """
    people = [
        np.asarray(a["keypoints"], dtype=np.float32).reshape(JOINTS, 3)
        for a in annotations
        if not a.get("iscrowd") and len(a.get("keypoints") or []) == JOINTS * 3
    ]
    points = np.stack(people) if people else np.zeros((0, JOINTS, 3), np.float32)
    points[..., 2] = np.minimum(points[..., 2], 1.0)
    return PoseKeypoints(points, width, height)


def read_pose_json(path: Path, image_size: tuple[int, int]) -> PoseKeypoints:
    """A per-image keypoint file: ``stable-pose-coco17`` JSON, or an OpenPose / ``POSE_KEYPOINT`` frame."""
    data = parse_json(path.read_text(encoding="utf-8"), path.name)
    if isinstance(data, list) and data:  # ComfyUI POSE_KEYPOINT is a list of frames
        data = data[0]
    if isinstance(data, dict) and data.get("format") == JSON_FORMAT:
        return PoseKeypoints.from_document(data)
    if isinstance(data, dict) and "people" in data:
        return PoseKeypoints.from_pose_keypoint(data, default_size=image_size)
    raise ValueError(f"{path.name}: neither {JSON_FORMAT} JSON nor an OpenPose/POSE_KEYPOINT frame")


def read_humanart_pose(path: Path, width: int, height: int) -> PoseKeypoints:
    """HumanSD's ``.npz`` detections: ``arr_0`` = list of ``{"keypoints": (17, 3)}`` (a pickle: trusted data)."""
    detections = np.load(path, allow_pickle=True)["arr_0"]
    people = [np.asarray(d["keypoints"], dtype=np.float32).reshape(JOINTS, 3) for d in detections]
    points = np.stack(people) if people else np.zeros((0, JOINTS, 3), np.float32)
    return PoseKeypoints(points, width, height)


def has_pose(pose: PoseKeypoints) -> bool:
    return bool(pose.visible[:MAX_PEOPLE].any())


# --- captions -------------------------------------------------------------------------------------------------
def read_captions(path: Path) -> dict[str, str]:
    """``{file: caption}`` JSON, or JSON lines of ``{"file_name"|"image": ..., "caption"|"text": ...}``."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".jsonl":
        entries = [json.loads(line) for line in text.splitlines() if line.strip()]
        try:
            return {str(e.get("file_name", e.get("image"))): str(e.get("caption", e.get("text", ""))) for e in entries}
        except AttributeError as error:
            raise DatasetError(f"{path}: every line must be a JSON object") from error
    data = json.loads(text)
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: a captions JSON maps file names to captions")
    return {str(k): str(v) for k, v in data.items()}


class CaptionLookup:
    """Caption of an image: sidecar ``.txt``, else a captions file (by relative path, file name or stem)."""

    def __init__(self, root: Path, captions_file: Path | None):
        self.root = root
        self.table: dict[str, str] = {}
        files = [captions_file] if captions_file else [root / n for n in CAPTION_FILES if (root / n).is_file()]
        for f in files:
            if not f.is_file():
                raise DatasetError(f"captions file not found: {f}")
            self.table.update(read_captions(f))

    def __call__(self, image: Path, fallback: str | None = None) -> str | None:
        sidecar = image.with_suffix(".txt")
        if sidecar.is_file():
            return sidecar.read_text(encoding="utf-8").strip()
        for key in (image.relative_to(self.root).as_posix(), image.name, image.stem):
            if key in self.table:
                return self.table[key]
        return fallback


# --- layouts ----------------------------------------------------------------------------------------------------
def _find_coco_file(root: Path) -> Path | None:
    found = []
    for path in sorted(root.glob("*.json")):
        if path.name in CAPTION_FILES:
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and "images" in data and "annotations" in data:
            found.append(path)
    if len(found) > 1:
        raise DatasetError(f"{root}: several COCO annotation files ({', '.join(p.name for p in found)}); keep one")
    return found[0] if found else None


def index_folder(root: Path, captions_file: Path | None = None) -> DatasetIndex:
    images = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not images:
        raise DatasetError(f"{root}: no images ({', '.join(IMAGE_EXTENSIONS)}) found")
    captions = CaptionLookup(root, captions_file)
    coco = _find_coco_file(root)
    skipped: Counter = Counter()
    records = []
    missing_captions = 0
    entries = _coco_entries(coco, images, skipped) if coco else [(image, None, None) for image in images]
    for image, pose, coco_caption in entries:
        if image is None:
            skipped["missing image"] += 1
            continue
        if pose is None:
            sidecar = image.with_suffix(".json")
            if not sidecar.is_file():
                skipped["no keypoints"] += 1
                continue
            try:
                size = _image_size(image)
            except UnreadableImage as error:
                log.warning("skipping %s: unreadable image (%s)", image, error)
                skipped["unreadable image"] += 1
                continue
            try:
                pose = read_pose_json(sidecar, size)
            except (OSError, ValueError, KeyError) as error:
                log.warning("skipping %s: unreadable keypoints (%s)", image, error)
                skipped["unreadable keypoints"] += 1
                continue
        if not has_pose(pose):
            skipped["no keypoints"] += 1
            continue
        caption = captions(image, coco_caption)
        missing_captions += caption is None
        records.append(Record(image=image, caption=caption or "", keypoints=pose))
    if missing_captions:
        log.warning("%d images have no caption; they train with the empty caption", missing_captions)
    return DatasetIndex(records, skipped)


class UnreadableImage(ValueError):
    """An image file PIL cannot open, or one declaring more pixels than PIL's decompression-bomb limit."""


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the header; a corrupt file or a decompression bomb is an :class:`UnreadableImage`."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise UnreadableImage(str(error)) from None


def _coco_entries(
    coco: Path, images: list[Path], skipped: Counter
) -> list[tuple[Path | None, PoseKeypoints, str | None]]:
    """(image path or None if missing, people, caption) per COCO image entry; an entry without a size whose
    image cannot be read is counted in ``skipped``."""
    root = coco.parent
    data = json.loads(coco.read_text(encoding="utf-8"))
    by_image: dict[object, list[dict]] = {}
    for annotation in data["annotations"]:
        by_image.setdefault(annotation.get("image_id"), []).append(annotation)
    by_name: dict[str, list[Path]] = {}
    for image in images:
        by_name.setdefault(image.name, []).append(image)
    entries = []
    for entry in data["images"]:
        name = str(entry.get("file_name", ""))
        candidates = [root / name, root / "images" / name, *by_name.get(Path(name).name, [])]
        path = next((c for c in candidates if c.is_file()), None)
        width, height = entry.get("width"), entry.get("height")
        if path is not None and not (width and height):
            try:
                width, height = _image_size(path)
            except UnreadableImage as error:
                log.warning("skipping %s: unreadable image (%s)", path, error)
                skipped["unreadable image"] += 1
                continue
        pose = coco_people(by_image.get(entry.get("id"), []), int(width or 1), int(height or 1))
        entries.append((path, pose, entry.get("caption")))
    return entries


def index_humanart(mapping_file: Path, base: Path | None = None) -> DatasetIndex:
    """The official mapping file; poses are read per sample (the release has ~50k ``.npz`` files)."""
    base = base or mapping_file.parent
    mapping = json.loads(mapping_file.read_text(encoding="utf-8"))
    if not isinstance(mapping, dict):
        raise DatasetError(f"{mapping_file}: a Human-Art mapping is a JSON object of entries")
    records, skipped = [], Counter()
    for key, entry in mapping.items():
        if not isinstance(entry, dict) or "img_path" not in entry or "pose_path" not in entry:
            raise DatasetError(f"{mapping_file}: entry {key!r} lacks img_path/pose_path")
        caption = str(entry.get("prompt", ""))
        records.append(Record(image=base / entry["img_path"], caption=caption, pose_file=base / entry["pose_path"]))
    return DatasetIndex(records, skipped)


def detect_format(path: Path) -> str:
    if path.is_dir():
        return "folder"
    if path.is_file() and path.suffix.lower() == ".json":
        return "humanart"
    raise DatasetError(f"dataset not found or not understood: {path} (a folder or a Human-Art mapping .json)")


def index_dataset(path: str | Path, data_format: str = "auto", data_root: str = "", captions: str = "") -> DatasetIndex:
    """Index a dataset; raises :class:`DatasetError` when nothing usable is found."""
    path = Path(path).expanduser()
    if not str(path):
        raise DatasetError("no dataset given (--data)")
    data_format = detect_format(path) if data_format == "auto" else data_format
    if data_format == "folder":
        index = index_folder(path, Path(captions).expanduser() if captions else None)
    else:
        index = index_humanart(path, Path(data_root).expanduser() if data_root else None)
    if not index.records:
        raise DatasetError(f"{path}: no usable samples (skipped: {dict(index.skipped) or 'none found'})")
    return index


# --- samples ------------------------------------------------------------------------------------------------
def to_chw_uint8(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).contiguous()


class PoseDataset(torch.utils.data.Dataset):
    """Indexed by ``(epoch, index)``: every random choice of a sample derives from (seed, epoch, index), so a
    resumed run sees exactly the samples the interrupted one would have seen."""

    def __init__(self, records: list[Record], resolution: int, augment: bool, caption_dropout: float, seed: int):
        self.records = records
        self.resolution = resolution
        self.augment = augment
        self.caption_dropout = caption_dropout
        self.seed = seed
        self.pipeline = build_pipeline(resolution, augment)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        """The sample at ``index``; an unusable one is replaced by the next usable one in index order (so
        batches keep their size, which DDP needs) and reported in ``skipped``."""
        epoch, index = key
        skipped: list[Skipped] = []
        for attempt in range(min(len(self.records), MAX_CONSECUTIVE_SKIPS)):
            sample = self.load(epoch, (index + attempt) % len(self.records))
            if isinstance(sample, Skipped):
                skipped.append(sample)
                continue
            return {**sample, "skipped": skipped}
        reasons = Counter(s.reason for s in skipped)
        raise DatasetError(f"{len(skipped)} consecutive samples are unusable ({dict(reasons)}), e.g. {skipped[0].path}")

    def load(self, epoch: int, index: int) -> dict | Skipped:
        record = self.records[index]
        rng = np.random.default_rng([self.seed, epoch, index])
        try:
            with Image.open(record.image) as opened:
                image = np.asarray(opened.convert("RGB"))
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            return Skipped("unreadable image", f"{record.image} ({error})")
        pose = record.keypoints
        if pose is None:
            try:
                pose = read_humanart_pose(record.pose_file, image.shape[1], image.shape[0])
            except (OSError, ValueError, KeyError, TypeError) as error:
                return Skipped("unreadable keypoints", f"{record.pose_file} ({error})")
            if not has_pose(pose):
                return Skipped("no keypoints", str(record.pose_file))
        if pose.keypoints.shape[0] > MAX_PEOPLE:
            pose = PoseKeypoints(pose.keypoints[:MAX_PEOPLE], pose.width, pose.height)
        image, pose = augment_sample(image, pose, self.pipeline, rng, self.augment)
        caption = "" if rng.random() < self.caption_dropout else record.caption
        return {"pixels": to_chw_uint8(image), "pose": to_chw_uint8(render_pose(pose)), "caption": caption}


def collate(items: list[dict]) -> dict:
    """Stack samples into uint8 ``pixels`` and ``pose`` (B, 3, H, W), ``captions``, and the ``skipped`` list."""
    return {
        "pixels": torch.stack([i["pixels"] for i in items]),
        "pose": torch.stack([i["pose"] for i in items]),
        "captions": [i["caption"] for i in items],
        "skipped": [s for i in items for s in i["skipped"]],
    }


class ResumableBatchSampler(torch.utils.data.Sampler):
    """Endless micro-batches of ``(epoch, index)``: a fresh permutation per epoch (seeded by seed + epoch),
    split between processes; ``start`` skips the micro-batches already consumed (resume), without loading them.
    Incomplete global batches at an epoch's end are dropped (official ``drop_last=True``)."""

    def __init__(self, num_samples: int, batch_size: int, seed: int, rank: int = 0, world: int = 1, start: int = 0):
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.rank, self.world, self.start = rank, world, start
        if self.batches_per_epoch == 0:
            raise DatasetError(
                f"{num_samples} usable samples are fewer than one global batch ({batch_size} × {world} processes)"
            )

    @property
    def batches_per_epoch(self) -> int:
        return self.num_samples // (self.batch_size * self.world)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        position, order_epoch, order = self.start, -1, torch.empty(0)
        while True:
            epoch, batch = divmod(position, self.batches_per_epoch)
            if epoch != order_epoch:
                generator = torch.Generator().manual_seed(self.seed + epoch)
                order_epoch, order = epoch, torch.randperm(self.num_samples, generator=generator)
            first = (batch * self.world + self.rank) * self.batch_size
            yield [(epoch, int(i)) for i in order[first : first + self.batch_size]]
            position += 1

    def __len__(self) -> int:  # one epoch; the iterator itself is endless
        return self.batches_per_epoch
