"""Make ``tests/data/core/*.safetensors`` by running the official Stable-Pose code on fixed weights and inputs.

    python tools/make_core_references.py [--official /work/.mirror/ai-med+StablePose/repo]

The official repository (GPL-3.0, github ai-med/StablePose) is not part of this pack: this script extracts it
to a temporary folder (``git archive`` of a clone or bare mirror), stubs what it imports but does not use here
(``pytorch_lightning``, the DDPM LightningModule, seaborn), makes ``Tensor.cuda`` a no-op (its adapter calls it
in ``forward``), loads the name-seeded weights of ``harness.reference_weights`` into the official modules and
records, in the official evaluation layout (DDIM's [uncond; cond] batch with ``eval_pose.gen_pose_mask`` masks):

- ``masks.safetensors``: the latent-grid masks of ``gen_pose_mask`` and ``get_input`` and the per-ViT-layer
  token masks the official ``PMSAViT`` actually applies (read from the attention masks it builds);
- ``adapter_small.safetensors``: inputs and the 13 residuals (subsampled every 8th latent cell) of a small
  adapter at 512² px;
- ``pmsa_block_sd15.safetensors``: the SD1.5-size inject block (``AttnResBlock``, 320 ch) at 512², batch 2.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tarfile
import tempfile
import types
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.reference_weights import sample_pose_image, seeded_inputs, seeded_state_dict

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "core"
SMALL = dict(
    in_channels=4,
    model_channels=32,
    cond_channels=3,
    inject_channels=[32],
    inject_layers=[1],
    num_res_blocks=1,
    attention_resolutions=[1, 2],
    channel_mult=(1, 2),
    num_heads=8,
    use_spatial_transformer=True,
    transformer_depth=1,
    context_dim=64,
    legacy=False,
)
SUBSAMPLE = 8


def extract_official(source: Path, into: Path) -> Path:
    archive = into / "official.tar"
    subprocess.run(["git", "-C", str(source), "archive", "-o", str(archive), "HEAD"], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "official", filter="data")
    return into / "official"


class _StubModule(types.ModuleType):
    """A module whose every attribute is an inert class (decorators and base classes the official code names)."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (), {"__init__": lambda self, *a, **k: None, "__call__": lambda self, f=None, *a, **k: f})


def stub_modules() -> None:
    class LatentDiffusion(torch.nn.Module):
        def get_input(self, batch, key, *args, **kwargs):
            return batch["x"], batch["c"]

    for name in (
        "pytorch_lightning",
        "pytorch_lightning.callbacks",
        "pytorch_lightning.utilities",
        "pytorch_lightning.utilities.distributed",
        "seaborn",
    ):
        sys.modules[name] = _StubModule(name)
    ddpm = types.ModuleType("ldm.models.diffusion.ddpm")
    ddpm.LatentDiffusion = LatentDiffusion
    sys.modules[ddpm.__name__] = ddpm
    torch.Tensor.cuda = lambda self, *a, **k: self


class _Captured(Exception):
    pass


def official_eval_masks(cldm, ddim, eval_pose, pose: torch.Tensor, batch: int) -> torch.Tensor:
    """The ``pose_mask`` tensor DDIM hands the model in eval: [uncond; cond] masks concatenated."""
    hint = pose.permute(0, 2, 3, 1).repeat(batch, 1, 1, 1)
    masks = eval_pose.gen_pose_mask([23, 13], {"hint": hint}, batch)
    cond = {"c_crossattn": [torch.zeros(batch, 1, 1)], "pose_condition": [hint], "pose_mask": masks[2 * batch :]}
    uncond = {"c_crossattn": [torch.zeros(batch, 1, 1)], "pose_condition": [hint], "pose_mask": masks[: 2 * batch]}
    seen = {}

    def apply_model(x_in, t_in, c_in, **kwargs):
        seen.update(c_in)
        raise _Captured

    sampler = ddim.DDIMSampler.__new__(ddim.DDIMSampler)
    sampler.model = types.SimpleNamespace(apply_model=apply_model, parameterization="eps")
    x = torch.zeros(batch, 4, pose.shape[2] // 8, pose.shape[3] // 8)
    with contextlib.suppress(_Captured):
        sampler.p_sample_ddim(
            x, cond, torch.zeros(batch), 0, unconditional_guidance_scale=7.5, unconditional_conditioning=uncond
        )
    return seen["pose_mask"]


def official_train_masks(cldm, pose: torch.Tensor) -> torch.Tensor:
    model = cldm.StablePose.__new__(cldm.StablePose)
    torch.nn.Module.__init__(model)
    model.gaussian_kernels = [23, 13]
    model.device = torch.device("cpu")
    model.first_stage_key = "jpg"
    _, cond = cldm.StablePose.get_input(model, {"x": 0, "c": 0, "hint": pose.permute(0, 2, 3, 1)}, "jpg")
    return cond["pose_mask"]


def record_layer_masks(pmsa_vit) -> list:
    """Patch the official ViT attention to record the boolean mask each layer receives."""
    recorded: list = []
    original = pmsa_vit.Attention.forward

    def forward(self, x, mask):
        recorded.append(None if mask is None else mask.clone())
        return original(self, x, mask)

    pmsa_vit.Attention.forward = forward
    return recorded


def token_masks_of(attn_masks: list) -> torch.Tensor:
    """(layers, rows, tokens): a token is in a layer's pose mask when it may attend every key."""
    return torch.stack([m.all(dim=-1) for m in attn_masks])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, default=Path("/work/.mirror/ai-med+StablePose/repo"))
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = extract_official(args.official, Path(tmp))
        sys.path.insert(0, str(root))
        stub_modules()
        import cldm.stable_pose_cldm as cldm
        import eval_pose
        import ldm.models.diffusion.ddim as ddim
        import ldm.modules.pmsa_vit as pmsa_vit

        OUT.mkdir(parents=True, exist_ok=True)
        pose = sample_pose_image()
        batch = 1
        eval_mask = official_eval_masks(cldm, ddim, eval_pose, pose, batch)
        train_mask = official_train_masks(cldm, pose)
        recorded = record_layer_masks(pmsa_vit)

        adapter = cldm.StablePoseAdapter(**SMALL).eval()
        adapter.load_state_dict(seeded_state_dict(adapter))
        inputs = seeded_inputs({"x": (2 * batch, 4, 64, 64), "context": (2 * batch, 7, 64)})
        timesteps = torch.tensor([801.0, 801.0])
        with torch.no_grad():
            outs = adapter(inputs["x"], timesteps, inputs["context"], pose.repeat(2 * batch, 1, 1, 1), mask=eval_mask)
        layer_tokens = token_masks_of(recorded[-2:])
        save_file(
            {"eval_pose_mask": eval_mask, "train_pose_mask": train_mask, "eval_layer_tokens": layer_tokens},
            OUT / "masks.safetensors",
        )
        save_file(
            {
                "x": inputs["x"],
                "context": inputs["context"],
                "timesteps": timesteps,
                **{f"out.{i}": o[:, :, ::SUBSAMPLE, ::SUBSAMPLE].contiguous() for i, o in enumerate(outs)},
                **{f"sum.{i}": o.double().sum(dim=(2, 3)).float() for i, o in enumerate(outs)},
            },
            OUT / "adapter_small.safetensors",
        )

        block = cldm.AttnResBlock(320, 1280, 0.0, out_channels=320, cond_channels=192).eval()
        block.load_state_dict(seeded_state_dict(block))
        block_in = seeded_inputs({"h": (2, 320, 64, 64), "emb": (2, 1280), "features": (2, 192, 64, 64)}, seed=2)
        with torch.no_grad():
            out = block(block_in["h"], block_in["emb"], block_in["features"], eval_mask)
        save_file(
            {"out": out[:, :, ::SUBSAMPLE, ::SUBSAMPLE].contiguous(), "sum": out.double().sum(dim=(2, 3)).float()},
            OUT / "pmsa_block_sd15.safetensors",
        )
        print(f"wrote references to {OUT}")


if __name__ == "__main__":
    main()
