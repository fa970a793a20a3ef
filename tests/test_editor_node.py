"""``StablePoseEditor`` inside a real headless ComfyUI (the ``comfy_host`` fixture), and the JS fixtures.

The editor's JavaScript tests (``tests/js``) read ``tests/js/fixtures.json``: the skeleton spec the server
sends and poses transformed by the Python core. ``test_js_fixtures_match_the_core`` fails when they drift;
``STABLEPOSE_WRITE_JS_FIXTURES=1 pytest tests/test_editor_node.py`` rewrites them.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from aiohttp.test_utils import make_mocked_request
from PIL import Image
from skimage import data

from stablepose_core.poses.interpolation import interpolate_keys
from stablepose_core.poses.keyframes import clip_from_keyframes, keyframes_document
from stablepose_core.poses.keypoints import COCO17_NAMES, PoseKeypoints
from stablepose_core.poses.sequence import PoseSequence
from stablepose_core.poses.skeleton import LIMB_COLORS, render_pose

NODE = "StablePoseEditor"
JS_FIXTURES = Path(__file__).parent / "js" / "fixtures.json"
RIGHT_ELBOW, RIGHT_WRIST = COCO17_NAMES.index("right_elbow"), COCO17_NAMES.index("right_wrist")
LEFT_WRIST = COCO17_NAMES.index("left_wrist")
RIGHT_FOREARM, LEFT_FOREARM = 9, 8  # limb indices of (right elbow, right wrist) and (left elbow, left wrist)


def standing_person(width: int = 512, height: int = 768) -> PoseKeypoints:
    """One person seen from the front: their right side on the image's left; right arm raised sideways."""
    xy = {
        "nose": (256, 120), "left_eye": (266, 110), "right_eye": (246, 110), "left_ear": (280, 116),
        "right_ear": (232, 116), "left_shoulder": (310, 200), "right_shoulder": (202, 200),
        "left_elbow": (330, 300), "right_elbow": (130, 180), "left_wrist": (340, 400), "right_wrist": (60, 150),
        "left_hip": (290, 400), "right_hip": (222, 400), "left_knee": (295, 540), "right_knee": (217, 540),
        "left_ankle": (300, 680), "right_ankle": (212, 680),
    }  # fmt: skip
    points = np.array([[[*xy[name], 1.0] for name in COCO17_NAMES]], np.float32)
    return PoseKeypoints(points, width, height)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    return (image.numpy() * 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def node(comfy_host):
    return comfy_host.node_class(NODE)()


@pytest.fixture(scope="module")
def editor_module(comfy_host):
    return importlib.import_module(comfy_host.node_class(NODE).__module__)


def test_registered_with_display_name_and_inputs(comfy_host):
    pack = next(iter(comfy_host.pack_modules.values()))
    assert pack.NODE_DISPLAY_NAME_MAPPINGS[NODE] == "Edit Poses (Stable-Pose)"
    node_class = comfy_host.node_class(NODE)
    assert node_class.RETURN_TYPES == ("IMAGE", "POSE_KEYPOINT") and node_class.OUTPUT_NODE
    specs = comfy_host.input_specs(NODE)
    assert specs["required"]["width"] == ("INT", specs["required"]["width"][1])
    assert specs["required"]["width"][1]["default"] == specs["required"]["height"][1]["default"] == 0
    assert specs["required"]["pose_json"][0] == "STRING" and specs["required"]["pose_json"][1]["default"] == ""
    assert {name: spec[0] for name, spec in specs["optional"].items()} == {
        "pose_keypoint": "POSE_KEYPOINT",
        "background": "IMAGE",
    }


def test_round_trip_with_openpose_extract(comfy_host):
    """photo -> OpenPoseExtract -> editor: unedited, the pose passes through; edited, the edit is drawn."""
    Image.fromarray(data.astronaut()).save(comfy_host.workdir / "input" / "astronaut_editor.png")

    def prompt(pose_json: str) -> dict[str, Any]:
        return {
            "1": {"class_type": "LoadImage", "inputs": {"image": "astronaut_editor.png"}},
            "2": {"class_type": "OpenPoseExtract", "inputs": {"image": ["1", 0], "backend": "blazepose"}},
            "3": {
                "class_type": NODE,
                "inputs": {
                    "width": 0,
                    "height": 0,
                    "pose_json": pose_json,
                    "pose_keypoint": ["2", 1],
                    "background": ["1", 0],
                },
            },
        }

    result = comfy_host.execute(prompt(""))
    assert result.ok, result.errors
    np.testing.assert_array_equal(result.output(3, 0).numpy(), result.output(2, 0).numpy())
    assert result.output(3, 1) == result.output(2, 1)  # same POSE_KEYPOINT layout and values
    ui = result.ui["3"]
    assert ui["canvas"] == [512, 512]
    seed = PoseKeypoints.from_json(ui["seed_pose"][0])
    np.testing.assert_array_equal(seed.keypoints, PoseKeypoints.from_pose_keypoint(result.output(2, 1)[0]).keypoints)
    preview = ui["background"][0]
    assert preview["type"] == "temp"
    with Image.open(comfy_host.workdir / "temp" / preview["subfolder"] / preview["filename"]) as picture:
        assert picture.size == (512, 512)

    # The editor loads the seed hiding the joints the detector placed off the canvas (they are not drawn),
    # so applying it unchanged draws the same picture; then it moves the right wrist 60 px and 40 px inwards.
    edited = json.loads(ui["seed_pose"][0])
    hidden = 0
    for joint in (joint for person in edited["people"] for joint in person):
        if joint[2] > 0.02 and not (0 <= joint[0] < 512 and 0 <= joint[1] < 512):
            joint[2], hidden = 0.0, hidden + 1
    assert hidden, "the astronaut photo cuts the legs off: some joints lie below the image"
    unchanged = comfy_host.execute(prompt(json.dumps(edited)))
    np.testing.assert_array_equal(unchanged.output(3, 0).numpy(), result.output(2, 0).numpy())
    wrist = edited["people"][0][RIGHT_WRIST]
    assert wrist[2] > 0, "the astronaut's right wrist is detected"
    wrist[0] += 60 if wrist[0] < 256 else -60
    wrist[1] += 40 if wrist[1] < 256 else -40
    result = comfy_host.execute(prompt(json.dumps(edited)))
    assert result.ok, result.errors
    expected = PoseKeypoints.from_json(json.dumps(edited))
    image = to_uint8(result.output(3, 0)[0])
    np.testing.assert_array_equal(image, render_pose(expected))
    x, y = int(wrist[0]), int(wrist[1])
    assert tuple(image[y, x]) == LIMB_COLORS[RIGHT_FOREARM]
    frame = result.output(3, 1)[0]
    assert frame["canvas_width"] == 512
    body18_right_wrist = 4
    np.testing.assert_allclose(frame["people"][0]["pose_keypoints_2d"][3 * body18_right_wrist :][:2], wrist[:2])


def test_mirror_swaps_sides(node):
    """A mirrored pose (left and right joints swapped) puts the left forearm where the right one was mirrored."""
    pose = standing_person()
    mirrored = pose.flip_horizontal()
    image = to_uint8(node.edit(0, 0, pose.to_json())["result"][0][0])
    flipped = to_uint8(node.edit(0, 0, mirrored.to_json())["result"][0][0])
    wrist_x, wrist_y = (int(v) for v in pose.keypoints[0, RIGHT_WRIST, :2])
    assert tuple(image[wrist_y, wrist_x]) == LIMB_COLORS[RIGHT_FOREARM]
    assert tuple(flipped[wrist_y, pose.width - 1 - wrist_x]) == LIMB_COLORS[LEFT_FOREARM]
    assert not flipped[wrist_y, wrist_x].any()
    np.testing.assert_array_equal(mirrored.keypoints[0, LEFT_WRIST, :2], [pose.width - 1 - wrist_x, wrist_y])


@pytest.mark.parametrize(
    ("pose_json", "message"),
    [
        ("{not json", "pose_json is not valid JSON: Expecting property name"),
        ("[1, 2]", "pose_json must be a JSON object, got list"),
        ('{"people": []}', 'pose_json must be a "stable-pose-coco17" or "stable-pose-coco17-keyframes" document'),
        ('{"format": "stable-pose-coco17-keyframes", "width": 8, "height": 8, "frames": 4, "keys": []}', '"keys"'),
        (
            '{"format": "stable-pose-coco17-keyframes", "width": 8, "height": 8, "frames": 4, '
            '"keys": [{"frame": 5, "people": []}]}',
            r"key frame numbers must lie in 0\.\.3, got \[5\]",
        ),
        ('{"format": "stable-pose-coco17", "width": 512, "height": 512}', '"people" must be a list of people'),
        ('{"format": "stable-pose-coco17", "people": [], "width": 0, "height": 512}', "width must be a positive"),
        (
            '{"format": "stable-pose-coco17", "people": [], "width": 16000, "height": 16000}',
            "width 16000 is larger than 8192 px",
        ),
        ("[" * 100000 + "]" * 100000, "pose_json is nested too deeply"),
        ('{"format": "stable-pose-coco17", "width": 8, "height": 8, "people": [[[1, 2, 1]]]}', "got 1"),
        (
            json.dumps({"format": "stable-pose-coco17", "width": 8, "height": 8, "people": [[[1, 2, 1]] * 16 + [[1]]]}),
            r"person 0, joint 16 \(right_ankle\) must be \[x, y, confidence\] numbers, got \[1\]",
        ),
        (
            '{"format": "stable-pose-coco17", "width": 8, "height": 8, "people": [[[1, NaN, 1]'
            + ", [1, 2, 1]" * 16
            + "]]}",
            r"person 0, joint 0 \(nose\) must be \[x, y, confidence\] numbers",
        ),
    ],
)
def test_bad_pose_json_gives_a_clear_error(node, pose_json, message):
    with pytest.raises(ValueError, match=message):
        node.edit(0, 0, pose_json)


def test_bad_pose_json_error_reaches_the_user_through_comfyui(comfy_host):
    prompt = {"1": {"class_type": NODE, "inputs": {"width": 0, "height": 0, "pose_json": "{oops"}}}
    result = comfy_host.execute(prompt)
    assert not result.ok
    assert "pose_json is not valid JSON" in result.errors[0]["exception_message"]


def test_joints_off_the_canvas_are_clipped(node, caplog):
    pose = standing_person()
    points = pose.keypoints.copy()
    points[0, RIGHT_WRIST, :2] = (-30, 900)
    points[0, LEFT_WRIST] = (700, 20, 0)  # hidden: stays where it is, undrawn
    with caplog.at_level(logging.WARNING, logger="stable_pose"):
        result = node.edit(0, 0, PoseKeypoints(points, 512, 768).to_json())["result"]
    assert "1 joint(s) outside the 512x768 canvas clipped" in caplog.text
    wrist = result[1][0]["people"][0]["pose_keypoints_2d"][3 * 4 : 3 * 4 + 2]
    assert wrist == [0.0, 767.0]
    assert result[1][0]["people"][0]["pose_keypoints_2d"][3 * 7 : 3 * 7 + 3] == [0.0, 0.0, 0.0]  # BODY-18 left wrist
    assert tuple(to_uint8(result[0][0])[767, 0]) == LIMB_COLORS[RIGHT_FOREARM]


def test_empty_pose_gives_black_image(node):
    image, frames = node.edit(0, 0, "")["result"]
    assert image.shape == (1, 768, 512, 3) and not image.any()
    assert frames == [{"people": [], "canvas_width": 512, "canvas_height": 768}]
    seed = [standing_person().to_pose_keypoint()]
    deleted_everyone = PoseKeypoints.empty(512, 768).to_json()
    image, frames = node.edit(0, 0, deleted_everyone, pose_keypoint=seed)["result"]
    assert not image.any() and frames[0]["people"] == []


def test_canvas_comes_from_widgets_seed_background_or_edit(node):
    seed_pose = standing_person(512, 768)
    seed = [seed_pose.to_pose_keypoint()]
    output = node.edit(640, 480, "", pose_keypoint=seed)
    expected = render_pose(seed_pose.fit_to_canvas(640, 480))
    np.testing.assert_array_equal(to_uint8(output["result"][0][0]), expected)
    assert output["ui"]["canvas"] == [640, 480]
    assert PoseKeypoints.from_json(output["ui"]["seed_pose"][0]).width == 640  # the seed on the node's canvas

    background = torch.zeros(1, 300, 200, 3)
    assert node.edit(0, 0, "", background=background)["ui"]["canvas"] == [200, 300]
    assert node.edit(0, 0, "", pose_keypoint=seed, background=background)["ui"]["canvas"] == [512, 768]
    small = standing_person(512, 768).scale_to(256, 384)
    assert node.edit(0, 0, small.to_json())["ui"]["canvas"] == [256, 384]
    doubled = node.edit(512, 768, small.to_json())["result"][0][0]
    np.testing.assert_array_equal(to_uint8(doubled), render_pose(small.fit_to_canvas(512, 768)))
    assert node.edit(0, 600, "", pose_keypoint=seed)["ui"]["canvas"] == [512, 600]


def test_pasted_pose_keypoint_frame_is_accepted(node):
    frame = standing_person().to_pose_keypoint()
    image, frames = node.edit(0, 0, json.dumps([frame]))["result"]
    np.testing.assert_array_equal(to_uint8(image[0]), render_pose(PoseKeypoints.from_pose_keypoint(frame)))
    assert frames == [frame]


def test_multi_frame_seed_passes_every_frame(node):
    first, second = standing_person(), standing_person().flip_horizontal()
    output = node.edit(0, 0, "", pose_keypoint=[first.to_pose_keypoint(), second.to_pose_keypoint()])
    images, frames = output["result"]
    assert images.shape[0] == 2 and len(frames) == 2 and len(output["ui"]["seed_pose"]) == 2
    np.testing.assert_array_equal(to_uint8(images[1]), render_pose(second))


def keyframes(first: PoseKeypoints, last: PoseKeypoints, frames: int = 9) -> dict[str, Any]:
    return keyframes_document({0: first.keypoints, frames - 1: last.keypoints}, frames, 512, 768, "ease_in_out")


def test_keyframe_edit_outputs_the_core_interpolation(node):
    first = standing_person()
    moved = PoseKeypoints(first.keypoints + np.array([40, -30, 0], np.float32), 512, 768)
    document = keyframes(first, moved)
    images, frames = node.edit(0, 0, json.dumps(document))["result"]
    expected = interpolate_keys(PoseSequence.from_poses([first, moved]), [0, 8], 9, "ease_in_out")
    assert images.shape == (9, 768, 512, 3)
    np.testing.assert_allclose(PoseSequence.from_pose_keypoint(frames).keypoints, expected.keypoints, atol=1e-3)
    for index in (0, 4, 8):
        np.testing.assert_array_equal(to_uint8(images[index]), render_pose(expected.poses()[index]))


def route_handler(comfy_host, path: str, method: str = "GET"):
    routes = [route for route in comfy_host.server.routes if getattr(route, "path", None) == path]
    assert len(routes) == 1 and routes[0].method == method, f"{path} is registered once"
    return routes[0].handler


def test_skeleton_spec_route_serves_the_core_constants(comfy_host, editor_module):
    handler = route_handler(comfy_host, "/stable_pose/skeleton_spec")
    response = asyncio.run(handler(make_mocked_request("GET", "/stable_pose/skeleton_spec?width=1024&height=768")))
    spec = json.loads(response.text)
    assert spec == editor_module.skeleton_spec(1024, 768)
    assert spec["names"] == list(COCO17_NAMES) and spec["limb_colors"] == [list(c) for c in LIMB_COLORS]
    assert spec["line_width"] == 15 and spec["format"] == "stable-pose-coco17"
    for query in ("?width=abc", "?width=0&height=10"):
        response = asyncio.run(handler(make_mocked_request("GET", f"/stable_pose/skeleton_spec{query}")))
        assert response.status == 400


def test_interpolate_route_serves_the_core_clip(comfy_host):
    handler = route_handler(comfy_host, "/stable_pose/interpolate", "POST")
    first = standing_person()
    document = keyframes(first, first.flip_horizontal())

    async def post(body: bytes) -> Any:
        request = make_mocked_request("POST", "/stable_pose/interpolate", headers={"Content-Type": "application/json"})
        request._read_bytes = body  # aiohttp's mocked request reads its body from here
        return await handler(request)

    response = asyncio.run(post(json.dumps(document).encode()))
    assert response.status == 200
    expected = clip_from_keyframes(document)
    np.testing.assert_allclose(json.loads(response.text)["frames"], expected.keypoints, atol=1e-5)
    bad = asyncio.run(post(b"{broken"))
    assert bad.status == 400 and json.loads(bad.text)["error"]
    wrong = asyncio.run(post(json.dumps({**document, "frames": 0}).encode()))
    assert wrong.status == 400 and "'frames'" in json.loads(wrong.text)["error"]


def js_fixtures(editor_module) -> dict[str, Any]:
    """What tests/js/fixtures.json must hold: the spec, and a pose with its core transforms."""
    pose = standing_person()
    points = pose.keypoints.copy()
    points[0, LEFT_WRIST, 2] = 0.0  # a hidden joint that keeps its place
    pose = PoseKeypoints(points, pose.width, pose.height)
    return {
        "spec": editor_module.skeleton_spec(*editor_module.DEFAULT_SIZE),
        "pose": json.loads(pose.to_json()),
        "flipped": json.loads(pose.flip_horizontal().to_json()),
        "fitted_640x480": json.loads(pose.fit_to_canvas(640, 480).to_json()),
        "keyframes": keyframes_document(
            {
                0: np.round(points.astype(np.float64), 2),
                8: np.round(pose.flip_horizontal().keypoints.astype(np.float64), 2),
            },
            9,
            pose.width,
            pose.height,
            "ease_in_out",
        ),
    }


def test_js_fixtures_match_the_core(editor_module):
    expected = js_fixtures(editor_module)
    if os.environ.get("STABLEPOSE_WRITE_JS_FIXTURES"):
        lines = ",\n".join(f" {json.dumps(key)}: {json.dumps(value)}" for key, value in expected.items())
        JS_FIXTURES.write_text("{\n" + lines + "\n}\n")
    assert json.loads(JS_FIXTURES.read_text()) == expected, (
        "tests/js/fixtures.json is stale: run STABLEPOSE_WRITE_JS_FIXTURES=1 pytest tests/test_editor_node.py"
    )
