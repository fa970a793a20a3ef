"""The pose-masked self-attention (PMSA) ViT of Stable-Pose (Wang et al. 2024, Sec. 3.2).

A small ViT over the inject layer's feature map: 3×3 conv to ``reduced_channels``, patches of ``patch``,
LayerNorm/Linear/LayerNorm to ``dim``, a fixed 2-D sin-cos position embedding, ``depth`` pre-norm
attention + MLP layers, then back to the feature map through a 3×3 conv. Layer ``i`` lets a query attend a
key only when either token lies in that layer's pose mask; a disallowed logit is *replaced by the minimum of
the whole logits tensor of the call* (what the released code does), not by -inf.

Any grid: the official code fixes the embedding to a 32×32 patch grid (512² px). We evaluate the same
sin-cos formula at the integer patch coordinates of the actual grid, so at 512² it is bit-identical and at
other sizes every patch keeps the position code of its place (one patch = 16 px, the spacing the model was
trained with) instead of a stretched one; odd latent sizes are zero-padded to whole patches and cropped back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .unet_blocks import Ops

# Above this many logits per call, attention is evaluated in query blocks (two passes: global min, output).
_MAX_DENSE_LOGITS = 1 << 26


def posemb_sincos_2d(h: int, w: int, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """(h·w, dim) embedding ``[sin x | cos x | sin y | cos y]``, rows in (h w) order, as the official ViT."""
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    omega = 1.0 / temperature ** (torch.arange(dim // 4) / (dim // 4 - 1))
    y = y.flatten()[:, None] * omega[None, :]
    x = x.flatten()[:, None] * omega[None, :]
    return torch.cat((x.sin(), x.cos(), y.sin(), y.cos()), dim=1)


def patch_grid_masks(masks: torch.Tensor, patch: int) -> torch.Tensor:
    """(…, h, w) latent-grid masks -> (…, ⌈h/p⌉, ⌈w/p⌉) patch-grid masks: a patch is in when any cell is."""
    lead, (h, w) = masks.shape[:-2], masks.shape[-2:]
    pooled = F.max_pool2d(masks.reshape(-1, 1, h, w).float(), patch, ceil_mode=True)
    return pooled.reshape(*lead, *pooled.shape[-2:]) > 0


def token_masks(masks: torch.Tensor, patch: int) -> torch.Tensor:
    """(…, h, w) latent-grid masks -> (…, tokens) in the ViT's (h w) token order."""
    return patch_grid_masks(masks, patch).flatten(-2)


def min_filled_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, tokens_in: torch.Tensor) -> torch.Tensor:
    """Softmax attention where pair (i, j) is allowed iff ``tokens_in[i] or tokens_in[j]``.

    q, k, v: (B, H, N, d) with q already scaled; tokens_in: (B, N) bool. Disallowed logits are replaced by
    the global minimum of all logits of the call, as the released PMSA does; the allowed-pair mask is a
    broadcast of two (B, N) vectors, never a materialised (B, N, N) tensor.
    """
    n = q.shape[-2]
    if bool(tokens_in.all()):
        return F.scaled_dot_product_attention(q, k, v, scale=1.0)
    rows = tokens_in[:, None, :, None]
    cols = tokens_in[:, None, None, :]
    block = max(1, _MAX_DENSE_LOGITS // max(1, q.shape[0] * q.shape[1] * n))
    if block >= n:
        return _filled_softmax_block(q @ k.transpose(-1, -2), None, rows, cols, v)
    kt = k.transpose(-1, -2)
    global_min = torch.stack([(q[:, :, s : s + block] @ kt).detach().amin() for s in range(0, n, block)]).amin()
    return torch.cat(
        [
            _filled_softmax_block(q[:, :, s : s + block] @ kt, global_min, rows[:, :, s : s + block], cols, v)
            for s in range(0, n, block)
        ],
        dim=2,
    )


def _filled_softmax_block(
    logits: torch.Tensor, fill: torch.Tensor | None, rows: torch.Tensor, cols: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    fill = logits.detach().amin() if fill is None else fill  # a constant, as the released .detach() makes it
    logits.masked_fill_(~rows & ~cols, fill)  # (B, 1, n, N) broadcast over heads
    return logits.softmax(dim=-1, dtype=torch.float32).to(v.dtype) @ v


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int, ops: Ops = nn):
        super().__init__()
        self.heads = heads
        self.scale = dim_head**-0.5
        self.norm = ops.LayerNorm(dim)
        self.to_qkv = ops.Linear(dim, heads * dim_head * 3, bias=False)
        self.to_out = ops.Linear(heads * dim_head, dim, bias=False)

    def forward(self, x: torch.Tensor, tokens_in: torch.Tensor | None) -> torch.Tensor:
        q, k, v = (rearrange(t, "b n (h d) -> b h n d", h=self.heads) for t in self.to_qkv(self.norm(x)).chunk(3, -1))
        if tokens_in is None:
            out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        else:
            out = min_filled_attention(q * self.scale, k, v, tokens_in)
        return self.to_out(rearrange(out, "b h n d -> b n (h d)"))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden_dim: int, ops: Ops = nn):
        super().__init__()
        self.net = nn.Sequential(
            ops.LayerNorm(dim), ops.Linear(dim, hidden_dim), nn.GELU(), ops.Linear(hidden_dim, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Transformer(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, dim_head: int, mlp_dim: int, ops: Ops = nn):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList([Attention(dim, heads, dim_head, ops), FeedForward(dim, mlp_dim, ops)]) for _ in range(depth)
        )

    def forward(self, x: torch.Tensor, layer_tokens_in: torch.Tensor | None) -> torch.Tensor:
        for i, (attn, ff) in enumerate(self.layers):
            x = attn(x, None if layer_tokens_in is None else layer_tokens_in[i]) + x
            x = ff(x) + x
        return x


class PMSAViT(nn.Module):
    """Pose-masked ViT; state-dict layout of the official ``PMSAViT`` (``to_patch_embedding.{0,2,3,4}``, ...)."""

    def __init__(
        self,
        channels: int,
        dim: int = 512,
        depth: int = 2,
        heads: int = 8,
        dim_head: int | None = None,
        mlp_dim: int = 512,
        patch: int = 2,
        reduced_channels: int = 128,
        ops: Ops = nn,
    ):
        super().__init__()
        self.patch, self.dim, self.depth = patch, dim, depth
        patch_dim = reduced_channels * patch * patch
        self.to_patch_embedding = nn.Sequential(
            ops.Conv2d(channels, reduced_channels, 3, padding=1),
            nn.Identity(),  # the official patchify Rearrange sits here (keeps the key indices)
            ops.LayerNorm(patch_dim),
            ops.Linear(patch_dim, dim),
            ops.LayerNorm(dim),
        )
        self.transformer = Transformer(dim, depth, heads, dim_head or channels // heads, mlp_dim, ops)
        self.to_out = nn.Sequential(nn.Identity(), ops.Conv2d(reduced_channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor, layer_tokens_in: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, C, h, w); layer_tokens_in: (depth, B, tokens) bool from :func:`token_masks`, or None."""
        _, _, h, w = x.shape
        p = self.patch
        gh, gw = -(-h // p), -(-w // p)
        emb = self.to_patch_embedding
        y = F.pad(emb[0](x), (0, gw * p - w, 0, gh * p - h))
        y = rearrange(y, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=p, p2=p)
        y = emb[4](emb[3](emb[2](y)))
        y = y + posemb_sincos_2d(gh, gw, self.dim).to(y.device, y.dtype)
        y = self.transformer(y, layer_tokens_in)
        y = rearrange(y, "b (h w) (p1 p2 c) -> b c (h p1) (w p2)", h=gh, p1=p, p2=p)
        return self.to_out[1](y[:, :, :h, :w])
