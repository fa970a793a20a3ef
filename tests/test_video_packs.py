"""Against the real AnimateDiff-Evolved and Advanced-ControlNet packs (not on PyPI: local runs only).

Run with the packs loaded beside ours, e.g.::

    STABLEPOSE_TEST_PACKS=/work/ext/ComfyUI-AnimateDiff-Evolved:/work/ext/ComfyUI-Advanced-ControlNet \\
        .venv/bin/python -m pytest tests/test_video_packs.py

Without them every test here is skipped. AnimateDiff-Evolved runs its context options without a motion model
(no motion weights can be downloaded here), which keeps SD1.5 frames independent.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from harness.clip_sampling import FRAMES, apply, assert_frames_equal, capture, residual_rows, sample

pytestmark = pytest.mark.slow  # real sampling through other packs (local runs)


def node(comfy_host, class_type: str) -> Any:
    if class_type not in comfy_host.nodes.NODE_CLASS_MAPPINGS:
        pytest.skip(f"{class_type} not loaded: set STABLEPOSE_TEST_PACKS (see this module's docstring)")
    return comfy_host.node_class(class_type)()


def run_v3(comfy_host, class_type: str, **inputs) -> Any:
    """First output of a V3 (``io.ComfyNode``) node of another pack."""
    node(comfy_host, class_type)
    return comfy_host.node_class(class_type).execute(**inputs).result[0]


def evolved(comfy_host, model, context_options=None) -> Any:
    use = node(comfy_host, "ADE_UseEvolvedSampling")
    return use.use_evolved_sampling(model, "autoselect", context_options=context_options)[0]


@pytest.mark.parametrize(
    ("class_type", "args"),
    [
        ("ADE_StandardStaticContextOptions", (2, 1)),  # length, overlap
        ("ADE_StandardUniformContextOptions", (2, 1, 1)),  # length, stride, overlap
        ("ADE_LoopedUniformContextOptions", (2, 1, 1, True)),  # ..., closed loop: windows wrap around
    ],
)
def test_animatediff_evolved_context_options_give_each_frame_its_unwindowed_result(
    comfy_host, loaded, class_type, args
):
    options_node = node(comfy_host, class_type)
    (context,) = getattr(options_node, options_node.FUNCTION)(*args)
    whole = sample(loaded, evolved(comfy_host, apply(comfy_host, loaded)))
    windowed = sample(loaded, evolved(comfy_host, apply(comfy_host, loaded), context))
    assert_frames_equal(windowed, whole)


def test_advanced_controlnet_latent_keyframes_act_on_the_frames_they_list(comfy_host, loaded):
    group = run_v3(comfy_host, "LatentKeyframe", batch_index=1, strength=0.5)
    group = run_v3(comfy_host, "LatentKeyframe", batch_index=-1, strength=1.0, prev_latent_kf=group)
    seen: list[dict] = []
    sample(loaded, capture(apply(comfy_host, loaded, frame_strength=group), seen))
    full: list[dict] = []
    sample(loaded, capture(apply(comfy_host, loaded), full))
    for call in seen:
        frame = torch.arange(len(residual_rows(call))) % FRAMES
        unlisted = (frame != 1) & (frame != FRAMES - 1)
        assert (residual_rows(call)[unlisted] == 0).all(), "unlisted frames get Advanced-ControlNet's null strength 0"
    rows, ref = residual_rows(seen[0]), residual_rows(full[0])  # the first step sees the same latents
    assert torch.allclose(rows[frame == 1], 0.5 * ref[frame == 1], rtol=1e-3)
    assert torch.allclose(rows[frame == FRAMES - 1], ref[frame == FRAMES - 1], rtol=1e-3)


def test_advanced_controlnet_timestep_keyframes_hold_until_the_next(comfy_host, loaded):
    group = run_v3(comfy_host, "TimestepKeyframe", start_percent=0.0, strength=1.0)
    group = run_v3(comfy_host, "TimestepKeyframe", start_percent=0.3, strength=0.0, prev_timestep_kf=group)
    seen: list[dict] = []
    sample(loaded, capture(apply(comfy_host, loaded, timestep_strength=group), seen))
    assert [bool(residual_rows(call).amax() > 0) for call in seen] == [True, False]
