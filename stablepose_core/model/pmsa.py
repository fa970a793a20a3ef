"""The pose-masked self-attention (PMSA) ViT of Stable-Pose (Wang et al. 2024, Sec. 3.2).

A small ViT over the inject layer's feature map: 3×3 conv to ``reduced_channels``, patches of ``patch``,
LayerNorm/Linear/LayerNorm to ``dim``, a fixed 2-D sin-cos position embedding, ``depth`` pre-norm
attention + MLP layers, then back to the feature map through a 3×3 conv. Layer ``i`` lets a query attend a
key only when either token lies in that layer's pose mask; a disallowed logit is *replaced by the minimum of
the whole logits tensor of the call* (what the released code does), not by -inf. Given ``row_latents`` (which
latent each row belongs to), the minimum is taken over the rows of the same latent instead: equal to the
release for its evaluation call (one latent's [uncond; cond] rows) and independent of the other latents of a
batch, so a video frame gets the same result in any batch or context window (docs/video.md).

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

from .row_groups import RowGroups
from .unet_blocks import Ops


def _min_search_block(device: torch.device) -> int:
    """Logits per block when searching a call's minimum logit: cache-sized on CPU, large on accelerators."""
    return 1 << 21 if device.type == "cpu" else 1 << 26


def posemb_sincos_2d(h: int, w: int, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """(h·w, dim) embedding ``[sin x | cos x | sin y | cos y]``, rows in (h w) order, as the official ViT."""
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    omega = 1.0 / temperature ** (torch.arange(dim // 4) / (dim // 4 - 1))
    y = y.flatten()[:, None] * omega[None, :]
    x = x.flatten()[:, None] * omega[None, :]
    return torch.cat((x.sin(), x.cos(), y.sin(), y.cos()), dim=1)


def patch_grid_masks(masks: torch.Tensor, patch: int) -> torch.Tensor:
    """(…, h, w) latent-grid masks -> (…, ⌈h/p⌉, ⌈w/p⌉) patch-grid masks: a patch is in when any cell is."""
    h, w = masks.shape[-2:]
    gh, gw = -(-h // patch), -(-w // patch)
    masks = F.pad(masks, (0, gw * patch - w, 0, gh * patch - h))
    return masks.unflatten(-1, (gw, patch)).unflatten(-3, (gh, patch)).any(-1).any(-2)


def to_token_masks(masks: torch.Tensor, patch: int) -> torch.Tensor:
    """(…, h, w) latent-grid masks -> token masks (…, tokens) in the ViT's (h w) token order: per ViT layer
    (depth, B, tokens) for :meth:`PMSAViT.forward`, a token is in the layer's pose mask when True."""
    return patch_grid_masks(masks, patch).flatten(-2)


def min_filled_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    token_mask: torch.Tensor,
    fill: torch.Tensor | None = None,
    row_latents: torch.Tensor | None = None,
) -> torch.Tensor:
    """Softmax attention where pair (i, j) is allowed iff ``token_mask[i] or token_mask[j]``.

    q, k, v: (B, H, N, d) with q already scaled; token_mask: (B, N) bool, one layer's token masks. As in the
    released PMSA, a disallowed logit is replaced by the minimum ``m`` of all logits of the call (a constant: the
    release detaches it), or of the rows of the same latent when ``row_latents`` (B,) is given
    (:func:`fill_logit`); ``fill`` gives ``m`` (a scalar or one per row) when it is already known.

    Evaluated exactly without filling a (B, H, N, N) tensor: a query in the mask may attend every key, so it is
    plain attention; a query outside the mask sees the in-mask keys plus ``n_out`` keys of logit ``m``, which
    together weigh as one virtual key of logit ``m + log n_out`` whose value is the mean of the out-of-mask
    values. Rows whose mask covers every token are plain attention. The cost is the search for ``m`` (a blocked
    matmul, never stored whole) plus attention over in-mask queries × all keys and the rest × in-mask keys.
    """
    full = token_mask.all(-1)
    if bool(full.all()):
        return F.scaled_dot_product_attention(q, k, v, scale=1.0)
    fill = fill_logit(row_min_logits(q, k), row_latents) if fill is None else fill
    if not bool(full.any()):
        return _masked_rows_attention(q, k, v, token_mask, fill)
    out = torch.empty_like(q)
    out[full] = F.scaled_dot_product_attention(q[full], k[full], v[full], scale=1.0)
    partial_fill = fill[~full] if fill.ndim else fill
    out[~full] = _masked_rows_attention(q[~full], k[~full], v[~full], token_mask[~full], partial_fill)
    return out


def fill_logit(row_minima: torch.Tensor, row_latents: torch.Tensor | None) -> torch.Tensor:
    """The fill ``m``: the call's minimum (released), or per row the minimum over the rows of its latent."""
    if row_latents is None:
        return row_minima.amin()
    latents = row_latents.to(row_minima.device)
    per_latent = row_minima.new_full((int(latents.max()) + 1,), float("inf"))
    return per_latent.scatter_reduce(0, latents, row_minima, "amin")[latents]


def row_min_logits(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """(B,) ``(q @ kᵀ).min()`` of each row, detached, from blocks of queries written into one reused buffer."""
    q, kt = q.detach(), k.detach().transpose(-1, -2)
    n = q.shape[-2]
    rows = min(n, max(1, _min_search_block(q.device) // (q.shape[0] * q.shape[1] * kt.shape[-1])))
    buffer = q.new_empty(*q.shape[:-2], rows, kt.shape[-1])
    minima = []
    for start in range(0, n, rows):
        block = q[..., start : start + rows, :]
        logits = torch.matmul(block, kt, out=buffer) if block.shape[-2] == rows else block @ kt
        minima.append(logits.flatten(1).amin(1))
    return torch.stack(minima).amin(0)


def _masked_rows_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, token_mask: torch.Tensor, fill: torch.Tensor
) -> torch.Tensor:
    """:func:`min_filled_attention` for rows with at least one token outside the mask."""
    b, _, n, _ = q.shape
    inside, inside_valid = _selected_first(token_mask)
    outside, outside_valid = _selected_first(~token_mask)
    n_out = (~token_mask).sum(-1)
    wide = torch.promote_types(v.dtype, torch.float32)  # half-precision sums of many values can overflow
    outside_sum = (v * (~token_mask)[:, None, :, None]).sum(-2, keepdim=True, dtype=wide)
    virtual_value = outside_sum / n_out[:, None, None, None]
    keys = torch.cat([_take(k, inside), k.new_zeros(b, k.shape[1], 1, k.shape[3])], dim=2)
    values = torch.cat([_take(v, inside), virtual_value.to(v.dtype)], dim=2)
    bias = torch.cat([torch.zeros_like(inside, dtype=torch.float32), (fill.float() + n_out.log())[:, None]], 1)
    bias[:, :-1].masked_fill_(~inside_valid, float("-inf"))
    result = q.new_zeros(q.shape[0], q.shape[1], n + 1, q.shape[3])  # slot n collects the padding
    if inside.shape[1]:
        attended = F.scaled_dot_product_attention(_take(q, inside), k, v, scale=1.0)
        result = result.scatter(2, _expand_index(inside.where(inside_valid, n), q), attended)
    mask = bias[:, None, None, :].to(q.dtype)
    attended = F.scaled_dot_product_attention(_take(q, outside), keys, values, attn_mask=mask, scale=1.0)
    result = result.scatter(2, _expand_index(outside.where(outside_valid, n), q), attended)
    return result[:, :, :n]


def _selected_first(selected: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, N) bool -> per row the selected token indices in order, padded to the widest row with other (valid)
    token indices, and which entries are selected ones."""
    counts = selected.sum(-1)
    order = torch.argsort(selected.to(torch.uint8), dim=-1, descending=True, stable=True)[:, : int(counts.max())]
    return order, torch.arange(order.shape[1], device=order.device) < counts[:, None]


def _expand_index(index: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return index[:, None, :, None].expand(-1, like.shape[1], -1, like.shape[3])


def _take(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(B, H, N, d) gathered at (B, M) token indices -> (B, H, M, d)."""
    return x.gather(2, _expand_index(index, x))


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int, ops: Ops = nn):
        super().__init__()
        self.heads = heads
        self.scale = dim_head**-0.5
        self.norm = ops.LayerNorm(dim)
        self.to_qkv = ops.Linear(dim, heads * dim_head * 3, bias=False)
        self.to_out = ops.Linear(heads * dim_head, dim, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        token_mask: torch.Tensor | None,
        groups: RowGroups | None = None,
        row_latents: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x: (B, N, dim), or one row per group of ``groups`` whose masks differ (the result has all B rows);
        token_mask: (B, N) bool, this layer's token masks, or None (unmasked); row_latents: (B,) latent of each
        row (scope of the fill minimum) or None (the whole call)."""
        q, k, v = (rearrange(t, "b n (h d) -> b h n d", h=self.heads) for t in self.to_qkv(self.norm(x)).chunk(3, -1))
        if token_mask is None:
            out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        elif groups is None:
            out = min_filled_attention(q * self.scale, k, v, token_mask, row_latents=row_latents)
        else:  # masks differ within a group; its rows share their logits, hence their minima
            q = q * self.scale
            fill = fill_logit(groups.expand(row_min_logits(q, k)), row_latents)
            out = min_filled_attention(groups.expand(q), groups.expand(k), groups.expand(v), token_mask, fill)
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

    def forward(
        self,
        x: torch.Tensor,
        token_masks: torch.Tensor | None,
        groups: RowGroups | None = None,
        row_latents: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x: (B, N, dim), or one row per group of equal rows; rows are computed once until their masks differ."""
        for i, (attn, ff) in enumerate(self.layers):
            token_mask = None if token_masks is None else token_masks[i]
            if groups is not None and token_mask is not None and not groups.uniform(token_mask):
                x = attn(x, token_mask, groups, row_latents).add_(groups.expand(x))
                groups = None
            elif groups is None or token_mask is None:
                x = attn(x, token_mask, row_latents=row_latents if groups is None else None).add_(x)
            else:
                picked = None if row_latents is None else groups.pick(row_latents)
                x = attn(x, groups.pick(token_mask), row_latents=picked).add_(x)
            x = ff(x).add_(x)
        return x if groups is None else groups.expand(x)


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

    def forward(
        self,
        x: torch.Tensor,
        token_masks: torch.Tensor | None = None,
        groups: RowGroups | None = None,
        row_latents: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x: (B, C, h, w), or one row per group of ``groups``; token_masks: (depth, B, tokens) bool from
        :func:`to_token_masks`, or None. Returns (B, C, h, w)."""
        _, _, h, w = x.shape
        p = self.patch
        gh, gw = -(-h // p), -(-w // p)
        emb = self.to_patch_embedding
        y = F.pad(emb[0](x), (0, gw * p - w, 0, gh * p - h))
        y = rearrange(y, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=p, p2=p)
        y = emb[4](emb[3](emb[2](y)))
        y = y + posemb_sincos_2d(gh, gw, self.dim).to(y.device, y.dtype)
        y = self.transformer(y, token_masks, groups, row_latents)
        y = rearrange(y, "b (h w) (p1 p2 c) -> b c (h p1) (w p2)", h=gh, p1=p, p2=p)
        return self.to_out[1](y[:, :, :h, :w])
