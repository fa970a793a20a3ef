"""``StablePoseScore`` and ``StablePoseSelectBest`` inside a real headless ComfyUI (the ``comfy_host`` fixture)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from stablepose_core.poses.keypoints import PoseKeypoints

NODES = ("StablePoseScore", "StablePoseSelectBest")


def as_image(*frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack(frames)).float() / 255.0


def candidates() -> list[np.ndarray]:
    """What a best-of-N run might give for the astronaut's pose: the pose itself, shifted by 10 % and 20 % of the
    width, mirrored, and nobody (the coffee cup, cut to 512 × 400 and padded to 512²)."""
    astronaut = data.astronaut()
    coffee = np.zeros_like(astronaut)
    coffee[56:456] = data.coffee()[:, 44:556]
    return [
        astronaut,
        np.roll(astronaut, 51, axis=1),
        np.roll(astronaut, 102, axis=1),
        np.ascontiguousarray(astronaut[:, ::-1]),
        coffee,
    ]


@pytest.fixture(scope="module")
def score_node(comfy_host):
    return comfy_host.node_class("StablePoseScore")()


@pytest.fixture(scope="module")
def select_node(comfy_host):
    return comfy_host.node_class("StablePoseSelectBest")()


@pytest.fixture(scope="module")
def target(comfy_host) -> list[dict]:
    """The astronaut's pose as Extract Poses (Stable-Pose) gives it."""
    _, frames = comfy_host.node_class("OpenPoseExtract")().extract(as_image(data.astronaut()), "blazepose")
    return frames


@pytest.mark.parametrize("name", NODES)
def test_registered_with_category_description_and_tooltips(comfy_host, name):
    pack = next(iter(comfy_host.pack_modules.values()))
    assert "Stable-Pose" in pack.NODE_DISPLAY_NAME_MAPPINGS[name]
    node_class = comfy_host.node_class(name)
    assert node_class.CATEGORY == "Stable-Pose/evaluation" and len(node_class.DESCRIPTION) > 80
    specs = comfy_host.input_specs(name)
    for section in specs.values():
        for input_name, (_, options) in section.items():
            assert options.get("tooltip"), f"{name}.{input_name} has no tooltip"
    assert specs["required"]["backend"][1]["options"] == ["blazepose"]  # what Extract Poses (Stable-Pose) offers here
    assert specs["optional"]["detected"][0] == "POSE_KEYPOINT"
    assert len(node_class.OUTPUT_TOOLTIPS) == len(node_class.RETURN_TYPES)


def test_scores_through_comfyui_executor(comfy_host):
    """photo -> Extract Poses (Stable-Pose) -> Score Pose Fidelity (Stable-Pose) of the same photo against that pose."""
    Image.fromarray(data.astronaut()).save(comfy_host.workdir / "input" / "score_astronaut.png")
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "score_astronaut.png"}},
        "2": {"class_type": "OpenPoseExtract", "inputs": {"image": ["1", 0], "backend": "blazepose"}},
        "3": {
            "class_type": "StablePoseScore",
            "inputs": {"images": ["1", 0], "target": ["2", 1], "backend": "blazepose"},
        },
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    }
    result = comfy_host.execute(prompt)
    assert result.ok, result.error_messages()
    overlay, score, report = (result.output(3, slot) for slot in range(3))
    assert overlay.shape == (1, 512, 512, 3) and overlay.min() >= 0 and overlay.max() <= 1
    print(f"astronaut against its own extracted pose: OKS {score:.4f}")
    assert score >= 0.95
    (entry,) = json.loads(report)
    assert entry["oks"] == pytest.approx(score) and (entry["people_target"], entry["count_error"]) == (1, 0)
    assert entry["people"][0]["joints"]["nose"]["error_px"] == pytest.approx(0.0, abs=0.5)
    detected = PoseKeypoints.from_pose_keypoint(result.output(3, 3)[0])
    assert detected.num_people == 1


def test_batch_scores_follow_the_pose(score_node, target):
    overlay, score, report, detected = score_node.score(as_image(*candidates()), target, "blazepose")
    entries = json.loads(report)
    oks = [entry["oks"] for entry in entries]
    print("same, shifted 10 %, 20 %, mirrored, nobody:", [round(value, 4) for value in oks])
    assert oks[0] >= 0.95 and oks[0] > oks[1] > oks[2] and oks[3] < oks[0] - 0.5
    assert (oks[4], entries[4]["people_found"], entries[4]["count_error"]) == (0.0, 0, 1)
    assert score == pytest.approx(np.mean(oks))
    assert overlay.shape == (5, 512, 512, 3) and len(detected) == 5 and detected[4]["people"] == []
    # the detected poses fed back in: no detector runs, same scores
    *_, report_again, _ = score_node.score(as_image(*candidates()), target, "no such backend", detected)
    assert [entry["oks"] for entry in json.loads(report_again)] == pytest.approx(oks, abs=1e-4)


def test_target_per_image_and_its_errors(score_node, target):
    images = as_image(data.astronaut(), data.astronaut())
    empty = {"people": [], "canvas_width": 512, "canvas_height": 512}
    _, score, report, _ = score_node.score(images, [target[0], target[0]], "blazepose")
    assert score >= 0.95 and len(json.loads(report)) == 2
    with pytest.raises(ValueError, match="target for image 1: the target pose has no person"):
        score_node.score(images, [target[0], empty], "blazepose")
    with pytest.raises(ValueError, match="target has 3 frames but image has 2"):
        score_node.score(images, target * 3, "blazepose")
    with pytest.raises(ValueError, match="detected has 1 frames but images has 2"):
        score_node.score(images, target, "blazepose", [empty])


def test_target_of_another_aspect_ratio_is_centre_cropped_like_apply_stable_pose(score_node, target):
    """The target pose on a 768 × 512 canvas with the astronaut in the middle: Apply Adapter (Stable-Pose) would
    crop 128 px off each side for a 512² latent, so it still fits the 512² photo."""
    wide = PoseKeypoints.from_pose_keypoint(target[0])
    points = wide.keypoints.copy()
    points[..., 0] += 128
    frame = PoseKeypoints(points, 768, 512).to_pose_keypoint()
    _, score, _, _ = score_node.score(as_image(data.astronaut()), frame, "blazepose")
    assert score >= 0.95


def test_select_best_through_comfyui_executor(comfy_host):
    """5 candidates as one batch (an animated WebP), keep the best 2: the photo itself and the 10 % shift."""
    frames = [Image.fromarray(frame) for frame in candidates()]
    frames[0].save(
        comfy_host.workdir / "input" / "candidates.webp", save_all=True, append_images=frames[1:], lossless=True
    )
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "candidates.webp"}},
        "2": {"class_type": "ImageFromBatch", "inputs": {"image": ["1", 0], "batch_index": 0, "length": 1}},
        "3": {"class_type": "OpenPoseExtract", "inputs": {"image": ["2", 0], "backend": "blazepose"}},
        "4": {
            "class_type": "StablePoseSelectBest",
            "inputs": {"images": ["1", 0], "target": ["3", 1], "backend": "blazepose", "k": 2},
        },
        "5": {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}},
    }
    result = comfy_host.execute(prompt)
    assert result.ok, result.error_messages()
    batch = result.output(1, 0)
    best = result.output(4, 0)
    indices, scores = result.outputs["4"][1], result.outputs["4"][2]
    assert indices == [0, 1] and scores[0] >= 0.95 and scores[0] > scores[1]
    torch.testing.assert_close(best, batch[[0, 1]])


def test_select_best_k_larger_than_the_batch_and_ties(select_node, target):
    images = as_image(data.coffee()[:, :512][:400], data.coffee()[:, 88:][:400])  # nobody in either
    frame = PoseKeypoints.from_pose_keypoint(target[0]).crop_to_canvas(512, 400).to_pose_keypoint()
    best, indices, scores = select_node.select(images, frame, "blazepose", 5)
    assert indices == [0, 1] and scores == [0.0, 0.0] and best.shape == (2, 400, 512, 3)
