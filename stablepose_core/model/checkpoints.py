"""Reading, writing and initialising Stable-Pose adapter weights.

- Official releases are torch pickles (``final.pth`` / Lightning ``.ckpt``) holding either the whole
  ``StablePose`` model (SD weights beside ``stable_pose_adapter.*``), possibly under ``state_dict``, or the
  adapter alone. They are read with ``weights_only=True``: a checkpoint never runs code. The Python objects
  training frameworks pickle beside the weights (Lightning hyper-parameters, OmegaConf configs, numpy scalars)
  load as inert placeholders; a pickle naming any other global (``eval``, ``subprocess``, ...) is refused.
- Our own files are adapter-only ``.safetensors`` whose keys are the official adapter keys without the
  ``stable_pose_adapter.`` prefix, with the config and provenance in the metadata.
- The architecture is inferred from tensor shapes (head counts, which shapes cannot tell, come from the
  metadata, else the released value 8).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import re
from pathlib import Path

import numpy as np
import safetensors
import safetensors.torch
import torch
from torch import nn

from ..atomic import atomic_write
from .adapter import AdapterConfig, StablePoseAdapter, zero_init_convs
from .unet_blocks import Ops

ADAPTER_PREFIX = "stable_pose_adapter."
UNET_PREFIX = "model.diffusion_model."
FORMAT = "stable-pose-adapter"
# Globals a tensor checkpoint may name beyond what torch's weights-only unpickler allows by itself: objects
# training frameworks save beside the weights. They load as inert placeholders; every other global is refused.
INERT_GLOBAL_MODULES = ("pytorch_lightning.", "lightning.", "lightning_fabric.", "omegaconf.", "numpy.dtypes.")
INERT_GLOBALS = frozenset(
    {
        "numpy.dtype",
        "numpy.ndarray",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct",
        "argparse.Namespace",
        "collections.defaultdict",
        "pathlib.PosixPath",
        "pathlib.WindowsPath",
        "pathlib.PurePosixPath",
        "pathlib.PureWindowsPath",
    }
)
# Head counts are the one part of the architecture shapes cannot tell; they come from the metadata.
HEAD_FIELDS = ("num_heads", "num_head_channels", "vit_heads")


class CheckpointError(ValueError):
    """A file that cannot be read, or that holds no Stable-Pose adapter; the message says what was found."""


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a ``.safetensors`` or torch pickle, unwrapping ``state_dict`` nesting."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        if path.suffix.lower() in (".safetensors", ".sft"):
            with safetensors.safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
            return safetensors.torch.load_file(str(path)), metadata
        return _tensors_of(_load_pickle(path)), {}
    except CheckpointError:
        raise
    except pickle.UnpicklingError as error:  # globals are refused before loading: this is the pickle's structure
        reason = next((line for line in str(error).splitlines() if "GLOBAL" in line or "Can only" in line), "")
        raise CheckpointError(
            f"{path}: not a readable checkpoint: it holds Python objects a weights-only load cannot rebuild "
            f"({reason.strip() or str(error)[:200]})"
        ) from None
    except Exception as error:  # truncated archives, wrong formats, ...: one clear message
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt or truncated?): {error}") from error


def _load_pickle(path: Path) -> object:
    """``torch.load(weights_only=True)``; known framework objects become inert placeholder classes (never
    imported); any other global makes the file refused, naming it."""
    names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    refused = [name for name in names if name not in INERT_GLOBALS and not name.startswith(INERT_GLOBAL_MODULES)]
    if refused:
        raise CheckpointError(
            f"{path}: refused: the pickle asks to run code or build objects a weights file never holds "
            f"({', '.join(sorted(refused))}); do not use this file"
        )
    # numpy's dtype classes stay real (inert types): a host may allow-list the real ``numpy.dtype`` (ComfyUI does),
    # which then builds dtype instances of these classes
    dtypes = [cls for name in dir(np.dtypes) if isinstance(cls := getattr(np.dtypes, name), type)]
    with torch.serialization.safe_globals([*dtypes, *(_stand_in(name) for name in names)]):
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)


def _stand_in(name: str) -> type | tuple[type, str]:
    """What a global of the pickle becomes: numpy's dtype classes themselves, anything else an inert class."""
    module, _, attribute = name.rpartition(".")
    if module == "numpy.dtypes" and isinstance(getattr(np.dtypes, attribute, None), type):
        return getattr(np.dtypes, attribute)
    return type(attribute, (_Opaque,), {"__module__": module}), name


class _Opaque:
    """Stands in for a pickled Python object (config, callback, ...): keeps its state, runs nothing."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state: object) -> None:
        self.state = state


def _tensors_of(obj: object) -> dict[str, torch.Tensor]:
    while isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise CheckpointError(f"expected a dict of tensors, found {type(obj).__name__}")
    return {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}


def describe_state_dict(state_dict: dict[str, torch.Tensor]) -> str:
    """A short guess at what a state dict is, for error messages."""
    keys = list(state_dict)
    joined = "\n".join(keys)
    guesses = [
        ("control_model." in joined or "input_hint_block" in joined, "a ControlNet"),
        ("lora_" in joined or ".lora." in joined, "a LoRA"),
        ("adapter.body" in joined or re.search(r"^body\.\d", joined, re.M) is not None, "a T2I-Adapter"),
        ("double_blocks." in joined, "a Flux model"),
        ("label_emb." in joined, "an SDXL-style UNet (it has a label embedding)"),
        (UNET_PREFIX in joined, "a Stable Diffusion checkpoint without Stable-Pose adapter weights"),
        ("decoder.up" in joined and "encoder.down" in joined, "a VAE"),
    ]
    for hit, what in guesses:
        if hit:
            return f"{what} ({len(keys)} tensors)"
    prefixes = sorted({k.split(".")[0] for k in keys})[:8]
    return f"an unknown layout: {len(keys)} tensors, top-level names {prefixes}"


def adapter_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The adapter's tensors (official keys minus ``stable_pose_adapter.``) from a full-model or adapter file."""
    prefixed = {k[len(ADAPTER_PREFIX) :]: v for k, v in state_dict.items() if k.startswith(ADAPTER_PREFIX)}
    found = prefixed or state_dict
    if "input_blocks.0.0.weight" not in found or not any(".attn_layer." in k for k in found):
        raise CheckpointError(f"not a Stable-Pose adapter: this looks like {describe_state_dict(state_dict)}")
    return found


def _block_indices(state_dict: dict[str, torch.Tensor], prefix: str) -> list[int]:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    return sorted({int(m.group(1)) for k in state_dict if (m := pattern.match(k))})


def _weight_shape(sd: dict[str, torch.Tensor], key: str) -> torch.Size:
    """Shape of a layer weight the architecture is read from; one of rank < 2 or with an empty side is refused."""
    shape = sd[key].shape
    if len(shape) < 2 or 0 in shape:
        raise CheckpointError(f"{key} has shape {tuple(shape)}; a layer weight has at least 2 non-empty dimensions")
    return shape


def _encoder_layout(sd: dict[str, torch.Tensor]) -> dict:
    """Channels, levels, res-blocks, attention and text-context sizes of an LDM UNet encoder state dict."""
    model_channels, in_channels = _weight_shape(sd, "input_blocks.0.0.weight")[:2]
    mults: list[int] = []
    res_per_level = [0]
    attention_levels: set[int] = set()
    inject_layers = []
    for i in _block_indices(sd, "input_blocks.")[1:]:
        if f"input_blocks.{i}.0.op.weight" in sd:
            res_per_level.append(0)
            continue
        level = len(res_per_level) - 1
        if len(mults) == level:
            mults.append(_weight_shape(sd, f"input_blocks.{i}.0.in_layers.2.weight")[0] // model_channels)
        res_per_level[level] += 1
        if f"input_blocks.{i}.1.proj_in.weight" in sd:
            attention_levels.add(level)
        if f"input_blocks.{i}.0.attn_layer.to_patch_embedding.0.weight" in sd:
            inject_layers.append(i)
    if len(set(res_per_level)) != 1:
        raise CheckpointError(f"unsupported layout: res-blocks per level differ ({res_per_level})")
    proj_in = _weight_shape(sd, "middle_block.1.proj_in.weight")
    return {
        "in_channels": in_channels,
        "model_channels": model_channels,
        "channel_mult": tuple(mults),
        "num_res_blocks": res_per_level[0],
        "attention_levels": tuple(sorted(attention_levels)),
        "transformer_depth": len(_block_indices(sd, "middle_block.1.transformer_blocks.")),
        "context_dim": _weight_shape(sd, "middle_block.1.transformer_blocks.0.attn2.to_k.weight")[1],
        "use_linear_in_transformer": len(proj_in) == 2,
        "inject_layers": tuple(inject_layers),
    }


def infer_config(state_dict: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> AdapterConfig:
    """The :class:`AdapterConfig` of an adapter state dict (no prefix), from shapes plus stored head counts."""
    sd = state_dict
    try:
        layout = _encoder_layout(sd)
        inject = layout["inject_layers"][0]
        vit = f"input_blocks.{inject}.0.attn_layer."
        reduced = _weight_shape(sd, vit + "to_patch_embedding.0.weight")[0]
        patch_dim = _weight_shape(sd, vit + "to_patch_embedding.3.weight")
        values = {
            **layout,
            "cond_channels": _weight_shape(sd, "feature_extractor.pre_extractor.0.weight")[1],
            "inject_channels": (_weight_shape(sd, "feature_extractor.extractors.0.0.weight")[0],),
            "vit_dim": patch_dim[0],
            "vit_depth": len(_block_indices(sd, vit + "transformer.layers.")),
            "vit_mlp_dim": _weight_shape(sd, vit + "transformer.layers.0.1.net.1.weight")[0],
            "vit_patch": math.isqrt(patch_dim[1] // reduced),
            "vit_reduced_channels": reduced,
        }
    except KeyError as error:
        raise CheckpointError(f"unsupported Stable-Pose adapter layout: missing {error}") from None
    except (IndexError, ValueError, TypeError, ZeroDivisionError) as error:  # a tensor of the wrong rank or size
        raise CheckpointError(f"unsupported Stable-Pose adapter layout: tensor shapes do not fit ({error})") from None
    try:
        config = AdapterConfig.from_dict({**values, **stored_heads(metadata)})
    except ValueError as error:
        raise CheckpointError(f"inconsistent adapter shapes: {error}") from None
    check_heads(config)
    return config


def stored_heads(metadata: dict[str, str] | None) -> dict[str, int]:
    """The head counts in the ``stable_pose_config`` metadata (absent: the released 8), checked."""
    text = (metadata or {}).get("stable_pose_config")
    if text is None:
        return {}
    try:
        stored = json.loads(text)
    except (ValueError, TypeError, RecursionError):
        raise CheckpointError("the stable_pose_config metadata is not valid JSON") from None
    if not isinstance(stored, dict):
        raise CheckpointError(f"the stable_pose_config metadata must be a JSON object, got {type(stored).__name__}")
    heads = {key: stored[key] for key in HEAD_FIELDS if key in stored}
    for key, value in heads.items():
        allowed = isinstance(value, int) and not isinstance(value, bool)
        if not allowed or not (value >= 1 or (key == "num_head_channels" and value == -1)):
            text = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            raise CheckpointError(
                f"the stable_pose_config metadata has {key} = {text}; it must be a positive integer"
                + (" (or -1)" if key == "num_head_channels" else "")
            )
    return heads


def check_heads(config: AdapterConfig) -> None:
    """Head counts must split the channels they attend over (else the adapter cannot be built)."""
    name, value = (
        ("num_heads", config.num_heads)
        if config.num_head_channels == -1
        else ("num_head_channels", config.num_head_channels)
    )
    for level in config.attention_levels:
        channels = config.model_channels * config.channel_mult[level]
        if channels % value:
            raise CheckpointError(f"{name} {value} does not divide the {channels} channels of attention level {level}")
    inject_level = (config.inject_layers[0] - 1) // (config.num_res_blocks + 1)
    vit_channels = config.model_channels * config.channel_mult[inject_level]
    if vit_channels % config.vit_heads:
        raise CheckpointError(
            f"vit_heads {config.vit_heads} does not divide the {vit_channels} channels of the PMSA ViT"
        )


def check_adapter_weights(state_dict: dict[str, torch.Tensor], config: AdapterConfig) -> None:
    """Refuse, before building, weights that are not exactly the tensors (names, shapes, float) of ``config``."""
    check_heads(config)
    try:
        with torch.device("meta"):
            expected = {k: v.shape for k, v in StablePoseAdapter(config).state_dict().items()}
    except (ValueError, TypeError, RuntimeError, ZeroDivisionError, IndexError) as error:
        raise CheckpointError(f"the inferred architecture cannot be built: {error}") from None
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing or unexpected:
        raise CheckpointError(
            f"adapter weights do not match the inferred architecture: missing {missing[:5]} "
            f"({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)})"
        )
    wrong = [
        f"{k} {tuple(state_dict[k].shape)} (needs {tuple(s)})" for k, s in expected.items() if state_dict[k].shape != s
    ]
    if wrong:
        raise CheckpointError(
            f"{len(wrong)} tensor(s) have the wrong shape for the inferred architecture "
            f"(head counts come from the stable_pose_config metadata): {'; '.join(wrong[:3])}"
        )
    not_float = [k for k, v in state_dict.items() if not v.is_floating_point()]
    if not_float:
        raise CheckpointError(f"{len(not_float)} tensor(s) are not floating point, e.g. {not_float[0]}")


def config_from_unet(unet_state_dict: dict[str, torch.Tensor], **overrides: object) -> AdapterConfig:
    """Adapter config for a base UNet (LDM keys, no ``model.diffusion_model.`` prefix), read from its shapes."""
    try:
        layout = _encoder_layout(unet_state_dict)
    except KeyError as error:
        raise CheckpointError(f"not an LDM UNet state dict: missing {error}") from error
    layout.pop("inject_layers")
    return AdapterConfig.from_dict({**layout, **overrides})


def build_adapter(
    state_dict: dict[str, torch.Tensor],
    config: AdapterConfig,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    operations: Ops = nn,
) -> StablePoseAdapter:
    """An adapter holding the values of ``state_dict`` (no random init is computed: built on the meta device).

    Every parameter is a fresh allocation (``dtype`` or the stored one), as ComfyUI's loaders copy into new
    parameters: tensors read from safetensors/mmap buffers are views at arbitrary file offsets, not 64-byte
    aligned, and the CPU convolution copies such a weight at every call.
    """
    check_adapter_weights(state_dict, config)
    with torch.device("meta"):
        adapter = StablePoseAdapter(config, operations)
    fresh = {name: _fresh_copy(tensor, device, dtype) for name, tensor in state_dict.items()}
    missing, unexpected = adapter.load_state_dict(fresh, strict=False, assign=True)
    if missing or unexpected:
        raise CheckpointError(
            f"adapter weights do not match the inferred architecture: missing {missing[:5]} "
            f"({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)})"
        )
    return adapter.eval()


def _fresh_copy(tensor: torch.Tensor, device: torch.device | str, dtype: torch.dtype | None) -> torch.Tensor:
    """``tensor``'s values in a new allocation on ``device``; floating tensors in ``dtype`` when given."""
    dtype = dtype if dtype is not None and tensor.is_floating_point() else tensor.dtype
    return torch.empty(tensor.shape, dtype=dtype, device=device).copy_(tensor)


def load_adapter(
    path: str | os.PathLike,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    operations: Ops = nn,
) -> StablePoseAdapter:
    """Load an official checkpoint or one of ours; the architecture is inferred from the file."""
    tensors, metadata = read_checkpoint(path)
    try:
        state_dict = adapter_state_dict(tensors)
        config = infer_config(state_dict, metadata)
        return build_adapter(state_dict, config, device, dtype, operations)
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from None


def save_adapter(
    path: str | os.PathLike,
    adapter: StablePoseAdapter | dict[str, torch.Tensor],
    metadata: dict[str, str] | None = None,
    config: AdapterConfig | None = None,
) -> None:
    """Write adapter-only ``.safetensors`` atomically (:func:`atomic_write`), with config and format metadata."""
    if isinstance(adapter, StablePoseAdapter):
        config, state_dict = adapter.config, adapter.state_dict()
    else:
        state_dict = adapter
    config = config or infer_config(state_dict)
    header = {"format": FORMAT, "stable_pose_config": json.dumps(config.to_dict()), **(metadata or {})}
    tensors = {k: v.detach().contiguous() for k, v in state_dict.items()}
    with atomic_write(path) as tmp:
        safetensors.torch.save_file(tensors, str(tmp), metadata=header)


def unet_state_dict(checkpoint_tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The UNet of an LDM checkpoint (``model.diffusion_model.*``) with the prefix removed."""
    unet = {k[len(UNET_PREFIX) :]: v for k, v in checkpoint_tensors.items() if k.startswith(UNET_PREFIX)}
    return unet or checkpoint_tensors


def adapter_from_sd_unet(
    unet_state_dict: dict[str, torch.Tensor], config: AdapterConfig | None = None
) -> tuple[StablePoseAdapter, list[str]]:
    """A new adapter initialised as official ``prepare_weights.py`` does; returns it and its fresh parameter names.

    Every adapter tensor whose name and shape exist in the base UNet is copied (encoder, middle block, time
    embedding; the inject block's in/out convs too, as the official name match does); the rest is freshly
    initialised with the zero convs at zero. Seed torch beforehand for a reproducible init.
    """
    adapter = StablePoseAdapter(config or config_from_unet(unet_state_dict))
    zero_init_convs(adapter)
    fresh = []
    with torch.no_grad():
        for name, tensor in adapter.state_dict().items():
            source = unet_state_dict.get(name)
            if source is not None and source.shape == tensor.shape:
                tensor.copy_(source)
            else:
                fresh.append(name)
    return adapter, fresh


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
