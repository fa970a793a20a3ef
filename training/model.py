"""The training forward pass: noised latents -> adapter residuals -> frozen UNet -> pose-weighted ε loss.

Memory-wise the step differs from the official one (``StablePose.apply_model`` / ``ControlUNetModel``) only
in how it is computed, not in what: the UNet encoder and middle block run without autograd, frozen weights
never get gradients (the official step lets the whole decoder accumulate unused weight gradients), and the
decoder and the adapter can be recomputed in the backward pass (gradient checkpointing).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from stablepose_core.model.adapter import StablePoseAdapter
from stablepose_core.model.masks import TRAINING, MaskSettings, pmsa_masks, training_loss_mask
from stablepose_host import import_comfy

from .diffusion import alphas_cumprod, pose_weighted_mse, q_sample


def unet_eps(
    unet: nn.Module,
    x: torch.Tensor,
    timesteps: torch.Tensor,
    context: torch.Tensor,
    residuals: list[torch.Tensor],
    checkpoint_decoder: bool = False,
) -> torch.Tensor:
    """ε of a ComfyUI ``UNetModel`` with the 13 adapter residuals added where
    ``unet(x, t, context, control=control_dict(residuals))`` adds them (middle block output, then each decoder
    skip), without autograd through the encoder and, optionally, recomputing each decoder block in backward."""
    embed = import_comfy("comfy.ldm.modules.diffusionmodules.openaimodel").forward_timestep_embed
    timestep_embedding = import_comfy("comfy.ldm.modules.diffusionmodules.util").timestep_embedding
    with torch.no_grad():
        emb = unet.time_embed(timestep_embedding(timesteps, unet.model_channels).to(x.dtype))
        skips = []
        h = x
        for block in unet.input_blocks:
            h = embed(block, h, emb, context, {})
            skips.append(h)
        h = embed(unet.middle_block, h, emb, context, {})
    h = h + residuals[-1].to(h.dtype)
    for index, block in enumerate(unet.output_blocks):
        j = len(skips) - 1 - index
        h = torch.cat([h, skips[j] + residuals[j].to(h.dtype)], dim=1)
        shape = skips[j - 1].shape if j > 0 else None
        if checkpoint_decoder and torch.is_grad_enabled():
            h = checkpoint(embed, block, h, emb, context, {}, shape, use_reentrant=False)
        else:
            h = embed(block, h, emb, context, {}, shape)
    return unet.out(h.type(x.dtype))


class StablePoseTrainer(nn.Module):
    """What DDP wraps and checkpoints: the adapter (and the UNet decoder when unlocked) plus the loss.

    The frozen UNet is held outside the module tree, so neither DDP nor checkpoints touch its weights.
    """

    def __init__(
        self,
        adapter: StablePoseAdapter,
        unet: nn.Module,
        alpha: float,
        mask_schedule: str = TRAINING,
        train_decoder: bool = False,
        checkpoint_decoder: bool = False,
    ):
        super().__init__()
        self.adapter = adapter
        self.decoder = nn.ModuleDict({"output_blocks": unet.output_blocks, "out": unet.out}) if train_decoder else None
        self._frozen = (unet,)
        self.alpha = alpha
        self.masks = MaskSettings.for_schedule(mask_schedule)
        self.checkpoint_decoder = checkpoint_decoder
        self.register_buffer("abar", alphas_cumprod(), persistent=False)

    @property
    def unet(self) -> nn.Module:
        return self._frozen[0]

    def forward(
        self,
        latents: torch.Tensor,
        context: torch.Tensor,
        pose: torch.Tensor,
        noise: torch.Tensor,
        timesteps: torch.Tensor,
    ) -> torch.Tensor:
        """(B,) loss of official ``p_losses`` for clean latents, text context, pose images in [-1, 1]."""
        x_t = q_sample(latents, timesteps, noise, self.abar)
        with torch.autocast(pose.device.type, enabled=False):  # the mask threshold is a float32 test
            no_uncond = torch.zeros(pose.shape[0], dtype=torch.bool, device=pose.device)
            masks = pmsa_masks(pose.float(), no_uncond, self.masks)
            loss_mask = training_loss_mask(pose.float(), self.masks)
        residuals = self.adapter(x_t, timesteps, context, pose_image=pose, masks=masks)
        unet_dtype = self.unet.input_blocks[0][0].weight.dtype
        eps = unet_eps(
            self.unet, x_t.to(unet_dtype), timesteps, context.to(unet_dtype), residuals, self.checkpoint_decoder
        )
        return pose_weighted_mse(eps, noise, loss_mask, self.alpha)
