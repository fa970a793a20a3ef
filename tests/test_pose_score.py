"""Pose fidelity scoring (COCO OKS, one-to-one matching, per-image report) on real photos and hand-made poses."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from stablepose_core.detect.backends import BLAZEPOSE, create_detector
from stablepose_core.evaluate.oks import COCO17_SIGMAS, joint_similarity, keypoint_area, match_people, oks_matrix
from stablepose_core.evaluate.overlay import draw_score_overlay
from stablepose_core.evaluate.score import score_image
from stablepose_core.poses.keypoints import COCO17_NAMES, PoseKeypoints

PHOTOS = {
    "astronaut": data.astronaut(),
    "camera": np.repeat(data.camera()[..., None], 3, axis=-1),  # a cameraman, side-on, grey
}


@pytest.fixture(scope="module")
def detector():
    detector = create_detector(BLAZEPOSE, [])
    yield detector
    detector.close()


def as_target(pose: PoseKeypoints) -> PoseKeypoints:
    """The pose as a target arrives in ComfyUI: through POSE_KEYPOINT (present joints at confidence 1)."""
    return PoseKeypoints.from_pose_keypoint(pose.to_pose_keypoint())


def shifted(pose: PoseKeypoints, fraction: float) -> PoseKeypoints:
    points = pose.keypoints.copy()
    points[..., 0] += fraction * pose.width
    return PoseKeypoints(points, pose.width, pose.height)


def test_sigmas_and_oks_are_pycocotools():
    """Our OKS matrix equals COCOeval.computeOks given the same object scale (all detected joints present)."""
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(0)
    truths = rng.uniform(0, 400, (3, 17, 3))
    truths[..., 2] = rng.integers(0, 3, (3, 17))  # COCO v: 0 unlabelled, 1, 2
    found = truths[[1, 0, 2, 0]] + rng.normal(0, 15, (4, 17, 3))
    area = keypoint_area(truths, truths[..., 2] > 0)
    ours = oks_matrix(joint_similarity(truths, truths[..., 2] > 0, found, np.ones((4, 17), bool)))

    evaluator = COCOeval(iouType="keypoints")
    np.testing.assert_array_equal(evaluator.params.kpt_oks_sigmas, COCO17_SIGMAS)
    evaluator._gts = {
        (1, 1): [
            {"keypoints": t.ravel().tolist(), "area": a, "bbox": [0, 0, 1, 1]}
            for t, a in zip(truths, area, strict=True)
        ]
    }
    evaluator._dts = {(1, 1): [{"keypoints": d.ravel().tolist(), "score": 1.0} for d in found]}
    np.testing.assert_allclose(ours, evaluator.computeOks(1, 1).T, rtol=1e-12)


def test_object_scale_is_the_box_of_the_labelled_joints():
    points = np.zeros((2, 17, 3))
    points[0, [0, 5, 16]] = [(10, 20, 1), (50, 20, 1), (30, 120, 1)]
    points[0, 3] = (500, 500, 0)  # not labelled: ignored
    labelled = points[..., 2] > 0
    assert keypoint_area(points, labelled).tolist() == [40 * 100, 0.0]


@pytest.mark.parametrize("photo", sorted(PHOTOS))
def test_image_against_its_own_pose_and_shifted_copies(detector, photo):
    image = PHOTOS[photo]
    detected = detector(image)
    target = as_target(detected)
    assert target.num_people == 1
    scores = [score_image(shifted(target, fraction), detected).oks for fraction in (0.0, 0.1, 0.2)]
    print(f"{photo}: OKS own pose {scores[0]:.4f}, shifted 10 % {scores[1]:.4f}, 20 % {scores[2]:.4f}")
    assert scores[0] >= 0.95
    assert scores[0] > scores[1] > scores[2]
    again = score_image(target, detector(image))  # a fresh detection of the same photo
    assert again.oks >= 0.95 and (again.people_target, again.people_found, again.count_error) == (1, 1, 0)


def test_mirrored_astronaut_scores_markedly_lower(detector):
    image = PHOTOS["astronaut"]
    target = as_target(detector(image))
    mirrored = detector(np.ascontiguousarray(image[:, ::-1]))
    own, flipped = score_image(target, detector(image)).oks, score_image(target, mirrored).oks
    print(f"astronaut: OKS own pose {own:.4f}, mirrored image {flipped:.4f}")
    assert flipped < own - 0.5


@pytest.mark.parametrize("photo", sorted(PHOTOS))
def test_nobody_in_the_image_scores_zero_with_a_count_error(detector, photo):
    coffee = data.coffee()
    target = as_target(detector(PHOTOS[photo])).crop_to_canvas(coffee.shape[1], coffee.shape[0])
    score = score_image(target, detector(coffee))
    assert (score.oks, score.people_target, score.people_found, score.count_error) == (0.0, 1, 0, 1)
    (person,) = score.to_dict()["people"]
    assert person["detected"] is None and person["oks"] == 0.0
    assert all(joint["error_px"] is None for joint in person["joints"].values())


def two_people(offset: float = 0.0) -> np.ndarray:
    points = np.zeros((2, 17, 3), np.float32)
    for person, x in enumerate((100.0, 300.0)):
        points[person, :, 0] = x + offset + np.arange(17) * 3
        points[person, :, 1] = 50 + np.arange(17) * 20
        points[person, :, 2] = 1
    return points


def test_people_are_matched_one_to_one_and_counted():
    target = PoseKeypoints(two_people(), 512, 512)
    found = two_people(offset=4.0)[::-1]  # detected in the other order
    extra = np.zeros((1, 17, 3), np.float32)
    extra[0, :5] = (480, 10, 0.9)
    detected = PoseKeypoints(np.concatenate([found, extra]), 512, 512)
    score = score_image(target, detected)
    report = score.to_dict()
    assert [person["detected"] for person in report["people"]] == [1, 0]
    assert report["unmatched_detected"] == [2]
    assert (report["people_target"], report["people_found"], report["count_error"]) == (2, 3, 1)
    assert report["people"][0]["joints"]["nose"]["error_px"] == pytest.approx(4.0)
    assert 0.9 < score.oks < 1.0
    # one of the two target people missing from the image: that person scores 0
    alone = score_image(target, PoseKeypoints(two_people(offset=4.0)[:1], 512, 512))
    assert alone.oks == pytest.approx(score.people[0].oks / 2) and alone.count_error == 1


def test_absent_detected_joint_scores_zero_and_hidden_target_joints_do_not_count():
    target_points = two_people()[:1].copy()
    target_points[0, 16, 2] = 0  # right ankle not in the target: not scored
    found = two_people()[:1].copy()
    found[0, 0] = 0  # nose not detected
    score = score_image(PoseKeypoints(target_points, 512, 512), PoseKeypoints(found, 512, 512))
    (person,) = score.people
    assert [joint.name for joint in person.joints] == list(COCO17_NAMES[:16])
    assert person.joints[0].error_px is None and person.joints[0].similarity == 0.0
    assert person.oks == pytest.approx(15 / 16)


def test_empty_target_is_a_clear_error():
    with pytest.raises(ValueError, match="no person with a visible joint"):
        score_image(PoseKeypoints.empty(64, 64), PoseKeypoints(two_people(), 64, 64))
    with pytest.raises(ValueError, match="scale the target onto the image"):
        score_image(PoseKeypoints(two_people(), 512, 512), PoseKeypoints.empty(256, 256))


def test_matching_maximises_total_oks():
    # greedy (best first) would take (0, 0) = 0.9 and leave 0.1; the assignment takes 0.8 + 0.8
    assert sorted(match_people(np.array([[0.9, 0.8], [0.8, 0.1]]))) == [(0, 1), (1, 0)]
    assert match_people(np.array([[0.0, 0.0]])) == []
    assert match_people(np.zeros((1, 0))) == []


def test_crop_to_canvas_is_comfyuis_centre_crop():
    """768 × 512 -> 512 × 512: ComfyUI cuts round((768 - 512) / 2) = 128 px off each side, then scales by 1."""
    pose = PoseKeypoints(
        np.array([[[128, 0, 1], [640, 256, 1], [100, 10, 1]] + [[0, 0, 0]] * 14], np.float32), 768, 512
    )
    cropped = pose.crop_to_canvas(256, 256)
    np.testing.assert_allclose(cropped.keypoints[0, :3, :2], [[0, 0], [256, 128], [-14, 5]])
    assert cropped.visible[0, :3].tolist() == [True, False, False]  # x = 256 and x < 0 are off the canvas
    tall = PoseKeypoints(pose.keypoints, 512, 768).crop_to_canvas(512, 512)
    np.testing.assert_allclose(tall.keypoints[0, 0, :2], [128, -128])


def test_overlay_shows_both_skeletons_and_errors(detector):
    image = PHOTOS["astronaut"]
    detected = detector(image)
    target = shifted(as_target(detected), 0.1)
    score = score_image(target, detected)
    overlay = draw_score_overlay(image, target, detected, score)
    assert overlay.shape == image.shape and overlay.dtype == np.uint8
    white = (overlay == 255).all(-1)
    assert white[150:, :].sum() > 200, "detected skeleton (and nothing else white below the caption)"
    red_or_yellow = (overlay[..., 0] > 200) & (overlay[..., 2] < 50) & (overlay[..., 1] < 240)
    assert red_or_yellow.sum() > 100, "error lines of a 10 % shift are not green"
    assert (overlay[:20, :120] == 255).any(), "caption"
    untouched = np.abs(overlay.astype(int) - np.round(image * 0.45)).max(-1) <= 1
    assert untouched.mean() > 0.7, "the photo stays visible, dimmed"
