"""DWPose on random weights of the true networks: YOLOX-L and RTMPose-L exported to ONNX by
``harness/dwpose_models.py`` into ``.cache/test-models/ckpts/yzd-v/DWPose/`` (comfyui_controlnet_aux's
layout), run by the pack's real loading code. The numbers are meaningless; the files, the loading and the
plumbing are the real ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from torch.utils.flop_counter import FlopCounterMode

from harness.dwpose_models import (
    CKPTS_DIR,
    RTMPOSE_L_BODY_GMACS,
    RTMPOSE_L_BODY_PARAMS_M,
    RTMPOSE_L_WHOLEBODY_GMACS,
    WHOLEBODY_EXTRA_PARAMS,
    YOLOX,
    YOLOX_L_GFLOPS,
    YOLOX_L_PARAMS_M,
    RTMPose,
    build_rtmpose,
    build_yolox,
    calibration_inputs,
    export_dwpose_models,
    parameter_count,
)
from stablepose_core.detect.backends import DWPOSE, backend_statuses, create_detector
from stablepose_core.detect.dwpose import DETECTOR_FILE, JOINT_SCORE, POSE_FILE, box_to_crop, letterbox, person_boxes
from stablepose_core.poses.keypoints import COCO17_NAMES, PoseKeypoints
from stablepose_core.poses.skeleton import render_pose

ort = pytest.importorskip("onnxruntime")

YOLOX_L_PARAMS = 54_208_895  # derived here; YOLOX publishes 54.2 M
RTMPOSE_L_BODY_PARAMS = 27_790_387  # mmpose publishes 27.79 M
RTMPOSE_L_WHOLEBODY_PARAMS = 33_610_919  # not published: the body model + 116 joints of the final conv


@pytest.fixture(scope="module")
def dwpose_files() -> tuple[Path, Path]:
    """``(yolox_l.onnx, dw-ll_ucoco_384.onnx)``, exported once into the test cache."""
    pytest.importorskip("onnx")
    return export_dwpose_models()


@pytest.fixture(scope="module")
def sessions(dwpose_files) -> tuple:
    return tuple(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]) for path in dwpose_files)


def signature(session) -> tuple[list, list]:
    return [(i.name, i.shape) for i in session.get_inputs()], [(o.name, o.shape) for o in session.get_outputs()]


def test_files_have_the_real_signatures(dwpose_files, sessions):
    assert dwpose_files == (CKPTS_DIR / "yzd-v/DWPose" / DETECTOR_FILE, CKPTS_DIR / "yzd-v/DWPose" / POSE_FILE)
    detector, pose = sessions
    assert signature(detector) == ([("images", [1, 3, 640, 640])], [("output", [1, 8400, 85])])
    assert signature(pose) == (
        [("input", ["batch", 3, 384, 288])],
        [("simcc_x", ["batch", 133, 576]), ("simcc_y", ["batch", 133, 768])],
    )
    for session in sessions:
        assert "stable_pose.test_model" in session.get_modelmeta().custom_metadata_map


def size(model_class: type, *args, input_shape: tuple[int, ...]) -> tuple[int, float]:
    """(parameters, multiply-adds / 1e9 of conv and matmul) of a model built on the meta device."""
    with torch.device("meta"):
        model = model_class(*args)
        with FlopCounterMode(display=False) as counter:
            model(torch.empty(input_shape))
    return parameter_count(model), counter.get_total_flops() / 2e9


def test_architectures_have_the_published_sizes():
    params, macs = size(YOLOX, input_shape=(1, 3, 640, 640))
    assert params == YOLOX_L_PARAMS and round(params / 1e6, 1) == YOLOX_L_PARAMS_M
    assert 2 * macs == pytest.approx(YOLOX_L_GFLOPS, rel=0.01)  # YOLOX counts 2 FLOPs per multiply-add
    params, macs = size(RTMPose, 17, input_shape=(1, 3, 384, 288))
    assert params == RTMPOSE_L_BODY_PARAMS and round(params / 1e6, 2) == RTMPOSE_L_BODY_PARAMS_M
    assert macs == pytest.approx(RTMPOSE_L_BODY_GMACS, rel=0.01)
    params, macs = size(RTMPose, input_shape=(1, 3, 384, 288))
    assert params == RTMPOSE_L_WHOLEBODY_PARAMS == RTMPOSE_L_BODY_PARAMS + WHOLEBODY_EXTRA_PARAMS
    assert macs == pytest.approx(RTMPOSE_L_WHOLEBODY_GMACS, rel=0.01)


def assert_same(actual: np.ndarray, expected: np.ndarray) -> None:
    """Equal to 1e-3 of the output's range: over 100+ random layers fp32 rounding alone moves torch's own fp32
    result ~2e-4 of the range away from its fp64 one (onnxruntime's: the same), while a wrong graph is off by
    the outputs' spread."""
    np.testing.assert_allclose(actual, expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())


@pytest.mark.slow
def test_onnx_graphs_compute_the_torch_networks(sessions):
    """The exported graphs (BatchNorm folded) give the modules' outputs, on the photo as the pipeline feeds it."""
    detector, pose = sessions
    image, crop = calibration_inputs()
    with torch.no_grad():
        expected = build_yolox()(image).numpy()
    assert_same(detector.run(None, {"images": image.numpy()})[0], expected)
    crops = torch.cat([crop, crop.flip(-1)])  # a batch of two, as comfyui_controlnet_aux runs all boxes at once
    with torch.no_grad():
        expected_x, expected_y = (out.numpy() for out in build_rtmpose()(crops))
    simcc_x, simcc_y = pose.run(None, {"input": crops.numpy()})
    assert_same(simcc_x, expected_x)
    assert_same(simcc_y, expected_y)
    assert not np.allclose(simcc_x[0], simcc_x[1], rtol=0.01)  # the random network still sees its input


def link_files(files: tuple[Path, ...], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for path in files:
        (folder / path.name).symlink_to(path)


def test_offered_where_users_keep_the_files(dwpose_files, tmp_path):
    """comfyui_controlnet_aux's ``ckpts/yzd-v/DWPose/`` and ComfyUI's ``models/pose_detectors/``."""
    status = {s.name: s for s in backend_statuses([CKPTS_DIR])}[DWPOSE]
    assert status.available and str(dwpose_files[0].parent) in status.detail
    pose_detectors = tmp_path / "models" / "pose_detectors"
    link_files(dwpose_files, pose_detectors)
    status = {s.name: s for s in backend_statuses([pose_detectors])}[DWPOSE]
    assert status.available and str(pose_detectors) in status.detail


@pytest.mark.slow
def test_detects_on_a_photo(dwpose_files, sessions):
    photo = data.astronaut()
    detector = create_detector(DWPOSE, [CKPTS_DIR])
    try:
        pose = detector(photo)
    finally:
        detector.close()
    assert isinstance(pose, PoseKeypoints) and (pose.width, pose.height) == (512, 512)
    # one person per box the detector keeps (the head's biases make a few confident, large person boxes)
    image, ratio = letterbox(photo)
    boxes = person_boxes(sessions[0].run(None, {"images": image})[0][0], ratio)
    assert 1 <= pose.num_people == len(boxes) <= 10
    assert pose.keypoints.shape == (len(boxes), len(COCO17_NAMES), 3) and pose.keypoints.dtype == np.float32
    confidence = pose.keypoints[..., 2]
    assert np.isfinite(pose.keypoints).all() and ((confidence == 0) | (confidence >= JOINT_SCORE)).all()
    assert pose.visible.any()  # SimCC maxima of random weights are not probabilities; some joints land on the photo
    for person, box in zip(pose.keypoints, boxes, strict=True):  # each person's joints lie in its box's crop
        centre, crop_size = box_to_crop(box, 288, 384)
        assert (np.abs(person[person[:, 2] > 0, :2] - centre) <= crop_size / 2).all()


@pytest.mark.slow
def test_extract_node_runs_dwpose(comfy_host, dwpose_files):
    """Through ComfyUI's executor, with the files in ``models/pose_detectors/``."""
    pose_detectors = comfy_host.models_dir / "pose_detectors"
    link_files(dwpose_files, pose_detectors)
    try:
        options = comfy_host.input_specs("OpenPoseExtract")["required"]["backend"][1]["options"]
        assert DWPOSE in options
        Image.fromarray(data.astronaut()).save(comfy_host.workdir / "input" / "dwpose_astronaut.png")
        prompt = {
            "1": {"class_type": "LoadImage", "inputs": {"image": "dwpose_astronaut.png"}},
            "2": {"class_type": "OpenPoseExtract", "inputs": {"image": ["1", 0], "backend": DWPOSE}},
            "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
        }
        result = comfy_host.execute(prompt)
    finally:
        for path in dwpose_files:
            (pose_detectors / path.name).unlink()
    assert result.ok, result.errors
    pose_image, frames = result.output(2, 0), result.output(2, 1)
    assert pose_image.shape == (1, 512, 512, 3)
    pose = PoseKeypoints.from_pose_keypoint(frames[0])
    assert pose.num_people >= 1 and pose_image.any()
    np.testing.assert_array_equal((pose_image[0].numpy() * 255).round().astype(np.uint8), render_pose(pose))
