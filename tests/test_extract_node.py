"""``OpenPoseExtract`` inside a real headless ComfyUI (the ``comfy_host`` fixture)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from stablepose_core.detect.backends import OPENPOSE_FILE
from stablepose_core.detect.batches import FRAME_BATCH
from stablepose_core.poses.keypoints import COCO17_NAMES, WORLD_KEY, PoseKeypoints
from stablepose_core.poses.skeleton import LIMB_COLORS, render_pose

NODE = "OpenPoseExtract"


def as_image(*frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack(frames)).float() / 255.0


@pytest.fixture(scope="module")
def node(comfy_host):
    return comfy_host.node_class(NODE)()


@pytest.fixture(scope="module")
def openpose_weights(tmp_path_factory) -> Path:
    """controlnet_aux's bodypose_model, seeded random weights, in the hub file's key format."""
    from controlnet_aux.open_pose.model import bodypose_model

    torch.manual_seed(0)
    state = {key.split(".", 1)[1]: value for key, value in bodypose_model().state_dict().items()}
    path = tmp_path_factory.mktemp("weights") / OPENPOSE_FILE
    torch.save(state, path)
    return path


def backend_options(comfy_host) -> list[str]:
    return comfy_host.input_specs(NODE)["required"]["backend"][1]["options"]


def test_registered_with_display_name(comfy_host):
    pack = next(iter(comfy_host.pack_modules.values()))
    assert pack.NODE_DISPLAY_NAME_MAPPINGS[NODE] == "Extract Poses (Stable-Pose)"
    node_class = comfy_host.node_class(NODE)
    assert node_class.RETURN_TYPES == ("IMAGE", "POSE_KEYPOINT")
    optional = comfy_host.input_specs(NODE)["optional"]
    assert optional["pose_keypoint"][0] == "POSE_KEYPOINT" and optional["fit"][1]["options"] == ["stretch", "fit"]


def test_offers_only_runnable_backends_and_says_how_to_enable(comfy_host):
    assert backend_options(comfy_host) == ["blazepose"]
    tooltip = comfy_host.input_specs(NODE)["required"]["backend"][1]["tooltip"]
    assert "openpose: unavailable" in tooltip and OPENPOSE_FILE in tooltip
    assert str(comfy_host.models_dir / "pose_detectors") in tooltip


def test_detects_through_comfyui_executor(comfy_host):
    Image.fromarray(data.astronaut()).save(comfy_host.workdir / "input" / "astronaut.png")
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "astronaut.png"}},
        "2": {"class_type": NODE, "inputs": {"image": ["1", 0], "backend": "blazepose"}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }
    result = comfy_host.execute(prompt)
    assert result.ok, result.errors
    pose_image, frames = result.output(2, 0), result.output(2, 1)
    assert pose_image.shape == (1, 512, 512, 3) and pose_image.dtype == torch.float32
    assert pose_image.min() >= 0 and pose_image.max() <= 1
    pose = PoseKeypoints.from_pose_keypoint(frames[0])
    assert pose.num_people == 1 and pose.visible[0, COCO17_NAMES.index("nose")]
    assert len(frames[0]["people"][0][WORLD_KEY]) == 18 * 4  # BlazePose's 3D points travel along
    assert pose.world is not None and pose.world[0, COCO17_NAMES.index("nose"), 3] == 1
    expected = render_pose(pose)  # POSE_KEYPOINT keeps everything the drawing needs
    np.testing.assert_array_equal((pose_image[0].numpy() * 255).round().astype(np.uint8), expected)


def test_saved_workflows_naming_mediapipe_still_run(comfy_host):
    """Earlier releases called the built-in detector "mediapipe": ComfyUI's validation accepts it, an unknown
    backend gets one message naming the runnable ones."""
    Image.fromarray(data.astronaut()).save(comfy_host.workdir / "input" / "astronaut.png")

    def run(backend: str):
        return comfy_host.execute(
            {
                "1": {"class_type": "LoadImage", "inputs": {"image": "astronaut.png"}},
                "2": {"class_type": NODE, "inputs": {"image": ["1", 0], "backend": backend}},
                "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
            }
        )

    legacy = run("mediapipe")
    assert legacy.ok, legacy.errors
    assert PoseKeypoints.from_pose_keypoint(legacy.output(2, 1)[0]).num_people == 1
    unknown = run("posenet")
    assert not unknown.ok
    assert any("'posenet' cannot run here; choose one of ['blazepose']" in line for line in unknown.error_messages())


def test_batch_with_an_empty_frame_warns_and_gives_black(node, caplog):
    batch = as_image(data.astronaut(), np.zeros((512, 512, 3), np.uint8))
    with caplog.at_level(logging.WARNING, logger="stable_pose"):
        pose_image, frames = node.extract(batch, "blazepose")
    assert pose_image.shape == (2, 512, 512, 3)
    assert pose_image[0].any() and not pose_image[1].any()
    assert frames[1]["people"] == [] and frames[1]["canvas_width"] == 512
    assert "no person found in frame(s) [1]" in caplog.text


def test_progress_and_interrupt(node):
    import comfy.model_management
    import comfy.utils

    calls = []
    previous = comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: calls.append((value, total)))
    try:
        node.extract(as_image(*[np.zeros((64, 64, 3), np.uint8)] * (FRAME_BATCH + 1)), "blazepose")
        assert calls == [(FRAME_BATCH, FRAME_BATCH + 1), (FRAME_BATCH + 1, FRAME_BATCH + 1)]  # once per batch
        comfy.model_management.interrupt_current_processing(True)
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            node.extract(as_image(np.zeros((64, 64, 3), np.uint8)), "blazepose")
    finally:
        comfy.model_management.interrupt_current_processing(False)
        comfy.utils.set_progress_bar_global_hook(previous)


def wide_frame() -> dict:
    """A comfyui_controlnet_aux DWPose-style frame (pixels, 768 x 384 canvas): a left upper arm, vertical."""
    points = np.zeros((18, 3))
    points[5] = (384, 100, 1)  # BODY-18 left shoulder
    points[6] = (384, 300, 1)  # BODY-18 left elbow
    return {"people": [{"pose_keypoints_2d": points.ravel().tolist()}], "canvas_width": 768, "canvas_height": 384}


def test_pose_keypoint_input_fit_and_stretch(node):
    image = as_image(np.zeros((512, 512, 3), np.uint8), np.zeros((512, 512, 3), np.uint8))
    stretched, frames = node.extract(image, "blazepose", "stretch", [wide_frame()])
    fitted, _ = node.extract(image, "blazepose", "fit", wide_frame())
    assert stretched.shape == fitted.shape == (2, 512, 512, 3)  # one frame broadcast over the batch
    colour = torch.tensor(LIMB_COLORS[6]) / 255.0  # limb (left shoulder, left elbow)
    # stretch: y 100..300 of 384 -> 133..400 of 512; fit: scale 2/3, centred -> y 192..325
    assert torch.allclose(stretched[0, 380, 256], colour) and not stretched[0, 120, 256].any()
    assert torch.allclose(fitted[1, 200, 256], colour) and not fitted[1, 340, 256].any()
    assert frames[0]["canvas_width"] == 512
    with pytest.raises(ValueError, match="2 frames but image has 3"):
        node.extract(as_image(*[np.zeros((8, 8, 3), np.uint8)] * 3), "blazepose", "fit", [wide_frame()] * 2)


def test_openpose_backend_from_models_folder(comfy_host, node, openpose_weights):
    target = comfy_host.models_dir / "pose_detectors" / "lllyasviel" / "Annotators" / OPENPOSE_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(openpose_weights)
    try:
        assert backend_options(comfy_host) == ["blazepose", "openpose"]
        pose_image, frames = node.extract(as_image(data.astronaut()[:256, :256]), "openpose")
        assert pose_image.shape == (1, 256, 256, 3) and frames[0]["canvas_height"] == 256  # random weights
    finally:
        target.unlink()
    assert backend_options(comfy_host) == ["blazepose"]


def test_openpose_weights_of_comfyui_controlnet_aux(comfy_host, openpose_weights, tmp_path, monkeypatch):
    """Found in custom_nodes/comfyui_controlnet_aux/ckpts/<hub repo>/ and under AUX_ANNOTATOR_CKPTS_PATH."""
    import folder_paths

    ckpts = tmp_path / "custom_nodes" / "comfyui_controlnet_aux" / "ckpts" / "lllyasviel" / "Annotators"
    ckpts.mkdir(parents=True)
    (ckpts / OPENPOSE_FILE).symlink_to(openpose_weights)
    custom_nodes_paths = folder_paths.folder_names_and_paths["custom_nodes"][0]
    custom_nodes_paths.append(str(tmp_path / "custom_nodes"))
    try:
        assert "openpose" in backend_options(comfy_host)
    finally:
        custom_nodes_paths.remove(str(tmp_path / "custom_nodes"))
    assert "openpose" not in backend_options(comfy_host)
    monkeypatch.setenv("AUX_ANNOTATOR_CKPTS_PATH", os.fspath(tmp_path / "custom_nodes/comfyui_controlnet_aux/ckpts"))
    assert "openpose" in backend_options(comfy_host)


@pytest.mark.parametrize("with_pose", [False, True])
def test_an_empty_image_batch_is_named(node, with_pose):
    """Issue 16: an empty batch failed with numpy's "need at least one array to stack"."""
    frame = PoseKeypoints.empty(64, 64).to_pose_keypoint()
    with pytest.raises(ValueError, match=r"image must be a batch of at least one image, got shape \(0, 64, 64, 3\)"):
        node.extract(torch.zeros(0, 64, 64, 3), "mediapipe", pose_keypoint=[frame] if with_pose else None)
