"""Random-weight test models, built once into ``.cache/test-models/`` (a ComfyUI ``models/`` layout).

- ``checkpoints/random_sd15.safetensors``: an SD1.5 checkpoint of the true architecture in the original
  LDM key layout (``model.diffusion_model.*``, ``first_stage_model.*``,
  ``cond_stage_model.transformer.text_model.*``), fp16, built from ComfyUI's own model classes and
  ComfyUI's ``models/configs/v1-inference.yaml``, so ``CheckpointLoaderSimple`` detects it as SD1.5.
- ``controlnet/random_sd15_controlnet.safetensors``: a stock SD1.5 ControlNet (original ``control_model.*``
  layout of ``cldm_v15.yaml``: the same UNet config plus a 3-channel hint), fp16.
- ``stable_pose/random_sd15_adapter.safetensors``: ``StablePoseAdapter(AdapterConfig.sd15())`` saved with
  ``save_adapter``, fp16.

Every tensor is drawn from its own generator seeded by (SEED, key), so the files do not depend on build
order: norms weight 1 bias 0, biases 0, linear/conv weights N(0, 1/fan_in) (keeps activations finite and
the zero convs nonzero, so control residuals are nonzero), embeddings and other tables N(0, 0.02²).
The SD modules are built on the meta device (ComfyUI's ops skip weight init anyway) and the checkpoints
are streamed to disk tensor by tensor, so peak memory stays near one tensor rather than the 2 GB model.

Usage (from the repo root): ``python -m harness.make_test_models [--force]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import struct
import sys
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from stablepose_host import find_comfyui, import_comfy

REPO_ROOT = Path(__file__).resolve().parents[1]

TEST_MODELS_DIR = REPO_ROOT / ".cache" / "test-models"
SEED = 1234
EMBEDDING_STD = 0.02
NORM_TYPES = (nn.GroupNorm, nn.LayerNorm, nn.modules.batchnorm._BatchNorm)
WEIGHT_TYPES = (nn.Linear, nn.modules.conv._ConvNd)
METADATA = {"stable_pose.test_model": "random weights for tests; not a trained model"}

TensorSpec = tuple[str, tuple[int, ...], str]  # (key, shape, init rule)


@dataclass(frozen=True)
class ModelFiles:
    """Paths of the test models, by ComfyUI model folder."""

    checkpoint: Path
    controlnet: Path
    adapter: Path

    def by_folder(self) -> dict[str, Path]:
        return {"checkpoints": self.checkpoint, "controlnet": self.controlnet, "stable_pose": self.adapter}


def model_files(root: Path = TEST_MODELS_DIR) -> ModelFiles:
    return ModelFiles(
        checkpoint=root / "checkpoints" / "random_sd15.safetensors",
        controlnet=root / "controlnet" / "random_sd15_controlnet.safetensors",
        adapter=root / "stable_pose" / "random_sd15_adapter.safetensors",
    )


# ----- deterministic initialisation -----


def init_specs(module: nn.Module, prefix: str = "") -> Iterator[TensorSpec]:
    """(key, shape, rule) of every parameter, the rule chosen by the owning module's type."""
    for module_name, sub in module.named_modules():
        for name, param in sub.named_parameters(recurse=False):
            if isinstance(sub, NORM_TYPES):
                rule = "ones" if name == "weight" else "zeros"
            elif name == "bias":
                rule = "zeros"
            elif isinstance(sub, WEIGHT_TYPES):
                rule = "fan_in"
            else:
                rule = "embedding"
            yield f"{prefix}{module_name}.{name}" if module_name else f"{prefix}{name}", tuple(param.shape), rule


def init_value(key: str, shape: tuple[int, ...], rule: str, seed: int = SEED) -> torch.Tensor:
    """The fp32 initial value of one tensor; depends only on (seed, key, shape, rule)."""
    if rule == "ones":
        return torch.ones(shape)
    if rule == "zeros":
        return torch.zeros(shape)
    generator = torch.Generator().manual_seed(zlib.crc32(f"{seed}/{key}".encode()))
    std = 1.0 / math.sqrt(math.prod(shape[1:])) if rule == "fan_in" else EMBEDDING_STD
    return torch.randn(shape, generator=generator) * std


def save_streaming(path: Path, specs: list[TensorSpec], metadata: dict[str, str], seed: int = SEED) -> None:
    """Write fp16 tensors in the safetensors format one at a time, atomically (temp file + rename).

    Format: little-endian u64 header length, JSON header {key: {dtype, shape, data_offsets}}, raw data.
    """
    header: dict[str, object] = {"__metadata__": metadata}
    offset = 0
    for key, shape, _ in specs:
        size = math.prod(shape) * 2
        header[key] = {"dtype": "F16", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # concurrent builders never share a temp file
    with open(tmp, "wb") as out:
        out.write(struct.pack("<Q", len(blob)))
        out.write(blob)
        for key, shape, rule in specs:
            out.write(init_value(key, shape, rule, seed).half().numpy().tobytes())
    os.replace(tmp, path)


def _meta_specs(parts: Iterable[tuple[nn.Module, str]], drop: frozenset[str] = frozenset()) -> list[TensorSpec]:
    specs = []
    for module, prefix in parts:
        if any(True for _ in module.buffers()):
            raise RuntimeError(f"{type(module).__name__} has buffers: their values cannot come from the meta device")
        specs += [spec for spec in init_specs(module, prefix) if spec[0] not in drop]
    return specs


# ----- SD1.5 architecture from ComfyUI -----


def _sd15_params() -> tuple[dict, dict]:
    """(UNet kwargs, VAE params) of ComfyUI's ``v1-inference.yaml``, converted as ComfyUI converts LDM configs."""
    import yaml

    convert_config = import_comfy("comfy.model_detection").convert_config
    config = yaml.safe_load((find_comfyui() / "models" / "configs" / "v1-inference.yaml").read_text())["model"][
        "params"
    ]
    unet = convert_config({**config["unet_config"]["params"], "use_checkpoint": False})
    return unet, config["first_stage_config"]["params"]


def sd15_checkpoint_specs() -> list[TensorSpec]:
    clip_model, ops = import_comfy("comfy.clip_model"), import_comfy("comfy.ops")
    AutoencoderKL = import_comfy("comfy.ldm.models.autoencoder").AutoencoderKL
    UNetModel = import_comfy("comfy.ldm.modules.diffusionmodules.openaimodel").UNetModel

    unet_params, vae_params = _sd15_params()
    clip_config = json.loads((Path(clip_model.__file__).parent / "sd1_clip_config.json").read_text())
    with torch.device("meta"):
        unet = UNetModel(**unet_params, device="meta")
        vae = AutoencoderKL(ddconfig=vae_params["ddconfig"], embed_dim=vae_params["embed_dim"])
        clip = clip_model.CLIPTextModel(clip_config, torch.float16, "meta", ops.disable_weight_init)
    # The original checkpoint holds the bare HF CLIPTextModel: no text projection.
    drop = frozenset({"cond_stage_model.transformer.text_projection.weight"})
    parts = ((unet, "model.diffusion_model."), (vae, "first_stage_model."), (clip, "cond_stage_model.transformer."))
    return _meta_specs(parts, drop)


def controlnet_specs() -> list[TensorSpec]:
    ControlNet = import_comfy("comfy.cldm.cldm").ControlNet

    unet_params, _ = _sd15_params()
    with torch.device("meta"):
        control = ControlNet(hint_channels=3, **unet_params, device="meta")
    return _meta_specs([(control, "control_model.")])


def build_adapter(path: Path, seed: int = SEED) -> None:
    """A random SD1.5-size Stable-Pose adapter with nonzero zero convs, saved with ``save_adapter``."""
    from stablepose_core.model.adapter import AdapterConfig, StablePoseAdapter
    from stablepose_core.model.checkpoints import save_adapter

    adapter = StablePoseAdapter(AdapterConfig.sd15())
    with torch.no_grad():
        for key, shape, rule in init_specs(adapter):
            adapter.get_parameter(key).copy_(init_value(key, shape, rule, seed))
    state = {k: v.half() if v.is_floating_point() else v for k, v in adapter.state_dict().items()}
    save_adapter(path, state, metadata=METADATA, config=adapter.config)


def ensure_test_models(root: Path = TEST_MODELS_DIR, force: bool = False) -> ModelFiles:
    """Build whichever test model is missing (all of them with ``force``) and return their paths."""
    files = model_files(root)
    builders = {
        files.checkpoint: lambda p: save_streaming(p, sd15_checkpoint_specs(), METADATA),
        files.controlnet: lambda p: save_streaming(p, controlnet_specs(), METADATA),
        files.adapter: build_adapter,
    }
    for path, build in builders.items():
        if force or not path.exists():
            start = time.perf_counter()
            build(path)
            print(
                f"built {path} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - start:.1f} s",
                file=sys.stderr,
            )
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if the files exist")
    parser.add_argument("--root", type=Path, default=TEST_MODELS_DIR, help="output models folder")
    args = parser.parse_args()
    for folder, path in ensure_test_models(args.root, args.force).by_folder().items():
        print(f"{folder}: {path}")


if __name__ == "__main__":
    main()
