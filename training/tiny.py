"""A tiny, randomly initialised SD1.5-shaped model (``--base-model tiny``) for smoke tests and benchmarks.

Same ComfyUI classes and layout as SD1.5 (UNet with 4 levels, 2 res-blocks each, cross-attention on the first
three; KL VAE with 8× downsampling; CLIP text encoder with the SD tokenizer), only narrow: a whole training
step runs in milliseconds on a CPU. Its adapters load in ``LoadStablePose`` like real ones but generate noise.
"""

from __future__ import annotations

import torch
from torch import nn

from stablepose_core.model.adapter import AdapterConfig
from stablepose_host import import_comfy

from .sd_loader import SDComponents, _plain_torch_forward

TINY_CHANNELS = 32  # GroupNorm(32, ·) everywhere needs multiples of 32
TINY_CONTEXT = 64
TINY_HEADS = 2


def tiny_adapter_config(channels: int = TINY_CHANNELS, context_dim: int = TINY_CONTEXT) -> AdapterConfig:
    """The adapter matching :func:`tiny_components` (what ``infer_config`` reads back from its checkpoints)."""
    return AdapterConfig(
        model_channels=channels,
        num_heads=TINY_HEADS,
        context_dim=context_dim,
        inject_channels=(channels,),
        vit_dim=channels,
        vit_heads=TINY_HEADS,
        vit_mlp_dim=channels,
        vit_reduced_channels=channels // 4,
    )


def _torch_init(module: nn.Module) -> None:
    """ComfyUI's ops skip weight initialisation (weights come from checkpoints); use torch's defaults."""
    for m in module.modules():
        for cls in type(m).__mro__:
            if cls.__module__.startswith("torch.nn") and "reset_parameters" in cls.__dict__:
                cls.reset_parameters(m)
                break


def tiny_components(seed: int = 0, channels: int = TINY_CHANNELS, context_dim: int = TINY_CONTEXT) -> SDComponents:
    """Build the tiny model, deterministically for ``seed``; ``channels`` (a multiple of 32) and
    ``context_dim`` widen it (benchmarks)."""
    sd1_clip = import_comfy("comfy.sd1_clip")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet, vae, text_encoder = _tiny_unet(channels, context_dim), _tiny_vae(), _tiny_text_encoder(context_dim)
        for part in (unet, vae, text_encoder):
            _torch_init(part)
    tokenizer = sd1_clip.SDTokenizer(embedding_size=context_dim)
    _plain_torch_forward(unet)
    _plain_torch_forward(vae)
    return SDComponents(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer).freeze()


def _tiny_unet(channels: int, context_dim: int) -> torch.nn.Module:
    openaimodel = import_comfy("comfy.ldm.modules.diffusionmodules.openaimodel")
    ops = import_comfy("comfy.ops")
    return openaimodel.UNetModel(
        image_size=None,
        in_channels=4,
        model_channels=channels,
        out_channels=4,
        num_res_blocks=2,
        channel_mult=(1, 2, 4, 4),
        num_heads=TINY_HEADS,
        use_spatial_transformer=True,
        transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0],
        transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
        transformer_depth_middle=1,
        context_dim=context_dim,
        legacy=False,
        operations=ops.disable_weight_init,
    )


def _tiny_vae() -> torch.nn.Module:
    autoencoder = import_comfy("comfy.ldm.models.autoencoder")
    return autoencoder.AutoencoderKL(
        ddconfig={
            "double_z": True,
            "z_channels": 4,
            "resolution": 64,
            "in_channels": 3,
            "out_ch": 3,
            "ch": TINY_CHANNELS,
            "ch_mult": [1, 2, 2, 2],
            "num_res_blocks": 1,
            "attn_resolutions": [],
            "dropout": 0.0,
        },
        embed_dim=4,
    )


def _tiny_text_encoder(context_dim: int) -> torch.nn.Module:
    sd1_clip = import_comfy("comfy.sd1_clip")
    return sd1_clip.SDClipModel(
        textmodel_json_config={
            "hidden_size": context_dim,
            "intermediate_size": 2 * context_dim,
            "num_attention_heads": 2,
            "num_hidden_layers": 2,
            "max_position_embeddings": 77,
            "vocab_size": 49408,
            "hidden_act": "quick_gelu",
            "layer_norm_eps": 1e-5,
            "projection_dim": context_dim,
            "eos_token_id": 49407,
            "bos_token_id": 0,
            "pad_token_id": 1,
            "model_type": "clip_text_model",
        },
        dtype=torch.float32,
        return_projected_pooled=False,
    )
