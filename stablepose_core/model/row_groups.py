"""Equal rows of a batch, so work on them is done once.

Under classifier-free guidance the sampler stacks the cond and uncond rows of one latent into one call (the
official ``[uncond; cond]`` layout; ComfyUI's batched conds). The PMSA inject block sits before any text
cross-attention, so those rows arrive at it equal (same latent, same timestep) and differ only in their pose
masks: its input convolution, patch embedding and first attention projections need computing once per latent.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class RowGroups:
    """Rows grouped by equality: ``first`` (G,) is one row of each group, ``index`` (B,) each row's group."""

    first: torch.Tensor
    index: torch.Tensor

    @classmethod
    def of(cls, *tensors: torch.Tensor) -> RowGroups | None:
        """Groups of rows equal in every tensor (all (B, ...)), or None when no two rows are equal.

        Candidates come from a per-row sum and are confirmed by exact comparison, so unequal rows are never merged.
        """
        rows = tensors[0].shape[0]
        if rows < 2:
            return None
        _, index = torch.unique(tensors[0].flatten(1).float().sum(1), return_inverse=True)
        groups = int(index.max()) + 1
        if groups == rows:
            return None
        order = torch.arange(rows, device=index.device)
        first = torch.full((groups,), rows, device=index.device).scatter_reduce(0, index, order, "amin")
        if not all(torch.equal(t, t[first[index]]) for t in tensors):
            return None
        return cls(first, index)

    def pick(self, x: torch.Tensor) -> torch.Tensor:
        """(B, ...) -> (G, ...): one row per group."""
        return x[self.first]

    def expand(self, x: torch.Tensor) -> torch.Tensor:
        """(G, ...) -> (B, ...): each row gets its group's row."""
        return x[self.index]

    def uniform(self, x: torch.Tensor) -> bool:
        """Whether ``x`` (B, ...) is also equal within every group."""
        return torch.equal(x, self.expand(self.pick(x)))
