"""The Stable-Pose adapter (Wang et al. 2024, Sec. 3): a trainable copy of the SD UNet encoder + middle block
whose inject layer runs the pose-masked ViT on pose features, with ControlNet-style zero convs.

Module and parameter names equal the official ``StablePoseAdapter`` (``stable_pose_adapter.*`` in the released
checkpoints, minus that prefix), so weights copy between the two without renaming. The network is built from
an :class:`AdapterConfig` (inferred from a checkpoint or from the base UNet's config, never from a fixed
resolution) and runs at any latent size and batch.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .pmsa import PMSAViT, to_token_masks
from .row_groups import RowGroups
from .unet_blocks import Downsample, GroupNorm32, Ops, ResBlock, SpatialTransformer, timestep_embedding

POSE_HIDDEN = (32, 64, 64, 128, 128)  # pre-extractor widths; strides 2 at the 2nd and 4th conv (official)


@dataclass(frozen=True)
class AdapterConfig:
    """Architecture of an adapter; defaults are the released SD1.5 model (``configs/stable_pose/humanart.yaml``)."""

    in_channels: int = 4
    model_channels: int = 320
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    attention_levels: tuple[int, ...] = (0, 1, 2)
    num_heads: int = 8
    num_head_channels: int = -1
    transformer_depth: int = 1
    context_dim: int = 768
    use_linear_in_transformer: bool = False
    cond_channels: int = 3
    inject_layers: tuple[int, ...] = (1,)
    inject_channels: tuple[int, ...] = (192,)
    vit_dim: int = 512
    vit_depth: int = 2
    vit_heads: int = 8
    vit_mlp_dim: int = 512
    vit_patch: int = 2
    vit_reduced_channels: int = 128

    def __post_init__(self) -> None:
        if len(self.inject_layers) != 1 or len(self.inject_channels) != 1:
            raise ValueError(
                f"one inject layer is supported (as released), got layers {self.inject_layers} "
                f"with channels {self.inject_channels}"
            )
        if self.vit_dim != self.vit_reduced_channels * self.vit_patch**2:
            raise ValueError(
                f"vit_dim ({self.vit_dim}) must equal vit_reduced_channels × vit_patch² "
                f"({self.vit_reduced_channels}×{self.vit_patch}²): the ViT's tokens are unfolded back into patches"
            )
        if self.inject_layers[0] % (self.num_res_blocks + 1) == 0:
            raise ValueError(f"inject layer {self.inject_layers[0]} is a downsampling block, not a res-block")

    @classmethod
    def sd15(cls) -> AdapterConfig:
        return cls()

    @classmethod
    def from_dict(cls, values: dict) -> AdapterConfig:
        known = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def time_embed_dim(self) -> int:
        return self.model_channels * 4

    def heads_for(self, channels: int) -> tuple[int, int]:
        """(heads, dim_head) of a SpatialTransformer at ``channels``, as LDM's ``num_heads``/``num_head_channels``."""
        if self.num_head_channels == -1:
            return self.num_heads, channels // self.num_heads
        return channels // self.num_head_channels, self.num_head_channels


class AttnResBlock(nn.Module):
    """The inject-layer block: conv + time embedding -> PMSA ViT -> GroupNorm -> + conv(pose features) -> zero conv.

    Official ``AttnResBlock``: ``in_layers`` and ``out_layers`` have no normalisation (Identity at index 0).
    ``conv(pose features)`` does not depend on the timestep, so it is :meth:`pose_term`, computed once per
    sampling by :meth:`StablePoseAdapter.encode_pose` and passed to :meth:`forward`.
    """

    def __init__(self, channels: int, out_channels: int, config: AdapterConfig, cond_channels: int, ops: Ops = nn):
        super().__init__()
        self.in_layers = nn.Sequential(nn.Identity(), nn.SiLU(), ops.Conv2d(channels, out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), ops.Linear(config.time_embed_dim, out_channels))
        self.out_layers = nn.Sequential(
            nn.Identity(), nn.SiLU(), nn.Dropout(0.0), ops.Conv2d(out_channels, out_channels, 3, padding=1)
        )
        self.attn_layer = PMSAViT(
            channels=out_channels,
            dim=config.vit_dim,
            depth=config.vit_depth,
            heads=config.vit_heads,
            dim_head=out_channels // config.vit_heads,
            mlp_dim=config.vit_mlp_dim,
            patch=config.vit_patch,
            reduced_channels=config.vit_reduced_channels,
            ops=ops,
        )
        self.norm = GroupNorm32(32, out_channels, affine=False)
        self.cond_conv = ops.Conv2d(cond_channels, out_channels, 3, padding=1)
        self.skip_connection = nn.Identity() if out_channels == channels else ops.Conv2d(channels, out_channels, 1)

    def pose_term(self, pose_features: torch.Tensor) -> torch.Tensor:
        """The block's timestep-independent input: ``cond_conv`` of the pose feature extractor's output."""
        return self.cond_conv(pose_features)

    def forward(
        self,
        x: torch.Tensor,
        emb: torch.Tensor,
        pose_term: torch.Tensor,
        token_masks: torch.Tensor | None,
        row_latents: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """token_masks: (vit_depth, B, tokens) bool from :func:`.pmsa.to_token_masks`, or None (unmasked)."""
        groups = RowGroups.of(x, emb)  # cond/uncond rows of one latent: computed once up to where masks differ
        rows_x, rows_emb = (x, emb) if groups is None else (groups.pick(x), groups.pick(emb))
        h = self.in_layers(rows_x).add_(self.emb_layers(rows_emb).type(x.dtype)[..., None, None])
        h = self.norm(self.attn_layer(h, token_masks, groups, row_latents)).add_(pose_term)  # in place: fresh outputs
        return self.out_layers(h).add_(self.skip_connection(x))


class TimestepSequential(nn.Sequential):
    """An ``input_blocks.i`` entry: layers that take the time embedding, text context or pose inputs, by type."""

    def forward(  # type: ignore[override]
        self,
        x: torch.Tensor,
        emb: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        pose_term: torch.Tensor | None = None,
        token_masks: torch.Tensor | None = None,
        row_latents: torch.Tensor | None = None,
    ) -> torch.Tensor:
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context)
            elif isinstance(layer, AttnResBlock):
                x = layer(x, emb, pose_term, token_masks, row_latents)
            else:
                x = layer(x)
        return x


class PoseFeatureExtractor(nn.Module):
    """Pose image (B, 3, H, W) -> features at H/8 (official ``FeatureExtractor``; 3 stride-2 convs, SiLU between)."""

    def __init__(self, cond_channels: int, inject_channels: int, ops: Ops = nn):
        super().__init__()
        layers: list[nn.Module] = []
        widths = (cond_channels, *POSE_HIDDEN)
        for i, (cin, cout) in enumerate(itertools.pairwise(widths)):
            layers += [ops.Conv2d(cin, cout, 3, padding=1, stride=2 if i in (1, 3) else 1), nn.SiLU()]
        self.pre_extractor = nn.Sequential(*layers)
        self.extractors = nn.ModuleList(
            [nn.Sequential(ops.Conv2d(POSE_HIDDEN[-1], inject_channels, 3, padding=1, stride=2), nn.SiLU())]
        )
        self.zero_convs = nn.ModuleList([ops.Conv2d(inject_channels, inject_channels, 3, padding=1)])

    def forward(self, pose_image: torch.Tensor) -> list[torch.Tensor]:
        h = self.pre_extractor(pose_image)
        return [zero(extract(h)) for extract, zero in zip(self.extractors, self.zero_convs, strict=False)]


def _zero_conv(channels: int, ops: Ops) -> TimestepSequential:
    return TimestepSequential(ops.Conv2d(channels, channels, 1))


class StablePoseAdapter(nn.Module):
    """Computes the 13 residuals (12 decoder skips in input-block order, then the middle block) for a frozen UNet."""

    def __init__(self, config: AdapterConfig, operations: Ops = nn):
        """``operations``: layer classes to build with (``torch.nn``, or e.g. ComfyUI's cast-aware ``comfy.ops``)."""
        super().__init__()
        self.config = config
        self.ops = ops = operations
        self.compute_dtype: torch.dtype | None = None  # run in this dtype instead of the weights' (manual cast)
        self.gradient_checkpointing = False
        c = config
        ch = c.model_channels
        self.time_embed = nn.Sequential(
            ops.Linear(ch, c.time_embed_dim), nn.SiLU(), ops.Linear(c.time_embed_dim, c.time_embed_dim)
        )
        self.feature_extractor = PoseFeatureExtractor(c.cond_channels, c.inject_channels[0], ops)
        self.input_blocks = nn.ModuleList([TimestepSequential(ops.Conv2d(c.in_channels, ch, 3, padding=1))])
        self.zero_convs = nn.ModuleList([_zero_conv(ch, ops)])
        for level, mult in enumerate(c.channel_mult):
            for _ in range(c.num_res_blocks):
                out = mult * c.model_channels
                if len(self.input_blocks) in c.inject_layers:
                    layers: list[nn.Module] = [AttnResBlock(ch, out, c, c.inject_channels[0], ops)]
                else:
                    layers = [ResBlock(ch, c.time_embed_dim, out, ops=ops)]
                ch = out
                if level in c.attention_levels:
                    layers.append(self._transformer(ch))
                self.input_blocks.append(TimestepSequential(*layers))
                self.zero_convs.append(_zero_conv(ch, ops))
            if level != len(c.channel_mult) - 1:
                self.input_blocks.append(TimestepSequential(Downsample(ch, ops)))
                self.zero_convs.append(_zero_conv(ch, ops))
        self.middle_block = TimestepSequential(
            ResBlock(ch, c.time_embed_dim, ops=ops), self._transformer(ch), ResBlock(ch, c.time_embed_dim, ops=ops)
        )
        self.middle_block_out = _zero_conv(ch, ops)

    def _transformer(self, channels: int) -> SpatialTransformer:
        heads, dim_head = self.config.heads_for(channels)
        c = self.config
        return SpatialTransformer(
            channels, heads, dim_head, c.transformer_depth, c.context_dim, c.use_linear_in_transformer, self.ops
        )

    @property
    def dtype(self) -> torch.dtype:
        return self.compute_dtype or self.input_blocks[0][0].weight.dtype

    def encode_pose(self, pose_image: torch.Tensor) -> list[torch.Tensor]:
        """The pose terms: the timestep-independent pose input of each inject block (pose features through the
        block's ``cond_conv``, :meth:`AttnResBlock.pose_term`); compute once per sampling, pass as ``pose_terms``."""
        features = self.feature_extractor(pose_image.to(self.dtype))
        blocks = [self.input_blocks[index][0] for index in self.config.inject_layers]
        return [block.pose_term(feature) for block, feature in zip(blocks, features, strict=True)]

    def forward(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        context: torch.Tensor,
        pose_image: torch.Tensor | None = None,
        masks: torch.Tensor | None = None,
        pose_terms: list[torch.Tensor] | None = None,
        row_latents: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """x (B, 4, h, w), timesteps (B,), context (B, T, D), pose image (B, 3, 8h, 8w) in [-1, 1] or its pose
        terms (:meth:`encode_pose`), masks (vit_depth, B, h, w) bool from :func:`.masks.pmsa_masks` or None;
        row_latents (B,): which latent each row samples (PMSA's fill scope, see :mod:`.pmsa`) or None."""
        if pose_terms is None:
            if pose_image is None:
                raise ValueError("the adapter needs a pose image or its pose terms (encode_pose)")
            pose_terms = self.encode_pose(pose_image)
        dtype = self.dtype
        emb = self.time_embed(timestep_embedding(timesteps, self.config.model_channels).to(dtype))
        context = context.to(dtype)
        token_masks = None if masks is None else to_token_masks(masks.to(x.device), self.config.vit_patch)
        h = x.to(dtype)
        outs = []
        for index, (block, zero_conv) in enumerate(zip(self.input_blocks, self.zero_convs, strict=False)):
            if index in self.config.inject_layers:
                pose_term = pose_terms[self.config.inject_layers.index(index)]
                h = self._run(block, h, emb, context, pose_term, token_masks, row_latents)
            else:
                h = self._run(block, h, emb, context)
            outs.append(zero_conv(h))
        h = self._run(self.middle_block, h, emb, context)
        outs.append(self.middle_block_out(h))
        return outs

    def _run(self, block: nn.Module, *args) -> torch.Tensor:
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)


def control_dict(residuals: list[torch.Tensor]) -> dict[str, list[torch.Tensor]]:
    """The adapter's residuals in the layout an LDM/ComfyUI UNet pops them: decoder skips and middle block."""
    return {"input": [], "middle": [residuals[-1]], "output": list(residuals[:-1])}


def zero_init_convs(adapter: StablePoseAdapter) -> None:
    """Zero the zero convs (ControlNet's zero_module): the adapter starts as a no-op on the base model."""
    zero = [*adapter.zero_convs, adapter.middle_block_out, *adapter.feature_extractor.zero_convs]
    for module in zero:
        for p in module.parameters():
            nn.init.zeros_(p)
    for block in adapter.input_blocks:
        for layer in block:
            if isinstance(layer, AttnResBlock):
                nn.init.zeros_(layer.out_layers[3].weight)
                nn.init.zeros_(layer.out_layers[3].bias)
