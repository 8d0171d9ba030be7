"""Port of upstream ``slbo/utils/normalizer.py``: running Gaussian normalisers.

SLBO keeps three (``Normalizers``): states, actions and state differences
``s' - s``. After each stage's real-data collection the running mean/std are updated
with the parallel-variance formula (Chan et al.) on the *new* samples only; the
dynamics model consumes normalised states and predicts normalised differences, and
the multi-step loss is measured in units of the difference std.
"""
from __future__ import annotations

import logging
from typing import List

import numpy as np
import torch
from torch import nn

from slbo.utils.np_utils import gaussian_kl

logger = logging.getLogger("slbo")


class GaussianNormalizer(nn.Module):
    def __init__(self, name: str, shape: List[int], eps=1e-8, verbose=False):  # batch_size x ...
        super().__init__()

        self.name = name
        self.shape = shape
        self.eps = eps
        self._verbose = verbose

        self.register_buffer('op_mean', torch.zeros(shape, dtype=torch.float32))
        self.register_buffer('op_std', torch.ones(shape, dtype=torch.float32))
        self.register_buffer('op_n', torch.zeros([], dtype=torch.int64))

    def extra_repr(self):
        return f'shape={self.shape}'

    def forward(self, x: torch.Tensor, inverse=False):
        if inverse:
            return x * self.op_std + self.op_mean
        return (x - self.op_mean) / self.op_std.clamp_min(self.eps)

    def update(self, samples: np.ndarray):
        old_mean, old_std, old_n = self.op_mean.cpu().numpy(), self.op_std.cpu().numpy(), int(self.op_n.item())
        samples = samples - old_mean

        m = samples.shape[0]
        delta = samples.mean(axis=0)
        new_n = old_n + m
        new_mean = old_mean + delta * m / new_n
        new_std = np.sqrt((old_std**2 * old_n + samples.var(axis=0) * m + delta**2 * old_n * m / new_n) / new_n)

        kl_old_new = gaussian_kl(new_mean, new_std, old_mean, old_std).sum()
        self.load_state_dict({'op_mean': torch.as_tensor(new_mean, dtype=torch.float32),
                              'op_std': torch.as_tensor(new_std, dtype=torch.float32),
                              'op_n': torch.as_tensor(new_n, dtype=torch.int64)})

        if self._verbose:
            logger.info("updating Normalizer<%s>, KL divergence = %.6f", self.name, kl_old_new)

    def fast(self, samples: np.ndarray, inverse=False) -> np.ndarray:
        mean, std = self.op_mean.cpu().numpy(), self.op_std.cpu().numpy()
        if inverse:
            return samples * std + mean
        return (samples - mean) / np.maximum(std, self.eps)


class Normalizers(nn.Module):
    def __init__(self, dim_action: int, dim_state: int):
        super().__init__()
        self.action = GaussianNormalizer('action', [dim_action])
        self.state = GaussianNormalizer('state', [dim_state])
        self.diff = GaussianNormalizer('diff', [dim_state])

    def forward(self):
        pass
