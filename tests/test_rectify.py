"""Rectify (docs/rectify.md): the person noise mask, the plausibility gate, the before/after preview, and the bundled
``stable_pose_rectify.json`` run headless on the random test weights."""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.comfy_host import ComfyHost
from stablepose_core.evaluate.preview import number_line, tile_preview
from stablepose_core.poses.keypoints import COCO17_NAMES, PoseKeypoints
from stablepose_core.poses.regions import LIMB_FRACTION, person_size, pose_region, rectify_mask
from tests.test_body import _photo_poses, _stretch_forearm
from tests.test_workflows import installed, load, node_of, output, run, set_widget  # noqa: F401 (fixture)
from tools.workflow_samples import example_pose_keypoints

WORKFLOW = "stable_pose_rectify.json"
SIZE = (64, 96)  # width, height of the test runs: the pose canvas's 2:3


def joint(name: str) -> int:
    return COCO17_NAMES.index(name)


def standing(width: int = 128, height: int = 192) -> PoseKeypoints:
    """The example figure scaled onto a ``width`` × ``height`` canvas."""
    return example_pose_keypoints().scale_to(width, height)


# ----- the mask -----


def test_pose_region_holds_the_limbs_torso_and_head_and_nothing_far_away() -> None:
    pose = standing()
    region = pose_region(pose)
    points = pose.keypoints[0, :, :2]
    for index in range(17):  # every joint is inside
        x, y = np.round(points[index]).astype(int)
        assert region[y, x], COCO17_NAMES[index]
    middle = (points[joint("left_shoulder")] + points[joint("right_hip")]) / 2  # torso filled
    assert region[round(middle[1]), round(middle[0])]
    margin = LIMB_FRACTION * person_size(points) + 1  # the head's disc reaches furthest
    ys, xs = np.nonzero(region)
    assert xs.min() >= points[:, 0].min() - margin and xs.max() <= points[:, 0].max() + margin
    assert ys.min() >= points[:, 1].min() - margin and ys.max() <= points[:, 1].max() + margin
    assert region.mean() < 0.5, "the limbs, not their bounding box"
    hidden = PoseKeypoints(np.zeros((1, 17, 3), np.float32), 128, 192)
    assert not pose_region(hidden).any(), "a person without visible joints adds nothing"


def test_rectify_mask_unites_grows_and_removes_occluders() -> None:
    pose = standing()
    height, width = 192, 128
    silhouette = np.zeros((height, width), np.float32)
    silhouette[5:10, 5:10] = 1.0  # a part the pose does not cover
    tight = rectify_mask(height, width, [pose], grow=0)
    np.testing.assert_array_equal(tight.astype(bool), pose_region(pose))
    united = rectify_mask(height, width, [pose], silhouette, grow=0)
    assert united[5:10, 5:10].all() and united.sum() == tight.sum() + 25
    grown = rectify_mask(height, width, [pose], grow=6)
    assert grown.sum() > tight.sum() and (grown >= tight).all()
    occluders = np.zeros((height, width), np.float32)
    occluders[:, : width // 2] = 1.0
    cut = rectify_mask(height, width, [pose], occluders=occluders, grow=6)
    assert not cut[:, : width // 2].any()
    np.testing.assert_array_equal(cut[:, width // 2 :], grown[:, width // 2 :])
    with pytest.raises(ValueError, match="silhouette mask is 10x10 but the image is 128x192"):
        rectify_mask(height, width, [pose], np.zeros((10, 10)))
    with pytest.raises(ValueError, match="differs from the mask size"):
        rectify_mask(64, 64, [pose])


def test_preview_tiles_side_by_side_with_the_numbers_below() -> None:
    tiles = [np.full((40, 30, 3), value, np.uint8) for value in (50, 100, 150)] + [np.zeros((20, 15, 3), np.uint8)]
    picture = tile_preview(tiles, ["a", "b", "c", "d"], "OKS 0.10 -> 0.90")
    assert picture.shape == (40 + 24, 120, 3)
    assert picture[35, 45, 0] == 100 and picture[35, 75, 0] == 150, "tiles in order, labels only in their corner"
    assert picture[40:].max() == 255, "the caption is drawn"
    assert number_line("OKS", 0.1, None) == "OKS 0.10 -> ?"
    assert number_line("OKS", None, None) is None


def test_mask_node_maps_poses_and_checks_mask_sizes(comfy_host: ComfyHost) -> None:
    node = comfy_host.node_class("StablePoseRectifyMask")()
    image = torch.zeros(2, 96, 64, 3)
    pose = standing(128, 192)  # the same 2:3 canvas, twice the size: stretched onto the image
    (mask,) = node.mask(image, pose.to_pose_keypoint(), 0)
    assert mask.shape == (2, 96, 64)
    np.testing.assert_array_equal(mask[0].numpy().astype(bool), pose_region(pose.scale_to(64, 96)))
    torch.testing.assert_close(mask[1], mask[0])
    occluders = torch.ones(1, 96, 64)
    assert not node.mask(image, pose.to_pose_keypoint(), 8, occluders=occluders)[0].any()
    with pytest.raises(ValueError, match="silhouette must be one 64x96 mask or one per image"):
        node.mask(image, pose.to_pose_keypoint(), 0, silhouette=torch.ones(3, 96, 64))


# ----- the workflow -----


@functools.cache
def photo_poses() -> dict[str, PoseKeypoints]:
    """The bundled photos' people as the built-in BlazePose finds them (with 3D world landmarks), as the body tests
    (tests/test_body.py) fit them: the astronaut is plausible, the camera man with a forearm stretched 2.5× is not."""
    photos = _photo_poses()
    return {"plausible": photos["astronaut"], "implausible": _stretch_forearm(photos["camera"])}


def editor_pose(comfy_host: ComfyHost, workflow: dict[str, Any], pose: PoseKeypoints) -> None:
    """Feed ``pose`` to Extract Pose in place of detection (a Stable-Pose Editor node holding it, fitted onto the
    image uniformly), so the body is fitted to a known pose whatever the random weights draw."""
    extract = node_of(workflow, "OpenPoseExtract")
    set_widget(comfy_host, extract, "fit", "fit")
    shown = np.where(pose.visible[..., None], pose.keypoints, 0.0)  # the editor would pull the rest onto its border
    pose = PoseKeypoints(shown, pose.width, pose.height, pose.world)
    node_id, link_id = workflow["last_node_id"] + 1, workflow["last_link_id"] + 1
    workflow["nodes"].append(
        {
            "id": node_id,
            "type": "StablePoseEditor",
            "mode": 0,
            "inputs": [],
            "outputs": [
                {"name": "pose_image", "type": "IMAGE", "links": []},
                {"name": "pose_keypoint", "type": "POSE_KEYPOINT", "links": [link_id]},
            ],
            "widgets_values": [pose.width, pose.height, pose.to_json()],
        }
    )
    (socket,) = [socket for socket in extract["inputs"] if socket["name"] == "pose_keypoint"]
    socket["link"] = link_id
    workflow["links"].append([link_id, node_id, 1, extract["id"], extract["inputs"].index(socket), "POSE_KEYPOINT"])
    workflow["last_node_id"], workflow["last_link_id"] = node_id, link_id


def small(comfy_host: ComfyHost, seed: int) -> dict[str, Any]:
    """The bundled workflow at 64 × 96, one step per sampler; Render Body at the same size."""
    workflow = load(WORKFLOW)
    set_widget(comfy_host, node_of(workflow, "EmptyLatentImage"), "width", SIZE[0])
    set_widget(comfy_host, node_of(workflow, "EmptyLatentImage"), "height", SIZE[1])
    set_widget(comfy_host, node_of(workflow, "StablePoseRenderBody"), "width", SIZE[0])
    set_widget(comfy_host, node_of(workflow, "StablePoseRenderBody"), "height", SIZE[1])
    for sampler in (node for node in workflow["nodes"] if node["type"] == "KSampler"):
        set_widget(comfy_host, sampler, "steps", 1)
        set_widget(comfy_host, sampler, "seed", seed)
    return workflow


def first_image(result: Any, workflow: dict[str, Any]) -> torch.Tensor:
    """The first image: the VAE Decode that feeds the gate's ``image`` input."""
    gate = node_of(workflow, "StablePoseRectifyGate")
    (socket,) = [socket for socket in gate["inputs"] if socket["name"] == "image"]
    (link,) = [link for link in workflow["links"] if link[0] == socket["link"]]
    return result.output(link[1], link[2])


def by_title(workflow: dict[str, Any], title: str) -> dict[str, Any]:
    (node,) = [node for node in workflow["nodes"] if node.get("title") == title]
    return node


def test_rectify_workflow_feeds_the_target_skeleton_back_and_fits_the_detected_pose(comfy_host: ComfyHost) -> None:
    """Target-pose option: the body is fitted to the pose found in the first image, and the rectification samples
    with the model Apply Stable-Pose patched with the target's skeleton."""
    prompt = comfy_host.workflow_to_prompt(load(WORKFLOW))
    kinds = {node_id: node["class_type"] for node_id, node in prompt.items()}
    (target,) = [node_id for node_id, kind in kinds.items() if kind == "StablePoseEditor"]
    (apply,) = [node for node in prompt.values() if node["class_type"] == "ApplyStablePose"]
    assert apply["inputs"]["pose_image"] == [target, 0]
    rectify = [node for node in prompt.values() if node["class_type"] == "KSampler" and node["inputs"]["denoise"] < 1]
    assert [node["inputs"]["denoise"] for node in rectify] == [0.7]
    assert kinds[rectify[0]["inputs"]["model"][0]] == "ApplyStablePose"
    fits = [node for node in prompt.values() if node["class_type"] == "StablePoseFitBody"]
    assert {kinds[fit["inputs"]["pose_keypoint"][0]] for fit in fits} == {"OpenPoseExtract", "StablePoseScore"}
    negatives = [node["inputs"]["text"] for node in prompt.values() if node["class_type"] == "CLIPTextEncode"]
    assert "deformed, bad anatomy" in negatives


@pytest.mark.slow
@pytest.mark.usefixtures("installed")
def test_gate_passes_a_plausible_image_through_without_sampling_the_rectification(comfy_host: ComfyHost) -> None:
    workflow = small(comfy_host, seed=7101)
    editor_pose(comfy_host, workflow, photo_poses()["plausible"])
    result = run(comfy_host, workflow)
    first = first_image(result, workflow)
    gate = node_of(workflow, "StablePoseRectifyGate")
    report = json.loads(result.output(gate["id"], 2))
    assert report[0]["people"] and report[0]["people"][0]["plausible"], report
    torch.testing.assert_close(result.output(gate["id"]), first, rtol=0, atol=0)
    assert result.output(gate["id"], 1) == 0
    rectify_sampler = by_title(workflow, "KSampler (rectify, denoise 0.7)")
    assert str(rectify_sampler["id"]) not in result.outputs, "the rectification was not sampled"
    summary = output(result, workflow, "StablePoseRectifyPreview", 1)
    assert "plausibility score" in summary and "OKS" in summary


@pytest.mark.slow
@pytest.mark.usefixtures("installed")
def test_gate_regenerates_an_implausible_person_only_inside_the_mask(comfy_host: ComfyHost) -> None:
    workflow = small(comfy_host, seed=7102)
    editor_pose(comfy_host, workflow, photo_poses()["implausible"])
    set_widget(comfy_host, node_of(workflow, "StablePoseRectifyMask"), "grow", 0)  # the 64 × 96 image is small
    result = run(comfy_host, workflow)
    gate = node_of(workflow, "StablePoseRectifyGate")
    report = json.loads(result.output(gate["id"], 2))
    assert report[0]["rectified"] is True and not report[0]["people"][0]["plausible"], report
    assert result.output(gate["id"], 1) == 1
    mask = output(result, workflow, "StablePoseRectifyMask")
    assert 0 < mask.mean() < 0.9
    encoded = output(result, workflow, "VAEEncode")["samples"]
    resampled = result.output(by_title(workflow, "KSampler (rectify, denoise 0.7)")["id"])["samples"]
    latent_mask = F.interpolate(mask[:, None], size=encoded.shape[-2:], mode="bilinear")[:, 0]
    outside = (latent_mask == 0)[:, None].expand_as(encoded)
    assert outside.any()
    torch.testing.assert_close(resampled[outside], encoded[outside], rtol=0, atol=1e-5)
    assert (resampled - encoded).abs()[~outside].max() > 1e-2, "the person's latents are regenerated"
    # in pixels the result differs from the first image's VAE round trip mostly inside the mask: the decoder's
    # receptive field (and, with these random weights, its attention) spreads some change past the mask's edge
    vae = output(result, workflow, "CheckpointLoaderSimple", 2)
    with torch.inference_mode():  # as ComfyUI runs nodes
        round_trip = comfy_host.nodes.VAEDecode().decode(vae, {"samples": encoded})[0]
    rectified = result.output(gate["id"])
    change = (rectified - round_trip).abs().mean(-1)[0]
    person = mask[0] > 0.5
    assert change[person].mean() > 1.5 * change[~person].mean()
    preview = output(result, workflow, "StablePoseRectifyPreview")
    assert preview.shape[2] == 4 * SIZE[0]
