"""ONNX pose networks in PyTorch: a file converted by onnx2torch once, cached per file hash, run on any device.

The converted module runs the same operations as onnxruntime on the same weights (docs/poses.md shows the two
agree). Before conversion the graph is normalised in three ways, none of which changes a batch-1 result:

* trailing empty optional inputs (``Clip(x, min, "")``, as PyTorch's exporter writes ``clamp(min=...)``) are
  dropped, which onnx2torch needs;
* ``Identity`` nodes that alias an initializer (the exporter's de-duplication of equal biases) are bypassed, since
  onnx2torch reads conv weights from initializers only;
* a ``Reshape`` to a constant shape whose first dimension is 1 while its input's is 1 (a graph exported for batch
  1, as ``yolox_l.onnx``) copies the first dimension instead (ONNX's ``0``), so the network takes batches.

After conversion two rewrites of the PyTorch graph save time and give the same values: ``x * sigmoid(x)`` (SiLU as
exported) becomes one ``F.silu`` (:func:`fuse_silu`), and SPP's parallel 5/9/13 max pools become a chain of 5-pools
(:func:`chain_max_pools`).

The cache (:func:`cache_dir`) holds one ``.pt`` file per converted file, named after the file's SHA-256, written by
this module with ``torch.save``; delete the folder to convert again.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from ..atomic import atomic_write

log = logging.getLogger("stable_pose")

CACHE_ENV = "STABLEPOSE_CACHE_DIR"
FORMAT_VERSION = 2  # bump when the normalisation or the saved object changes


def cache_dir() -> Path:
    """``$STABLEPOSE_CACHE_DIR``, else ``stable-pose/onnx2torch`` in the user's cache folder (``%LOCALAPPDATA%`` on
    Windows, ``$XDG_CACHE_HOME`` or ``~/.cache`` elsewhere)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("LOCALAPPDATA") if os.name == "nt" else os.environ.get("XDG_CACHE_HOME")
    return Path(base or Path.home() / ".cache") / "stable-pose" / "onnx2torch"


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class ConvertedNetwork:
    """A converted ONNX graph: the module and the graph input's declared shape (``None`` for a symbolic axis)."""

    module: nn.Module
    input_shape: tuple[int | None, ...]


def _constant_values(model) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    values = {tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def _first_dims(model) -> dict[str, int | None]:
    """Each tensor's first dimension after ONNX shape inference (``None`` where unknown)."""
    import onnx

    graph = onnx.shape_inference.infer_shapes(model).graph
    dims = {}
    for info in (*graph.input, *graph.value_info, *graph.output):
        shape = info.type.tensor_type.shape.dim
        dims[info.name] = shape[0].dim_value if shape and shape[0].HasField("dim_value") else None
    return dims


def batchable(model):
    """The normalised graph (module docstring); ``model`` is changed in place and returned."""
    from onnx import numpy_helper

    initializers = {tensor.name for tensor in model.graph.initializer}
    outputs = {output.name for output in model.graph.output}
    aliases = {
        node.output[0]: node.input[0]
        for node in model.graph.node
        if node.op_type == "Identity" and node.input[0] in initializers and node.output[0] not in outputs
    }
    for node in model.graph.node:
        inputs = [aliases.get(name, name) for name in node.input]
        while inputs and not inputs[-1]:
            inputs.pop()
        del node.input[:]
        node.input.extend(inputs)
    kept = [node for node in model.graph.node if node.op_type != "Identity" or node.output[0] not in aliases]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    constants, first_dims = _constant_values(model), _first_dims(model)
    for index, node in enumerate(model.graph.node):
        shape = constants.get(node.input[1]) if node.op_type == "Reshape" else None
        if shape is not None and shape.size and shape[0] == 1 and first_dims.get(node.input[0]) == 1:
            name = f"{node.input[1]}/batch{index}"
            model.graph.initializer.append(numpy_helper.from_array(np.concatenate([[0], shape[1:]]), name))
            node.input[1] = name
    return model


def _submodule(module: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    return module.get_submodule(node.target) if node.op == "call_module" else None


def fuse_silu(module: fx.GraphModule) -> fx.GraphModule:
    """``Mul(x, Sigmoid(x))`` (SiLU as PyTorch exports it to ONNX) -> ``F.silu(x)``: one pass over the activation
    instead of two. ``module`` is changed in place and returned."""
    graph = module.graph
    for node in list(graph.nodes):
        if not isinstance(_submodule(module, node), nn.Sigmoid) or len(node.users) != 1:
            continue
        (mul,) = node.users
        multiply = _submodule(module, mul)
        plain_mul = getattr(multiply, "math_op_function", None) is torch.mul and getattr(multiply, "broadcast", 0) != 1
        if plain_mul and len(mul.args) == 2 and set(mul.args) == {node.args[0], node}:
            with graph.inserting_before(mul):
                mul.replace_all_uses_with(graph.call_function(F.silu, (node.args[0],)))
            graph.erase_node(mul)
            graph.erase_node(node)
    return _recompiled(module)


def _window(pool: nn.Module) -> int | None:
    """The kernel of a stride-1, same-size, square 2-D max pool (padding kernel // 2), else None."""
    if not isinstance(pool, nn.MaxPool2d) or pool.ceil_mode or pool.return_indices:
        return None
    kernel, stride, padding, dilation = (
        tuple(value) if isinstance(value, list | tuple) else (value, value)
        for value in (pool.kernel_size, pool.stride, pool.padding, pool.dilation)
    )
    same = kernel[0] == kernel[1] and kernel[0] % 2 and padding == (kernel[0] // 2,) * 2
    return kernel[0] if same and stride == (1, 1) and dilation == (1, 1) else None


def chain_max_pools(module: fx.GraphModule) -> fx.GraphModule:
    """Max pools of one input with kernels k, 2k - 1, 3k - 2, ... (SPP's 5, 9, 13) -> each the k-pool of the one
    before: a maximum over a window of a + b - 1 is the maximum over b of the maxima over a, so the values are the
    same for far fewer comparisons. ``module`` is changed in place and returned."""
    graph, groups = module.graph, {}
    for node in graph.nodes:
        if (window := _window(_submodule(module, node))) is not None:
            groups.setdefault(node.args[0], []).append((window, node))
    for pools in groups.values():
        pools.sort(key=lambda pool: pool[0])
        smallest, first = pools[0]
        if len(pools) < 2 or [k for k, _ in pools] != [smallest + i * (smallest - 1) for i in range(len(pools))]:
            continue
        anchor = next(node for node in graph.nodes if any(node is pool for _, pool in pools))
        previous = first.args[0]
        for _, pool in pools:
            with graph.inserting_after(anchor if previous is first.args[0] else previous):
                previous = graph.call_module(first.target, (previous,))
            pool.replace_all_uses_with(previous)
        for _, pool in pools:
            graph.erase_node(pool)
    return _recompiled(module)


def _recompiled(module: fx.GraphModule) -> fx.GraphModule:
    module.graph.lint()
    module.delete_all_unused_submodules()
    module.recompile()
    return module


def convert(path: str | os.PathLike) -> ConvertedNetwork:
    """Read and convert an ONNX file (no cache); a clear error when onnx2torch cannot convert it."""
    import onnx
    from onnx2torch import convert as onnx2torch_convert

    model = onnx.load(os.fspath(path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    input_shape = tuple(dim.dim_value if dim.HasField("dim_value") else None for dim in dims)
    try:
        module = chain_max_pools(fuse_silu(onnx2torch_convert(batchable(model))))
    except (NotImplementedError, KeyError, ValueError) as error:
        raise ValueError(
            f"{path}: this ONNX file cannot be run in PyTorch ({error}); choose the backend's onnxruntime variant"
        ) from error
    return ConvertedNetwork(module.eval().requires_grad_(False), input_shape)


def load_network(path: str | os.PathLike, cache: str | os.PathLike | None = None) -> ConvertedNetwork:
    """The converted network of ``path``, from the cache when that file was converted before (same SHA-256, same
    onnx2torch and :data:`FORMAT_VERSION`), else converted now and cached. A cache that cannot be written only
    costs the conversion next time."""
    folder = Path(cache) if cache is not None else cache_dir()
    version = importlib.metadata.version("onnx2torch")
    cached = folder / f"{Path(path).stem}-{file_sha256(path)[:24]}-onnx2torch{version}-v{FORMAT_VERSION}.pt"
    if cached.is_file():
        try:  # a dict of the module and the shape: no class of this pack in the pickle (it is imported by path)
            saved = torch.load(cached, map_location="cpu", weights_only=False)  # written by this function only
            return ConvertedNetwork(saved["module"], tuple(saved["input_shape"]))
        except Exception as error:  # a damaged cache file is converted again, whatever went wrong
            log.warning("Stable-Pose: converting %s again: the cached %s is unreadable (%s)", path, cached, error)
    network = convert(path)
    try:
        with atomic_write(cached) as tmp:
            torch.save({"module": network.module, "input_shape": list(network.input_shape)}, tmp)
        log.info("Stable-Pose: converted %s to PyTorch, cached as %s", path, cached)
    except OSError as error:
        log.warning("Stable-Pose: cannot cache the conversion of %s in %s (%s)", path, folder, error)
    return network
