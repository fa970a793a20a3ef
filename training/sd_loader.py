"""The frozen SD1.5 parts (UNet, VAE, CLIP text encoder), loaded with ComfyUI's model code used as a library.

One checkpoint format serves training and inference: whatever ComfyUI's ``Load Checkpoint`` reads
(``.safetensors`` / ``.ckpt``, LDM or diffusers-converted layouts). Only the plain ``nn.Module`` objects are
kept; ComfyUI's model management (which moves models between devices on its own) is not used, so every
training process places its copy on its own device.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stablepose_host import import_comfy

SD15_LATENT_SCALE = 0.18215  # LDM scale_factor of SD1.x (configs/stable_pose/humanart.yaml)


def _plain_torch_forward(module: nn.Module) -> None:
    """ComfyUI's ops cast weights on the fly when asked to; training manages dtypes itself."""
    for m in module.modules():
        if hasattr(m, "comfy_cast_weights"):
            m.comfy_cast_weights = False


def escape_caption(caption: str) -> str:
    """ComfyUI reads ``(word:1.2)`` as emphasis; training captions are plain text, as the official tokenizer
    sees them, so brackets and backslashes are escaped to literal characters."""
    return caption.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


@dataclass
class SDComponents:
    """Frozen SD1.5: a ComfyUI ``UNetModel`` (LDM state-dict layout), an ``AutoencoderKL``, the CLIP text
    encoder (ComfyUI ``SDClipModel``) and its tokenizer."""

    unet: nn.Module
    vae: nn.Module
    text_encoder: nn.Module
    tokenizer: Any
    latent_scale: float = SD15_LATENT_SCALE

    def freeze(self) -> SDComponents:
        for part in (self.unet, self.vae, self.text_encoder):
            part.eval().requires_grad_(False)
        return self

    def place(self, device: torch.device, unet_dtype: torch.dtype, vae_dtype: torch.dtype) -> SDComponents:
        """Move to ``device`` with UNet and VAE weights in the given dtypes (the text encoder keeps its dtype
        and computes in float32, as ComfyUI runs it)."""
        self.unet.to(device=device, dtype=unet_dtype)
        self.vae.to(device=device, dtype=vae_dtype)
        self.text_encoder.to(device=device)
        return self

    @property
    def unet_dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    @torch.no_grad()
    def encode_text(self, captions: list[str]) -> torch.Tensor:
        """(B, 77, D) last-layer hidden states; long captions are cut to 77 tokens as the official encoder."""
        token_ids = [
            [token for token, _weight in self.tokenizer.tokenize_with_weights(escape_caption(c))[0]] for c in captions
        ]
        return self.text_encoder(token_ids)[0]

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Scaled latents of (B, 3, H, W) pixels in [-1, 1]: a sample of the VAE posterior × scale factor,
        as LDM's ``get_first_stage_encoding``."""
        dtype = next(self.vae.parameters()).dtype
        moments = self.vae.quant_conv(self.vae.encoder(pixels.to(dtype))).float()
        mean, logvar = moments.chunk(2, dim=1)
        std = torch.exp(0.5 * logvar.clamp(-30.0, 20.0))
        noise = torch.randn(mean.shape, generator=generator, device=mean.device)
        return (mean + std * noise) * self.latent_scale

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Pixels in [-1, 1] of scaled latents."""
        dtype = next(self.vae.parameters()).dtype
        z = self.vae.post_quant_conv((latents / self.latent_scale).to(dtype))
        return self.vae.decoder(z).float().clamp(-1.0, 1.0)


def load_sd15(path: str | Path) -> SDComponents:
    """Load an SD1.5 checkpoint with ComfyUI (weights on the CPU; :meth:`SDComponents.place` moves them)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"base model not found: {path}")
    comfy_sd = import_comfy("comfy.sd")
    model, clip, vae, _ = comfy_sd.load_checkpoint_guess_config(
        str(path), output_vae=True, output_clip=True, embedding_directory=None
    )
    unet = model.model.diffusion_model
    context_dim = getattr(model.model.model_config, "unet_config", {}).get("context_dim")
    if context_dim != 768 or unet.in_channels != 4 or clip is None or vae is None:
        raise ValueError(
            f"{path.name} is not an SD1.x checkpoint (UNet context {context_dim}, {unet.in_channels} input "
            "channels); Stable-Pose adapters train on SD1.5"
        )
    components = SDComponents(
        unet=unet,
        vae=vae.first_stage_model,
        text_encoder=clip.cond_stage_model.clip_l,
        tokenizer=clip.tokenizer.clip_l,
        latent_scale=float(model.model.latent_format.scale_factor),
    )
    _plain_torch_forward(components.unet)
    _plain_torch_forward(components.vae)
    return components.freeze()
