"""Checkpoint reading, config inference, conversion and initialisation from an SD UNet."""

import os

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from harness.reference_weights import SMALL_CONFIG, seeded_state_dict
from stablepose_core.model import convert
from stablepose_core.model.adapter import AdapterConfig, StablePoseAdapter
from stablepose_core.model.checkpoints import (
    ADAPTER_PREFIX,
    CheckpointError,
    adapter_from_sd_unet,
    adapter_state_dict,
    config_from_unet,
    infer_config,
    load_adapter,
    read_checkpoint,
    save_adapter,
)
from stablepose_core.model.unet_blocks import ResBlock


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch /tmp/stable_pose_pwned",))


@pytest.fixture(scope="module")
def adapter_sd():
    with torch.device("meta"):
        shapes = StablePoseAdapter(SMALL_CONFIG)
    return seeded_state_dict(shapes)


@pytest.fixture
def official_file(tmp_path, adapter_sd):
    """A released-style whole-model Lightning checkpoint: SD weights beside ``stable_pose_adapter.*``."""
    state = {ADAPTER_PREFIX + k: v for k, v in adapter_sd.items()}
    state["model.diffusion_model.input_blocks.0.0.weight"] = torch.zeros(32, 4, 3, 3)
    state["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(77)
    path = tmp_path / "final.ckpt"
    # Lightning pickles hyper-parameters as a dict and numpy scalars in callback/loop states: inert data
    loops = {"fit_loop": {"best_score": np.float64(0.25), "dtype": np.dtype("float32")}}
    torch.save({"state_dict": state, "hyper_parameters": {"lr": 1e-5}, "loops": loops, "epoch": 3}, path)
    return path


def test_official_whole_model_checkpoint_loads_with_inferred_config(official_file, adapter_sd):
    adapter = load_adapter(official_file)
    assert adapter.config == SMALL_CONFIG
    loaded = adapter.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in adapter_sd.items())


def test_official_format_round_trip_is_bit_identical(official_file):
    tensors, _ = read_checkpoint(official_file)
    ours = adapter_state_dict(tensors)
    back = {ADAPTER_PREFIX + k: v for k, v in ours.items()}
    original = {k: v for k, v in tensors.items() if k.startswith(ADAPTER_PREFIX)}
    assert back.keys() == original.keys()
    assert all(torch.equal(back[k], v) and back[k].dtype == v.dtype for k, v in original.items())


@pytest.mark.parametrize("dtype", ["fp32", "fp16"])
def test_converter_cli(official_file, tmp_path, adapter_sd, dtype, capsys):
    target = tmp_path / f"out_{dtype}.safetensors"
    assert convert.main([str(official_file), str(target), "--dtype", dtype]) == 0
    assert "wrote" in capsys.readouterr().out
    written = load_file(target)
    assert written.keys() == adapter_sd.keys()
    for key, value in adapter_sd.items():
        if dtype == "fp32":
            assert torch.equal(written[key], value)
        else:
            assert written[key].dtype == torch.float16 and torch.equal(written[key], value.half())
    with safe_open(str(target), "pt") as handle:
        meta = handle.metadata()
    assert meta["format"] == "stable-pose-adapter" and len(meta["source_sha256"]) == 64
    assert load_adapter(target).config == SMALL_CONFIG


def test_converter_rejects_a_non_adapter(tmp_path, capsys):
    source = tmp_path / "controlnet.pth"
    torch.save({"control_model.input_hint_block.0.weight": torch.zeros(16, 3, 3, 3)}, source)
    assert convert.main([str(source), str(tmp_path / "x.safetensors")]) == 1
    assert "ControlNet" in capsys.readouterr().err


def test_pickles_never_execute_code(tmp_path):
    marker = "/tmp/stable_pose_pwned"
    if os.path.exists(marker):
        os.unlink(marker)
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "payload": Exploit()}, path)
    with pytest.raises(CheckpointError, match=r"refused: the pickle asks to run code .*posix\.system"):
        load_adapter(path)
    assert not os.path.exists(marker)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_truncated_files_give_one_clear_error(tmp_path, adapter_sd, suffix):
    path = tmp_path / f"adapter{suffix}"
    if suffix == ".pth":
        torch.save(adapter_sd, path)
    else:
        save_file(adapter_sd, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_adapter(path)


@pytest.mark.parametrize(
    ("tensors", "looks_like"),
    [
        ({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(1)}, "Stable Diffusion checkpoint"),
        ({"lora_unet_down.lora_down.weight": torch.zeros(1)}, "LoRA"),
        ({"something.else": torch.zeros(1)}, "unknown layout"),
    ],
)
def test_non_adapters_are_named(tmp_path, tensors, looks_like):
    path = tmp_path / "file.safetensors"
    save_file(tensors, path)
    with pytest.raises(CheckpointError, match=looks_like):
        load_adapter(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_adapter(tmp_path / "nope.safetensors")


def test_saved_adapter_keeps_head_counts_and_is_atomic(tmp_path):
    config = AdapterConfig(**{**SMALL_CONFIG.to_dict(), "num_heads": 4, "vit_heads": 4})
    with torch.device("meta"):
        shapes = StablePoseAdapter(config)
    state = seeded_state_dict(shapes)
    path = tmp_path / "sub" / "ours.safetensors"
    save_adapter(path, state, config=config, metadata={"note": "x"})
    assert load_adapter(path).config == config
    assert [p.name for p in path.parent.iterdir()] == ["ours.safetensors"]
    assert infer_config(load_file(path)).num_heads == 8, "without metadata, heads fall back to the released 8"


def _fake_unet(adapter_sd):
    """An SD-style UNet encoder state dict: the adapter's encoder with a plain ResBlock at the inject layer."""
    unet = {k: v for k, v in adapter_sd.items() if not k.startswith(("input_blocks.1.0.", "feature_extractor", "zero"))}
    unet = {k: v for k, v in unet.items() if not k.startswith("middle_block_out")}
    res = ResBlock(32, 128, 32)
    unet.update({f"input_blocks.1.0.{k}": v for k, v in seeded_state_dict(res, seed=5).items()})
    unet["output_blocks.0.0.in_layers.2.weight"] = torch.zeros(1)
    return unet


def test_init_from_sd_unet_copies_by_name_and_zeroes_the_zero_convs(adapter_sd):
    unet = _fake_unet(adapter_sd)
    assert config_from_unet(unet, inject_channels=(32,)) == SMALL_CONFIG
    torch.manual_seed(0)
    adapter, fresh = adapter_from_sd_unet(unet, SMALL_CONFIG)
    state = adapter.state_dict()
    assert torch.equal(state["input_blocks.4.0.in_layers.2.weight"], unet["input_blocks.4.0.in_layers.2.weight"])
    assert torch.equal(state["input_blocks.1.0.out_layers.3.weight"], unet["input_blocks.1.0.out_layers.3.weight"])
    assert any(".attn_layer." in k for k in fresh) and "input_blocks.1.0.cond_conv.weight" in fresh
    assert all(not state[k].any() for k in state if k.startswith(("zero_convs", "middle_block_out")))
    with torch.no_grad():
        outs = adapter(torch.randn(1, 4, 8, 8), torch.tensor([3.0]), torch.randn(1, 5, 64), torch.rand(1, 3, 64, 64))
    assert all(not o.any() for o in outs), "a fresh adapter is a no-op on the base model"


def test_config_from_a_non_unet_is_explained():
    with pytest.raises(CheckpointError, match="not an LDM UNet"):
        config_from_unet({"foo": torch.zeros(1)})
