"""Port of upstream ``slbo/utils/truncated_normal.py``.

``LimitedEntNormal`` is a Normal whose *entropy* is the (upstream) entropy restricted to
the action box [-2, 2]; sampling, log-prob and KL are the plain Normal's. The formula is
transcribed literally from upstream.
"""
import numpy as np
import torch
from torch.distributions import Normal


class LimitedEntNormal(Normal):
    def entropy(self):
        limit = 2.
        lo = (-limit - self.loc) / self.scale / np.sqrt(2)
        hi = (limit - self.loc) / self.scale / np.sqrt(2)
        return 0.5 * (self.scale.log() + np.log(2 * np.pi) / 2) * (torch.erf(hi) - torch.erf(lo)) + 0.5 * \
            (torch.exp(-hi * hi) * hi - torch.exp(-lo * lo) * lo)
