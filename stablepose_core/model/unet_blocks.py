"""The SD1.5 UNet encoder blocks, with the LDM state-dict layout.

Parameter names match ``ldm.modules.diffusionmodules.openaimodel`` and ``ldm.modules.attention`` (which the
official Stable-Pose adapter and every SD1.5 checkpoint use), so UNet weights copy over by name.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

# A namespace of layer classes (Conv2d, Linear, GroupNorm, LayerNorm): ``torch.nn`` or a host's cast-aware ops
# (ComfyUI's ``comfy.ops``), as LDM-style model code takes ``operations``.
Ops = Any


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal timestep features ``[cos | sin]`` of DDPM/LDM (``timestep_embedding`` in LDM's util)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = timesteps[:, None].float() * freqs.to(timesteps.device)[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 whatever the activation or weight dtype and device, as LDM does.

    On CPU, half-precision activations go straight in: the kernel takes them with float32 scale and shift
    ("mixed type"), keeps its statistics in float32 and rounds once, without two full-size dtype copies.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.to(x.device, torch.float32)
        bias = None if self.bias is None else self.bias.to(x.device, torch.float32)
        if x.device.type == "cpu" and x.dtype in (torch.float16, torch.bfloat16):
            return F.group_norm(x, self.num_groups, weight, bias, self.eps)
        return F.group_norm(x.float(), self.num_groups, weight, bias, self.eps).type(x.dtype)


class ResBlock(nn.Module):
    """LDM ResBlock: GroupNorm-SiLU-conv, + time embedding, GroupNorm-SiLU-dropout-conv, + skip."""

    def __init__(
        self, channels: int, emb_channels: int, out_channels: int | None = None, dropout: float = 0.0, ops: Ops = nn
    ):
        super().__init__()
        out_channels = out_channels or channels
        self.in_layers = nn.Sequential(
            GroupNorm32(32, channels), nn.SiLU(), ops.Conv2d(channels, out_channels, 3, padding=1)
        )
        self.emb_layers = nn.Sequential(nn.SiLU(), ops.Linear(emb_channels, out_channels))
        self.out_layers = nn.Sequential(
            GroupNorm32(32, out_channels),
            nn.SiLU(),
            nn.Dropout(dropout),
            ops.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        self.skip_connection = nn.Identity() if out_channels == channels else ops.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x) + self.emb_layers(emb).type(x.dtype)[..., None, None]
        return self.skip_connection(x) + self.out_layers(h)


class Downsample(nn.Module):
    """Strided 3×3 conv (``op``); odd sizes round up, as in LDM and ComfyUI."""

    def __init__(self, channels: int, ops: Ops = nn):
        super().__init__()
        self.op = ops.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class CrossAttention(nn.Module):
    """Multi-head attention of LDM (self-attention when ``context`` is None)."""

    def __init__(self, query_dim: int, context_dim: int | None, heads: int, dim_head: int, ops: Ops = nn):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_q = ops.Linear(query_dim, inner, bias=False)
        self.to_k = ops.Linear(context_dim or query_dim, inner, bias=False)
        self.to_v = ops.Linear(context_dim or query_dim, inner, bias=False)
        self.to_out = nn.Sequential(ops.Linear(inner, query_dim), nn.Dropout(0.0))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context.to(x.dtype)
        q, k, v = (
            rearrange(t, "b n (h d) -> b h n d", h=self.heads)
            for t in (self.to_q(x), self.to_k(context), self.to_v(context))
        )
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(rearrange(out, "b h n d -> b n (h d)"))


class GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int, ops: Ops = nn):
        super().__init__()
        self.proj = ops.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4, ops: Ops = nn):
        super().__init__()
        self.net = nn.Sequential(GEGLU(dim, dim * mult, ops), nn.Dropout(0.0), ops.Linear(dim * mult, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    """Self-attention, cross-attention to the text, GEGLU feed-forward; pre-LayerNorm residuals."""

    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int, ops: Ops = nn):
        super().__init__()
        self.attn1 = CrossAttention(dim, None, heads, dim_head, ops)
        self.ff = FeedForward(dim, ops=ops)
        self.attn2 = CrossAttention(dim, context_dim, heads, dim_head, ops)
        self.norm1, self.norm2, self.norm3 = ops.LayerNorm(dim), ops.LayerNorm(dim), ops.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    """LDM SpatialTransformer; ``use_linear`` selects Linear (SD2-style) instead of 1×1 conv projections."""

    def __init__(
        self,
        channels: int,
        heads: int,
        dim_head: int,
        depth: int,
        context_dim: int,
        use_linear: bool = False,
        ops: Ops = nn,
    ):
        super().__init__()
        inner = heads * dim_head
        self.use_linear = use_linear
        self.norm = ops.GroupNorm(32, channels, eps=1e-6)
        self.proj_in = ops.Linear(channels, inner) if use_linear else ops.Conv2d(channels, inner, 1)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(inner, heads, dim_head, context_dim, ops) for _ in range(depth)
        )
        self.proj_out = ops.Linear(inner, channels) if use_linear else ops.Conv2d(inner, channels, 1)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        _, _, h, w = x.shape
        y = self.norm(x)
        if not self.use_linear:
            y = self.proj_in(y)
        y = rearrange(y, "b c h w -> b (h w) c")
        if self.use_linear:
            y = self.proj_in(y)
        for block in self.transformer_blocks:
            y = block(y, context)
        if self.use_linear:
            y = self.proj_out(y)
        # contiguous as in LDM: a channels-last view would make every following conv reformat its weight per call
        y = rearrange(y, "b (h w) c -> b c h w", h=h, w=w).contiguous()
        if not self.use_linear:
            y = self.proj_out(y)
        return y + x
