"""The pose-sequence, keyframe and strength surfaces against hostile inputs: work bounded before it starts, no NaN
let through, files never overwritten nor read or written outside their folder, one clear error each."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest

from harness.pose_samples import keyframes, person_at, sequence_of
from stablepose_core.evaluate.score import score_image
from stablepose_core.model.strengths import FrameStrengths, TimestepSegment
from stablepose_core.poses.files import load_pose_keypoint, save_pose_keypoint
from stablepose_core.poses.interpolation import interpolate_keys
from stablepose_core.poses.keyframes import clip_from_keyframes
from stablepose_core.poses.keypoints import PoseKeypoints
from stablepose_core.poses.sequence import PoseSequence
from stablepose_core.poses.smoothing import smooth_poses
from stablepose_core.poses.tracking import track_people
from stablepose_core.poses.transforms import retarget, rotate, scale, translate

W, H = 640, 480


# --- bounded interpolation ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("frames", "people"), [(100_000, 4), (100_000, 5000), (10_000, 50)])
def test_a_keyframe_document_asking_too_much_is_refused_before_any_work(frames, people):
    with pytest.raises(ValueError, match=rf"{frames} frames × {people} people = {frames * people} poses, more than"):
        clip_from_keyframes(keyframes(frames, people))


def test_the_interpolate_node_core_refuses_a_crowd_over_many_frames():
    """The node's path: 5000 people in the keys, 10,000 frames (was: 'Unable to allocate 9.50 GiB')."""
    crowd = PoseSequence(np.ones((2, 5000, 17, 3), np.float32), W, H)
    with pytest.raises(ValueError, match="10000 frames × 5000 people = 50000000 poses"):
        interpolate_keys(crowd, [0, 9999], 10_000)


def test_more_keys_than_frames_are_refused_before_they_are_parsed():
    document = keyframes(2, 1)
    document["keys"] = [{"frame": index, "people": []} for index in range(50)]
    with pytest.raises(ValueError, match="50 keys do not fit a clip of 2 frames"):
        clip_from_keyframes(document)


def test_a_clip_within_the_limit_is_still_made():
    clip = clip_from_keyframes(keyframes(5000, 10))
    assert clip.keypoints.shape == (5000, 10, 17, 3)


# --- strengths: every value finite and in range -----------------------------------------------------------------
@pytest.mark.parametrize("text", ["0:nan", "inf, 1", "0:1e39", "1, -inf", "0:1, 3:-0.5", "0:11"])
def test_frame_strengths_that_would_sample_nan_are_refused(text):
    with pytest.raises(ValueError, match="strength must be a number from 0 to 10"):
        FrameStrengths.parse(text, "linear")


@pytest.mark.parametrize(("start", "end"), [(float("nan"), 1.0), (1.0, float("inf")), (1.0, 1e39)])
def test_timestep_strengths_that_would_sample_nan_are_refused(start, end):
    with pytest.raises(ValueError, match=r"timestep keyframe, strength_(start|end): strength must be a number"):
        TimestepSegment(0.0, 1.0, start, end)


def test_unlisted_frame_strength_is_checked_too():
    with pytest.raises(ValueError, match="unlisted frames: strength must be"):
        FrameStrengths(((0, 1.0),), "hold", unlisted=float("nan"))


# --- saving: never replace, never follow a link, appear whole ------------------------------------------------------
def poses(x: float = 100.0) -> list[dict]:
    return sequence_of([person_at(x, 100)], [person_at(x + 10, 100)]).to_pose_keypoint()


def test_saving_past_99999_never_replaces_a_file(tmp_path: Path):
    (tmp_path / "pose_99999.json").write_text("the user's file")
    first = save_pose_keypoint(poses(100), tmp_path, "pose")
    second = save_pose_keypoint(poses(200), tmp_path, "pose")
    assert [path.name for path in first + second] == ["pose_100000.json", "pose_100001.json"]
    assert load_pose_keypoint(tmp_path, "pose_100000.json") == json.loads(json.dumps(poses(100)))
    assert (tmp_path / "pose_99999.json").read_text() == "the user's file"


@pytest.mark.parametrize("per_frame", [False, True])
def test_a_link_at_the_next_name_is_never_followed(tmp_path: Path, per_frame: bool):
    root, outside = tmp_path / "output", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    suffix = "" if per_frame else ".json"
    (root / f"pose_99999{suffix}").mkdir()
    (root / f"pose_100000{suffix}").symlink_to(outside / f"target{suffix}")  # dangling: nothing there yet
    saved = save_pose_keypoint(poses(), root, "pose", per_frame)
    assert list(outside.iterdir()) == [], "nothing was created outside the output folder"
    assert all(root in path.parents and not path.is_symlink() for path in saved)
    assert saved[0].relative_to(root).parts[0] == f"pose_100001{suffix}"
    assert len(list(root.iterdir())) == 3


def test_atomic_create_refuses_any_existing_name(tmp_path: Path):
    from stablepose_core.atomic import atomic_create

    (tmp_path / "file").write_text("kept")
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    (tmp_path / "folder").mkdir()
    for name in ("file", "link", "folder"):
        with pytest.raises(FileExistsError), atomic_create(tmp_path / name) as tmp:
            tmp.write_text("new")
    assert (tmp_path / "file").read_text() == "kept" and not (tmp_path / "nowhere").exists()
    assert sorted(os.listdir(tmp_path)) == ["file", "folder", "link"], "no staging folder is left"


def _save_many(root: str, count: int, x: float) -> list[str]:
    return [str(save_pose_keypoint(poses(x), root, "clip/pose")[0]) for _ in range(count)]


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork (both start at once)")
def test_two_processes_saving_to_one_prefix_lose_nothing_and_readers_see_whole_files(tmp_path: Path):
    context = multiprocessing.get_context("fork")
    with context.Pool(2) as pool:
        pending = [pool.apply_async(_save_many, (str(tmp_path), 20, x)) for x in (100.0, 300.0)]
        half_written = 0
        while not all(result.ready() for result in pending):
            for path in (tmp_path / "clip").glob("*.json") if (tmp_path / "clip").exists() else []:
                try:
                    json.loads(path.read_text())
                except ValueError:
                    half_written += 1
        saved = [path for result in pending for path in result.get()]
    assert len(set(saved)) == 40 and len(list((tmp_path / "clip").glob("*.json"))) == 40
    assert half_written == 0
    first_x = sorted(json.loads(Path(path).read_text())[0]["people"][0]["pose_keypoints_2d"][0] for path in saved)
    assert first_x == [100.0] * 20 + [300.0] * 20, "every save kept its own content"
    assert sorted(os.listdir(tmp_path / "clip")) == sorted(Path(path).name for path in saved), "nothing left beside"


# --- loading: every file resolved, nesting and long names named ------------------------------------------------------
def test_a_file_linked_out_of_the_input_folder_is_not_read(tmp_path: Path):
    root, secret = tmp_path / "input", tmp_path / "secret.json"
    (root / "clip").mkdir(parents=True)
    secret.write_text(json.dumps(poses()))
    save_pose_keypoint(poses(), root, "clip/frame", per_frame=False)
    (root / "clip" / "frame_00000.json").symlink_to(secret)
    with pytest.raises(ValueError, match=r"'clip/frame_00000\.json' leads outside the folder") as error:
        load_pose_keypoint(root, "clip")
    assert str(tmp_path) not in str(error.value)
    (root / "alone.json").symlink_to(secret)
    with pytest.raises(ValueError, match=r"'alone.json' leads outside the folder"):
        load_pose_keypoint(root, "alone.json")


def test_deeply_nested_files_are_named(tmp_path: Path):
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match=r"'deep.json' is nested too deeply"):
        load_pose_keypoint(tmp_path, "deep.json")


@pytest.mark.parametrize("name", ["x" * 300, "a/" * 600 + "b", "x" * 250])
def test_too_long_names_say_so_without_absolute_paths(tmp_path: Path, name: str):
    for call in (lambda: load_pose_keypoint(tmp_path, name), lambda: save_pose_keypoint(poses(), tmp_path, name)):
        with pytest.raises(ValueError, match="is too long") as error:
            call()
        assert str(tmp_path) not in str(error.value)


# --- tracking: slots of ended identities are reused, simultaneous tracks capped -------------------------------------
def test_tracking_costs_the_people_tracked_at_once_not_every_identity_ever_seen():
    """One person per frame, reappearing at 16 far-apart places in turn, each every 16 frames: longer away than
    max_missed (10), so every frame starts a new identity (400 in all; they each took a slot in every frame:
    memory frames²). Only 12 are alive at once (seen in the last 11 frames), so the clip needs 12 slots."""
    places = [(200 + 800 * (index % 4), 200 + 800 * (index // 4)) for index in range(16)]
    frames = [PoseKeypoints(person_at(*places[(frame * 5) % 16])[None], 3200, 3200) for frame in range(400)]
    tracked = track_people(frames)
    assert tracked.num_people == 12
    for frame in (0, 17, 399):
        (slot,) = np.flatnonzero(tracked.keypoints[frame].any(axis=(1, 2)))
        np.testing.assert_array_equal(tracked.keypoints[frame, slot], frames[frame].keypoints[0])


def test_more_people_at_once_than_tracks_is_one_clear_error():
    crowd = np.stack([person_at(5 * index, 5 * index) for index in range(101)])
    with pytest.raises(ValueError, match="more than 100 people tracked at once at frame 0; lower max_missed"):
        track_people([PoseKeypoints(crowd, 2000, 2000)])


# --- scoring: capped people per image ------------------------------------------------------------------------------
def test_scoring_refuses_more_people_than_its_cap():
    crowd = PoseKeypoints(np.stack([person_at(100, 100)] * 501), W, H)
    one = PoseKeypoints(person_at(100, 100)[None], W, H)
    with pytest.raises(ValueError, match=r"the target pose has 501 people; .* at most 500 per image"):
        score_image(crowd, one)
    with pytest.raises(ValueError, match="the detected pose has 501 people"):
        score_image(one, crowd)
    assert score_image(PoseKeypoints(np.stack([person_at(100, 100)] * 500), W, H), one).people_target == 500


# --- retargeting: a degenerate body is refused -------------------------------------------------------------------
def test_a_reference_collapsed_to_one_point_is_refused_by_name():
    point = np.tile(np.array([[200.0, 200.0, 1.0]], np.float32), (17, 1))
    with pytest.raises(
        ValueError, match=r"limbs of no length \(left_shoulder-left_ear, .* and 12 more: both joints on one point"
    ):
        retarget(sequence_of([person_at(100, 100)]), point)
    one_limb = person_at(300, 100)
    one_limb[7, :2] = one_limb[5, :2]  # the left elbow on the left shoulder
    with pytest.raises(ValueError, match=r"limbs of no length \(left_shoulder-left_elbow:"):
        retarget(sequence_of([person_at(100, 100)]), one_limb)


# --- NaN parameters are named ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda seq: scale(seq, float("nan")), "scale"),
        (lambda seq: rotate(seq, float("nan")), "rotate_degrees"),
        (lambda seq: translate(seq, 0.0, float("inf")), "translate_y"),
        (lambda seq: smooth_poses(seq, fps=float("nan")), "fps"),
        (lambda seq: smooth_poses(seq, beta=float("nan")), "beta"),
    ],
)
def test_nan_parameters_are_named_not_blamed_on_the_keypoints(call, name):
    with pytest.raises(ValueError, match=rf"^{name} must be a finite number, got (nan|inf)$"):
        call(sequence_of([person_at(100, 100)], [person_at(110, 100)]))
