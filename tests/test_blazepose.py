"""The embedded BlazePose (PyTorch, weights in the pack) against MediaPipe 0.10.14, the backend it replaces.

``tests/data/blazepose/mediapipe_0.10.14.json`` holds MediaPipe's own landmarks and world landmarks on the test
photos (``tools/make_blazepose_references.py``), so these tests run on every Python, 3.13 included.
"""

import importlib.util
import json
import math

import numpy as np
import pytest
import torch

from stablepose_core.detect.blazepose import (
    DETECTOR_STEM,
    LANDMARK_STEM,
    MODEL_DIR,
    BlazePose,
    RotatedRect,
    crop,
    project,
    ssd_anchor_centres,
)
from stablepose_core.detect.tflite_graph import TFLiteGraph, shard_paths
from stablepose_core.poses.formats import to_coco17
from stablepose_core.poses.keypoints import VISIBILITY_THRESHOLD
from tools.make_blazepose_references import REFERENCE_FILE, reference_photos

REFERENCES = json.loads(REFERENCE_FILE.read_text())
REFERENCE, WORLD_REFERENCE = REFERENCES["landmarks"], REFERENCES["world_landmarks"]
REPOSITORY_FILE_LIMIT = 5_000_000


@pytest.fixture(scope="module")
def blazepose() -> BlazePose:
    return BlazePose()


def pck_against_reference(ours: np.ndarray, reference: np.ndarray, width: int, height: int, alpha: float) -> float:
    """PCK over the COCO-17 joints MediaPipe draws (visible, on the image), tolerance alpha × person size."""
    ours, reference = (to_coco17(np.asarray(p, np.float32)[None], "blazepose33")[0] for p in (ours, reference))
    x, y, confidence = reference.T
    drawn = (confidence > VISIBILITY_THRESHOLD) & (x >= 0) & (x < width) & (y >= 0) & (y < height)
    size = np.ptp(reference[drawn, :2], axis=0).max()
    distances = np.hypot(*(ours[drawn, :2] - reference[drawn, :2]).T)
    return float((distances <= alpha * size).mean())


# name -> PCK@0.05 / PCK@0.02 measured against MediaPipe (floored). For scale: MediaPipe against itself on the
# same photos with ±2 grey levels of noise scores 0.69-1.00 / 0.47-0.92 (docs/poses.md).
EXPECTED_PCK = {
    "astronaut": (1.0, 1.0),
    "astronaut_wide": (1.0, 0.9),
    "astronaut_tall": (1.0, 1.0),
    "camera": (0.8, 0.6),
    "camera_mirrored": (0.9, 0.7),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_PCK))
def test_same_keypoints_as_mediapipe(blazepose, name):
    image = reference_photos()[name]
    height, width = image.shape[:2]
    ours = blazepose(image)
    assert ours is not None and ours.shape == (33, 6)
    ours = ours[:, :3]  # x, y, visibility
    at_5, at_2 = (pck_against_reference(ours, np.array(REFERENCE[name]), width, height, a) for a in (0.05, 0.02))
    print(f"{name}: PCK@0.05 = {at_5:.2f}, PCK@0.02 = {at_2:.2f} against mediapipe 0.10.14")
    assert at_5 >= EXPECTED_PCK[name][0] and at_2 >= EXPECTED_PCK[name][1]
    visibility_error = np.abs(ours[:, 2] - np.array(REFERENCE[name])[:, 2]).max()
    assert visibility_error < 0.15


# name -> mean distance (m) of the 33 world landmarks to MediaPipe's, as measured (rounded up). The mean distance
# follows the 2D landmarks' difference (the region of interest moved by a pixel or two, as above); the turned
# astronaut checks that the world landmarks are rotated back from the region's axes (a quarter turn the wrong
# way would put them ~0.5 m off).
EXPECTED_WORLD_ERROR = {
    "astronaut": 0.01,
    "astronaut_turned": 0.02,
    "astronaut_wide": 0.035,
    "astronaut_tall": 0.04,
    "camera": 0.04,
    "camera_mirrored": 0.025,
}


@pytest.mark.parametrize("name", sorted(EXPECTED_WORLD_ERROR))
def test_same_world_landmarks_as_mediapipe(blazepose, name):
    world = blazepose(reference_photos()[name])[:, 3:]
    distances = np.linalg.norm(world - np.array(WORLD_REFERENCE[name]), axis=1)
    print(f"{name}: world landmarks {distances.mean():.4f} m (mean), {distances.max():.4f} m (max) from mediapipe")
    assert distances.mean() <= EXPECTED_WORLD_ERROR[name] and distances.max() < 0.1


def test_nobody_in_the_coffee_photo(blazepose):
    assert REFERENCE["coffee"] is None and WORLD_REFERENCE["coffee"] is None
    assert blazepose(reference_photos()["coffee"]) is None
    assert blazepose(np.zeros((240, 320, 3), np.uint8)) is None


def test_a_clip_goes_through_each_network_once(blazepose):
    """16 frames of several sizes (one without anybody): one detector call for all, one landmark call for the frames
    with a person; each frame's landmarks are those it gets alone, to a quarter pixel."""
    photos = reference_photos()
    names = sorted(photos)
    frames = [photos[names[index % len(names)]] for index in range(16)]
    calls: dict[str, list[int]] = {"detector": [], "landmarker": []}
    handles = [
        getattr(blazepose, name).register_forward_hook(
            lambda _module, inputs, _output, name=name: calls[name].append(len(inputs[0]))
        )
        for name in calls
    ]
    try:
        batch = blazepose.detect(frames)
    finally:
        for handle in handles:
            handle.remove()
    found = [landmarks is not None for landmarks in batch]
    assert calls == {"detector": [16], "landmarker": [sum(found)]} and 0 < sum(found) < 16
    for frame, landmarks in zip(frames[: len(names)], batch, strict=False):
        alone = blazepose(frame)
        assert (alone is None) == (landmarks is None)
        if alone is not None:
            np.testing.assert_allclose(landmarks, alone, atol=0.25)  # batched convolutions round differently


def test_ssd_anchors_are_mediapipes():
    anchors = ssd_anchor_centres()
    assert anchors.shape == (2254, 2)  # 28² × 2 + 14² × 2 + 7² × 6, as pose_detection_cpu.pbtxt's num_boxes
    np.testing.assert_allclose(anchors[:2], [[0.5 / 28, 0.5 / 28]] * 2)
    np.testing.assert_allclose(anchors[-1], [6.5 / 7, 6.5 / 7])


@pytest.mark.parametrize("rotation", [0.0, 0.4, math.pi / 2, -2.5])
def test_projection_inverts_the_crop(rotation):
    """A dot found in the rotated crop projects back onto the dot in the image (crop and projection agree)."""
    image = np.zeros((100, 200, 3), np.uint8)
    image[48:53, 123:128] = 255  # a dot centred at (125, 50)
    rect = RotatedRect(100, 50, 80, 80, rotation)
    out = crop(image, rect, 80, 0, (0.0, 1.0))[..., 0]
    rows, cols = np.nonzero(out > 0.5)
    local = np.array([[cols.mean() / 80, rows.mean() / 80]])  # OpenCV warps map pixel index to pixel index
    np.testing.assert_allclose(project(local, rect), [[125, 50]], atol=0.75)
    if rotation == 0.0:
        assert cols.mean() > 60  # unrotated: right of centre stays right


@pytest.mark.skipif(
    importlib.util.find_spec("ai_edge_litert") is None or importlib.util.find_spec("mediapipe") is None,
    reason="needs ai-edge-litert and mediapipe==0.10.14 (the .tflite source files); Python <= 3.12",
)
@pytest.mark.parametrize(
    ("stem", "source", "outputs"),
    [
        (DETECTOR_STEM, "modules/pose_detection/pose_detection.tflite", (0, 1)),
        (LANDMARK_STEM, "modules/pose_landmark/pose_landmark_full.tflite", (0, 1, 3, 4)),  # 4: world landmarks
    ],
)
def test_pytorch_graph_reproduces_tflite(stem, source, outputs):
    """The converted graph computes what TensorFlow Lite computes from the original file, on a real crop: every
    kept output, the landmark network's world-landmark head included."""
    from ai_edge_litert.interpreter import Interpreter

    from tools.convert_blazepose import mediapipe_dir

    interpreter = Interpreter(model_path=str(mediapipe_dir() / source))
    interpreter.allocate_tensors()
    size = interpreter.get_input_details()[0]["shape"][1]
    pixels = crop(reference_photos()["camera"], RotatedRect(256, 256, 512, 512), size, 0, (-1.0, 1.0))
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], pixels[None])
    interpreter.invoke()
    expected = [interpreter.get_tensor(interpreter.get_output_details()[i]["index"])[0] for i in outputs]
    graph = TFLiteGraph(shard_paths(MODEL_DIR, stem))
    ours = graph(torch.from_numpy(pixels).permute(2, 0, 1)[None])
    for want, got in zip(expected, ours, strict=True):
        np.testing.assert_allclose(got[0].numpy(), want, atol=2e-5 * np.abs(want).max() + 1e-5)


@pytest.mark.parametrize("stem", [DETECTOR_STEM, LANDMARK_STEM])
def test_zero_pads_become_the_convolutions_padding(stem):
    """The graph runs without its spatial zero ``PAD`` ops (folded into the ``VALID`` convolutions after them) and
    computes what the op list as stored computes, on a batch."""
    graph = TFLiteGraph(shard_paths(MODEL_DIR, stem))
    stored = json.loads(graph.metadata["graph"])["ops"]
    assert [op["op"] for op in stored].count("PAD") >= 5 and all(op["op"] != "PAD" for op in graph.ops)
    size = 224 if stem == DETECTOR_STEM else 256
    pixels = torch.from_numpy(
        np.stack(
            [
                crop(photo, RotatedRect(256, 256, 512, 512), size, 0, (-1.0, 1.0))
                for photo in (reference_photos()["camera"], reference_photos()["astronaut"])
            ]
        )
    )
    folded = graph(pixels.permute(0, 3, 1, 2))
    graph.ops = stored
    for got, want in zip(folded, graph(pixels.permute(0, 3, 1, 2)), strict=True):
        torch.testing.assert_close(got, want, atol=1e-5 * want.abs().max() + 1e-6, rtol=0)


def test_shipped_weights_are_small_documented_shards():
    for stem in (DETECTOR_STEM, LANDMARK_STEM):
        shards = shard_paths(MODEL_DIR, stem)
        assert len(shards) >= 1 and all(path.stat().st_size < REPOSITORY_FILE_LIMIT for path in shards)
        metadata = TFLiteGraph(shards).metadata
        assert metadata["source"].startswith("mediapipe==0.10.14 modules/pose_")
        assert metadata["license"].startswith("Apache-2.0")
    assert "Apache License" in (MODEL_DIR / "LICENSE").read_text()  # the licence travels with the weights


def test_a_missing_shard_is_named(tmp_path):
    (tmp_path / f"{LANDMARK_STEM}-00001-of-00002.safetensors").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=f"{LANDMARK_STEM}-00002-of-00002"):
        shard_paths(tmp_path, LANDMARK_STEM)
    with pytest.raises(FileNotFoundError, match=DETECTOR_STEM):
        shard_paths(tmp_path, DETECTOR_STEM)
