"""CAP and PCE on hand-made cases whose answers are worked out by hand; AP from pycocotools."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stablepose_core.evaluate.coco_metrics import evaluate_keypoints, people_count_error, pose_cosine_similarity
from stablepose_core.evaluate.oks import COCO17_SIGMAS

# Three joints of one arm; coordinates are (pattern + offset) × sigma × 1000 px, so after CAP's division by the
# sigmas each axis is the pattern itself up to scale and shift, which the min-max normalisation removes.
ARM = [5, 7, 9]  # left shoulder, elbow, wrist


def keypoints(x_pattern, y_pattern, offset=(0.5, 1.0), joints=ARM) -> list[float]:
    points = np.zeros((17, 3))
    sigma = COCO17_SIGMAS[joints]
    points[joints, 0] = (np.asarray(x_pattern) + offset[0]) * sigma * 1000
    points[joints, 1] = (np.asarray(y_pattern) + offset[1]) * sigma * 1000
    points[joints, 2] = 2
    return points.ravel().tolist()


TRUTH = keypoints((0, 1, 2), (0, 1, 2))
# x pattern (0, 2, 1): cos_x = (0,1,2)·(0,2,1) / 5 = 0.8; y pattern (0, 2, 3): cos_y = 8 / sqrt(5 · 13)
DETECTION = keypoints((0, 2, 1), (0, 2, 3))
CORRECT = (0.8 + 8 / math.sqrt(65)) / 2  # 0.89614
# Released: y_d := unit(x_d) / |minmax(y_d)|, |minmax(y_d)| = |(0, 2/3, 1)| = sqrt(13) / 3 = c.
# cos = (x_g·x_d + y_g·x_d / c) / (sqrt(2) · sqrt(1 + 1/c²)), with x_g·x_d = y_g·x_d = 0.8
_C = math.sqrt(13) / 3
RELEASED = 0.8 * (1 + 1 / _C) / (math.sqrt(2) * math.sqrt(1 + 1 / _C**2))  # 0.79665


def test_cosine_similarity_hand_made():
    assert pose_cosine_similarity(TRUTH, DETECTION) == pytest.approx(CORRECT, abs=1e-12)
    assert pose_cosine_similarity(TRUTH, DETECTION, released=True) == pytest.approx(RELEASED, abs=1e-12)


def standing_figure() -> np.ndarray:
    """Nose, shoulders, hips and ankles of a person standing upright (17 × 3, v = 2 where labelled)."""
    points = np.zeros((17, 3))
    labelled = [(0, 250, 100), (5, 200, 180), (6, 300, 180), (11, 215, 330), (12, 285, 330), (15, 210, 480)]
    for joint, x, y in [*labelled, (16, 290, 480)]:
        points[joint] = (x, y, 2)
    return points


def test_cosine_similarity_ignores_size_but_not_a_shift_in_pixels():
    figure = standing_figure()
    larger = figure * [3, 3, 1]  # three times as large (about the origin)
    assert pose_cosine_similarity(figure.ravel(), larger.ravel()) == pytest.approx(1.0, abs=1e-12)
    # the same pose moved in the image is another pose to CAP: coordinates are divided by per-joint sigmas
    # before the min-max normalisation, so a shift of t px adds t / sigma_i, different for each joint
    lower = figure + np.array([0, 100, 0])
    assert pose_cosine_similarity(figure.ravel(), lower.ravel()) < 0.97


def test_released_cosine_similarity_of_a_pose_with_itself_is_not_one():
    """The y overwrite makes the detection's y pattern its x pattern: an upright person (tall, narrow) matched
    with itself scores 0.77, so a perfect image passes only 6 of CAP's 10 thresholds."""
    figure = standing_figure().ravel()
    assert pose_cosine_similarity(figure, figure) == pytest.approx(1.0, abs=1e-12)
    assert pose_cosine_similarity(figure, figure, released=True) == pytest.approx(0.768, abs=1e-3)
    truth = dataset([[figure.tolist()]])
    assert evaluate_keypoints(truth, [result(0, figure.tolist())], released_cap=True)["CAP"] == pytest.approx(0.6)


def test_cosine_similarity_only_over_labelled_ground_truth_joints():
    detection = np.asarray(DETECTION).reshape(17, 3)
    detection[0] = (999, 999, 1)  # a joint the ground truth does not label: ignored
    assert pose_cosine_similarity(TRUTH, detection.ravel()) == pytest.approx(CORRECT, abs=1e-12)


def test_cosine_similarity_degenerate_cases():
    one_joint = keypoints((0,), (0,), joints=[0])
    assert pose_cosine_similarity(one_joint, one_joint) == 0.0
    assert math.isnan(pose_cosine_similarity(one_joint, one_joint, released=True))  # the release divides 0 by 0
    level = keypoints((0, 1), (0, 0), joints=[5, 6])  # shoulders level: no y extent, x alone decides
    assert pose_cosine_similarity(level, level) == pytest.approx(1.0)
    tilted = keypoints((0, 1), (0, 1), joints=[5, 6])
    assert pose_cosine_similarity(level, tilted) == pytest.approx(1 / math.sqrt(2))
    assert pose_cosine_similarity(TRUTH, np.zeros(51)) == 0.0
    assert pose_cosine_similarity(np.zeros(51), TRUTH) == 0.0


def dataset(people_per_image: list[list[list[float]]]) -> dict:
    images = [{"id": i, "file_name": f"{i}.png", "width": 512, "height": 512} for i in range(len(people_per_image))]
    annotations = []
    for image, people in enumerate(people_per_image):
        for person in people:
            labelled = np.asarray(person).reshape(17, 3)[:, 2] > 0
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image,
                    "category_id": 1,
                    "iscrowd": 0,
                    "keypoints": person,
                    "num_keypoints": int(labelled.sum()),
                    "bbox": [0, 0, 10, 10],
                    "area": 100.0,
                }
            )
    return {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}


def result(image: int, person: list[float], score: float = 1.0) -> dict:
    return {"image_id": image, "category_id": 1, "keypoints": person, "score": score}


def test_cap_of_one_pair_is_the_share_of_thresholds_it_passes():
    """One person, one detection: AP at a threshold is 1 if the pair matches, else 0; CAP averages over
    0.50, 0.55, ..., 0.95. Correct similarity 0.896 passes 8 of 10 thresholds, the released 0.797 passes 6."""
    truth = dataset([[TRUTH]])
    assert evaluate_keypoints(truth, [result(0, DETECTION)])["CAP"] == pytest.approx(0.8)
    assert evaluate_keypoints(truth, [result(0, DETECTION)], released_cap=True)["CAP"] == pytest.approx(0.6)
    perfect = evaluate_keypoints(truth, [result(0, TRUTH)])
    assert [perfect[key] for key in ("CAP", "AP", "AP50", "AP75")] == pytest.approx([1.0] * 4)


def test_cap_with_a_false_positive_ranked_first():
    """A higher-scored detection of the wrong shape (similarity 0.2, matches nothing) comes first: precision at
    the only recall level is 1/2 wherever the good one (similarity 1) matches, so CAP = 0.5."""
    upside = keypoints((2, 1, 0), (2, 1, 0))  # both axes reversed: cos_x = cos_y = (0,1,2)·(2,1,0) / 5 = 0.2
    assert pose_cosine_similarity(TRUTH, upside) == pytest.approx(0.2)
    metrics = evaluate_keypoints(dataset([[TRUTH]]), [result(0, upside, 0.9), result(0, TRUTH, 0.5)])
    assert metrics["CAP"] == pytest.approx(0.5)


def test_people_count_error_hand_made():
    """Images with 1, 2 and 1 people; 1, 0 and 3 detections: (0 + 2 + 2) / 3."""
    truth = dataset([[TRUTH], [TRUTH, TRUTH], [TRUTH]])
    found = [result(0, TRUTH), result(2, TRUTH), result(2, TRUTH), result(2, DETECTION)]
    assert people_count_error(truth, found) == pytest.approx(4 / 3)
    assert evaluate_keypoints(truth, found)["PCE"] == pytest.approx(4 / 3)
    crowd = dataset([[TRUTH, TRUTH]])
    crowd["annotations"][1]["iscrowd"] = 1  # a crowd region is not a person to count
    assert people_count_error(crowd, []) == 1.0


def test_no_detections_at_all():
    metrics = evaluate_keypoints(dataset([[TRUTH], [TRUTH]]), [])
    assert (metrics["AP"], metrics["CAP"], metrics["PCE"]) == (0.0, 0.0, 1.0)


def test_detections_must_name_known_images():
    with pytest.raises(ValueError, match="image_id 7 is not in the ground truth"):
        evaluate_keypoints(dataset([[TRUTH]]), [result(7, TRUTH)])
    with pytest.raises(ValueError, match="17 COCO joints"):
        evaluate_keypoints(dataset([[TRUTH]]), [{"image_id": 0, "keypoints": [1, 2, 3], "score": 1}])
