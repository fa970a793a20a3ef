"""A loaded adapter's memory is its parameters: fresh, aligned, distinct storages and no per-call weight copies.

Tensors read from a checkpoint are views at the file's offsets. Used as parameters directly, a weight that is
not 64-byte aligned is copied by the CPU convolution at every call (12 × 59 MB per SD1.5 step).
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from harness.reference_weights import SMALL_CONFIG, sample_pose_image, seeded_state_dict
from stablepose_core.model.adapter import StablePoseAdapter
from stablepose_core.model.checkpoints import load_adapter, save_adapter
from stablepose_core.model.masks import MaskSettings, pmsa_masks

ROWS = 3  # no parameter has 3 (or a multiple of 3) as leading size, so no activation takes a parameter's shape
COPY_OPS = frozenset({"aten::copy_", "aten::clone", "aten::contiguous", "aten::_to_copy"})


def _data_start(path: Path) -> int:
    """Offset of the first tensor's bytes in a safetensors file (8-byte length + JSON header)."""
    with open(path, "rb") as handle:
        return 8 + struct.unpack("<Q", handle.read(8))[0]


@pytest.fixture(scope="module")
def unaligned_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An adapter file whose tensor data starts off a 64-byte boundary, as real files may."""
    with torch.device("meta"):
        shapes = StablePoseAdapter(SMALL_CONFIG)
    state = seeded_state_dict(shapes)
    path = tmp_path_factory.mktemp("unaligned") / "adapter.safetensors"
    for pad in range(0, 64, 8):
        save_adapter(path, state, metadata={"padding": "-" * pad}, config=SMALL_CONFIG)
        if _data_start(path) % 64:
            break
    assert any(t.data_ptr() % 64 for t in load_file(path).values()), "the file's tensors must read unaligned"
    return path


def test_parameters_are_fresh_aligned_and_distinct(unaligned_file):
    adapter = load_adapter(unaligned_file)
    params = list(adapter.parameters())
    assert [p.data_ptr() % 64 for p in params] == [0] * len(params), "every weight 64-byte aligned"
    assert len({p.untyped_storage().data_ptr() for p in params}) == len(params), "no shared storage"
    resident = sum(p.untyped_storage().nbytes() for p in params)
    assert resident == sum(p.nbytes for p in params), "each storage holds its parameter and nothing more"
    assert not list(adapter.buffers())


def test_a_forward_call_copies_no_weight(unaligned_file):
    adapter = load_adapter(unaligned_file)
    weight_shapes = {tuple(p.shape) for p in adapter.parameters() if p.dim() >= 2}
    pose = sample_pose_image(128, 96).expand(ROWS, -1, -1, -1)
    masks = pmsa_masks(pose, torch.tensor([True, False, False]), MaskSettings())
    inputs = (torch.randn(ROWS, 4, 16, 12), torch.full((ROWS,), 500.0), torch.randn(ROWS, 7, 64))
    with torch.inference_mode():
        adapter(*inputs, pose_image=pose, masks=masks)  # first call: one-time setup is not the question
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
            adapter(*inputs, pose_image=pose, masks=masks)
    copies = [
        (event.name, event.input_shapes[0])
        for event in prof.events()
        if event.name in COPY_OPS and event.input_shapes and tuple(event.input_shapes[0]) in weight_shapes
    ]
    assert not copies, f"weights copied during the forward: {copies[:5]} ({len(copies)})"
