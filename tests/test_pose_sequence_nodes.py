"""Pose-sequence nodes and video extraction inside a real headless ComfyUI (the ``comfy_host`` fixture)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from skimage import data

from harness.pose_samples import person_at, sequence_of
from stablepose_core.poses.interpolation import interpolate_keys
from stablepose_core.poses.keypoints import PoseKeypoints
from stablepose_core.poses.sequence import PoseSequence
from stablepose_core.poses.skeleton import render_pose

W, H = 640, 480  # sequence_of's canvas
NODES = (
    "StablePoseTrackPeople",
    "StablePoseSelectPeople",
    "StablePoseSmooth",
    "StablePoseInterpolate",
    "StablePoseTransform",
    "StablePoseRetarget",
    "StablePoseDraw",
    "StablePoseSaveJSON",
    "StablePoseLoadJSON",
)
CLIP_FRAMES = 24
CLIP_SIZE = 256


def node(comfy_host, name: str):
    return comfy_host.node_class(name)()


def test_nodes_registered_with_category_description_and_tooltips(comfy_host):
    for name in NODES:
        node_class = comfy_host.node_class(name)
        assert node_class.CATEGORY.startswith("Stable-Pose/") and node_class.DESCRIPTION
        for section in comfy_host.input_specs(name).values():
            for input_name, (_, options) in section.items():
                assert options.get("tooltip"), f"{name}.{input_name} has no tooltip"


def test_track_then_interpolate_then_draw_through_the_executor(comfy_host):
    keys = sequence_of([person_at(100, 100)], [person_at(300, 120)], [person_at(500, 100)])
    (name,) = node(comfy_host, "StablePoseSaveJSON").run(keys.to_pose_keypoint(), "keys/three", False)["ui"]["text"]
    prompt = {
        "0": {"class_type": "StablePoseLoadJSON", "inputs": {"folder": "output", "name": name}},
        "1": {
            "class_type": "StablePoseInterpolate",
            "inputs": {"pose_keypoint": ["0", 0], "frames": 9, "key_frames": "", "curve": "linear"},
        },
        "2": {"class_type": "StablePoseDraw", "inputs": {"pose_keypoint": ["1", 0], "width": 0, "height": 0}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }
    result = comfy_host.execute(prompt)
    assert result.ok, result.errors
    frames = PoseSequence.from_pose_keypoint(result.output(1, 0))
    expected = interpolate_keys(keys, [0, 4, 8], 9)
    np.testing.assert_allclose(frames.keypoints, expected.keypoints, atol=1e-3)
    images = result.output(2, 0)
    assert images.shape == (9, H, W, 3)
    np.testing.assert_array_equal((images[4].numpy() * 255).round().astype(np.uint8), render_pose(frames.poses()[4]))


def test_interpolate_node_refuses_bad_key_frames(comfy_host):
    keys = sequence_of([person_at(100, 100)], [person_at(300, 120)]).to_pose_keypoint()
    with pytest.raises(ValueError, match="whole frame numbers separated by commas"):
        node(comfy_host, "StablePoseInterpolate").run(keys, 10, "0, x", "linear")
    with pytest.raises(ValueError, match="strictly increasing"):
        node(comfy_host, "StablePoseInterpolate").run(keys, 10, "5, 2", "linear")


def test_transform_and_retarget_nodes(comfy_host):
    poses = sequence_of([person_at(100, 100)]).to_pose_keypoint()
    (mirrored,) = node(comfy_host, "StablePoseTransform").run(poses, True, 1.0, 0.0, 0.0, 0.0, 0, 0, "fit")
    (back,) = node(comfy_host, "StablePoseTransform").run(mirrored, True, 1.0, 0.0, 0.0, 0.0, 0, 0, "fit")
    np.testing.assert_allclose(
        PoseSequence.from_pose_keypoint(back).keypoints, PoseSequence.from_pose_keypoint(poses).keypoints, atol=1e-3
    )
    (fitted,) = node(comfy_host, "StablePoseTransform").run(poses, False, 1.0, 0.0, 5.0, 0.0, 320, 0, "fit")
    assert (fitted[0]["canvas_width"], fitted[0]["canvas_height"]) == (320, H)
    with pytest.raises(ValueError, match="reference frame 3, person 0 does not exist"):
        node(comfy_host, "StablePoseRetarget").run(poses, poses, 3, 0)


def test_select_people_node(comfy_host):
    crowd = sequence_of([person_at(100, 100), person_at(300, 100), person_at(500, 100)]).to_pose_keypoint()
    (kept,) = node(comfy_host, "StablePoseSelectPeople").run(crowd, "person", 1)
    assert len(kept[0]["people"]) == 1 and kept[0]["people"][0] == crowd[0]["people"][1]


def test_save_and_load_nodes_stay_in_their_folders(comfy_host):
    import folder_paths

    poses = sequence_of([person_at(100, 100)], [person_at(110, 100)]).to_pose_keypoint()
    saved = node(comfy_host, "StablePoseSaveJSON").run(poses, "poses/test_clip", False)
    (name,) = saved["ui"]["text"]
    assert name.startswith("poses/test_clip_") and name.endswith(".json")
    (loaded,) = node(comfy_host, "StablePoseLoadJSON").run("output", name)
    assert loaded == json.loads(json.dumps(poses))
    saved = node(comfy_host, "StablePoseSaveJSON").run(poses, "poses/test_frames", True)
    (folder,) = saved["ui"]["text"]
    (loaded,) = node(comfy_host, "StablePoseLoadJSON").run("output", folder)
    assert len(loaded) == 2
    with pytest.raises(ValueError, match="invalid file name"):
        node(comfy_host, "StablePoseSaveJSON").run(poses, "../escape", False)
    with pytest.raises(ValueError, match="invalid file name"):
        node(comfy_host, "StablePoseLoadJSON").run("input", "../output/" + name)
    bad = folder_paths.get_input_directory() + "/bad.json"
    with open(bad, "w") as file:
        file.write("{not json")
    with pytest.raises(ValueError, match=r"'bad\.json' is not valid JSON \(line 1, column 2"):
        node(comfy_host, "StablePoseLoadJSON").run("input", "bad.json")


def test_extract_defaults_keep_old_workflows(comfy_host):
    optional = comfy_host.input_specs("OpenPoseExtract")["optional"]
    assert optional["track_people"][1]["default"] is False and optional["smooth"][1]["default"] is False


def astronaut_clip() -> tuple[np.ndarray, np.ndarray]:
    """Frames panning and zooming a crop across the astronaut photo, and each frame's crop (x0, y0, size)."""
    photo = data.astronaut()
    t = np.linspace(0, 1, CLIP_FRAMES)
    boxes = np.stack([40 + 60 * t, 10 + 30 * t, 440 - 100 * t], -1)  # pan right/down while zooming in
    frames = [
        cv2.resize(photo[int(y) : int(y) + int(s), int(x) : int(x) + int(s)], (CLIP_SIZE, CLIP_SIZE), cv2.INTER_AREA)
        for x, y, s in boxes
    ]
    return np.stack(frames), boxes.astype(int)


def jitter_in_photo(sequence: PoseSequence, boxes: np.ndarray, joints: np.ndarray) -> float:
    """Mean distance of the joints, mapped back into the (still) photo, from their median place (px)."""
    points = sequence.keypoints[:, 0, joints, :2].astype(np.float64)
    photo = points * (boxes[:, 2] / CLIP_SIZE)[:, None, None] + boxes[:, None, :2]
    return float(np.linalg.norm(photo - np.median(photo, axis=0), axis=-1).mean())


@pytest.mark.slow
def test_video_extraction_of_a_real_photo_clip_is_tracked_and_smoothed(comfy_host, capsys):
    """A known-motion clip of a still person; the embedded backend, tracked and smoothed in the same node."""
    frames, boxes = astronaut_clip()
    image = torch.from_numpy(frames).float() / 255.0
    extract = node(comfy_host, "OpenPoseExtract")
    _, raw = extract.extract(image, "mediapipe")
    pose_image, smoothed = extract.extract(image, "mediapipe", track_people=True, smooth=True)
    raw_sequence = PoseSequence.from_pose_keypoint(raw)
    smooth_sequence = PoseSequence.from_pose_keypoint(smoothed)
    assert pose_image.shape == (CLIP_FRAMES, CLIP_SIZE, CLIP_SIZE, 3) and smooth_sequence.num_people == 1
    visible = np.stack([PoseKeypoints(f, CLIP_SIZE, CLIP_SIZE).visible[0] for f in raw_sequence.keypoints[:, :1]])
    joints = np.flatnonzero(visible.all(0))
    assert len(joints) >= 8, "the upper body is seen in every frame"
    before = jitter_in_photo(raw_sequence, boxes, joints)
    after = jitter_in_photo(smooth_sequence, boxes, joints)
    with capsys.disabled():
        print(f"\nastronaut clip ({CLIP_FRAMES} frames, {len(joints)} joints): jitter {before:.2f} -> {after:.2f} px")
    assert after < before
