"""Run a converted TFLite float graph (``tools/convert_blazepose.py``) with PyTorch.

The graph is one or more safetensors shards of fp16 weights; the first shard's metadata holds the op list in
TFLite's order. Only the ops
BlazePose's detector and landmark networks use are implemented, with TFLite's semantics: ``SAME`` padding
split with the extra pixel after, fused ReLU/ReLU6, NHWC channel padding and ``DEPTH_TO_SPACE`` channel order,
half-pixel bilinear resizing and NHWC reshapes. Activations are indexed NCHW (stored ``channels_last``); 4-D
tensors are moved to NHWC only where TFLite's layout is observable (reshape, concatenation axis). Zero ``PAD`` ops
before ``VALID`` convolutions and symmetric ``SAME`` padding become the convolution's own padding argument.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn

GRAPH_FORMAT = "stable-pose-tflite-graph"
NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1, -1: 1}


def _activate(x: torch.Tensor, activation: str) -> torch.Tensor:
    """The fused activation, in place: ``x`` is always an op's fresh output."""
    if activation == "RELU":
        return F.relu_(x)
    if activation == "RELU6":
        return F.hardtanh_(x, 0.0, 6.0)
    return x


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TFLite ``SAME``: total padding so that out = ceil(size / stride), the odd pixel after."""
    effective = (kernel - 1) * dilation + 1
    total = max((math.ceil(size / stride) - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def _pad_same(
    x: torch.Tensor, op: dict, kernel: tuple[int, int], value: float = 0.0
) -> tuple[torch.Tensor, tuple[int, int]]:
    """``x`` padded for TFLite's ``SAME``, as ``(x, (pad_y, pad_x))``: a symmetric padding is left to the op (its
    ``padding`` argument, no copy of ``x``), an asymmetric one is applied here and ``(0, 0)`` returned."""
    if op["padding"] != "SAME":
        return x, tuple(op.get("folded_pad", (0, 0)))
    dilation = op.get("dilation", [1, 1])
    top, bottom = _same_padding(x.shape[2], kernel[0], op["stride"][0], dilation[0])
    left, right = _same_padding(x.shape[3], kernel[1], op["stride"][1], dilation[1])
    if top == bottom and left == right:
        return x, (top, left)
    return F.pad(x, (left, right, top, bottom), value=value), (0, 0)


def fold_pads(ops: list[dict]) -> list[dict]:
    """The op list without the ``PAD`` ops that only pad height and width symmetrically with zeros for ``VALID``
    convolutions: each such convolution gets ``folded_pad`` (its ``padding`` argument) and reads the ``PAD``'s
    input, which saves copying the activation (the same result)."""
    consumers: dict[int, list[dict]] = {}
    for op in ops:
        for ref in op["inputs"]:
            if isinstance(ref, int):
                consumers.setdefault(ref, []).append(op)
    kept = []
    for op in ops:
        users = consumers.get(op["outputs"][0], [])
        if op["op"] == "PAD" and users and all(_folds(op, user) for user in users):
            (_, _), (top, _), (left, _), (_, _) = op["constants"]["1"]
            for user in users:
                user["inputs"][0], user["folded_pad"] = op["inputs"][0], [top, left]
        else:
            kept.append(op)
    return kept


def _folds(pad: dict, user: dict) -> bool:
    """Whether ``pad`` can become the padding argument of ``user``."""
    batch, (top, bottom), (left, right), channels = pad["constants"]["1"]
    return (
        user["op"] in ("CONV_2D", "DEPTHWISE_CONV_2D")
        and user["padding"] == "VALID"
        and user["inputs"][0] == pad["outputs"][0]
        and pad["outputs"][0] not in user["inputs"][1:]
        and not any(batch)
        and not any(channels)
        and (top, left) == (bottom, right)
    )


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """4-D tensors in ``channels_last`` memory (NHWC strides, still NCHW-indexed): convolutions, depthwise ones
    above all, run faster so on CPUs (oneDNN) and GPUs, and TFLite's NHWC reshapes become views."""
    return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x


def _nchw_to_nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1) if x.ndim == 4 else x


def shard_name(stem: str, index: int, count: int) -> str:
    """``stem-00001-of-00002.safetensors`` (index from 0), the usual naming of sharded safetensors."""
    return f"{stem}-{index + 1:05d}-of-{count:05d}.safetensors"


def shard_paths(folder: str | os.PathLike, stem: str) -> list[Path]:
    """The shards of ``stem`` in ``folder``, in order; a clear error when any is missing."""
    found = sorted(Path(folder).glob(f"{stem}-*-of-*.safetensors"))
    if not found:
        raise FileNotFoundError(f"no {stem}-*-of-*.safetensors in {folder}")
    count = int(found[0].stem.rsplit("-", 1)[1])
    expected = [Path(folder, shard_name(stem, index, count)) for index in range(count)]
    missing = [path.name for path in expected if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: missing {', '.join(missing)} (reinstall the pack)")
    return expected


class TFLiteGraph(nn.Module):
    """A converted TFLite graph: ``forward`` takes NCHW float input, returns the outputs in TFLite layout."""

    def __init__(self, shards: Sequence[str | os.PathLike]) -> None:
        super().__init__()
        weights, metadata = {}, {}
        for index, path in enumerate(shards):
            with safe_open(str(path), framework="pt") as file:
                if (file.metadata() or {}).get("format") != GRAPH_FORMAT:
                    raise ValueError(f"{path} is not a converted TFLite graph")
                metadata = file.metadata() if index == 0 else metadata
                weights.update({key: file.get_tensor(key).float() for key in file.keys()})  # noqa: SIM118 (safe_open is not a dict)
        graph = json.loads(metadata["graph"])
        self.weights = nn.ParameterDict(
            {key: nn.Parameter(_channels_last(value), False) for key, value in weights.items()}
        )
        self.metadata = metadata
        self.input_id: int = graph["input"]
        self.output_ids: list[int] = graph["outputs"]
        self.ops: list[dict] = fold_pads(graph["ops"])
        self._run: dict[str, Callable] = {
            "CONV_2D": self._conv,
            "DEPTHWISE_CONV_2D": self._conv,
            "ADD": self._add,
            "PAD": self._pad,
            "MAX_POOL_2D": self._max_pool,
            "DEPTH_TO_SPACE": self._depth_to_space,
            "RESIZE_BILINEAR": self._resize,
            "RESHAPE": self._reshape,
            "CONCATENATION": self._concatenate,
            "LOGISTIC": lambda op, x: torch.sigmoid(x[0]),
        }
        unknown = {op["op"] for op in self.ops} - set(self._run)
        if unknown:
            raise ValueError(f"{path}: unsupported TFLite ops {sorted(unknown)}")

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        values: dict[int, torch.Tensor] = {self.input_id: _channels_last(x)}
        for op in self.ops:
            inputs = [
                None if ref is None else self.weights[ref] if isinstance(ref, str) else values[ref]
                for ref in op["inputs"]
            ]
            values[op["outputs"][0]] = self._run[op["op"]](op, inputs)
        return [_nchw_to_nhwc(values[ref]) for ref in self.output_ids]

    @staticmethod
    def _conv(op: dict, inputs: list) -> torch.Tensor:
        x, weight, bias = inputs[0], inputs[1], inputs[2] if len(inputs) > 2 else None
        x, padding = _pad_same(x, op, (weight.shape[2], weight.shape[3]))
        groups = x.shape[1] if op["op"] == "DEPTHWISE_CONV_2D" else 1
        dilation = op.get("dilation", 1)
        out = F.conv2d(x, weight, bias, stride=op["stride"], padding=padding, dilation=dilation, groups=groups)
        return _activate(out, op["activation"])

    @staticmethod
    def _add(op: dict, inputs: list) -> torch.Tensor:
        return _activate(inputs[0] + inputs[1], op["activation"])

    @staticmethod
    def _pad(op: dict, inputs: list) -> torch.Tensor:
        (batch, _), (top, bottom), (left, right), (front, back) = op["constants"]["1"]
        if batch:
            raise ValueError("PAD on the batch axis is not supported")
        return F.pad(inputs[0], (left, right, top, bottom, front, back))

    @staticmethod
    def _max_pool(op: dict, inputs: list) -> torch.Tensor:
        x, padding = _pad_same(inputs[0], op, op["kernel"], value=-math.inf)
        return _activate(F.max_pool2d(x, op["kernel"], op["stride"], padding), op["activation"])

    @staticmethod
    def _depth_to_space(op: dict, inputs: list) -> torch.Tensor:
        """TFLite's order: output channel c of sub-pixel (i, j) is input channel (i * block + j) * C + c."""
        x, block = inputs[0], op["block"]
        batch, channels, height, width = x.shape
        out = channels // (block * block)
        x = x.reshape(batch, block, block, out, height, width).permute(0, 3, 4, 1, 5, 2)
        return x.reshape(batch, out, height * block, width * block)

    @staticmethod
    def _resize(op: dict, inputs: list) -> torch.Tensor:
        height, width = op["constants"]["1"]
        return F.interpolate(inputs[0], size=(height, width), mode="bilinear", align_corners=False)

    @staticmethod
    def _reshape(op: dict, inputs: list) -> torch.Tensor:
        shape = op["constants"]["1"]
        out = _nchw_to_nhwc(inputs[0]).reshape(inputs[0].shape[0], *shape[1:])
        return out.permute(0, 3, 1, 2) if out.ndim == 4 else out

    @staticmethod
    def _concatenate(op: dict, inputs: list) -> torch.Tensor:
        axis = NHWC_TO_NCHW_AXIS[op["axis"]] if inputs[0].ndim == 4 else op["axis"]
        return _activate(torch.cat(inputs, dim=axis), op["activation"])
