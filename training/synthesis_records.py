"""The parts of ``python -m training.synthesize`` that are plain data: the input poses, the jobs (pose × prompt ×
seed, in a fixed order), one record per finished job, and the COCO keypoints file merged from the records."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stablepose_core.atomic import atomic_write
from stablepose_core.evaluate.cli import PERSON_CATEGORY, EvaluationError, load_ground_truth
from stablepose_core.evaluate.oks import joint_similarity, match_people, oks_matrix
from stablepose_core.evaluate.score import people_with_joints, score_image
from stablepose_core.poses.keypoints import PoseKeypoints, pose_from_data
from stablepose_core.poses.sequence import PoseSequence

from .data import coco_people

RECORDS = "records"  # one JSON per finished job: its presence means the job is done
ANNOTATIONS = "annotations.json"


class SynthesisError(ValueError):
    """Something in the inputs the user has to fix; the message says what."""


# ----- input poses -----


def _poses_of_document(data: Any, shown: str) -> list[PoseKeypoints]:
    """A COCO keypoints file (one pose per image), POSE_KEYPOINT frames (a pose sequence) or one pose document."""
    if isinstance(data, dict) and isinstance(data.get("images"), list) and "annotations" in data:
        return []  # read by _coco_poses, which checks the file
    if isinstance(data, list) and data and all(isinstance(frame, dict) and "people" in frame for frame in data):
        return PoseSequence.from_pose_keypoint(data).poses()
    return [pose_from_data(data, shown)]


def _coco_poses(path: Path) -> list[PoseKeypoints]:
    try:
        dataset = load_ground_truth(path)
    except EvaluationError as error:
        raise SynthesisError(str(error).replace("--annotations ", "--poses ")) from None
    by_image: dict[Any, list[dict]] = {image["id"]: [] for image in dataset["images"]}
    for annotation in dataset["annotations"]:
        by_image[annotation["image_id"]].append(annotation)
    sizes = {image["id"]: (image["width"], image["height"]) for image in dataset["images"]}
    return [coco_people(people, *sizes[image_id]) for image_id, people in by_image.items()]


def read_poses(path: Path) -> list[PoseKeypoints]:
    """The poses to generate: a COCO keypoints file, a pose sequence (POSE_KEYPOINT frames), a pose JSON file or a
    folder of them (in name order). Joints that are not visible are dropped (confidence 0), people without
    visible joints left out, poses without anybody skipped."""
    files = sorted(p for p in path.iterdir() if p.suffix == ".json") if path.is_dir() else [path]
    if not path.exists() or not files:
        raise SynthesisError(f"--poses {path}: no such file, or a folder without .json files")
    poses = []
    for file in files:
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
            found = _poses_of_document(data, file.name) or _coco_poses(file)
        except (ValueError, UnicodeDecodeError) as error:
            raise SynthesisError(f"--poses {file}: {error}") from None
        poses += [visible_only(pose) for pose in found]
    kept = [pose for pose in poses if pose.num_people]
    if not kept:
        raise SynthesisError(f"--poses {path}: no pose with a visible joint")
    return kept


def visible_only(pose: PoseKeypoints) -> PoseKeypoints:
    """The people with a visible joint; every other joint set to ``(0, 0, 0)``."""
    points = np.where(pose.visible[..., None], pose.keypoints, 0.0)[people_with_joints(pose)]
    return PoseKeypoints(points.reshape(-1, 17, 3), pose.width, pose.height)


# ----- jobs -----


@dataclass(frozen=True)
class Job:
    index: int
    pose_index: int
    prompt: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.index:06d}"


def make_jobs(pose_count: int, prompts: list[str], seeds: int, first_seed: int) -> list[Job]:
    """Pose × prompt × seed, in that nesting order; the k-th seed of every pose and prompt is ``first_seed + k``."""
    jobs = []
    for pose_index in range(pose_count):
        for prompt in prompts:
            for k in range(seeds):
                jobs.append(Job(len(jobs), pose_index, prompt, first_seed + k))
    return jobs


def done_jobs(out: Path) -> set[str]:
    return {path.stem for path in (out / RECORDS).glob("*.json")}


def write_record(out: Path, job: Job, record: dict[str, Any]) -> None:
    """The job's record, written last and atomically: a killed job leaves no record and is redone."""
    with atomic_write(out / RECORDS / f"{job.name}.json") as tmp:
        tmp.write_text(json.dumps(record, sort_keys=True))


# ----- one image's record -----


def coco_keypoints(points: np.ndarray, visible: np.ndarray) -> list[float]:
    """COCO's flat ``[x, y, v] × 17``: v = 2 for visible joints, absent ones ``0, 0, 0``."""
    flat = np.where(visible[:, None], np.concatenate([points[:, :2], np.full((17, 1), 2.0)], 1), 0.0)
    return [round(float(value), 3) for value in flat.ravel()]


def person_entries(target: PoseKeypoints, detected: PoseKeypoints, bodies: list[dict[str, Any]]) -> list[dict]:
    """One entry per target person: ground truth, matched detection and its OKS, and the fitted body (``bodies``:
    the people of a ``stable-pose-body`` frame) whose joints match it best."""
    score = score_image(target, detected)
    joints = [[(x, y, 1.0) for x, y in body["joints_2d"]] for body in bodies]
    fitted = PoseKeypoints(np.array(joints, np.float32).reshape(-1, 17, 3), target.width, target.height)
    found = people_with_joints(target)
    similarity = joint_similarity(target.keypoints[found], target.visible[found], fitted.keypoints, fitted.visible)
    body_of = dict(match_people(oks_matrix(similarity)))
    entries = []
    for row, person in enumerate(score.people):
        visible = target.visible[person.target]
        matched = None if person.detected is None else detected.keypoints[person.detected]
        entries.append(
            {
                "keypoints": coco_keypoints(target.keypoints[person.target], visible),
                "num_keypoints": int(visible.sum()),
                "detected_keypoints": None if matched is None else coco_keypoints(matched, matched[:, 2] > 0),
                "oks": round(person.oks, 6),
                "body": bodies[body_of[row]] if row in body_of else None,
            }
        )
    return entries


# ----- the dataset file -----


def _bbox(keypoints: list[float]) -> list[float]:
    points = np.asarray(keypoints, np.float64).reshape(17, 3)
    points = points[points[:, 2] > 0, :2]
    low, high = points.min(0), points.max(0)
    return [round(float(v), 3) for v in (*low, *(high - low))]


def merge(out: Path, jobs: list[Job], info: dict[str, Any]) -> dict[str, int]:
    """Write ``annotations.json`` from the records of ``jobs`` (in job order; image id = job index + 1) and count
    what was kept and why the rest was not."""
    images, annotations, counts = [], [], {"kept": 0, "low OKS": 0, "implausible": 0, "missing": 0}
    for job in jobs:
        path = out / RECORDS / f"{job.name}.json"
        if not path.is_file():
            counts["missing"] += 1
            continue
        record = json.loads(path.read_text())
        if record["rejected"]:
            counts[record["rejected"]] += 1
            continue
        counts["kept"] += 1
        images.append({"id": job.index + 1, **record["image"]})
        for person in record["people"]:
            bbox = _bbox(person["keypoints"])
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": job.index + 1,
                    "category_id": PERSON_CATEGORY["id"],
                    "iscrowd": 0,
                    "bbox": bbox,
                    "area": round(bbox[2] * bbox[3], 3),
                    **person,
                }
            )
    dataset = {"info": info, "images": images, "annotations": annotations, "categories": [PERSON_CATEGORY]}
    with atomic_write(out / ANNOTATIONS) as tmp:
        tmp.write_text(json.dumps(dataset, indent=1, sort_keys=True))
    return counts
