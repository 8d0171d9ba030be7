"""Port of upstream ``slbo/loss/multi_step_loss.py``: SLBO's H-step model loss (Luo et al., Eq. 6.1).

For a length-H window of real transitions ``(s_i, a_i, s_{i+1})``, i = 0..H-1, the model
is unrolled from ``ŝ_0 = s_0``::

    ŝ_{i+1} = f_φ(ŝ_i, a_i)
    e_i     = ((ŝ_{i+1} - ŝ_i) - (s_{i+1} - s_i)) / max(std_Δ, 1e-6)
    L       = (1/H) Σ_i criterion(e_i)               (criterion 'L2' = per-sample RMS)
    ŝ_{i+1} <- s_{i+1} + m_i (ŝ_{i+1} - s_{i+1})      (m_i = 0 at done/timeout: restart)

then averaged over the batch. Optimiser (``build_backward``): Adam(lr), L2 weight decay
``wd · Σ ||w||² / 2`` added to the loss, global-norm gradient clipping at 2.0.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from slbo.utils.normalizer import Normalizers
from slbo.utils.torch_utils import as_float32, module_device


def _t(x, device=None):
    return as_float32(x, device)


class MultiStepLoss(nn.Module):
    def __init__(self, model: nn.Module, normalizers: Normalizers, dim_state: int, dim_action: int,
                 criterion: nn.Module, step=4):
        super().__init__()
        self._step = step
        self._criterion = criterion
        self.__dict__['_model'] = model  # not a sub-module: the model is owned by main
        self.__dict__['_normalizers'] = normalizers
        self.dim_state = dim_state
        self.dim_action = dim_action
        self.optimizer = None

    def forward(self, states, actions, next_states_, masks):
        """All inputs have shape [num_steps, batch_size, xxx]; returns per-sample loss [batch_size]."""
        cur_states = states[0]
        loss = []
        for i in range(self._step):
            next_states = self._model(cur_states, actions[i])
            diffs = next_states - cur_states - next_states_[i] + states[i]
            weighted_diffs = diffs / self._normalizers.diff.op_std.clamp_min(1e-6)
            loss.append(self._criterion(weighted_diffs, 0, cur_states))

            if i < self._step - 1:
                cur_states = states[i + 1] + masks[i].unsqueeze(-1) * (next_states - states[i + 1])

        return torch.stack(loss).sum(0) / self._step

    # -- upstream `get_loss(..., fetch='loss')` / `fetch='train loss grad_norm'` ---------
    def get_loss(self, states, next_states_, actions, masks):
        with torch.no_grad():
            d = module_device(self._model)
            return self.forward(_t(states, d), _t(actions, d), _t(next_states_, d), _t(masks, d)).cpu().numpy()

    def build_backward(self, lr: float, weight_decay: float, max_grad_norm=2.):
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_grad_norm = max_grad_norm
        self.optimizer = torch.optim.Adam(self._model.parameters(), lr=lr)

    def training_loss(self, states, next_states_, actions, masks) -> torch.Tensor:
        """Upstream ``op_loss.reduce_mean(name='Loss')``: the batch-mean of :meth:`forward`."""
        d = module_device(self._model)
        return self.forward(_t(states, d), _t(actions, d), _t(next_states_, d), _t(masks, d)).mean()

    def train_step(self, states, next_states_, actions, masks):
        """Upstream ``get_loss(..., fetch='train loss grad_norm')``: one Adam step on
        ``training_loss + weight_decay · Σ ||w||²/2`` with the global gradient norm clipped
        at ``max_grad_norm``. Returns (loss before the step, global grad-norm before clipping).
        """
        params = list(self._model.parameters())
        loss = self.training_loss(states, next_states_, actions, masks)
        regularization = self.weight_decay * sum(p.pow(2).sum() / 2 for p in params)  # tf.nn.l2_loss
        self.optimizer.zero_grad(set_to_none=True)
        (loss + regularization).backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
        self.optimizer.step()
        return np.asarray(float(loss.detach())), float(grad_norm)
