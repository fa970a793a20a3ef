"""ONNX -> PyTorch (``stablepose_core.detect.onnx_torch``) on small hand-made graphs with the traits of the DWPose
files: exported for one image, an ``Identity``-aliased bias, a ``Clip`` with an empty ``max``; the cache per hash."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stablepose_core.detect.onnx_torch import load_network

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402 (after the skip)

WEIGHT = np.random.default_rng(0).normal(size=(4, 2, 3, 3)).astype(np.float32)
BIAS = np.array([0.5, -0.5, 1.0, -1.0], np.float32)


def batch_one_graph(path: Path, op: str = "Clip") -> Path:
    """(1, 2, 4, 4) -> conv 3x3 (bias through an Identity) -> clamp(min=0) -> Reshape to the constant (1, -1)."""
    nodes = [
        helper.make_node("Identity", ["bias"], ["bias_alias"]),
        helper.make_node("Conv", ["input", "weight", "bias_alias"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node(op, ["conv", "zero", ""] if op == "Clip" else ["conv"], ["clipped"]),
        helper.make_node("Reshape", ["clipped", "shape"], ["output"]),
    ]
    initializers = [
        numpy_helper.from_array(WEIGHT, "weight"),
        numpy_helper.from_array(BIAS, "bias"),
        numpy_helper.from_array(np.zeros((), np.float32), "zero"),
        numpy_helper.from_array(np.array([1, -1], np.int64), "shape"),
    ]
    graph = helper.make_graph(
        nodes,
        "batch_one",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 2, 4, 4])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 64])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def expected(batch: torch.Tensor) -> torch.Tensor:
    conv = F.conv2d(batch, torch.from_numpy(WEIGHT), torch.from_numpy(BIAS), padding=1)
    return conv.clamp(min=0).reshape(len(batch), -1)


def test_a_graph_exported_for_one_image_takes_batches(tmp_path):
    network = load_network(batch_one_graph(tmp_path / "net.onnx"), tmp_path / "cache")
    assert network.input_shape == (1, 2, 4, 4)
    batch = torch.randn(3, 2, 4, 4)
    with torch.inference_mode():
        torch.testing.assert_close(network.module(batch), expected(batch))


def test_conversion_is_cached_per_file_hash(tmp_path, caplog):
    path, cache = batch_one_graph(tmp_path / "net.onnx"), tmp_path / "cache"
    with caplog.at_level(logging.INFO, logger="stable_pose"):
        load_network(path, cache)
        assert "converted" in caplog.text
        (cached,) = cache.glob("net-*.pt")
        caplog.clear()
        network = load_network(path, cache)  # from the cache: nothing converted, same results
        assert "converted" not in caplog.text
    batch = torch.randn(2, 2, 4, 4)
    with torch.inference_mode():
        torch.testing.assert_close(network.module(batch), expected(batch))
    other = tmp_path / "other"
    other.mkdir()
    load_network(batch_one_graph(other / "net.onnx"), cache)  # the same bytes elsewhere: the same cache file
    assert list(cache.glob("net-*.pt")) == [cached]
    cached.write_bytes(b"damaged")
    with caplog.at_level(logging.WARNING, logger="stable_pose"):
        network = load_network(path, cache)
    assert "unreadable" in caplog.text and cached.stat().st_size > 1000
    with torch.inference_mode():
        torch.testing.assert_close(network.module(batch), expected(batch))


def test_a_changed_file_is_converted_again(tmp_path):
    path, cache = batch_one_graph(tmp_path / "net.onnx"), tmp_path / "cache"
    load_network(path, cache)
    model = onnx.load(path)
    model.graph.initializer[1].CopyFrom(numpy_helper.from_array(-BIAS, "bias"))
    onnx.save(model, path)
    network = load_network(path, cache)
    assert len(list(cache.glob("net-*.pt"))) == 2
    batch = torch.randn(1, 2, 4, 4)
    conv = F.conv2d(batch, torch.from_numpy(WEIGHT), torch.from_numpy(-BIAS), padding=1).clamp(min=0)
    with torch.inference_mode():
        torch.testing.assert_close(network.module(batch), conv.reshape(1, -1))


def test_an_unconvertible_file_says_what_to_do(tmp_path):
    path = batch_one_graph(tmp_path / "net.onnx", op="Hardmax")
    with pytest.raises(ValueError, match=r"net\.onnx: this ONNX file cannot be run in PyTorch .*onnxruntime"):
        load_network(path, tmp_path / "cache")


def spp_graph(path: Path) -> Path:
    """YOLOX's and CSPNeXt's SPP: conv -> SiLU as exported (Sigmoid, Mul) -> max pools 5, 9, 13 -> concat."""
    pools = [
        helper.make_node("MaxPool", ["silu"], [f"pool{k}"], kernel_shape=[k, k], pads=[k // 2] * 4, strides=[1, 1])
        for k in (5, 9, 13)
    ]
    nodes = [
        helper.make_node("Conv", ["input", "weight", "bias"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["conv"], ["sigmoid"]),
        helper.make_node("Mul", ["conv", "sigmoid"], ["silu"]),
        *pools,
        helper.make_node("Concat", ["silu", "pool5", "pool9", "pool13"], ["output"], axis=1),
    ]
    initializers = [numpy_helper.from_array(WEIGHT, "weight"), numpy_helper.from_array(BIAS, "bias")]
    graph = helper.make_graph(
        nodes,
        "spp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 2, 16, 16])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 16, 16, 16])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_silu_is_fused_and_spp_pools_chained(tmp_path):
    """``x * sigmoid(x)`` runs as one SiLU and the 9- and 13-pools as 5-pools of the pool before: same values."""
    module = load_network(spp_graph(tmp_path / "spp.onnx"), tmp_path / "cache").module
    called = [module.get_submodule(node.target) for node in module.graph.nodes if node.op == "call_module"]
    assert not any(isinstance(layer, torch.nn.Sigmoid) for layer in called)
    assert [layer.kernel_size for layer in called if isinstance(layer, torch.nn.MaxPool2d)] == [[5, 5]] * 3
    batch = torch.randn(2, 2, 16, 16) * 4
    silu = F.silu(F.conv2d(batch, torch.from_numpy(WEIGHT), torch.from_numpy(BIAS), padding=1))
    pools = [F.max_pool2d(silu, k, 1, k // 2) for k in (5, 9, 13)]
    with torch.inference_mode():
        torch.testing.assert_close(module(batch), torch.cat([silu, *pools], 1), rtol=1e-6, atol=1e-6)
