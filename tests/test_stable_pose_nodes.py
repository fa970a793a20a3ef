"""LoadStablePose / ApplyStablePose / PoseMaskPreview in a real headless ComfyUI with random SD1.5 weights."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from harness.api_prompts import apply_node, base_prompt, sampler
from harness.comfy_host import ComfyHost


def latents(comfy_host: ComfyHost, prompt: dict, *names: str) -> list[torch.Tensor]:
    """The sampled latents of the named samplers, each of which must have run (not come from ComfyUI's cache)."""
    result = comfy_host.execute(prompt)
    assert result.ok, result.error_messages()
    assert not result.cached & {f"ks_{name}" for name in names}, f"answered by the cache: {sorted(result.cached)}"
    return [result.output(f"ks_{name}")["samples"] for name in names]


@pytest.mark.slow
def test_apply_changes_the_output_and_strength_zero_is_exact(comfy_host, test_models, pose_files, seed):
    prompt = base_prompt(test_models)
    prompt["apply"] = apply_node()
    prompt["apply0"] = apply_node(strength=0.0)
    prompt |= (
        sampler("plain", ["ckpt", 0], seed)
        | sampler("posed", ["apply", 0], seed)
        | sampler("zero", ["apply0", 0], seed)
    )
    plain, posed, zero = latents(comfy_host, prompt, "plain", "posed", "zero")
    assert torch.isfinite(posed).all()
    assert (posed - plain).abs().max() > 1e-3
    assert torch.equal(zero, plain)


@pytest.mark.slow
def test_start_end_percent_limit_the_steps(comfy_host, test_models, pose_files, monkeypatch, seed):
    patch_module = comfy_host.pack_module("nodes.stable_pose_patch")
    calls: list[float] = []
    original = patch_module.StablePosePatch.residuals

    def spy(self, x, timesteps, context, options):
        calls.append(float(options["sigmas"].max()))
        return original(self, x, timesteps, context, options)

    monkeypatch.setattr(patch_module.StablePosePatch, "residuals", spy)
    prompt = base_prompt(test_models)
    prompt["early"] = apply_node(end=0.5)
    prompt["late"] = apply_node(start=0.5)
    prompt["apply"] = apply_node()
    steps = 2  # a percent of 0.5 cuts them in halves
    for name, model in (("early", "early"), ("late", "late"), ("all", "apply"), ("plain", "ckpt")):
        prompt |= sampler(name, [model, 0], seed, steps=steps)
    early, late, full, plain = latents(comfy_host, prompt, "early", "late", "all", "plain")
    assert len(calls) == steps + 1 + 1, "all steps for the full range, one step for each half"
    assert not torch.equal(early, late) and not torch.equal(early, full) and not torch.equal(late, plain)


@pytest.mark.slow
def test_controlnet_and_stable_pose_compose(comfy_host, test_models, pose_files, seed):
    prompt = base_prompt(test_models)
    prompt["cn"] = {"class_type": "ControlNetLoader", "inputs": {"control_net_name": test_models.controlnet.name}}
    prompt["cn_apply"] = {
        "class_type": "ControlNetApplyAdvanced",
        "inputs": {
            "positive": ["pos", 0],
            "negative": ["neg", 0],
            "control_net": ["cn", 0],
            "image": ["pose", 0],
            "strength": 1.0,
            "start_percent": 0.0,
            "end_percent": 1.0,
        },
    }
    prompt["apply"] = apply_node()
    prompt |= sampler("cn", ["ckpt", 0], seed, ["cn_apply", 0], ["cn_apply", 1])
    prompt |= sampler("sp", ["apply", 0], seed)
    prompt |= sampler("both", ["apply", 0], seed, ["cn_apply", 0], ["cn_apply", 1])
    prompt |= sampler("plain", ["ckpt", 0], seed)
    cn, sp, both, plain = latents(comfy_host, prompt, "cn", "sp", "both", "plain")
    for one in (cn, sp, plain):
        assert (both - one).abs().max() > 1e-4


@pytest.mark.slow
def test_pose_batches_drive_latent_batches(comfy_host, test_models, pose_files, seed):
    prompt = base_prompt(test_models, batch=2)
    prompt["mirror"] = {"class_type": "LoadImage", "inputs": {"image": "pose_mirror.png"}}
    prompt["poses"] = {"class_type": "ImageBatch", "inputs": {"image1": ["pose", 0], "image2": ["mirror", 0]}}
    prompt["one"] = apply_node()
    prompt["two"] = apply_node(pose="poses")
    prompt |= sampler("one", ["one", 0], seed) | sampler("two", ["two", 0], seed)
    one, two = latents(comfy_host, prompt, "one", "two")
    assert one.shape[0] == two.shape[0] == 2
    # row 0 has the same pose either way; only the min-fill (a minimum over the whole batch) couples the rows
    torch.testing.assert_close(one[0], two[0], rtol=1e-4, atol=1e-2)
    assert (one[1] - two[1]).abs().max() > 100 * (one[0] - two[0]).abs().max(), "row 1 follows its own pose"


def test_pose_batch_mismatch_is_a_clear_error(comfy_host, test_models, pose_files, seed):
    prompt = base_prompt(test_models, batch=3)
    prompt["mirror"] = {"class_type": "LoadImage", "inputs": {"image": "pose_mirror.png"}}
    prompt["poses"] = {"class_type": "ImageBatch", "inputs": {"image1": ["pose", 0], "image2": ["mirror", 0]}}
    prompt["two"] = apply_node(pose="poses")
    prompt |= sampler("two", ["two", 0], seed)
    result = comfy_host.execute(prompt)
    assert any("pose batch has 2 images but the latent batch has 3" in m for m in result.error_messages())


@pytest.mark.slow
@pytest.mark.parametrize(("width", "height"), [(64, 96), (72, 56)])
def test_non_square_and_odd_latent_sizes(comfy_host, test_models, pose_files, width, height, seed):
    prompt = base_prompt(test_models, width=width, height=height)
    prompt["apply"] = apply_node()
    prompt |= sampler("posed", ["apply", 0], seed) | sampler("plain", ["ckpt", 0], seed)
    posed, plain = latents(comfy_host, prompt, "posed", "plain")
    assert posed.shape[-2:] == (height // 8, width // 8)
    assert torch.isfinite(posed).all() and (posed - plain).abs().max() > 1e-3


@pytest.mark.slow
def test_empty_pose_frame_runs_without_nan(comfy_host, test_models, pose_files, seed):
    prompt = base_prompt(test_models)
    prompt["pose"]["inputs"]["image"] = "empty.png"
    prompt["apply"] = apply_node()
    prompt |= sampler("posed", ["apply", 0], seed)
    (posed,) = latents(comfy_host, prompt, "posed")
    assert torch.isfinite(posed).all()


def _loaded(comfy_host: ComfyHost, test_models) -> tuple[Any, Any, Any]:
    nodes = comfy_host.nodes
    model, clip, _ = nodes.CheckpointLoaderSimple().load_checkpoint(test_models.checkpoint.name)
    stable_pose = comfy_host.node_class("LoadStablePose")().load(test_models.adapter.name)[0]
    return model, clip, stable_pose


@pytest.mark.slow
def test_injected_residuals_equal_the_core_adapter(comfy_host, test_models, pose_files, monkeypatch):
    """The integration adds nothing and loses nothing: what reaches the UNet is the adapter's output;
    the pose features are computed once per sampling, not once per step."""
    import comfy.patcher_extension
    import comfy.sample
    import comfy.samplers

    core_masks = comfy_host.pack_module("stablepose_core.model.masks")
    model, clip, stable_pose = _loaded(comfy_host, test_models)
    pose_image = comfy_host.nodes.LoadImage().load_image("pose.png")[0]
    patched = comfy_host.node_class("ApplyStablePose")().apply(model, stable_pose, pose_image, 0.8, 0.0, 1.0)[0]
    encodes: list[int] = []
    encode_pose = stable_pose.model.encode_pose
    monkeypatch.setattr(stable_pose.model, "encode_pose", lambda pose: encodes.append(1) or encode_pose(pose))
    seen: list[dict] = []
    inject_block = stable_pose.model.input_blocks[stable_pose.model.config.inject_layers[0]][0]
    conv_rows: list[int] = []
    hook = inject_block.in_layers[2].register_forward_pre_hook(lambda m, args: conv_rows.append(len(args[0])))

    def capture(executor, x, timesteps, context, y, control, transformer_options, **kwargs):
        seen.append(
            {
                "x": x.clone(),
                "t": timesteps.clone(),
                "context": context.clone(),
                "control": {key: list(values) for key, values in control.items()},  # the UNet pops them
                "cond_or_uncond": list(transformer_options["cond_or_uncond"]),
            }
        )
        return executor(x, timesteps, context, y, control, transformer_options, **kwargs)

    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test_capture", capture)
    encode = comfy_host.nodes.CLIPTextEncode()
    positive, negative = encode.encode(clip, "a dancer")[0], encode.encode(clip, "")[0]
    latent = torch.zeros(1, 4, 8, 8)
    with torch.inference_mode():
        noise = comfy.sample.prepare_noise(latent, 3)
        comfy.sample.sample(patched, noise, 2, 5.0, "euler", "normal", positive, negative, latent)
        hook.remove()
        assert len(seen) == 2 and len(encodes) == 1
        # ComfyUI batches cond and uncond of the latent: the inject block computes its input conv once for both
        assert conv_rows == [len(call["x"]) // 2 for call in seen] and set(seen[0]["cond_or_uncond"]) == {0, 1}
        monkeypatch.undo()
        call = seen[0]
        adapter = stable_pose.model
        pose = pose_image.movedim(-1, 1) * 2 - 1
        rows = call["x"].shape[0]
        is_uncond = torch.tensor([c == 1 for c in call["cond_or_uncond"]]).repeat_interleave(
            rows // len(call["cond_or_uncond"])
        )
        masks = core_masks.pmsa_masks(pose.expand(rows, -1, -1, -1), is_uncond, core_masks.MaskSettings())
        pose_terms = [t[torch.zeros(rows, dtype=torch.long)] for t in adapter.encode_pose(pose)]  # one pose, all rows
        direct = adapter(call["x"], call["t"], call["context"], pose_terms=pose_terms, masks=masks)
    control = call["control"]
    assert len(control["output"]) == 12 and len(control["middle"]) == 1
    for ours, theirs in zip([*control["output"], control["middle"][0]], direct, strict=True):
        torch.testing.assert_close(ours, theirs * 0.8, rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_non_sd15_models_are_refused(comfy_host, test_models, pose_files):
    import comfy.model_patcher
    import comfy.supported_models

    _, _, stable_pose = _loaded(comfy_host, test_models)
    pose_image = comfy_host.nodes.LoadImage().load_image("pose.png")[0]
    apply = comfy_host.node_class("ApplyStablePose")()
    common = {
        "use_checkpoint": False,
        "image_size": 32,
        "in_channels": 4,
        "out_channels": 4,
        "use_spatial_transformer": True,
        "legacy": False,
        "model_channels": 320,
        "num_head_channels": 64,
        "use_linear_in_transformer": True,
        "use_temporal_attention": False,
        "use_temporal_resblock": False,
    }
    sdxl_config = {
        **common,
        "num_classes": "sequential",
        "adm_in_channels": 2816,
        "num_res_blocks": [2, 2, 2],
        "channel_mult": [1, 2, 4],
        "transformer_depth": [0, 0, 2, 2, 10, 10],
        "context_dim": 2048,
        "transformer_depth_middle": 10,
        "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10],
    }
    sd2_config = {
        **common,
        "adm_in_channels": None,
        "num_res_blocks": [2, 2, 2, 2],
        "channel_mult": [1, 2, 4, 4],
        "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
        "context_dim": 1024,
        "transformer_depth_middle": 1,
        "transformer_depth_output": [0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1],
    }
    for config_class, unet_config, name in [
        (comfy.supported_models.SDXL, sdxl_config, "SDXL"),
        (comfy.supported_models.SD20, sd2_config, "SD20"),
    ]:
        model_config = config_class(copy.deepcopy(unet_config))
        with torch.device("meta"):
            base = model_config.get_model({})
        model = comfy.model_patcher.ModelPatcher(base, torch.device("cpu"), torch.device("cpu"))
        with pytest.raises(ValueError, match=rf"SD1\.5-family models; this model is {name}"):
            apply.apply(model, stable_pose, pose_image, 1.0, 0.0, 1.0)


def test_loader_names_what_a_wrong_file_looks_like(comfy_host, test_models, models_dir: Path):
    target = models_dir / "stable_pose" / "not_an_adapter.safetensors"
    if not target.exists():
        target.symlink_to(test_models.controlnet)
    loader = comfy_host.node_class("LoadStablePose")
    assert "not_an_adapter.safetensors" in loader.INPUT_TYPES()["required"]["adapter_name"][0]
    with pytest.raises(ValueError, match="ControlNet"):
        loader().load("not_an_adapter.safetensors")


def test_mask_preview_node(comfy_host, pose_files):
    prompt = {
        "pose": {"class_type": "LoadImage", "inputs": {"image": "pose.png"}},
        "preview": {
            "class_type": "PoseMaskPreview",
            "inputs": {"pose_image": ["pose", 0], "row": "cond", "patch_size": 2},
        },
        "show": {"class_type": "PreviewImage", "inputs": {"images": ["preview", 0]}},
    }
    result = comfy_host.execute(prompt)
    assert result.ok, result.error_messages()
    images, masks = result.output("preview", 0), result.output("preview", 1)
    assert images.shape == (2, 64, 128, 3) and masks.shape == (2, 64, 64)
    assert 0 < float(masks[0].mean()) < 1 and float(images.max()) <= 1.0
    assert np.asarray(result.ui["show"]["images"]).size == 2


@pytest.mark.parametrize("field", ["strength", "start_percent", "end_percent"])
def test_non_finite_numbers_are_refused_before_sampling(comfy_host, test_models, pose_files, seed, field):
    """Issue 16: NaN passes ComfyUI's min/max validation; strength NaN made a black image, a NaN percent an
    IndexError inside the sampler."""
    prompt = base_prompt(test_models)
    prompt["apply"] = apply_node()
    prompt["apply"]["inputs"][field] = float("nan")
    prompt |= sampler("posed", ["apply", 0], seed)
    result = comfy_host.execute(prompt)
    assert not result.ok
    assert any(f"{field} must be a finite number, got nan" in m for m in result.error_messages())


@pytest.mark.slow
def test_rgba_pose_images_drive_sampling_as_their_rgb(comfy_host, test_models, pose_files, seed):
    """Issue 16: an RGBA pose (JoinImageWithAlpha) failed inside KSampler; its alpha is now dropped."""
    prompt = base_prompt(test_models)
    prompt["rgba"] = {"class_type": "JoinImageWithAlpha", "inputs": {"image": ["pose", 0], "alpha": ["pose", 1]}}
    prompt["apply"] = apply_node()
    prompt["apply_rgba"] = apply_node(pose="rgba")
    prompt |= sampler("rgb", ["apply", 0], seed) | sampler("rgba", ["apply_rgba", 0], seed)
    rgb, rgba = latents(comfy_host, prompt, "rgb", "rgba")
    assert torch.isfinite(rgba).all() and torch.equal(rgb, rgba)


def test_non_finite_pose_pixels_are_refused_at_the_node(comfy_host, test_models):
    model, _, stable_pose = _loaded(comfy_host, test_models)
    apply = comfy_host.node_class("ApplyStablePose")()
    pose = torch.zeros(1, 64, 64, 3)
    pose[0, 5, 5, 1] = float("nan")
    with pytest.raises(ValueError, match=r"pose_image has 1 NaN or infinite pixel value\(s\)"):
        apply.apply(model, stable_pose, pose, 1.0, 0.0, 1.0)
