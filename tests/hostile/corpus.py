"""A corpus of hostile files, made by the tests on demand (nothing binary is committed).

Each maker writes into a folder and returns ``{case name: path}`` (or path and what the error must say), so a
test can parametrize over the whole class: malicious pickles, malformed safetensors headers, bad adapter
metadata and tensors, decompression bombs.
"""

from __future__ import annotations

import builtins
import importlib
import json
import os
import struct
import subprocess
import zlib
from pathlib import Path

import torch
from safetensors.torch import save_file

from harness.reference_weights import SMALL_CONFIG, seeded_state_dict
from stablepose_core.model.adapter import AdapterConfig, StablePoseAdapter


def small_adapter_state_dict(config: AdapterConfig = SMALL_CONFIG) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        shapes = StablePoseAdapter(config)
    return seeded_state_dict(shapes)


class Payload:
    """Pickles as a call of ``function(*args)``: what a malicious checkpoint smuggles beside its weights."""

    def __init__(self, function: object, *args: object):
        self.function, self.args = function, args

    def __reduce__(self):
        return (self.function, self.args)


def malicious_pickles(folder: Path, marker: Path, adapter: dict[str, torch.Tensor]) -> dict[str, Path]:
    """Whole working adapters whose pickle also asks to call a function; each call would create ``marker``."""
    payloads = {
        "builtins.eval": Payload(builtins.eval, f"open({str(marker)!r}, 'w')"),
        "builtins.exec": Payload(builtins.exec, f"open({str(marker)!r}, 'w')"),
        "builtins.getattr": Payload(builtins.getattr, Payload(builtins.__import__, "os"), "system"),
        "builtins.__import__": Payload(builtins.__import__, "os"),
        "posix.system": Payload(os.system, f"touch {marker}"),
        "subprocess.Popen": Payload(subprocess.Popen, ["touch", str(marker)]),
        "subprocess.check_output": Payload(subprocess.check_output, ["touch", str(marker)]),
        "importlib.import_module": Payload(importlib.import_module, "antigravity"),
    }
    files = {}
    for name, payload in payloads.items():
        path = folder / f"evil_{name.replace('.', '_')}.pth"
        torch.save({"state_dict": adapter, "callbacks": payload}, path)
        files[name] = path
    return files


def malformed_safetensors(folder: Path) -> dict[str, Path]:
    """Files named ``.safetensors`` whose header lies: sizes, JSON, dtypes, offsets."""
    one = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}

    def with_header(header: object, data: bytes = b"\0" * 8, length: int | None = None) -> bytes:
        text = header if isinstance(header, bytes) else json.dumps(header).encode()
        return struct.pack("<Q", len(text) if length is None else length) + text + data

    cases = {
        "empty": b"",
        "short_length": b"\x01\x02",
        "length_past_the_end": with_header({"x": one}, length=10_000),
        "length_2_63": with_header({"x": one}, length=2**63),
        "header_not_json": with_header(b"{not json at all"),
        "header_a_list": with_header([1, 2, 3]),
        "unknown_dtype": with_header({"x": {**one, "dtype": "Q99"}}),
        "offsets_past_the_data": with_header({"x": {**one, "data_offsets": [0, 4096]}}),
        "offsets_reversed": with_header({"x": {**one, "data_offsets": [8, 0]}}),
        "shape_disagrees_with_offsets": with_header({"x": {**one, "shape": [1000, 1000]}}),
        "negative_shape": with_header({"x": {**one, "shape": [-2]}}),
        "metadata_not_strings": with_header({"__metadata__": {"stable_pose_config": {"num_heads": 8}}, "x": one}),
        "random_bytes": bytes(range(256)) * 4,
    }
    files = {}
    for name, content in cases.items():
        path = folder / f"{name}.safetensors"
        path.write_bytes(content)
        files[name] = path
    return files


def bad_adapters(folder: Path, adapter: dict[str, torch.Tensor]) -> dict[str, tuple[Path, str]]:
    """Adapter ``.safetensors`` files with bad ``stable_pose_config`` metadata or tensors, and the message."""
    bias = next(k for k in adapter if k.endswith("proj_in.bias"))
    cases: dict[str, tuple[dict[str, str], dict[str, torch.Tensor], str]] = {
        "config_not_json": ({"stable_pose_config": "{oops"}, {}, "stable_pose_config metadata is not valid JSON"),
        "config_a_list": ({"stable_pose_config": "[8]"}, {}, "stable_pose_config metadata must be a JSON object"),
        "config_deep": ({"stable_pose_config": "[" * 50_000 + "]" * 50_000}, {}, "is not valid JSON"),
        "zero_heads": ({"stable_pose_config": '{"num_heads": 0}'}, {}, "num_heads = 0"),
        "seven_heads": ({"stable_pose_config": '{"num_heads": 7}'}, {}, "num_heads 7 does not divide"),
        "string_heads": ({"stable_pose_config": '{"num_heads": "8"}'}, {}, "num_heads = '8'"),
        "bool_heads": ({"stable_pose_config": '{"vit_heads": true}'}, {}, "vit_heads = True"),
        "zero_vit_heads": ({"stable_pose_config": '{"vit_heads": 0}'}, {}, "vit_heads = 0"),
        "huge_vit_heads": ({"stable_pose_config": '{"vit_heads": 1000000}'}, {}, "vit_heads 1000000 does not divide"),
        "zero_head_channels": ({"stable_pose_config": '{"num_head_channels": 0}'}, {}, "num_head_channels = 0"),
        "first_weight_1d": ({}, {"input_blocks.0.0.weight": torch.zeros(32)}, "input_blocks.0.0.weight"),
        "wrong_bias_size": ({}, {bias: torch.zeros(5)}, rf"{bias} \(5,\) \(needs \(32,\)\)"),
        "integer_weights": ({}, {bias: torch.zeros(32, dtype=torch.int32)}, "not floating point"),
    }
    files = {}
    for name, (metadata, replaced, message) in cases.items():
        path = folder / f"{name}.safetensors"
        save_file({**adapter, **replaced}, path, metadata=metadata)
        files[name] = (path, message)
    return files


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG declaring ``width`` × ``height`` RGB pixels with one empty row of data: a decompression bomb's
    header (PIL decides on the declared size before decoding)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = zlib.compress(b"\0" * (1 + 3 * min(width, 64)))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", row) + chunk(b"IEND", b""))
    return path
