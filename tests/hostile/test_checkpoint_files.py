"""Hostile and malformed checkpoint files: one ``CheckpointError`` naming the file and the problem, no code run,
and a converter that never destroys its input or leaves files behind (issue 16, items 3, 4 and 5)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from harness.reference_weights import SMALL_CONFIG
from stablepose_core.model import convert
from stablepose_core.model.checkpoints import (
    ADAPTER_PREFIX,
    CheckpointError,
    load_adapter,
    read_checkpoint,
    save_adapter,
)

from .corpus import bad_adapters, malformed_safetensors, malicious_pickles, small_adapter_state_dict

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def adapter_sd() -> dict[str, torch.Tensor]:
    return small_adapter_state_dict()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, adapter_sd):
    folder = tmp_path_factory.mktemp("hostile")
    marker = folder / "pwned"
    return {
        "marker": marker,
        "pickles": malicious_pickles(folder, marker, {ADAPTER_PREFIX + k: v for k, v in adapter_sd.items()}),
        "headers": malformed_safetensors(folder),
        "adapters": bad_adapters(folder, adapter_sd),
    }


@pytest.mark.parametrize(
    "name",
    [
        "builtins.eval",
        "builtins.exec",
        "builtins.getattr",
        "builtins.__import__",
        "posix.system",
        "subprocess.Popen",
        "subprocess.check_output",
        "importlib.import_module",
    ],
)
def test_pickles_naming_any_code_global_are_refused_by_name(corpus, name):
    path = corpus["pickles"][name]
    with pytest.raises(CheckpointError) as caught:
        load_adapter(path)
    message = str(caught.value)
    assert str(path) in message and "refused: the pickle asks to run code" in message
    assert name.rpartition(".")[2] in message, "the refused global is named (as the pickle spells its module)"
    assert not corpus["marker"].exists()


def test_framework_objects_beside_the_weights_still_load(tmp_path, adapter_sd, monkeypatch):
    """An OmegaConf config pickled beside the weights (as LDM-based training saves one) is inert data."""
    import types

    module = types.ModuleType("omegaconf.dictconfig")

    class DictConfig:
        def __init__(self, **content):
            self.content = content

    DictConfig.__module__, DictConfig.__qualname__ = module.__name__, "DictConfig"
    module.DictConfig = DictConfig
    for name, value in (("omegaconf", types.ModuleType("omegaconf")), (module.__name__, module)):
        monkeypatch.setitem(sys.modules, name, value)
    path = tmp_path / "with_config.ckpt"
    state = {ADAPTER_PREFIX + k: v for k, v in adapter_sd.items()}
    torch.save({"state_dict": state, "config": DictConfig(lr=1e-5)}, path)
    for name in ("omegaconf", module.__name__):
        monkeypatch.delitem(sys.modules, name)
    assert load_adapter(path).config == SMALL_CONFIG


def test_malformed_safetensors_headers_give_one_clear_error(corpus):
    for name, path in corpus["headers"].items():
        with pytest.raises(CheckpointError, match="not a readable checkpoint") as caught:
            load_adapter(path)
        assert str(path) in str(caught.value), name


@pytest.mark.parametrize(
    "name",
    [
        "config_not_json",
        "config_a_list",
        "config_deep",
        "zero_heads",
        "seven_heads",
        "string_heads",
        "bool_heads",
        "zero_vit_heads",
        "huge_vit_heads",
        "zero_head_channels",
        "first_weight_1d",
        "wrong_bias_size",
        "integer_weights",
    ],
)
def test_bad_adapter_metadata_and_tensors_give_one_checkpoint_error(corpus, name):
    path, message = corpus["adapters"][name]
    with pytest.raises(CheckpointError, match=message) as caught:
        load_adapter(path)
    assert str(caught.value).startswith(f"{path}: ")


@pytest.mark.parametrize("link", ["same", "symlink", "hardlink"])
def test_converter_refuses_to_overwrite_its_input(tmp_path, adapter_sd, link, capsys):
    source = tmp_path / "adapter.safetensors"
    save_file(adapter_sd, source)
    before = source.read_bytes()
    target = source
    if link != "same":
        target = tmp_path / "link.safetensors"
        (target.symlink_to if link == "symlink" else target.hardlink_to)(source)
    assert convert.main([str(source), str(target), "--dtype", "fp16"]) == 1
    assert "the output is the input file itself" in capsys.readouterr().err
    assert source.read_bytes() == before


@pytest.mark.parametrize("name", ["zero_heads", "wrong_bias_size", "seven_heads"])
def test_converter_refuses_what_the_loader_would_refuse(corpus, tmp_path, name, capsys):
    source, message = corpus["adapters"][name]
    target = tmp_path / "out.safetensors"
    assert convert.main([str(source), str(target)]) == 1
    error = capsys.readouterr().err
    assert str(source) in error and re.search(message, error)
    assert not target.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_killed_write_leaves_nothing_the_next_one_does_not_clean(tmp_path):
    """``kill -9`` in the middle of writing a large adapter, then a write of the same file: only the file stays."""
    target = tmp_path / "big.safetensors"
    script = (
        "import torch, sys\n"
        "from stablepose_core.model.checkpoints import save_adapter\n"
        "from harness.reference_weights import SMALL_CONFIG\n"
        "tensors = {f't{i}': torch.zeros(16 << 20) for i in range(24)}\n"  # 1.5 GB: long enough to be killed
        f"save_adapter({str(target)!r}, tensors, config=SMALL_CONFIG)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, start_new_session=True)
    partial = tmp_path / ".big.safetensors.partial"
    deadline = time.monotonic() + 120
    while not (partial.is_dir() and any(partial.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert partial.is_dir() and not target.exists(), "the write was not interrupted mid-way"
    adapter = small_adapter_state_dict()
    save_adapter(target, adapter, config=SMALL_CONFIG)
    assert [p.name for p in tmp_path.iterdir()] == ["big.safetensors"]
    assert load_file(target).keys() == adapter.keys()


def test_truncated_and_foreign_pickles_still_read_as_unreadable(tmp_path):
    path = tmp_path / "x.pth"
    path.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        read_checkpoint(path)
