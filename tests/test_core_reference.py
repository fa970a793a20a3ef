"""Our adapter, PMSA block and masks against tensors recorded from the official code.

The references were made by ``tools/make_core_references.py`` (it runs the official repository; see its
docstring). Weights and inputs are regenerated here from names and seeds by ``harness.reference_weights``.
"""

import dataclasses
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from harness.reference_weights import SMALL_CONFIG, sample_pose_image, seeded_inputs, seeded_state_dict
from stablepose_core.model.adapter import AdapterConfig, AttnResBlock, StablePoseAdapter
from stablepose_core.model.masks import MaskSettings, pmsa_masks, pose_masks
from stablepose_core.model.pmsa import to_token_masks

DATA = Path(__file__).parent / "data" / "core"
SUBSAMPLE = 8
SMALL = dataclasses.replace(SMALL_CONFIG, num_res_blocks=1, num_heads=8)


@pytest.fixture(scope="module")
def refs():
    return {name: load_file(DATA / f"{name}.safetensors") for name in ("masks", "adapter_small", "pmsa_block_sd15")}


@pytest.fixture(scope="module")
def pose():
    return sample_pose_image()


@pytest.fixture(scope="module")
def eval_masks(pose):
    """Released-eval masks for the official [uncond; cond] layout with one row each."""
    return pmsa_masks(pose.repeat(2, 1, 1, 1), torch.tensor([True, False]), MaskSettings())


def test_eval_masks_equal_the_official_layer_assignment(refs, eval_masks):
    official = refs["masks"]["eval_pose_mask"].bool()  # [ones, k23, ones, k13] as DDIM concatenates them
    assert torch.equal(eval_masks[0], official[0:2])
    assert torch.equal(eval_masks[1], official[2:4])
    assert torch.equal(to_token_masks(eval_masks, 2), refs["masks"]["eval_layer_tokens"])
    assert not torch.equal(official[1], official[3]), "k=23 and k=13 differ for this pose"


def test_training_masks_reproduce_the_roundoff(refs, pose):
    settings = MaskSettings.for_schedule("training")
    ours = pose_masks(pose, settings.kernels, settings.sigma, settings.threshold, exact_roundoff=True)
    official = refs["masks"]["train_pose_mask"].bool()
    assert bool(official[0].all()), "official k=23 training mask covers the whole frame"
    assert torch.equal(ours[:, 0], official)


def _compare(ours: torch.Tensor, ref: dict, key: str = "out", sums: str = "sum") -> None:
    torch.testing.assert_close(ours[:, :, ::SUBSAMPLE, ::SUBSAMPLE], ref[key], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ours.double().sum(dim=(2, 3)).float(), ref[sums], rtol=1e-4, atol=2e-3)


def test_small_adapter_matches_official(refs, pose, eval_masks):
    ref = refs["adapter_small"]
    adapter = StablePoseAdapter(SMALL).eval()
    adapter.load_state_dict(seeded_state_dict(adapter))
    with torch.no_grad():
        outs = adapter(ref["x"], ref["timesteps"], ref["context"], pose.repeat(2, 1, 1, 1), masks=eval_masks)
    assert len(outs) == sum(k.startswith("out.") for k in ref) == 5  # conv, res, down, res + middle
    for i, out in enumerate(outs):
        _compare(out, ref, f"out.{i}", f"sum.{i}")


def test_sd15_pmsa_block_matches_official_at_512(refs, eval_masks):
    ref = refs["pmsa_block_sd15"]
    block = AttnResBlock(320, 320, AdapterConfig.sd15(), 192).eval()
    block.load_state_dict(seeded_state_dict(block))
    inputs = seeded_inputs({"h": (2, 320, 64, 64), "emb": (2, 1280), "features": (2, 192, 64, 64)}, seed=2)
    with torch.no_grad():
        out = block(inputs["h"], inputs["emb"], block.pose_term(inputs["features"]), to_token_masks(eval_masks, 2))
    _compare(out, ref)
