"""Property-based fuzzing (Hypothesis) of the parsers of user data: pose data (``POSE_KEYPOINT`` frames, pose JSON
as the editor and training read it, pose files, the editor's keyframe documents), frame strengths, evaluation
ground truth, and checkpoint metadata/headers. Whatever the input, the only exception is the pack's own
(``PoseDataError`` / ``ValueError`` / ``EvaluationError`` / ``CheckpointError``), and what is accepted is within
the documented limits. Bounded and deterministic (``derandomize``)."""

from __future__ import annotations

import json
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stablepose_core.evaluate.cli import EvaluationError, load_ground_truth
from stablepose_core.model.checkpoints import CheckpointError, check_adapter_weights, infer_config, load_adapter
from stablepose_core.model.strengths import MAX_STRENGTH, FrameStrengths
from stablepose_core.poses.files import load_pose_keypoint
from stablepose_core.poses.interpolation import MAX_CLIP_POSES
from stablepose_core.poses.keyframes import KEYFRAMES_FORMAT, clip_from_keyframes
from stablepose_core.poses.keypoints import JSON_FORMAT, PoseDataError, PoseKeypoints, parse_pose_text

from .corpus import small_adapter_state_dict

FUZZ = settings(
    max_examples=300, derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=30,
)
numbers = st.integers(-(2**70), 2**70) | st.floats()
sizes = st.integers(-5, 70_000) | st.floats() | json_values
keypoints = st.lists(numbers, max_size=80) | st.lists(st.lists(numbers, max_size=4), max_size=27) | json_values
people = st.lists(st.fixed_dictionaries({"pose_keypoints_2d": keypoints}) | json_values, max_size=3) | json_values
frames = st.fixed_dictionaries({"people": people, "canvas_width": sizes, "canvas_height": sizes}) | json_values
documents = st.fixed_dictionaries(
    {
        "format": st.just(JSON_FORMAT) | scalars,
        "width": sizes,
        "height": sizes,
        "people": st.lists(st.lists(st.lists(numbers, max_size=4), max_size=18), max_size=2) | json_values,
    },
    optional={"joints": json_values},
)


@FUZZ
@given(frames)
def test_pose_keypoint_frames_raise_only_pose_data_errors(frame):
    try:
        pose = PoseKeypoints.from_pose_keypoint(frame)
    except PoseDataError:
        return
    assert 1 <= pose.width <= 8192 and 1 <= pose.height <= 8192


@FUZZ
@given(documents.map(json.dumps) | frames.map(lambda f: json.dumps([f])) | st.text(max_size=200))
def test_pose_text_raises_only_pose_data_errors(text):
    try:
        pose = parse_pose_text(text)
    except PoseDataError:
        return
    assert 1 <= pose.width <= 8192 and 1 <= pose.height <= 8192


ADAPTER = small_adapter_state_dict()
heads = st.integers(-3, 2**40) | json_values
configs = st.fixed_dictionaries({}, optional={"num_heads": heads, "num_head_channels": heads, "vit_heads": heads})


@FUZZ
@given(configs.map(json.dumps) | json_values.map(json.dumps) | st.text(max_size=60))
def test_checkpoint_metadata_raises_only_checkpoint_errors(text):
    try:
        config = infer_config(ADAPTER, {"stable_pose_config": text})
        check_adapter_weights(ADAPTER, config)
    except CheckpointError:
        return


@settings(max_examples=150, derandomize=True, database=None, deadline=None)
@given(st.binary(max_size=64), st.integers(0, 2**64 - 1) | st.none(), json_values)
def test_safetensors_headers_raise_only_checkpoint_errors(tail, length, header):
    text = json.dumps(header).encode()
    content = struct.pack("<Q", len(text) if length is None else length) + text + tail
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzzed.safetensors"
        path.write_bytes(content)
        with pytest.raises(CheckpointError):
            load_adapter(path)


# --- the surfaces of pose sequences, strengths and evaluation --------------------------------------------------------
whole = st.integers(-3, 120_000) | json_values
key = st.fixed_dictionaries({"frame": whole, "people": st.lists(st.lists(st.lists(numbers, max_size=3), max_size=17))})
keyframe_documents = st.fixed_dictionaries(
    {"format": st.just(KEYFRAMES_FORMAT), "width": sizes, "height": sizes, "frames": whole},
    optional={"keys": st.lists(key | json_values, max_size=4) | json_values, "curve": st.just("linear") | scalars},
)


@FUZZ
@given(keyframe_documents | json_values)
def test_keyframe_documents_raise_only_value_errors_and_stay_within_the_clip_limit(document):
    try:
        clip = clip_from_keyframes(document)
    except ValueError:
        return
    assert clip.num_frames * clip.num_people <= MAX_CLIP_POSES and np.isfinite(clip.keypoints).all()


@FUZZ
@given(st.text(alphabet="0123456789:,.-einfa xE", max_size=40), st.integers(1, 40))
def test_frame_strengths_raise_only_value_errors_and_are_finite(text, frames):
    try:
        values = FrameStrengths.parse(text, "linear").values(frames)
    except ValueError:
        return
    assert values.shape == (frames,) and bool(((values >= 0) & (values <= MAX_STRENGTH)).all())


ids = st.integers(-2, 3) | json_values
coco_images = st.lists(
    st.fixed_dictionaries({"id": ids, "file_name": st.just("a.png") | scalars, "width": sizes, "height": sizes})
    | json_values,
    max_size=3,
)
coco_annotations = st.lists(
    st.fixed_dictionaries({"image_id": ids, "keypoints": st.lists(numbers, min_size=51, max_size=51) | json_values})
    | json_values,
    max_size=3,
)


@FUZZ
@given(st.fixed_dictionaries({"images": coco_images}, optional={"annotations": coco_annotations}) | json_values)
def test_ground_truth_files_raise_only_evaluation_errors(truth):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "gt.json"
        path.write_text(json.dumps(truth))
        try:
            dataset = load_ground_truth(path)
        except EvaluationError:
            return
    assert all(isinstance(image["width"], int) and image["width"] >= 1 for image in dataset["images"])


@FUZZ
@given(st.lists(frames, max_size=3).map(json.dumps) | json_values.map(json.dumps) | st.text(max_size=60))
def test_pose_files_raise_only_value_errors(text):
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "poses.json").write_text(text)
        try:
            load_pose_keypoint(folder, "poses.json")
        except ValueError:
            return
