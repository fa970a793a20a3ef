"""The body nodes inside a real headless ComfyUI (``comfy_host``) on the real Anny model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data

pytestmark = pytest.mark.slow
pytest.importorskip("anny", reason="the body nodes need anny (requirements-optional.txt)")

NODES = ("StablePoseFitBody", "StablePoseRenderBody", "StablePoseSaveBody", "StablePoseLoadBody")


def as_image(*frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack(frames)).float() / 255.0


@pytest.fixture(scope="module")
def bodies(comfy_host):
    """The pack's ``stablepose_core.body.bodies`` as ComfyUI imported it (its classes are the nodes' classes)."""
    return comfy_host.pack_module("stablepose_core.body.bodies")


@pytest.fixture(scope="module")
def astronaut_fit(comfy_host) -> tuple:
    image = as_image(data.astronaut())
    _, pose = comfy_host.node_class("OpenPoseExtract")().extract(image, "blazepose")
    return image, comfy_host.node_class("StablePoseFitBody")().fit(image, pose, 60)


@pytest.mark.parametrize("name", NODES)
def test_registered_with_category_description_and_tooltips(comfy_host, name: str) -> None:
    node_class = comfy_host.node_class(name)
    assert node_class.CATEGORY.startswith("Stable-Pose/") and len(node_class.DESCRIPTION) > 40
    specs = comfy_host.input_specs(name)
    assert all("tooltip" in spec for section in specs.values() for _kind, spec in section.values())


def test_fit_gives_a_body_its_joints_a_score_and_a_report(astronaut_fit, bodies) -> None:
    _image, (body, fitted, plausibility, report) = astronaut_fit
    assert isinstance(body, bodies.BodyBatch) and len(body.frames) == 1 and len(body.frames[0].people) == 1
    assert len(fitted) == 1 and len(fitted[0]["people"]) == 1
    entry = json.loads(report)[0]["people"][0]
    assert set(entry) >= {"score", "plausible", "yaw_deg", "fit_error_px", "worst_joints"}
    assert plausibility == pytest.approx(entry["score"], abs=1e-3) and abs(entry["yaw_deg"]) < 60


def test_render_gives_depth_only_on_the_mask_and_honours_occluders(comfy_host, astronaut_fit) -> None:
    _image, (body, *_rest) = astronaut_fit
    render = comfy_host.node_class("StablePoseRenderBody")()
    depth, mask, skeleton = render.render(body, 192, 128)
    assert depth.shape == (1, 128, 192, 3) and mask.shape == (1, 128, 192) and skeleton.shape == (1, 128, 192, 3)
    assert torch.equal(depth[..., 0] > 0, mask > 0) and mask.sum() > 100 and skeleton.max() > 0
    occluder = torch.zeros(1, 64, 64)
    occluder[:, :, 32:] = 1.0  # the right half of the image, at another size than the output
    _depth, cut, _skeleton = render.render(body, 192, 128, occluder)
    assert cut[..., 100:].sum() == 0 and torch.equal(cut[..., :90], mask[..., :90])
    with pytest.raises(ValueError, match="occluders has 2 masks for 1 images"):
        render.render(body, 192, 128, torch.zeros(2, 64, 64))


def test_nobody_and_a_person_without_keypoints_give_empty_bodies_and_a_clear_report(comfy_host) -> None:
    image = as_image(data.coffee()[:256, :256], data.coffee()[:256, :256])
    nobody = {"people": [], "canvas_width": 256, "canvas_height": 256}
    blank = {"people": [{"pose_keypoints_2d": [0.0] * 54}], "canvas_width": 256, "canvas_height": 256}
    body, fitted, plausibility, report = comfy_host.node_class("StablePoseFitBody")().fit(image, [nobody, blank], 20)
    assert [len(frame.people) for frame in body.frames] == [0, 0] and plausibility == 0.0
    frames = json.loads(report)
    assert frames[0]["note"] == "nobody in the pose" and "fewer than" in frames[1]["skipped"][0]["reason"]
    assert [frame["people"] for frame in fitted] == [[], []]
    depth, mask, _ = comfy_host.node_class("StablePoseRenderBody")().render(body, 64, 64)
    assert depth.max() == 0 and mask.max() == 0


def test_save_and_load_round_trip_in_a_prompt_and_never_overwrite(comfy_host, astronaut_fit) -> None:
    _image, (body, *_rest) = astronaut_fit
    save = comfy_host.node_class("StablePoseSaveBody")()
    first = save.save(body, "bodies/test_body")["ui"]["text"][0]
    second = save.save(body, "bodies/test_body")["ui"]["text"][0]
    assert first != second and first.startswith("bodies/test_body_")
    (loaded,) = comfy_host.node_class("StablePoseLoadBody")().load("output", first)
    assert loaded == body
    prompt = {
        "1": {"class_type": "StablePoseLoadBody", "inputs": {"folder": "output", "name": first}},
        "2": {"class_type": "StablePoseRenderBody", "inputs": {"body": ["1", 0], "width": 64, "height": 64}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }
    result = comfy_host.execute(prompt)
    assert result.ok, result.error_messages()


def test_a_hostile_body_file_gets_one_clear_error(comfy_host, bodies) -> None:
    import folder_paths

    path = Path(folder_paths.get_input_directory()) / "hostile_body.json"
    path.write_text('{"format": "stable-pose-body", "version": 1, "frames": "x"}')
    with pytest.raises(bodies.BodyDataError, match="unsupported body file version"):
        comfy_host.node_class("StablePoseLoadBody")().load("input", "hostile_body.json")
    with pytest.raises(ValueError, match="no absolute paths"):
        comfy_host.node_class("StablePoseLoadBody")().load("input", "../outside.json")
