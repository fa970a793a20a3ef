"""Pose data from users (POSE_KEYPOINT frames, pose JSON): odd shapes and huge sizes get one clear error (issue 16,
items 2 and 9)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from stablepose_core.poses.keypoints import MAX_CANVAS_SIZE, PoseDataError, PoseKeypoints, parse_pose_text
from stablepose_core.poses.sequence import PoseSequence

BODY18 = [[10.0, 20.0, 1.0]] * 18


def frame(people: object, width: object = 64, height: object = 64) -> dict:
    return {"people": people, "canvas_width": width, "canvas_height": height}


@pytest.mark.parametrize(
    ("bad_frame", "message"),
    [
        (frame({"pose_keypoints_2d": BODY18}), "'people' must be a list of people, got dict"),
        (frame("nobody"), "'people' must be a list of people, got str"),
        (frame([BODY18]), "person 0: must be an object with pose_keypoints_2d, got list"),
        (frame([{"pose_keypoints_2d": [[10.0, 20.0]] * 18}]), r"keypoint 0 has 2 values; each must be \[x, y"),
        (frame([{"pose_keypoints_2d": ["a", "b", "c"]}]), "person 0: pose_keypoints_2d must hold finite numbers"),
        (frame([{"pose_keypoints_2d": "1 2 3"}]), "person 0: pose_keypoints_2d must be a list of numbers"),
        (frame([{"pose_keypoints_2d": [10**400, 1, 1] * 18}]), "must hold finite numbers"),
        (frame([{"pose_keypoints_2d": [1e300, 1, 1] * 18}]), "must hold finite numbers"),
        (frame([{"pose_keypoints_2d": BODY18, "pose_keypoints_3d": "0 0 0 1"}]), "pose_keypoints_3d must be a list"),
        (frame([{"pose_keypoints_2d": BODY18, "pose_keypoints_3d": [[0.1, 0.2, 0.3]] * 18}]), r"\[x, y, z, conf"),
        (frame([{"pose_keypoints_2d": BODY18, "pose_keypoints_3d": [0.1, None, 0, 1] * 18}]), "finite numbers"),
        (frame([{"pose_keypoints_2d": BODY18, "pose_keypoints_3d": [0.0] * 70}]), "length 70 is not a multiple of 4"),
        (
            frame([{"pose_keypoints_2d": BODY18, "pose_keypoints_3d": [0.1, 0.2, 0.3, 1.0] * 17}]),
            "pose_keypoints_3d has 17 points but pose_keypoints_2d has 18",
        ),
        (frame([], width="512"), "canvas_width must be a positive integer number of pixels, got '512'"),
        (frame([], width=float("nan")), "canvas_width must be a positive integer"),
        (frame([], width=[1]), "canvas_width must be a positive integer"),
        (frame([], height=True), "canvas_height must be a positive integer"),
    ],
)
def test_odd_pose_keypoint_shapes_are_named(bad_frame, message):
    with pytest.raises(PoseDataError, match=message):
        PoseKeypoints.from_pose_keypoint(bad_frame)


@pytest.mark.parametrize(
    ("people", "frames", "width", "message"),
    [
        (np.ones((1, 18, 3)), np.ones((2, 1, 18, 3)), 64, r"must be shaped \({axes}, 17, 3\), got {shape}"),
        (np.ones((17, 3)), np.ones((1, 17, 3)), 64, r"must be shaped \({axes}, 17, 3\)"),
        (np.full((1, 17, 3), np.nan), np.full((1, 1, 17, 3), np.inf), 64, "contain NaN or infinite values"),
        (np.ones((1, 17, 3)), np.ones((1, 1, 17, 3)), 0, "canvas size must be positive, got 0x64"),
        (None, np.zeros((0, 1, 17, 3)), 64, "a pose sequence needs at least one frame"),
    ],
)
def test_keypoint_arrays_are_checked_alike(people, frames, width, message):
    """A pose and a pose sequence refuse the same faults with the same error, naming their own axes."""
    for points, axes, make in ((people, "people", PoseKeypoints), (frames, "frames, people", PoseSequence)):
        if points is not None:
            expected = message.format(axes=axes, shape=re.escape(str(np.shape(points))[:-1]))
            with pytest.raises(PoseDataError, match=expected):
                make(points, width, 64)


def test_pose_keypoint_people_may_still_be_missing_or_hands_only():
    assert PoseKeypoints.from_pose_keypoint(frame(None)).num_people == 0
    hands_only = frame([{"pose_keypoints_2d": [], "hand_left_keypoints_2d": [1, 2, 1]}])
    assert PoseKeypoints.from_pose_keypoint(hands_only).num_people == 0
    nested = PoseKeypoints.from_pose_keypoint(frame([{"pose_keypoints_2d": BODY18}]))
    assert nested.num_people == 1


@pytest.mark.parametrize("size", [MAX_CANVAS_SIZE + 1, 16000, 60000])
def test_canvas_sizes_from_data_are_capped(size):
    with pytest.raises(PoseDataError, match=rf"canvas_width {size} is larger than {MAX_CANVAS_SIZE} px"):
        PoseKeypoints.from_pose_keypoint(frame([], width=size, height=64))
    document = {"format": "stable-pose-coco17", "width": 64, "height": size, "people": []}
    with pytest.raises(PoseDataError, match=rf"height {size} is larger than {MAX_CANVAS_SIZE} px"):
        parse_pose_text(json.dumps(document))
    assert PoseKeypoints.from_pose_keypoint(frame([], MAX_CANVAS_SIZE, MAX_CANVAS_SIZE)).width == MAX_CANVAS_SIZE


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "pose JSON is nested too deeply"),
        ('{"format": "stable-pose-coco17", "joints": 5, "width": 8, "height": 8, "people": []}', "joints must be"),
        ('{"format": "stable-pose-coco17", "width": 8, "height": 8, "people": {}}', '"people" must be a list'),
        ('{"format": "stable-pose-coco17", "width": 8.5, "height": 8, "people": []}', "width must be a positive"),
        ("[{}, {}]", "must be a JSON object, got list"),
        ('"text"', "must be a JSON object, got str"),
    ],
)
def test_malformed_pose_documents_are_named(text, message):
    with pytest.raises(PoseDataError, match=message):
        parse_pose_text(text)


def test_a_valid_document_still_parses():
    pose = PoseKeypoints(np.ones((1, 17, 3), np.float32), 640, 480)
    assert parse_pose_text(pose.to_json()).keypoints.tolist() == pose.keypoints.tolist()
    assert parse_pose_text(json.dumps([pose.to_pose_keypoint()])).num_people == 1
