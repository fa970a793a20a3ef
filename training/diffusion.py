"""The DDPM objective of SD1.5 training and a small DDIM sampler for preview grids.

Schedule as LDM's ``register_schedule`` with ``configs/stable_pose/humanart.yaml``: 1000 steps, "linear"
betas = linspace(√0.00085, √0.012)². Loss as the official ``p_losses`` with ``l_simple_weight`` 1, ``logvar``
0 and ``original_elbo_weight`` 0: per-element ε-MSE, weighted α inside the pose mask and 1 outside, averaged.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

NUM_TIMESTEPS = 1000
LINEAR_START = 0.00085
LINEAR_END = 0.012


def alphas_cumprod(num_timesteps: int = NUM_TIMESTEPS) -> torch.Tensor:
    """ᾱ_t (float64) of the SD1.5 "linear" schedule."""
    betas = torch.linspace(LINEAR_START**0.5, LINEAR_END**0.5, num_timesteps, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


def q_sample(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    """x_t = √ᾱ_t x_0 + √(1-ᾱ_t) ε."""
    a = abar.to(x0.device)[t].float().view(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1.0 - a).sqrt() * noise


def pose_weighted_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, alpha: float) -> torch.Tensor:
    """(B,) per-sample loss: mean of ``mse·mask·α + mse·(1-mask)`` (official ``p_losses``); mask (B, 1, h, w)."""
    mse = (pred.float() - target.float()) ** 2
    mask = mask.to(mse.dtype)
    return (mse * mask * alpha + mse * (1.0 - mask)).mean(dim=(1, 2, 3))


EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def ddim_sample(eps_fn: EpsFn, noise: torch.Tensor, steps: int, abar: torch.Tensor) -> torch.Tensor:
    """Deterministic DDIM (η = 0) from pure noise; ``eps_fn(x, t)`` predicts ε with t a (B,) long tensor.
    Timesteps are LDM's "uniform" DDIM discretisation (1, 1+k, …)."""
    stride = NUM_TIMESTEPS // steps
    timesteps = list(range(0, NUM_TIMESTEPS, stride))[::-1]
    abar = abar.to(noise.device)
    x = noise
    for i, t in enumerate(timesteps):
        t_batch = torch.full((x.shape[0],), t + 1, device=x.device, dtype=torch.long).clamp(max=NUM_TIMESTEPS - 1)
        a_t = abar[t_batch[0]].float()
        a_prev = abar[timesteps[i + 1] + 1].float() if i + 1 < len(timesteps) else abar[0].float()
        eps = eps_fn(x, t_batch).float()
        x0 = (x - (1.0 - a_t).sqrt() * eps) / a_t.sqrt()
        x = a_prev.sqrt() * x0 + (1.0 - a_prev).sqrt() * eps
    return x
