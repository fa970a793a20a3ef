"""Convert MediaPipe's BlazePose ``.tflite`` models into the pack's embedded fp16 safetensors graphs.

Source: the ``mediapipe==0.10.14`` wheel (Apache-2.0), ``modules/pose_detection/pose_detection.tflite`` and
``modules/pose_landmark/pose_landmark_full.tflite`` (what ``mp.solutions.pose.Pose(model_complexity=1)``
runs). Their weights are stored as float16 in the ``.tflite`` files (``DEQUANTIZE`` ops, some sparse behind
``DENSIFY``), so the fp16 output is lossless. The op list (conv, depthwise conv, add, pad, ...) and its options
are written into the file's metadata; :mod:`stablepose_core.detect.tflite_graph` runs them with PyTorch.

Needs (dev only): ``mediapipe==0.10.14`` (Python <= 3.12), ``tflite`` (the schema) and ``ai-edge-litert``
(its interpreter densifies the sparse weights exactly as TFLite does).

The unused segmentation head is pruned; the world-landmark head (3D landmarks in metres) is kept. The fp16
networks are about 6 MB each, more than the repository accepts in one file, so each is cut into consecutive
safetensors shards of at most 4 MB
(``<name>-00001-of-00002.safetensors``, the graph in the first shard's metadata).

Usage (from the repo root): ``python -m tools.convert_blazepose [--out stablepose_core/detect/blazepose_models]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from stablepose_core.detect.blazepose import DETECTOR_STEM, LANDMARK_STEM, MODEL_DIR
from stablepose_core.detect.tflite_graph import shard_name

# stem -> (file in the mediapipe wheel, the outputs kept: the detector's boxes and scores; the landmark
# network's landmarks, pose flag, heat map and world landmarks; its segmentation head is dropped)
SOURCES = {
    DETECTOR_STEM: ("modules/pose_detection/pose_detection.tflite", (0, 1)),
    LANDMARK_STEM: ("modules/pose_landmark/pose_landmark_full.tflite", (0, 1, 3, 4)),
}
SHARD_BYTES = 4_000_000  # the repository refuses files over 5 MB; the fp16 networks are 6 MB each
CONSTANT_OPS = {"DEQUANTIZE", "DENSIFY"}
PADDING = {0: "SAME", 1: "VALID"}
ACTIVATION = {0: "NONE", 1: "RELU", 3: "RELU6"}


def mediapipe_dir() -> Path:
    import mediapipe

    return Path(mediapipe.__file__).parent


def _options(op, name: str) -> dict:
    """The op's builtin options the executor needs, as plain JSON."""
    import tflite

    classes = {
        "CONV_2D": tflite.Conv2DOptions,
        "DEPTHWISE_CONV_2D": tflite.DepthwiseConv2DOptions,
        "ADD": tflite.AddOptions,
        "MAX_POOL_2D": tflite.Pool2DOptions,
        "CONCATENATION": tflite.ConcatenationOptions,
        "DEPTH_TO_SPACE": tflite.DepthToSpaceOptions,
        "RESIZE_BILINEAR": tflite.ResizeBilinearOptions,
    }
    if name not in classes or op.BuiltinOptions() is None:
        return {}
    options = classes[name]()
    options.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
    out: dict = {}
    if hasattr(options, "FusedActivationFunction"):
        out["activation"] = ACTIVATION[options.FusedActivationFunction()]
    if hasattr(options, "Padding"):
        out["padding"] = PADDING[options.Padding()]
        out["stride"] = [options.StrideH(), options.StrideW()]
    if hasattr(options, "DilationHFactor"):
        out["dilation"] = [options.DilationHFactor(), options.DilationWFactor()]
    if name == "MAX_POOL_2D":
        out["kernel"] = [options.FilterHeight(), options.FilterWidth()]
    if name == "CONCATENATION":
        out["axis"] = options.Axis()
    if name == "DEPTH_TO_SPACE":
        out["block"] = options.BlockSize()
    if name == "RESIZE_BILINEAR" and (options.AlignCorners() or not options.HalfPixelCenters()):
        raise NotImplementedError("only half-pixel-centre bilinear resizing is implemented")
    return out


def _torch_layout(name: str, position: int, value: np.ndarray) -> np.ndarray:
    """TFLite constant -> the layout the executor uses (conv filters OIHW, depthwise (C, 1, kH, kW), NCHW)."""
    if name == "CONV_2D" and position == 1:
        return value.transpose(0, 3, 1, 2)  # OHWI -> OIHW
    if name == "DEPTHWISE_CONV_2D" and position == 1:
        return value.transpose(3, 0, 1, 2)  # 1HWC -> C1HW
    if value.ndim == 4:
        return value.transpose(0, 3, 1, 2)  # NHWC -> NCHW
    return value


def _prune(ops: list[dict], outputs: list[int]) -> list[dict]:
    """Only the ops the kept outputs depend on, in their order."""
    producer = {op["outputs"][0]: index for index, op in enumerate(ops)}
    needed, stack = set(), [producer[tensor] for tensor in outputs]
    while stack:
        index = stack.pop()
        if index not in needed:
            needed.add(index)
            stack += [producer[ref] for ref in ops[index]["inputs"] if isinstance(ref, int) and ref in producer]
    return [op for index, op in enumerate(ops) if index in needed]


def convert(tflite_path: Path, keep_outputs: tuple[int, ...]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Weights (fp16, torch layouts) and metadata (the op graph as JSON) of one ``.tflite`` model."""
    import tflite
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    buffer = tflite_path.read_bytes()
    model = tflite.Model.GetRootAsModel(buffer, 0)
    graph = model.Subgraphs(0)
    op_names = {code: name for name, code in vars(tflite.BuiltinOperator).items() if not name.startswith("_")}
    interpreter = Interpreter(
        model_path=str(tflite_path),
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        experimental_preserve_all_tensors=True,
    )
    interpreter.allocate_tensors()
    interpreter.invoke()  # evaluates DEQUANTIZE/DENSIFY: every constant becomes readable, dense

    tensors = range(graph.TensorsLength())
    constants = {i for i in tensors if model.Buffers(graph.Tensors(i).Buffer()).DataLength()}
    ops, weights = [], {}
    for index in range(graph.OperatorsLength()):
        op = graph.Operators(index)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = op_names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        inputs, outputs = op.InputsAsNumpy().tolist(), op.OutputsAsNumpy().tolist()
        if name in CONSTANT_OPS:
            constants.update(outputs)
            continue
        entry = {"op": name, "inputs": [], "outputs": outputs, **_options(op, name)}
        for position, tensor in enumerate(inputs):
            if tensor in constants:
                value = interpreter.get_tensor(tensor)
                if value.dtype.kind in "iu":  # shapes, paddings, sizes: small, kept in the graph
                    entry.setdefault("constants", {})[str(position)] = value.tolist()
                    entry["inputs"].append(None)
                    continue
                key = f"t{tensor}"
                weights[key] = torch.from_numpy(np.ascontiguousarray(_torch_layout(name, position, value))).half()
                entry["inputs"].append(key)
            else:
                entry["inputs"].append(tensor)
        ops.append(entry)
    outputs = [graph.Outputs(i) for i in keep_outputs]
    ops = _prune(ops, outputs)
    used = {ref for op in ops for ref in op["inputs"] if isinstance(ref, str)}
    weights = {key: value for key, value in weights.items() if key in used}
    metadata = {
        "format": "stable-pose-tflite-graph",
        "graph": json.dumps({"input": graph.Inputs(0), "outputs": outputs, "ops": ops}),
        "source": f"mediapipe=={version('mediapipe')} {tflite_path.relative_to(mediapipe_dir()).as_posix()}",
        "source_sha256": hashlib.sha256(buffer).hexdigest(),
        "license": "Apache-2.0 (MediaPipe, Copyright The MediaPipe Authors)",
    }
    return weights, metadata


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=MODEL_DIR)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for stem, (source, keep_outputs) in SOURCES.items():
        weights, metadata = convert(mediapipe_dir() / source, keep_outputs)
        shards = _shards(weights)
        for index, shard in enumerate(shards):
            path = args.out / shard_name(stem, index, len(shards))
            save_file(shard, path, metadata=metadata if index == 0 else {"format": metadata["format"]})
            print(f"{source} -> {path}: {len(shard)} tensors, {path.stat().st_size / 1e6:.2f} MB")


def _shards(weights: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """Tensors in graph order, cut into consecutive files of at most SHARD_BYTES."""
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key, value in weights.items():
        nbytes = value.numel() * value.element_size()
        if shards[-1] and size + nbytes > SHARD_BYTES:
            shards.append({})
            size = 0
        shards[-1][key] = value
        size += nbytes
    return shards


if __name__ == "__main__":
    main()
