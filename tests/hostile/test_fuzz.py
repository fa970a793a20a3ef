"""Property-based fuzzing (Hypothesis) of the two parsers of user data: pose data (``POSE_KEYPOINT`` frames, pose
JSON as the editor and training read it) and checkpoint metadata/headers. Whatever the input, the only exception
is the pack's own (``PoseDataError`` / ``CheckpointError``). Bounded and deterministic (``derandomize``)."""

from __future__ import annotations

import json
import struct
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stablepose_core.model.checkpoints import CheckpointError, check_adapter_weights, infer_config, load_adapter
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
