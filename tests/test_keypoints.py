"""PoseKeypoints: layouts, conversions, POSE_KEYPOINT frames, JSON, flips and canvas fitting."""

import json

import numpy as np
import pytest

from stablepose_core.poses.formats import (
    BLAZEPOSE33_OF_COCO17,
    BODY25_OF_COCO17,
    OPENPOSE18_OF_COCO17,
    from_coco17,
    to_coco17,
)
from stablepose_core.poses.keypoints import (
    COCO17_FLIP_PAIRS,
    COCO17_LIMBS,
    COCO17_NAMES,
    WORLD_KEY,
    PoseDataError,
    PoseKeypoints,
)


def random_people(count: int, width: int = 512, height: int = 512, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    points = np.zeros((count, 17, 3), np.float32)
    points[..., 0] = rng.uniform(0, width, (count, 17))
    points[..., 1] = rng.uniform(0, height, (count, 17))
    points[..., 2] = rng.uniform(0.05, 1, (count, 17))
    return points


def test_index_maps_match_the_published_layouts():
    # Written out by hand from the OpenPose / MediaPipe documentation, not derived from the name tables.
    assert OPENPOSE18_OF_COCO17.tolist() == [0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10]
    assert BODY25_OF_COCO17.tolist() == [0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11]
    assert BLAZEPOSE33_OF_COCO17.tolist() == [0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]


def test_official_skeleton_and_flip_pairs():
    assert len(COCO17_NAMES) == 17
    assert COCO17_LIMBS[0] == (0, 1) and COCO17_LIMBS[-1] == (14, 16) and len(COCO17_LIMBS) == 16
    for left, right in COCO17_FLIP_PAIRS:
        assert COCO17_NAMES[left].replace("left_", "") == COCO17_NAMES[right].replace("right_", "")


@pytest.mark.parametrize("layout", ["openpose18", "body25"])
def test_openpose_round_trip_and_derived_joints(layout):
    coco = random_people(3)
    coco[1, 6, 2] = 0.0  # person 1 has no right shoulder -> no neck
    converted = from_coco17(coco, layout)
    np.testing.assert_array_equal(to_coco17(converted, layout), coco)
    neck = converted[:, 1]
    np.testing.assert_allclose(neck[0, :2], (coco[0, 5, :2] + coco[0, 6, :2]) / 2)
    assert neck[0, 2] == min(coco[0, 5, 2], coco[0, 6, 2])
    assert neck[1].tolist() == [0, 0, 0]
    if layout == "body25":
        np.testing.assert_allclose(converted[0, 8, :2], (coco[0, 11, :2] + coco[0, 12, :2]) / 2)
        assert (converted[:, 19:] == 0).all()  # no feet in COCO-17


def test_blazepose_to_coco():
    blaze = np.arange(33 * 3, dtype=np.float32).reshape(1, 33, 3)
    coco = to_coco17(blaze, "blazepose33")
    assert coco[0, 1, 0] == blaze[0, 2, 0]  # left eye (not the inner/outer corner)
    assert coco[0, 16, 0] == blaze[0, 28, 0]  # right ankle
    with pytest.raises(ValueError, match="33"):
        to_coco17(blaze[:, :17], "blazepose33")


def test_json_round_trip_is_exact():
    pose = PoseKeypoints(random_people(2, 640, 480), 640, 480)
    again = PoseKeypoints.from_json(pose.to_json())
    np.testing.assert_array_equal(again.keypoints, pose.keypoints)
    assert (again.width, again.height) == (640, 480)
    assert PoseKeypoints.from_json(PoseKeypoints.empty(64, 32).to_json()).num_people == 0
    with pytest.raises(ValueError, match="stable-pose-coco17"):
        PoseKeypoints.from_json(json.dumps({"people": []}))


def test_validation_errors():
    with pytest.raises(ValueError, match=r"\(people, 17, 3\)"):
        PoseKeypoints(np.zeros((1, 18, 3)), 10, 10)
    with pytest.raises(ValueError, match="positive"):
        PoseKeypoints.empty(0, 10)
    with pytest.raises(ValueError, match="NaN"):
        PoseKeypoints(np.full((1, 17, 3), np.nan), 10, 10)


def test_visibility_threshold_and_canvas():
    points = np.zeros((1, 17, 3), np.float32)
    points[0, :, :2] = 10
    points[0, :, 2] = 0.5
    points[0, 0, 2] = 0.02  # official test is "> 0.02"
    points[0, 1, 2] = 0.021
    points[0, 2, 0] = 64.0  # x == width: off the canvas
    points[0, 3, 1] = -0.5
    points[0, 4, :2] = (63.99, 47.99)
    visible = PoseKeypoints(points, 64, 48).visible[0]
    assert visible[:5].tolist() == [False, True, False, False, True]


# comfyui_controlnet_aux frames, written by hand from its documented format (node_wrappers/
# pose_keypoint_postprocess.py): DWPose writes pixels, OpenPose normalised coordinates, c = 1.0 or 0.
BODY18_PIXELS = [
    [320, 100], [320, 150], [280, 150], [270, 210], [265, 260], [360, 150], [370, 210], [375, 260], [295, 270],
    [295, 350], [295, 420], [345, 270], [345, 350], [345, 420], [310, 90], [330, 90], [300, 95], [340, 95],
]  # fmt: skip


def flat(points, confidence=1.0):
    return [v for x, y in points for v in (float(x), float(y), confidence)]


def test_pose_keypoint_dwpose_pixels():
    frame = {
        "people": [
            {
                "pose_keypoints_2d": flat(BODY18_PIXELS),
                "face_keypoints_2d": None,
                "hand_left_keypoints_2d": None,
                "hand_right_keypoints_2d": None,
            }
        ],
        "canvas_height": 512,
        "canvas_width": 768,
    }
    pose = PoseKeypoints.from_pose_keypoint(frame)
    assert (pose.width, pose.height, pose.num_people) == (768, 512, 1)
    left_wrist = pose.keypoints[0, COCO17_NAMES.index("left_wrist")]
    assert left_wrist.tolist() == [375, 260, 1.0]  # BODY-18 index 7
    right_ear = pose.keypoints[0, COCO17_NAMES.index("right_ear")]
    assert right_ear.tolist() == [300, 95, 1.0]  # BODY-18 index 16


def test_pose_keypoint_openpose_normalised_nested_and_missing():
    points = [[x / 768, y / 512, 1.0] for x, y in BODY18_PIXELS]
    points[4] = [0.0, 0.0, 0.0]  # right wrist not found
    frame = {
        "people": [{"pose_keypoints_2d": points}, {"pose_keypoints_2d": None, "hand_left_keypoints_2d": [1, 2, 1]}],
        "canvas_height": 512,
        "canvas_width": 768,
    }
    pose = PoseKeypoints.from_pose_keypoint(frame)
    assert pose.num_people == 1  # the hands-only person is skipped
    np.testing.assert_allclose(pose.keypoints[0, COCO17_NAMES.index("left_wrist"), :2], [375, 260], atol=1e-3)
    assert pose.keypoints[0, COCO17_NAMES.index("right_wrist")].tolist() == [0, 0, 0]
    assert not pose.visible[0, COCO17_NAMES.index("right_wrist")]


def test_pose_keypoint_body25_without_canvas_uses_default_size():
    body25 = np.zeros((25, 3))
    body25[[0, 2, 5, 9, 12]] = [[100, 50, 0.9], [80, 90, 0.8], [120, 90, 0.7], [85, 200, 0.6], [115, 200, 0.5]]
    frame = {"version": 1.3, "people": [{"pose_keypoints_2d": body25.reshape(-1).tolist()}]}
    with pytest.raises(ValueError, match="canvas_width"):
        PoseKeypoints.from_pose_keypoint(frame)
    pose = PoseKeypoints.from_pose_keypoint(frame, default_size=(200, 300))
    assert (pose.width, pose.height) == (200, 300)
    assert pose.keypoints[0, COCO17_NAMES.index("right_hip")].tolist() == pytest.approx([85, 200, 0.6])
    assert pose.keypoints[0, COCO17_NAMES.index("left_shoulder")].tolist() == pytest.approx([120, 90, 0.7])


def test_pose_keypoint_errors():
    with pytest.raises(ValueError, match="multiple of 3"):
        PoseKeypoints.from_pose_keypoint(
            {"people": [{"pose_keypoints_2d": [1, 2]}], "canvas_width": 8, "canvas_height": 8}
        )
    with pytest.raises(ValueError, match="18"):
        PoseKeypoints.from_pose_keypoint(
            {"people": [{"pose_keypoints_2d": [1] * 30}], "canvas_width": 8, "canvas_height": 8}
        )
    with pytest.raises(ValueError, match="dict"):
        PoseKeypoints.from_pose_keypoint([1, 2, 3])


def test_pose_keypoint_round_trip():
    points = random_people(3, 640, 360)
    points[0, 3, 2] = 0.01  # below threshold: written as absent
    pose = PoseKeypoints(points, 640, 360)
    frame = json.loads(json.dumps(pose.to_pose_keypoint()))  # must be plain JSON
    assert len(frame["people"][0]["pose_keypoints_2d"]) == 54
    back = PoseKeypoints.from_pose_keypoint(frame)
    np.testing.assert_array_equal(back.visible, pose.visible)
    np.testing.assert_allclose(back.keypoints[..., :2][pose.visible], points[..., :2][pose.visible], atol=1e-4)
    assert set(back.keypoints[..., 2].ravel().tolist()) == {0.0, 1.0}
    neck = np.asarray(frame["people"][1]["pose_keypoints_2d"]).reshape(18, 3)[1]
    np.testing.assert_allclose(neck[:2], (points[1, 5, :2] + points[1, 6, :2]) / 2, atol=1e-4)


def random_world(count: int, seed: int = 1) -> np.ndarray:
    """3D points as BlazePose gives them: x, y, z in metres around the hips, a confidence."""
    rng = np.random.default_rng(seed)
    world = np.concatenate([rng.uniform(-0.8, 0.8, (count, 17, 3)), rng.uniform(0.05, 1, (count, 17, 1))], -1)
    return world.astype(np.float32)


def test_pose_keypoint_carries_3d_points():
    points, world = random_people(2, 640, 360), random_world(2)
    points[0, 3, 2] = 0.01  # absent in 2D: its 3D point is written as absent too
    world[1, 4, 3] = 0.0  # no 3D point for this joint
    pose = PoseKeypoints(points, 640, 360, world)
    frame = json.loads(json.dumps(pose.to_pose_keypoint()))
    people = [(np.reshape(p["pose_keypoints_2d"], (18, 3)), np.reshape(p[WORLD_KEY], (18, 4))) for p in frame["people"]]
    for flat, deep in people:  # one [x, y, z, c] per 2D joint, c the 2D joint's confidence or 0
        np.testing.assert_array_equal(deep[:, 3], np.where(deep[:, 3] > 0, flat[:, 2], 0))
    assert people[0][1][OPENPOSE18_OF_COCO17[3], 3] == 0 and people[1][1][OPENPOSE18_OF_COCO17[4], 3] == 0
    neck = (world[0, 5, :3] + world[0, 6, :3]) / 2
    np.testing.assert_allclose(people[0][1][1], [*neck, 1.0], atol=1e-6)
    back = PoseKeypoints.from_pose_keypoint(frame)
    known = back.world[..., 3] > 0
    assert known.sum() == 2 * 17 - 2
    np.testing.assert_allclose(back.world[..., :3][known], world[..., :3][known], atol=1e-6)
    assert back.to_pose_keypoint() == frame  # a second round trip changes nothing


def test_3d_points_only_where_given():
    two_d = PoseKeypoints(random_people(2), 512, 512)
    assert all(WORLD_KEY not in person for person in two_d.to_pose_keypoint()["people"])
    frame = two_d.to_pose_keypoint()
    assert PoseKeypoints.from_pose_keypoint(frame).world is None
    frame["people"][1][WORLD_KEY] = [0.1, 0.2, 0.3, 1.0] * 18
    mixed = PoseKeypoints.from_pose_keypoint(frame)  # person 0 has none: confidence 0 there
    assert mixed.world[0, :, 3].max() == 0 and mixed.world[1, :, 3].min() == 1
    assert WORLD_KEY not in mixed.to_pose_keypoint()["people"][0]
    with pytest.raises(PoseDataError, match=r"world points must be shaped \(2, 17, 4\)"):
        PoseKeypoints(random_people(2), 512, 512, random_world(1))
    with pytest.raises(PoseDataError, match="world points contain NaN"):
        PoseKeypoints(random_people(1), 512, 512, np.full((1, 17, 4), np.nan))


def test_transforms_keep_3d_points_only_where_they_stay_true():
    world = random_world(1)
    pose = PoseKeypoints(random_people(1, 300, 200), 300, 200, world)
    flipped = pose.flip_horizontal().world  # the mirror image: x negated, sides swapped
    left, right = COCO17_NAMES.index("left_wrist"), COCO17_NAMES.index("right_wrist")
    np.testing.assert_array_equal(flipped[0, right], world[0, left] * [-1, 1, 1, 1])
    np.testing.assert_array_equal(pose.fit_to_canvas(512, 512).world, pose.world)  # uniform scale
    np.testing.assert_array_equal(pose.scale_to(600, 400).world, pose.world)
    np.testing.assert_array_equal(pose.crop_to_canvas(512, 512).world, pose.world)
    assert pose.scale_to(600, 200).world is None  # a stretch would contradict the 3D points


def test_flip_swaps_sides_and_mirrors():
    pose = PoseKeypoints(random_people(2, 300, 200), 300, 200)
    flipped = pose.flip_horizontal()
    left_wrist, right_wrist = COCO17_NAMES.index("left_wrist"), COCO17_NAMES.index("right_wrist")
    assert flipped.keypoints[0, right_wrist, 0] == pytest.approx(299 - pose.keypoints[0, left_wrist, 0])
    assert flipped.keypoints[0, right_wrist, 1:].tolist() == pose.keypoints[0, left_wrist, 1:].tolist()
    assert flipped.keypoints[1, 0, 0] == pytest.approx(299 - pose.keypoints[1, 0, 0])  # nose stays the nose
    np.testing.assert_allclose(flipped.flip_horizontal().keypoints, pose.keypoints, atol=1e-4)


def test_fit_and_stretch():
    points = np.zeros((1, 17, 3), np.float32)
    points[0, 0] = [0, 0, 1]
    points[0, 1] = [512, 512, 1]
    points[0, 2] = [256, 128, 1]
    pose = PoseKeypoints(points, 512, 512)
    wide = pose.fit_to_canvas(768, 512)
    assert (wide.width, wide.height) == (768, 512)
    assert wide.keypoints[0, :3, :2].tolist() == [[128, 0], [640, 512], [384, 128]]
    tall = pose.fit_to_canvas(256, 512)
    assert tall.keypoints[0, :3, :2].tolist() == [[0, 128], [256, 384], [128, 192]]
    stretched = pose.scale_to(768, 256)
    assert stretched.keypoints[0, :3, :2].tolist() == [[0, 0], [768, 256], [384, 64]]
    assert stretched.keypoints[0, :3, 2].tolist() == [1, 1, 1]
    hidden = PoseKeypoints(np.where(np.arange(17)[None, :, None] == 2, points * [1, 1, 0], points), 512, 512)
    assert hidden.fit_to_canvas(768, 512).keypoints[0, 2].tolist() == [384, 128, 0]  # moves, stays hidden
