"""Known-answer tests of the pose-sequence core: tracking, smoothing, interpolation, transforms, files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.pose_samples import person_at, sequence_of
from stablepose_core.poses.files import load_pose_keypoint, safe_path, save_pose_keypoint
from stablepose_core.poses.interpolation import blend, interpolate_keys
from stablepose_core.poses.keypoints import COCO17_NAMES, PoseKeypoints
from stablepose_core.poses.sequence import PoseSequence
from stablepose_core.poses.smoothing import bridge_gaps, smooth_poses
from stablepose_core.poses.tracking import object_keypoint_similarity, select_people, track_people
from stablepose_core.poses.transforms import (
    TREE,
    fit_to_canvas,
    limb_lengths,
    mirror,
    retarget,
    rotate,
    scale,
    translate,
)

W, H = 640, 480


def angles(person: np.ndarray) -> np.ndarray:
    """Direction of every tree limb (radians)."""
    return np.array([np.arctan2(*(person[b, :2] - person[a, :2])[::-1]) for a, b in TREE])


# --- sequences and bad inputs ----------------------------------------------------------------------------------
def test_sequence_round_trips_pose_keypoint_with_absent_slots():
    seq = sequence_of([person_at(100, 100), person_at(300, 100)], [person_at(110, 100)])
    assert seq.keypoints.shape == (2, 2, 17, 3) and not seq.keypoints[1, 1].any()
    again = PoseSequence.from_pose_keypoint(seq.to_pose_keypoint())
    np.testing.assert_allclose(again.keypoints, seq.keypoints, atol=1e-4)


def test_sequence_carries_3d_points_until_the_keypoints_change():
    """A detector's 3D points (PoseKeypoints.world) pass through a clip, e.g. an unedited editor; frames and slots
    without them get none; anything that moves the keypoints drops them."""
    world = np.concatenate([np.full((1, 17, 3), 0.25), np.ones((1, 17, 1))], -1).astype(np.float32)
    seq = PoseSequence.from_poses(
        [PoseKeypoints(np.stack([person_at(100, 100)]), W, H, world), PoseKeypoints(sequence_of([]).keypoints[0], W, H)]
    )
    assert seq.world.shape == (2, 1, 17, 4) and not seq.world[1].any()
    frames = PoseSequence.from_pose_keypoint(seq.to_pose_keypoint()).to_pose_keypoint()
    assert frames == seq.to_pose_keypoint() and "pose_keypoints_3d" in frames[0]["people"][0]
    np.testing.assert_array_equal(seq.poses()[0].world, world)
    assert seq.poses()[1].world is not None and seq.replace(seq.keypoints).world is None
    assert sequence_of([person_at(100, 100)]).world is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], "empty (no frames)"),
        ([{"people": [], "canvas_width": 64, "canvas_height": 64},
          {"people": [], "canvas_width": 32, "canvas_height": 64}],
         "share one canvas size, got 32x64 (first at frame 1), 64x64 (first at frame 0)"),
        ([{"people": [{"pose_keypoints_2d": [1, 2]}], "canvas_width": 64, "canvas_height": 64}], "frame 0: person 0"),
    ],
)  # fmt: skip
def test_bad_sequences_get_one_clear_message(value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        PoseSequence.from_pose_keypoint(value)


# --- tracking -----------------------------------------------------------------------------------------------------
def test_oks_is_one_for_identical_and_falls_with_distance():
    a = person_at(100, 100)[None]
    similarity = object_keypoint_similarity(a, np.stack([person_at(100, 100), person_at(105, 100), person_at(300, 0)]))
    assert similarity[0, 0] == pytest.approx(1.0) and 1 > similarity[0, 1] > 0.5 > similarity[0, 2]


def test_two_people_crossing_keep_their_identities():
    """A walks right, B walks left along the same line; they cross mid-clip. Detections come in a random
    order each frame, one frame misses A, and a third person enters late."""
    rng = np.random.default_rng(0)
    frames = []
    for t in range(40):
        people = [person_at(100 + 10 * t, 150, 0.9), person_at(490 - 10 * t, 160, 0.8)]
        if t == 25:
            people = people[1:]  # detector missed A
        if t >= 30:
            people.append(person_at(320, 20))
        frames.append([people[i] for i in rng.permutation(len(people))])
    tracked = track_people([PoseKeypoints(np.stack(f), W, H) for f in frames])
    assert tracked.num_people == 3
    a_x = tracked.keypoints[:, 0, 0, 0]
    b_x = tracked.keypoints[:, 1, 0, 0]
    expected = np.arange(40) * 10
    seen_a = np.arange(40) != 25
    np.testing.assert_allclose(a_x[seen_a], 100 + expected[seen_a])
    assert not tracked.keypoints[25, 0].any(), "the missed frame leaves A's slot empty"
    np.testing.assert_allclose(b_x, 490 - expected)
    assert not tracked.keypoints[:30, 2].any() and (tracked.keypoints[30:, 2, 0, :2] == (320, 20)).all()


@pytest.mark.parametrize(("away", "slots"), [(5, 2), (15, 2)])
def test_someone_leaving_briefly_keeps_the_identity_and_for_long_gets_a_new_one(away, slots):
    """B leaves for ``away`` frames and comes back where it left: within max_missed (10) it is B again; after
    longer, B's identity has ended and the newcomer takes the slot it freed."""
    frames = []
    for t in range(40):
        people = [person_at(100 + 2 * t, 150)]
        if not 10 <= t < 10 + away:
            people.append(person_at(400, 150))
        frames.append(people)
    tracked = track_people([PoseKeypoints(np.stack(f), W, H) for f in frames])
    assert tracked.num_people == slots
    back = 10 + away
    assert tracked.keypoints[back, slots - 1, 0, 0] == 400 and not tracked.keypoints[10:back, 1:].any()


def test_select_person_and_largest():
    big = person_at(300, 100)
    big[:, :2] = (big[:, :2] - 300) * 1.5 + 300
    seq = sequence_of([person_at(100, 100), big, person_at(500, 100)])
    assert (select_people(seq, "largest", 1).keypoints[0, 0] == big).all()
    assert (select_people(seq, "person", 2).keypoints[0, 0] == seq.keypoints[0, 2]).all()
    with pytest.raises(ValueError, match="person 3 does not exist: the sequence has 3 people"):
        select_people(seq, "person", 3)


# --- smoothing ----------------------------------------------------------------------------------------------------
def test_smoothing_reduces_jitter_about_a_known_path_by_2_5():
    """A person moves along a known smooth path (up to ~2 px/frame); 4 px seeded jitter on every joint. With
    the default parameters the smoothed error against the true path is below 1/2.5 of the raw error."""
    rng = np.random.default_rng(1)
    frames = 120
    t = np.arange(frames)
    path = np.stack([200 + 2.0 * t, 150 + 40 * np.sin(t / 20)], -1)  # up to ~2 px/frame
    truth = np.stack([person_at(*p) for p in path])[:, None]
    noisy = truth.copy()
    noisy[..., :2] += rng.normal(0, 4, noisy[..., :2].shape)
    smoothed = smooth_poses(PoseSequence(noisy, W, H))
    raw_error = np.linalg.norm(noisy[..., :2] - truth[..., :2], axis=-1)[10:].mean()
    smooth_error = np.linalg.norm(smoothed.keypoints[..., :2] - truth[..., :2], axis=-1)[10:].mean()
    assert smooth_error < raw_error / 2.5, (raw_error, smooth_error)


def test_short_gaps_are_bridged_and_long_ones_left_missing():
    points = np.stack([person_at(100 + t, 100) for t in range(20)])[:, None]
    points[3:5, 0, 9] = 0  # 2-frame gap of the left wrist
    points[8:16, 0, 10] = 0  # 8-frame gap of the right wrist
    bridged = bridge_gaps(PoseSequence(points, W, H), max_gap=3)
    np.testing.assert_allclose(bridged.keypoints[3:5, 0, 9, 0], [100 + 3 - 45, 100 + 4 - 45])
    assert (bridged.keypoints[3:5, 0, 9, 2] == 1).all()
    assert not bridged.keypoints[8:16, 0, 10].any()


def test_confident_jitter_moves_the_estimate_more_than_uncertain_jitter():
    still = np.stack([person_at(200, 200) for _ in range(30)])[:, None]
    still[15, 0, 0, 0] += 30  # one outlier of the nose
    confident = smooth_poses(PoseSequence(still, W, H))
    still[15, 0, 0, 2] = 0.1
    uncertain = smooth_poses(PoseSequence(still, W, H))
    assert abs(uncertain.keypoints[15, 0, 0, 0] - 200) < abs(confident.keypoints[15, 0, 0, 0] - 200) / 5


# --- interpolation ------------------------------------------------------------------------------------------------
def test_interpolation_at_half_is_the_midpoint_and_keys_are_hit():
    keys = sequence_of([person_at(100, 100), person_at(400, 100)], [person_at(300, 200), person_at(420, 300)])
    clip = interpolate_keys(keys, [0, 10], 11)
    np.testing.assert_allclose(clip.keypoints[5], (keys.keypoints[0] + keys.keypoints[1]) / 2, atol=1e-4)
    np.testing.assert_allclose(clip.keypoints[[0, 10]], keys.keypoints)
    eased = interpolate_keys(keys, [0, 10], 11, "ease_in_out")
    np.testing.assert_allclose(eased.keypoints[5], clip.keypoints[5], atol=1e-4)
    assert abs(eased.keypoints[1, 0, 0, 0] - 100) < abs(clip.keypoints[1, 0, 0, 0] - 100)


def test_interpolation_holds_outside_the_keys_and_fades_missing_joints():
    a, b = person_at(100, 100), person_at(200, 100)
    b[9] = 0  # left wrist missing in the second key
    keys = sequence_of([a], [b])
    clip = interpolate_keys(keys, [2, 6], 9)
    assert (clip.keypoints[:3] == keys.keypoints[0]).all() and (clip.keypoints[6:] == keys.keypoints[1]).all()
    wrist = clip.keypoints[2:7, 0, 9]
    np.testing.assert_allclose(wrist[:, 2], [1, 0.75, 0.5, 0.25, 0])
    np.testing.assert_allclose(wrist[:4, 0], a[9, 0] + np.array([0, 25, 50, 75]))  # moves with the body
    assert (blend(a[None], a[None], 0.3) == a).all()


def test_interpolation_refuses_bad_keys():
    keys = sequence_of([person_at(100, 100)], [person_at(200, 100)])
    with pytest.raises(ValueError, match="strictly increasing"):
        interpolate_keys(keys, [5, 5], 9)
    with pytest.raises(ValueError, match=r"must lie in 0\.\.8"):
        interpolate_keys(keys, [0, 9], 9)
    with pytest.raises(ValueError, match="2 key poses but 1 frame numbers"):
        interpolate_keys(keys, [0], 9)


# --- transforms ---------------------------------------------------------------------------------------------------
def test_mirror_twice_is_identity_and_swaps_left_right():
    seq = sequence_of([person_at(100, 100)], [person_at(250, 90)])
    once = mirror(seq)
    np.testing.assert_allclose(mirror(once).keypoints, seq.keypoints, atol=1e-4)
    left_wrist, right_wrist = COCO17_NAMES.index("left_wrist"), COCO17_NAMES.index("right_wrist")
    assert once.keypoints[0, 0, left_wrist, 0] == pytest.approx(W - 1 - seq.keypoints[0, 0, right_wrist, 0])
    single = PoseKeypoints(seq.keypoints[0], W, H).flip_horizontal()
    np.testing.assert_allclose(once.keypoints[0], single.keypoints)


def test_scale_translate_rotate_known_answers():
    seq = sequence_of([person_at(100, 100)])
    np.testing.assert_allclose(translate(seq, 5, -3).keypoints[0, 0, 0, :2], [105, 97])
    center = (100.0, 100.0)
    np.testing.assert_allclose(scale(seq, 2, center).keypoints[0, 0, 5, :2], [100 - 60, 100 + 60])
    rotated = rotate(seq, 90, center).keypoints[0, 0, 5, :2]  # (-30, 30) from the nose -> (-30, -30)
    np.testing.assert_allclose(rotated, [70, 70], atol=1e-4)
    fitted = fit_to_canvas(seq, 320, 480)
    assert (fitted.width, fitted.height) == (320, 480)
    np.testing.assert_allclose(fitted.keypoints[0, 0, 0, :2], [50, 50 + 120])


def test_retarget_keeps_joint_angles_and_takes_reference_lengths():
    rng = np.random.default_rng(2)
    moving = person_at(300, 150)
    moving[:, :2] += rng.normal(0, 8, (17, 2))  # another pose
    reference = person_at(0, 0)
    reference[:, :2] *= rng.uniform(0.6, 1.4, (17, 1))  # another body
    retargeted = retarget(sequence_of([moving]), reference).keypoints[0, 0]
    np.testing.assert_allclose(angles(retargeted), angles(moving), atol=1e-4)
    for limb, length in limb_lengths(reference).items():
        assert limb_lengths(retargeted)[limb] == pytest.approx(length, rel=1e-4)
    hips = [COCO17_NAMES.index("left_hip"), COCO17_NAMES.index("right_hip")]
    np.testing.assert_allclose(retargeted[hips, :2].mean(0), moving[hips, :2].mean(0), atol=1e-3)


# --- files --------------------------------------------------------------------------------------------------------
def test_save_and_load_clip_and_per_frame(tmp_path):
    seq = sequence_of([person_at(100, 100)], [person_at(120, 100)], [person_at(140, 100)])
    frames = seq.to_pose_keypoint()
    (clip,) = save_pose_keypoint(frames, tmp_path, "poses/walk")
    assert clip == tmp_path / "poses" / "walk_00001.json" and json.loads(clip.read_text()) == frames
    assert save_pose_keypoint(frames, tmp_path, "poses/walk")[0].name == "walk_00002.json"
    per_frame = save_pose_keypoint(frames, tmp_path, "poses/walk", per_frame=True)
    assert [p.relative_to(tmp_path).as_posix() for p in per_frame] == [
        f"poses/walk_00003/frame_0000{i}.json" for i in range(3)
    ]
    assert load_pose_keypoint(tmp_path, "poses/walk_00001.json") == frames
    assert load_pose_keypoint(tmp_path, "poses/walk_00003") == frames


@pytest.mark.parametrize("name", ["../evil", "a/../../b", "/etc/passwd", ".hidden", "a\\..\\b", "", "x/./y"])
def test_names_outside_the_folder_are_refused(tmp_path, name):
    with pytest.raises(ValueError, match=r"invalid file name|file name is needed"):
        safe_path(tmp_path, name)


def test_symlink_out_of_the_folder_is_refused(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "link").symlink_to(tmp_path)
    with pytest.raises(ValueError, match="leads outside the folder"):
        safe_path(tmp_path / "root", "link/x.json")


def test_malformed_json_gets_one_clear_message(tmp_path):
    (tmp_path / "broken.json").write_text('[{"people": [')
    with pytest.raises(ValueError, match=r"'broken.json' is not valid JSON \(line 1"):
        load_pose_keypoint(tmp_path, "broken.json")
    (tmp_path / "other.json").write_text('{"hello": 1}')
    with pytest.raises(ValueError, match=r"'other\.json': POSE_KEYPOINT frame 0: .*canvas_width"):
        load_pose_keypoint(tmp_path, "other.json")
    with pytest.raises(ValueError, match=r"no file or folder 'missing\.json'"):
        load_pose_keypoint(tmp_path, "missing.json")
