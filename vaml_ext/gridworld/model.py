"""Categorical dynamics model for the gridworld: one table of logits per run.

``P_φ(ŝ | s, a) = softmax(φ[run, s, a, :])`` over *all* ``S = (N−2)²`` cells, so the
prediction space grows quadratically with the grid (paper §5.1). Why a table rather
than a network: the MDP is finite and the agent observes only its cell index, so the
table *is* the general categorical model (a network on one-hot inputs is a
reparameterisation of it); it keeps every expectation an exact sum that can be
checked by hand, adds no function-approximation confound to the MLE-vs-value-aware
comparison, and lets many independent runs (methods × seeds) live in one
``[runs, S·A, S]`` tensor updated by one optimiser step (Adam is elementwise, so
runs do not interact). Logits start at 0: an untrained row predicts the uniform
distribution over all cells.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from vaml_ext.gridworld.env import NUM_ACTIONS


def sample_categorical(probs: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """One draw per row of ``probs[..., K]`` by inverse CDF (batched, any leading shape)."""
    u = torch.rand(probs.shape[:-1] + (1,), generator=generator, dtype=probs.dtype)
    cdf = probs.cumsum(-1)
    idx = (cdf < u * cdf[..., -1:]).sum(-1)
    return idx.clamp_max(probs.shape[-1] - 1)


class TabularCategoricalModel(nn.Module):
    """Batched categorical transition model: ``logits`` has shape ``[runs, S·A, S]``."""

    def __init__(self, num_runs: int, n_states: int, n_actions: int = NUM_ACTIONS, dtype=torch.float32):
        super().__init__()
        self.num_runs, self.n_states, self.n_actions = int(num_runs), int(n_states), int(n_actions)
        self.logits = nn.Parameter(torch.zeros(num_runs, n_states * n_actions, n_states, dtype=dtype))

    def row_index(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Flat (state, action) row index ``s·A + a``."""
        return s * self.n_actions + a

    def log_probs(self) -> torch.Tensor:
        """``log P_φ(· | s, a)`` for every run and (s, a): ``[runs, S·A, S]``."""
        return torch.log_softmax(self.logits, dim=-1)

    def rows(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Logits of the rows ``(s, a)``; ``s``, ``a``: ``[runs, n]`` -> ``[runs, n, S]``."""
        idx = self.row_index(s, a)
        return torch.gather(self.logits, 1, idx.unsqueeze(-1).expand(-1, -1, self.n_states))

    @torch.no_grad()
    def sample(self, s: torch.Tensor, a: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Sample ``ŝ ~ P_φ(·|s, a)``; ``s``, ``a``: ``[runs, n]`` -> ``[runs, n]``."""
        probs = torch.softmax(self.rows(s, a), dim=-1)
        return sample_categorical(probs, generator)
