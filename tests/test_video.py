"""Stable-Pose over clips in a real headless ComfyUI: context windows (ComfyUI's and AnimateDiff-Evolved's
contract), the per-sampling lifecycle, regional masks, uncond_multiplier and keyframes.

Sampling runs through ``comfy.sample.sample`` (KSampler's path: CFGGuider, OUTER_SAMPLE wrappers, context
handler) with random SD1.5 weights on 64×64 px frames.
"""

from __future__ import annotations

import copy
import gc
import weakref

import pytest
import torch

from harness.clip_sampling import (
    FRAMES,
    LENGTH,
    OVERLAP,
    SIZE,
    apply,
    assert_frames_equal,
    capture,
    clip_poses,
    comfy_windows,
    residual_rows,
    sample,
)


@pytest.fixture(scope="module")
def unwindowed(comfy_host, loaded) -> torch.Tensor:
    return sample(loaded, apply(comfy_host, loaded))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("schedule", "extra"),
    [
        ("standard_static", {}),
        ("looped_uniform", {"closed_loop": True}),  # windows wrap around the end of the clip
        ("looped_uniform", {"context_stride": 2}),  # strided windows
        ("batched", {}),
    ],
)
def test_comfy_context_windows_give_each_frame_its_unwindowed_result(comfy_host, loaded, unwindowed, schedule, extra):
    windowed = comfy_windows(comfy_host, apply(comfy_host, loaded), LENGTH, OVERLAP, schedule, **extra)
    result = sample(loaded, windowed)
    assert_frames_equal(result, unwindowed)


def ad_evolved_windows(windows: list[list[int]]):
    """A CALC_COND_BATCH wrapper doing what AnimateDiff-Evolved's sliding context does for an SD1.5 UNet: per
    window, ``transformer_options["ad_params"]`` = {full_length, context_length, sub_idxs}, the window's
    latents and timesteps, and a per-frame average of the window results."""

    def wrapper(executor, model, conds, x_in, timestep, model_options):
        full_length = x_in.shape[0]
        model_options["transformer_options"]["ad_params"] = {"full_length": full_length, "sub_idxs": None}
        totals = [torch.zeros_like(x_in) for _ in conds]
        counts = torch.zeros(full_length, 1, 1, 1)
        for idxs in windows:
            params = model_options["transformer_options"]["ad_params"]
            params["sub_idxs"], params["context_length"] = idxs, len(idxs)
            outs = executor(model, conds, x_in[idxs], timestep[idxs], model_options)
            for total, out in zip(totals, outs, strict=True):
                total[idxs] += out
            counts[idxs] += 1
        return [total / counts for total in totals]

    return wrapper


@pytest.mark.slow
@pytest.mark.parametrize("windows", [[[0, 1], [1, 2]], [[2, 0], [1, 2]]], ids=["overlapping", "wrapping"])
def test_animatediff_evolved_contract_gives_each_frame_its_unwindowed_result(comfy_host, loaded, unwindowed, windows):
    import comfy.patcher_extension

    model = apply(comfy_host, loaded).clone()
    model.add_wrapper_with_key(
        comfy.patcher_extension.WrappersMP.CALC_COND_BATCH, "test_ad_windows", ad_evolved_windows(windows)
    )
    assert_frames_equal(sample(loaded, model), unwindowed)


@pytest.mark.slow
def test_one_pose_for_every_frame_under_windows(comfy_host, loaded):
    one = clip_poses()[:1]
    whole = sample(loaded, apply(comfy_host, loaded, one))
    windowed = comfy_windows(comfy_host, apply(comfy_host, loaded, one), LENGTH, OVERLAP, "standard_static")
    assert_frames_equal(sample(loaded, windowed), whole)


@pytest.mark.slow
def test_pose_work_is_once_per_sampling_and_released_after(comfy_host, loaded, monkeypatch):
    """Lifecycle: the whole clip's pose features are computed once (not per window, not per step) and no tensor
    of them outlives the sampling; the patch holds no mutable state, so copies share none."""
    adapter = loaded["stable_pose"].model
    encode_pose = adapter.encode_pose
    held: list[weakref.ref] = []
    batches: list[int] = []

    def spy(pose):
        features = encode_pose(pose)
        batches.append(pose.shape[0])
        held.extend(weakref.ref(f) for f in features)
        return features

    monkeypatch.setattr(adapter, "encode_pose", spy)
    patched = comfy_windows(comfy_host, apply(comfy_host, loaded), LENGTH, OVERLAP, "standard_static")
    patch_module = comfy_host.pack_module("nodes.stable_pose_patch")
    (patch,) = [w for w in patched.get_all_wrappers("diffusion_model") if isinstance(w, patch_module.StablePosePatch)]
    before = dict(vars(patch))
    clone = patched.clone()
    sample(loaded, patched)
    assert batches == [FRAMES], "one encode of the whole clip for all steps × 2 windows × cond/uncond"
    gc.collect()
    assert held and all(ref() is None for ref in held), "pose features released when sampling ended"
    assert vars(patch) == before and copy.deepcopy(patch) is patch
    assert patch in clone.get_all_wrappers("diffusion_model"), "clones share the (immutable) patch"
    sample(loaded, clone)
    assert batches == [FRAMES, FRAMES], "a new sampling computes its own state"


@pytest.mark.slow
def test_region_mask_limits_the_residuals_to_its_inside(comfy_host, loaded):
    mask = torch.zeros(FRAMES, SIZE, SIZE)
    mask[:, :, : SIZE // 2] = 1.0  # left half
    mask[1] = 0.0  # frame 1: nowhere
    seen: list[dict] = []
    sample(loaded, capture(apply(comfy_host, loaded, mask=mask), seen))
    for call in seen:
        rows = residual_rows(call)
        frame = torch.arange(len(rows)) % FRAMES
        assert (rows[frame == 1] == 0).all() and (rows[frame != 1] > 0).all()
        for residual in call["control"]["output"]:
            width = residual.shape[-1]
            if width < 4:  # 2×2 and 1×1 grids: the resized edge covers them
                continue
            inside = residual[frame != 1][..., : width // 2 - 1]
            assert (residual[..., width // 2 + 1 :] == 0).all(), "right of the (softened) edge: nothing"
            assert inside.abs().amax() > 0


@pytest.mark.slow
def test_uncond_multiplier_scales_negative_rows(comfy_host, loaded):
    full: list[dict] = []
    none: list[dict] = []
    sample(loaded, capture(apply(comfy_host, loaded), full))
    sample(loaded, capture(apply(comfy_host, loaded, uncond_multiplier=0.0), none))
    for with_uncond, without in zip(full, none, strict=True):
        uncond = torch.tensor(with_uncond["cond_or_uncond"]).repeat_interleave(FRAMES) == 1
        assert uncond.any() and (residual_rows(with_uncond)[uncond] > 0).all()
        assert (residual_rows(without)[uncond] == 0).all() and (residual_rows(without)[~uncond] > 0).all()


@pytest.mark.slow
def test_frame_strengths_act_on_exactly_the_frames_they_name(comfy_host, loaded):
    keyframes = comfy_host.node_class("StablePoseFrameStrengths")()
    (strengths,) = keyframes.build("0:1.0, 1:0.0, 2:1.0", "hold")
    seen: list[dict] = []
    plain = sample(loaded, loaded["model"])
    posed = sample(loaded, capture(apply(comfy_host, loaded, frame_strength=strengths), seen))
    changed = [i for i in range(FRAMES) if not torch.equal(posed[i], plain[i])]
    assert changed == [0, 2], "frame 1 is at strength 0: exactly the plain result"
    (linear,) = keyframes.build("0:1.0, 1:0.0", "linear")
    assert linear.values(FRAMES).tolist() == [1.0, 0.0, 0.0]


@pytest.mark.slow
def test_timestep_strengths_act_on_exactly_the_steps_they_name(comfy_host, loaded):
    (late_off,) = comfy_host.node_class("StablePoseTimestepStrengths")().build(0.3, 1.0, 0.0, 0.0, "hold")
    seen: list[dict] = []
    sample(loaded, capture(apply(comfy_host, loaded, timestep_strength=late_off), seen))
    active = [bool(residual_rows(call).amax() > 0) for call in seen]
    assert active == [True, False], "step 1 (percent 0) acts, step 2 (percent 0.5) is switched off"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mask": torch.ones(2, SIZE, SIZE)}, "mask batch has 2 masks but the latent batch has 3 frames"),
        ({"frame_strength": "1.0, 0.5"}, "the list has 2 values but the clip has 3 frames"),
        ({"frame_strength": "0:1.0, 9:0.5"}, "keyframe at frame 9 is outside the clip of 3 frames"),
        ({"poses": 2}, "pose batch has 2 images but the latent batch has 3"),
    ],
)
def test_bad_clip_inputs_are_refused_before_the_first_step(comfy_host, loaded, options, message):
    keyframes = comfy_host.pack_module("stablepose_core.model.strengths")
    if "frame_strength" in options:
        options["frame_strength"] = keyframes.FrameStrengths.parse(options["frame_strength"], "linear")
    poses = clip_poses()[: options.pop("poses", FRAMES)]
    seen: list[dict] = []
    with pytest.raises(ValueError, match=message):
        sample(loaded, capture(apply(comfy_host, loaded, poses, **options), seen))
    assert seen == [], "nothing was sampled"
