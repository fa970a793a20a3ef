"""DWPose on random weights of the true networks: YOLOX-L and RTMPose-L exported to ONNX by
``harness/dwpose_models.py`` into ``.cache/test-models/ckpts/yzd-v/DWPose/`` (comfyui_controlnet_aux's
layout), run by the pack's real loading code. The numbers are meaningless; the files, the loading and the
plumbing are the real ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.optimize import linear_sum_assignment
from skimage import data
from torch.utils.flop_counter import FlopCounterMode

from harness.dwpose_models import (
    CKPTS_DIR,
    REPO_ROOT,
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
from stablepose_core.detect.backends import DWPOSE, DWPOSE_ONNXRUNTIME, backend_statuses, create_detector
from stablepose_core.detect.dwpose import (
    DETECTOR_FILES,
    JOINT_SCORE,
    POSE_FILES,
    DWPosePipeline,
    box_to_crop,
    crop,
    crop_grid,
    dwpose_detector,
    letterbox,
    person_boxes,
)
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
def pipelines(dwpose_files) -> tuple[DWPosePipeline, DWPosePipeline]:
    """The pipeline with the networks in PyTorch and in onnxruntime (CPU), shared by the module's tests."""
    return dwpose_detector(*dwpose_files), dwpose_detector(*dwpose_files, runtime="onnxruntime")


@pytest.fixture(scope="module")
def sessions(dwpose_files) -> tuple:
    return tuple(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]) for path in dwpose_files)


def signature(session) -> tuple[list, list]:
    return [(i.name, i.shape) for i in session.get_inputs()], [(o.name, o.shape) for o in session.get_outputs()]


def test_files_have_the_real_signatures(dwpose_files, sessions):
    assert dwpose_files == (CKPTS_DIR / "yzd-v/DWPose" / DETECTOR_FILES[0], CKPTS_DIR / "yzd-v/DWPose" / POSE_FILES[0])
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
    statuses = {s.name: s for s in backend_statuses([CKPTS_DIR])}
    for name, runtime in [(DWPOSE, "PyTorch"), (DWPOSE_ONNXRUNTIME, "onnxruntime")]:
        assert statuses[name].available and str(dwpose_files[0].parent) in statuses[name].detail
        assert runtime in statuses[name].detail
    pose_detectors = tmp_path / "models" / "pose_detectors"
    link_files(dwpose_files, pose_detectors)
    status = {s.name: s for s in backend_statuses([pose_detectors])}[DWPOSE]
    assert status.available and str(pose_detectors) in status.detail


@pytest.mark.slow
def test_detects_on_a_photo(dwpose_files):
    photo = data.astronaut()
    detector = create_detector(DWPOSE, [CKPTS_DIR])
    pose = detector(photo)
    assert isinstance(pose, PoseKeypoints) and (pose.width, pose.height) == (512, 512)
    # one person per box the detector keeps (the head's biases make a few confident, large person boxes)
    image, ratio = letterbox(torch.from_numpy(photo)[None])
    with torch.inference_mode():
        boxes = person_boxes(detector.detector(image)[0], ratio)[0]
    detector.close()
    assert 1 <= pose.num_people == len(boxes) <= 10
    assert pose.keypoints.shape == (len(boxes), len(COCO17_NAMES), 3) and pose.keypoints.dtype == np.float32
    confidence = pose.keypoints[..., 2]
    assert np.isfinite(pose.keypoints).all() and ((confidence == 0) | (confidence >= JOINT_SCORE)).all()
    assert pose.visible.any()  # SimCC maxima of random weights are not probabilities; some joints land on the photo
    centres, crop_sizes = box_to_crop(boxes, 288, 384)
    for person, centre, crop_size in zip(pose.keypoints, centres.numpy(), crop_sizes.numpy(), strict=True):
        assert (np.abs(person[person[:, 2] > 0, :2] - centre) <= crop_size / 2).all()  # joints lie in the crop


# Real photos of three sizes; the random detector finds 5-10 "people" in each. (Not every photo works: on some, such as
# the mirrored astronaut, hundreds of the random head's candidates tie near 0.9 and NMS keeps whichever rounding puts
# first, a different set in each runtime. Trained detectors do not produce such ties.)
PHOTOS = {"astronaut": data.astronaut(), "chelsea": data.chelsea(), "coffee": data.coffee()}


@contextmanager
def recording_batches(module: torch.nn.Module) -> Iterator[list[int]]:
    """The batch size of each call of ``module`` while in the block."""
    calls: list[int] = []
    handle = module.register_forward_hook(lambda _module, inputs, _output: calls.append(len(inputs[0])))
    try:
        yield calls
    finally:
        handle.remove()


@pytest.mark.slow
def test_a_clip_goes_through_in_batches(pipelines):
    """A clip of 6 frames (the node hands over up to 16 at once): one YOLOX call per batch of frames (4 on CPUs, the
    last batch short), one DWPose call per batch of person crops; a frame gets the people it has when detected
    alone."""
    photo = PHOTOS["astronaut"].astype(np.int16)
    frames = [np.clip(photo + level - 8, 0, 255).astype(np.uint8) for level in range(6)]  # flickering
    detector = pipelines[0]
    with (
        recording_batches(detector.detector.module) as detector_calls,
        recording_batches(detector.pose.module) as pose_calls,
    ):
        poses = detector.detect(frames)
    crops = [pose.num_people for pose in poses]
    assert detector_calls == chunk_sizes(len(frames), detector.frame_batch) == [4, 2]
    step = detector.frame_batch
    per_batch = [sum(crops[start : start + step]) for start in range(0, len(frames), step)]
    assert pose_calls == [size for total in per_batch for size in chunk_sizes(total, detector.crop_batch)]
    alone = detector(frames[5])
    assert alone.num_people == poses[5].num_people >= 1
    decided = alone.keypoints[..., 2] > 0
    np.testing.assert_allclose(poses[5].keypoints[decided], alone.keypoints[decided], atol=0.5)
    print(f"{len(frames)} frames, {sum(crops)} people, {len(pose_calls)} pose calls")


def chunk_sizes(total: int, chunk: int) -> list[int]:
    return [min(chunk, total - start) for start in range(0, total, chunk)]


def simcc_margins(simcc_x: torch.Tensor, simcc_y: torch.Tensor) -> np.ndarray:
    """Per crop and COCO-17 joint: the smaller of the x and y gaps between the best and second-best bin, relative to
    the crop's largest output. Below ~1e-3 the arg-max is a tie that rounding decides (random weights make many)."""
    gaps = []
    for simcc in (simcc_x[:, :17], simcc_y[:, :17]):
        top = simcc.topk(2, dim=-1).values
        gaps.append((top[..., 0] - top[..., 1]) / simcc.abs().amax(dim=(1, 2))[:, None])
    return torch.minimum(*gaps).cpu().numpy()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_pytorch_gives_onnxruntimes_boxes_and_joints(pipelines, name):
    """Same person boxes (within 0.5 px, plus 1e-3 of the size of the random head's 1000-px boxes) and, on the same
    crops, the same joints (within 0.5 px wherever the SimCC arg-max is not a tie) as the networks in onnxruntime."""
    photo = torch.from_numpy(np.ascontiguousarray(PHOTOS[name]))
    ours, reference = pipelines
    tensor, ratio = letterbox(photo[None])
    with torch.inference_mode():
        boxes, expected_boxes = (person_boxes(runtime.detector(tensor)[0], ratio)[0] for runtime in (ours, reference))
    assert 1 <= len(boxes) == len(expected_boxes)
    distance = torch.cdist(boxes, expected_boxes, p=float("inf")).numpy()
    rows, columns = linear_sum_assignment(distance)
    sizes = (expected_boxes[:, 2:] - expected_boxes[:, :2]).amax(dim=1).numpy()
    assert (distance[rows, columns] <= 0.5 + 1e-3 * sizes[columns]).all()
    centre, size = box_to_crop(boxes, 288, 384)
    crops = crop(photo, crop_grid(centre, size, 288, 384, (photo.shape[1], photo.shape[0])))
    outputs = []
    handle = ours.pose.module.register_forward_hook(lambda _module, _inputs, output: outputs.append(output))
    with torch.inference_mode():
        joints, expected = (runtime.joints(crops, centre, size).numpy() for runtime in (ours, reference))
    handle.remove()
    decided = simcc_margins(*(torch.cat(parts) for parts in zip(*outputs, strict=True))) > 1e-3
    print(f"{name}: {len(boxes)} people, {decided.mean():.2f} of the joints decided")
    assert decided.mean() > 0.8
    np.testing.assert_allclose(joints[decided][:, :2], expected[decided][:, :2], atol=0.5)
    np.testing.assert_allclose(joints[..., 2], expected[..., 2], rtol=1e-3, atol=1e-3 * np.abs(expected).max())


# Runs in a fresh interpreter with onnxruntime made unimportable, as if uninstalled (imports fail, find_spec finds
# nothing): prints the backend statuses and the people found on the astronaut.
WITHOUT_ONNXRUNTIME = """
import json, sys
sys.modules["onnxruntime"] = None
from skimage import data
from stablepose_core.detect.backends import DWPOSE, DWPOSE_ONNXRUNTIME, backend_statuses, create_detector
statuses = {status.name: status for status in backend_statuses([sys.argv[1]])}
pose = create_detector(DWPOSE, [sys.argv[1]]).detect([data.astronaut()])[0]
print(json.dumps({"available": statuses[DWPOSE].available, "onnxruntime": statuses[DWPOSE_ONNXRUNTIME].detail,
                  "python": sys.version_info[:2], "keypoints": pose.keypoints.tolist()}))
"""
PY313_ENV = "STABLEPOSE_PY313"  # a Python 3.13 with requirements.txt and scikit-image (docs/development.md)


@pytest.mark.slow
@pytest.mark.parametrize("python", ["this", "3.13"])
def test_pytorch_path_needs_no_onnxruntime(dwpose_files, python):
    """The ``dwpose`` backend is offered and detects with onnxruntime absent, here and on Python 3.13 (where
    :data:`PY313_ENV` names one), with the people of this interpreter's PyTorch path."""
    executable = sys.executable if python == "this" else os.environ.get(PY313_ENV)
    if executable is None:
        pytest.skip(f"set {PY313_ENV} to a Python 3.13 with the pack's requirements (docs/development.md)")
    result = subprocess.run(
        [executable, "-c", WITHOUT_ONNXRUNTIME, str(CKPTS_DIR)],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["available"] and report["onnxruntime"].startswith("pip install onnxruntime")
    assert python == "this" or report["python"] == [3, 13]
    detector = create_detector(DWPOSE, [CKPTS_DIR])
    expected = detector(data.astronaut()).keypoints
    assert len(expected) >= 1
    np.testing.assert_allclose(np.array(report["keypoints"]), expected, atol=1e-2)


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
