"""The paper's pose metrics over a set of generated images: keypoint AP, CAP and PCE.

Stable-Pose reports what HumanSD's evaluation computes (official ``utils/metrics/pose_metrics.py`` and
``coco_similarity.py``), from ground-truth keypoints in COCO format and COCO-format detections:

* **AP / AP50 / AP75**: COCO keypoint average precision over OKS thresholds 0.50:0.95 / at 0.50 / at 0.75, from
  pycocotools' ``COCOeval`` (keypoints, COCO-17 sigmas, up to 20 detections per image), unchanged.
* **CAP**: the same average precision with OKS replaced by a pose cosine similarity (:func:`pose_cosine_similarity`):
  keypoints divided by their sigmas, each axis min-max normalised per person, each axis L2-normalised, cosine of
  the concatenated (x, y) vectors over the ground truth's labelled joints. The released code overwrites the
  detection's y with its x (``yd = xd / ...``); ``released=True`` reproduces that, the default computes the
  similarity as described.
* **PCE**: mean over images of ``|people in the ground truth - people detected|`` (the released "human number
  difference"), counting every detection.

The object scale of OKS follows the released evaluation (:func:`.oks.keypoint_area`; ``area="annotation"`` keeps
the file's own ``area``, standard COCO). ``docs/evaluation.md`` explains the numbers and how the paper ran them.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .oks import COCO17_SIGMAS, keypoint_area

INSTALL_PYCOCOTOOLS = "the evaluation needs pycocotools: pip install pycocotools (or -r requirements-optional.txt)"
AREA_CHOICES = ("keypoints", "annotation")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """pycocotools prints its progress and summaries; keep the caller's output clean."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def _pycocotools() -> tuple[type, type]:
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as error:
        raise ImportError(INSTALL_PYCOCOTOOLS) from error
    return COCO, COCOeval


def _unit_range(values: np.ndarray) -> np.ndarray:
    """Min-max normalise to [0, 1], then to unit length; zero extent gives zeros (no information on that axis)."""
    extent = values.max() - values.min()
    if extent <= 0:
        return np.zeros_like(values)
    scaled = (values - values.min()) / extent
    return scaled / np.linalg.norm(scaled)


def pose_cosine_similarity(ground_truth: Sequence[float], detection: Sequence[float], released: bool = False) -> float:
    """CAP's similarity of two COCO keypoint lists ``[x, y, v] × 17`` over the ground truth's labelled joints.

    ``released=True`` is the released formula exactly, including the detection's y replaced by its x divided by
    the norm of its y, and NaN where it divides 0 by 0. Otherwise an axis with zero extent contributes nothing and
    a pair with nothing to compare scores 0.
    """
    truth = np.asarray(ground_truth, np.float64).reshape(-1, 3)
    found = np.asarray(detection, np.float64).reshape(-1, 3)
    labelled = truth[:, 2] > 0
    if not labelled.any():
        return 0.0
    xg, yg = (truth[labelled, :2] / COCO17_SIGMAS[labelled, None]).T
    xd, yd = (found[labelled, :2] / COCO17_SIGMAS[labelled, None]).T
    if released:
        return _released_cosine(xg, yg, xd, yd)
    g = np.concatenate([_unit_range(xg), _unit_range(yg)])
    d = np.concatenate([_unit_range(xd), _unit_range(yd)])
    norms = np.linalg.norm(g) * np.linalg.norm(d)
    return float(g @ d / norms) if norms > 0 else 0.0


def _released_cosine(xg: np.ndarray, yg: np.ndarray, xd: np.ndarray, yd: np.ndarray) -> float:
    """``COCOevalSimilarity.computeSimilarity`` (weighted cosine) of the release, its y overwrite included."""
    with np.errstate(divide="ignore", invalid="ignore"):
        xg, yg, xd, yd = ((v - v.min()) / (v.max() - v.min()) for v in (xg, yg, xd, yd))
        xg, yg, xd = (v / np.sqrt((v**2).sum()) for v in (xg, yg, xd))
        yd = xd / np.sqrt((yd**2).sum())  # the release's line: x where y was meant
        g, d = np.concatenate([xg, yg]), np.concatenate([xd, yd])
        return float(np.sum(g * d) / (np.linalg.norm(g) * np.linalg.norm(d)))


def labelled_joints(annotation: dict[str, Any]) -> np.ndarray:
    """Bool (17,): the annotation's keypoints with v > 0."""
    return np.asarray(annotation["keypoints"], np.float64).reshape(-1, 3)[:, 2] > 0


def is_person(annotation: dict[str, Any]) -> bool:
    """A ground-truth person that counts: not a crowd region, at least one labelled joint."""
    return not annotation.get("iscrowd", 0) and bool(labelled_joints(annotation).any())


def set_keypoint_areas(annotations: Sequence[dict[str, Any]]) -> None:
    """Set each annotation's ``area`` to the released evaluation's object scale (in place)."""
    for annotation in annotations:
        points = np.asarray(annotation["keypoints"], np.float64).reshape(1, -1, 3)
        annotation["area"] = float(keypoint_area(points, labelled_joints(annotation)[None])[0])


def _coco(dataset: dict[str, Any]) -> Any:
    coco_class, _ = _pycocotools()
    with _quiet():
        coco = coco_class()
        coco.dataset = dataset
        coco.createIndex()
    return coco


def _results(ground_truth: Any, detections: list[dict[str, Any]]) -> Any:
    """pycocotools' ``loadRes``, also for no detections at all (where ``loadRes`` fails)."""
    if detections:
        with _quiet():
            return ground_truth.loadRes(copy.deepcopy(detections))
    return _coco(
        {"images": ground_truth.dataset["images"], "categories": ground_truth.dataset["categories"], "annotations": []}
    )


def _cosine_eval_class() -> type:
    _, coco_eval = _pycocotools()

    class CosineSimilarityEval(coco_eval):
        """COCOeval with OKS replaced by :func:`pose_cosine_similarity` (what the release's
        ``COCOevalSimilarity.evaluateSimilarity`` does with its own copy of COCOeval's matching)."""

        released = False

        def computeOks(self, imgId: int, catId: int) -> np.ndarray | list:
            truths, found = self._gts[imgId, catId], self._dts[imgId, catId]
            order = np.argsort([-d["score"] for d in found], kind="mergesort")
            found = [found[i] for i in order[: self.params.maxDets[-1]]]
            if not truths or not found:
                return []
            return np.array(
                [[pose_cosine_similarity(t["keypoints"], d["keypoints"], self.released) for t in truths] for d in found]
            )

    return CosineSimilarityEval


def _average_precision(evaluator: Any) -> list[float]:
    with _quiet():
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return [float(value) for value in evaluator.stats[:3]]


def people_count_error(ground_truth: dict[str, Any], detections: Sequence[dict[str, Any]]) -> float:
    """Mean over the ground truth's images of ``|labelled people - detections|`` (PCE)."""
    truths: dict[int, int] = {image["id"]: 0 for image in ground_truth["images"]}
    for annotation in ground_truth["annotations"]:
        truths[annotation["image_id"]] += is_person(annotation)
    found = dict.fromkeys(truths, 0)
    for detection in detections:
        found[detection["image_id"]] += 1
    return float(np.mean([abs(truths[image] - found[image]) for image in truths])) if truths else 0.0


def _finite(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float's range
        return False


def finite_numbers(values: Any, count: int | None = None) -> bool:
    """Whether ``values`` is a list of ``count`` (any, if None) finite JSON numbers (bools are not numbers)."""
    return isinstance(values, list) and (count is None or len(values) == count) and all(map(_finite, values))


def check_detections(ground_truth: dict[str, Any], detections: Sequence[dict[str, Any]]) -> None:
    """Every detection names an image of the ground truth and has 17 (x, y, score) finite keypoints and a finite
    numeric score."""
    images = {image["id"] for image in ground_truth["images"]}
    for index, detection in enumerate(detections):
        if not isinstance(detection, dict):
            raise ValueError(f"detection {index}: must be an object {{image_id, keypoints, score}}")
        image_id = detection.get("image_id")
        if isinstance(image_id, list | dict) or image_id not in images:
            raise ValueError(f"detection {index}: image_id {image_id!r} is not in the ground truth")
        keypoints, score = detection.get("keypoints"), detection.get("score")
        if not finite_numbers(keypoints, 3 * len(COCO17_SIGMAS)) or not finite_numbers([score]):
            raise ValueError(
                f"detection {index}: needs 'keypoints' ([x, y, score] × 17 COCO joints, finite numbers) and a "
                f"numeric 'score', got keypoints {str(keypoints)[:60]} and score {score!r}"
            )


def evaluate_keypoints(
    ground_truth: dict[str, Any],
    detections: list[dict[str, Any]],
    area: str = "keypoints",
    released_cap: bool = False,
) -> dict[str, float]:
    """AP, AP50, AP75, CAP, CAP50, CAP75 and PCE of COCO-format ``detections`` against a COCO ``ground_truth``
    dataset (neither is modified)."""
    if area not in AREA_CHOICES:
        raise ValueError(f"area must be one of {AREA_CHOICES}, got {area!r}")
    check_detections(ground_truth, detections)
    dataset = copy.deepcopy(ground_truth)
    if area == "keypoints":
        set_keypoint_areas(dataset["annotations"])
    truth = _coco(dataset)
    _, coco_eval = _pycocotools()
    ap = _average_precision(coco_eval(truth, _results(truth, detections), "keypoints"))
    cosine = _cosine_eval_class()(truth, _results(truth, detections), "keypoints")
    cosine.released = released_cap
    cap = _average_precision(cosine)
    return {
        "AP": ap[0],
        "AP50": ap[1],
        "AP75": ap[2],
        "CAP": cap[0],
        "CAP50": cap[1],
        "CAP75": cap[2],
        "PCE": people_count_error(ground_truth, detections),
    }
