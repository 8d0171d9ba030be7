"""Port of upstream ``slbo/algos/TRPO.py``: TRPO (Schulman et al., 2015) as used by SLBO.

One :meth:`TRPO.train` call, on a batch of virtual samples with GAE advantages:

1. normalise advantages; surrogate ``L(θ) = mean_i r_i(θ) Â_i + c_ent · H(π_θ)`` with
   ``r_i = π_θ(a_i|s_i) / π_old(a_i|s_i)``;
2. natural gradient ``x ≈ F⁻¹ g`` by 10 conjugate-gradient iterations on the Fisher-vector
   product (Hessian of mean KL(π_old || π_θ)) plus damping 0.1;
3. step ``β = sqrt(2 δ / xᵀ F x)`` (δ = max_kl = 0.01), backtracking ×0.5 up to 10 times until
   the surrogate improves and mean KL ≤ 1.5 δ; otherwise the old parameters are restored;
4. value function: ``n_vf_iters`` (5) epochs of Adam(vf_lr = 1e-3) on MSE to the GAE returns,
   minibatch 64.
"""
from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.distributions import kl_divergence

from slbo.utils.dataset import Dataset
from slbo.utils.torch_utils import as_float32, flat_grad, get_flat, hessian_vec_prod, module_device, set_flat

logger = logging.getLogger("slbo")


def average_l2_norm(x):
    return np.sqrt((x**2).mean())


# for damping, modify func_Ax
def conj_grad(mat_mul_vec: Callable[[np.ndarray], np.ndarray], b, n_iters=10, residual_tol=1e-10, verbose=False):
    p = b.copy()
    r = b.copy()
    x = np.zeros_like(b)
    r_dot_r = r.dot(r)

    for i in range(n_iters):
        if verbose:
            logger.info('[CG] iters = %d, |Res| = %.6f, |x| = %.6f', i, r_dot_r, np.linalg.norm(x))
        z = mat_mul_vec(p)
        v = r_dot_r / p.dot(z)
        x += v * p
        r -= v * z
        new_r_dot_r = r.dot(r)
        if new_r_dot_r < residual_tol:
            break
        mu = new_r_dot_r / r_dot_r
        p = r + mu * p
        r_dot_r = new_r_dot_r
    return x


def _t(x, device=None):
    return as_float32(x, device)


class TRPO(object):
    """Upstream subclasses ``lunzi.nn.Module``; a plain object here because torch's
    ``nn.Module.train(mode)`` would clash with upstream's ``TRPO.train(...)``."""

    def __init__(self, dim_state: int, dim_action: int, policy, vfn, max_kl: float,
                 n_cg_iters: int, ent_coef=0.0, cg_damping=0.01, vf_lr=3e-4, n_vf_iters=3):
        self.dim_state = dim_state
        self.policy = policy
        self.ent_coef = ent_coef
        self.vf = vfn
        self.n_cg_iters = n_cg_iters
        self.max_kl = max_kl
        self.cg_damping = cg_damping
        self.n_vf_iters = n_vf_iters
        self.vf_lr = vf_lr

        self.old_policy: nn.Module = policy.clone()  # (on the policy's device)
        # port (speed): foreach Adam -- on CPU bit-identical to the default single-tensor loop (tested)
        self.vf_optimizer = torch.optim.Adam(self.vf.parameters(), lr=self.vf_lr, foreach=True)
        self._policy_params = list(self.policy.parameters())  # port (speed): the same objects every call
        self._old_cache = None
        self._kl_grad_cache = None

    def _params(self):
        return self._policy_params

    def _old(self, states, actions):
        """The old policy's distribution and log-probs of ``actions`` (no grad). Port (speed):
        inside one :meth:`train` call (fixed old policy, fixed batch) they are computed once
        and reused by every loss / Fisher-vector evaluation -- the same values."""
        cache = self._old_cache
        if cache is not None and cache[0] is states and cache[1] is actions:
            return cache[2], cache[3]
        with torch.no_grad():
            old_distribution = self.old_policy(states)
            return old_distribution, old_distribution.log_prob(actions)

    def forward(self, states, actions, advantages, ent_coef):
        old_distribution, old_log_prob = self._old(states, actions)
        distribution = self.policy(states)
        mean_kl = kl_divergence(old_distribution, distribution).sum(dim=1).mean()
        entropy = distribution.entropy().sum(dim=1).mean()
        entropy_bonus = ent_coef * entropy

        ratios = (distribution.log_prob(actions) - old_log_prob).sum(dim=1).exp()
        # didn't output op_policy_loss since in principle it should be 0.
        policy_loss = (ratios * advantages).mean()

        # We're doing Gradient Ascent so this is, in fact, gain.
        loss = policy_loss + entropy_bonus

        return mean_kl, loss, distribution.stddev.log().mean().exp(), \
            distribution.mean.norm(dim=1).mean() / np.sqrt(10), policy_loss

    def __call__(self, *args):
        return self.forward(*args)

    @torch.no_grad()
    def sync_old(self):
        self.old_policy.load_state_dict(self.policy.state_dict())

    def get_hessian_vec_prod(self, states, tangents, actions):
        with torch.enable_grad():
            # port (speed): only the mean-KL term of `forward` (the same ops; the surrogate and
            # entropy terms upstream also evaluated here do not reach the KL's derivatives)
            cache = self._kl_grad_cache
            if cache is not None and cache[0] is states and cache[1] is actions:
                # port (speed): within one `train` call (parameters fixed until the line
                # search) the KL's first-order graph is the same for every Fisher-vector
                # product, so it is built once and only the second backward pass is repeated
                # (the same ops on the same values as `hessian_vec_prod`)
                g = cache[2]
                t = _t(tangents).to(device=g.device, dtype=g.dtype)
                return flat_grad((g * t).sum(), self._params(), retain_graph=True).double().cpu().numpy()
            old_distribution, _ = self._old(states, actions)
            mean_kl = kl_divergence(old_distribution, self.policy(states)).sum(dim=1).mean()
            return hessian_vec_prod(mean_kl, self._params(), _t(tangents)).double().cpu().numpy()

    def _build_kl_grad(self, states, actions):
        """``∇_θ mean KL(π_old || π_θ)`` with its graph, for repeated Fisher-vector products."""
        with torch.enable_grad():
            old_distribution, _ = self._old(states, actions)
            mean_kl = kl_divergence(old_distribution, self.policy(states)).sum(dim=1).mean()
            self._kl_grad_cache = (states, actions, flat_grad(mean_kl, self._params(), create_graph=True))

    def get_loss(self, states, actions, advantages, ent_coef, grad=False):
        if grad:
            mean_kl, loss, dist_std, dist_mean, _ = self(states, actions, advantages, ent_coef)
            g = flat_grad(loss, self._params()).double().cpu().numpy()
            return float(loss.detach()), g, float(dist_std.detach()), float(mean_kl.detach()), float(dist_mean.detach())
        with torch.no_grad():
            mean_kl, loss = self(states, actions, advantages, ent_coef)[:2]
        return float(loss), float(mean_kl)

    def train(self, ent_coef, samples, advantages, values):
        returns = advantages + values
        advantages = (advantages - advantages.mean()) / np.maximum(advantages.std(), 1e-8)
        assert np.isfinite(advantages).all()
        self.sync_old()
        d = self._params()[0].device
        states, actions, adv_t = _t(samples.state, d), _t(samples.action, d), _t(advantages, d)
        self._old_cache = None
        self._old_cache = (states, actions, *self._old(states, actions))
        self._kl_grad_cache = None
        try:
            return self._train(ent_coef, samples, states, actions, adv_t, returns)
        finally:
            self._old_cache = None
            self._kl_grad_cache = None

    def _train(self, ent_coef, samples, states, actions, adv_t, returns):
        old_loss, grad, dist_std, mean_kl, dist_mean = self.get_loss(states, actions, adv_t, ent_coef, grad=True)

        if np.allclose(grad, 0):
            logger.info('Zero gradient, not updating...')
            return

        def fisher_vec_prod(x):
            return self.get_hessian_vec_prod(states, x, actions) + self.cg_damping * x

        self._build_kl_grad(states, actions)  # port (speed): reused until the parameters move

        assert np.isfinite(grad).all()
        nat_grad = conj_grad(fisher_vec_prod, grad, n_iters=self.n_cg_iters, verbose=False)

        assert np.isfinite(nat_grad).all()

        old_params = get_flat(self._params())
        step_size = np.sqrt(2 * self.max_kl / nat_grad.dot(fisher_vec_prod(nat_grad)))
        self._kl_grad_cache = None  # the line search moves the parameters

        for _ in range(10):
            new_params = old_params + nat_grad * step_size
            set_flat(self._params(), new_params)
            loss, mean_kl = self.get_loss(states, actions, adv_t, ent_coef)
            improve = loss - old_loss
            if not np.isfinite([loss, mean_kl]).all():
                logger.info('Got non-finite loss.')
            elif mean_kl > self.max_kl * 1.5:
                logger.debug('Violated kl constraints, shrinking step... mean_kl = %.6f, max_kl = %.6f',
                             mean_kl, self.max_kl)
            elif improve < 0:
                logger.debug("Surrogate didn't improve, shrinking step... %.6f => %.6f", old_loss, loss)
            else:
                break
            step_size *= 0.5
        else:
            logger.info("Couldn't find a good step.")
            set_flat(self._params(), old_params)

        # optimize value function
        vf_dataset = Dataset.fromarrays([samples.state, returns],
                                        dtype=[('state', ('f8', self.dim_state)), ('return_', 'f8')])
        vf_loss = self.train_vf(vf_dataset)

        return dist_mean, dist_std, vf_loss

    def get_vf_loss(self, states, returns):
        d = module_device(self.vf)
        return ((self.vf(_t(states, d)) - _t(returns, d)) ** 2).mean()

    def train_vf(self, dataset: Dataset):
        """``n_vf_iters`` epochs of minibatch-64 Adam on the MSE to the returns.

        Port (speed): the same minibatches as upstream's ``dataset.iterator(64)`` (one
        ``np.random.shuffle`` of int32 indices per epoch, incomplete last batch dropped) taken
        from float32 tensors converted once, and -- for the tanh MLP value net with plain
        Adam -- :class:`_TanhMLPAdamFit`'s hand-written backward pass and Adam update
        (bit-identical to autograd + ``torch.optim.Adam``, ~3x fewer Python/dispatcher calls).
        """
        n = len(dataset)
        d = module_device(self.vf)
        states, returns = _t(dataset.state, d), _t(dataset.return_, d)
        fit = _TanhMLPAdamFit.create(self.vf, self.vf_optimizer)
        if fit is not None:
            with torch.no_grad():
                inputs = self.vf.normalizer(states)  # element-wise: same values as per minibatch
        for _ in range(self.n_vf_iters):
            indices = np.arange(n, dtype=np.int32)
            np.random.shuffle(indices)
            indices = torch.from_numpy(indices.astype(np.int64)).to(d)
            for start in range(0, n - 64 + 1, 64):
                batch = indices[start:start + 64]
                if fit is not None:
                    fit.step(inputs[batch], returns[batch])
                    continue
                vf_loss = ((self.vf(states[batch]) - returns[batch]) ** 2).mean()
                self.vf_optimizer.zero_grad(set_to_none=True)
                vf_loss.backward()
                self.vf_optimizer.step()
        if fit is not None:
            fit.finish()
        with torch.no_grad():
            vf_loss = float(self.get_vf_loss(dataset.state, dataset.return_))
        return vf_loss


class _TanhMLPAdamFit(object):
    """One minibatch step of ``((mlp(x).squeeze(1) - y) ** 2).mean()`` + ``torch.optim.Adam``,
    computed by hand for an MLP of ``Linear`` layers with ``tanh`` between them (port: speed).

    The ops are the ones autograd and Adam's foreach path run -- ``addmm`` forward,
    ``g.t().mm(h)`` / ``g.mm(W)`` / ``g.sum(0)`` / ``tanh_backward`` backward, the
    ``_foreach`` Adam update (itself bit-identical to the default single-tensor loop on
    CPU) -- in the same order on tensors of the same shapes and strides, so the numbers are
    bit-identical (``tests/slbo/test_same_numbers.py``). The
    loss gradient ``(1/B)·2·(v - y)`` is exact (power-of-two scalings). The optimiser's own
    state (``step``, ``exp_avg``, ``exp_avg_sq``) is read and written, and ``.grad`` holds the
    last minibatch's gradient afterwards, as after the autograd loop.

    A gradient-norm clip is the one step hook it takes over: an optimiser whose only hook is a
    step pre-hook declaring itself a global-norm clip of exactly these parameters (attributes
    ``params`` and ``max_grad_norm``, as ``vaml_ext.slbo.value_fit``'s, the paper setting's
    clip) is fitted here with the clip applied as ``torch.nn.utils.clip_grad_norm_`` does it
    (same total-norm and scaling ops), bit-identical to the hook on the autograd path. Any
    other hook takes the autograd path.
    """

    def __init__(self, layers, optimizer, max_grad_norm=None):
        self.max_grad_norm = max_grad_norm
        self.weights = [(layer.weight, layer.bias) for layer in layers[0::2]]
        self.params = [p for wb in self.weights for p in wb]
        group = optimizer.param_groups[0]
        self.lr, (self.beta1, self.beta2), self.eps = group['lr'], group['betas'], group['eps']
        state = optimizer.state
        for p in self.params:
            if len(state[p]) == 0:  # as torch.optim.Adam._init_group
                state[p]['step'] = torch.tensor(0.0, dtype=torch.float32)
                state[p]['exp_avg'] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state[p]['exp_avg_sq'] = torch.zeros_like(p, memory_format=torch.preserve_format)
        self.steps = [state[p]['step'] for p in self.params]
        self.step_count = float(self.steps[0])
        self.exp_avgs = [state[p]['exp_avg'] for p in self.params]
        self.exp_avg_sqs = [state[p]['exp_avg_sq'] for p in self.params]
        self.grads = None

    @classmethod
    def create(cls, vf, optimizer):
        """The fast fit, or None where its assumptions do not hold (then autograd is used)."""
        mlp = getattr(vf, 'mlp', None)
        layers = list(getattr(mlp, 'net', []))
        if not layers or not getattr(mlp, '_squeeze', False) or len(layers) % 2 != 1:
            return None
        if not all(type(layer) is nn.Linear and layer.bias is not None for layer in layers[0::2]) or \
                not all(type(layer) is nn.Tanh for layer in layers[1::2]) or layers[-1].out_features != 1:
            return None
        if type(optimizer) is not torch.optim.Adam or len(optimizer.param_groups) != 1:
            return None
        from torch.optim import optimizer as _optim
        pre_hooks = list(optimizer._optimizer_step_pre_hooks.values())
        if optimizer._optimizer_step_post_hooks or _optim._global_optimizer_pre_hooks or \
                _optim._global_optimizer_post_hooks or len(pre_hooks) > 1:
            return None  # a step hook must see every step: autograd path
        max_grad_norm = None
        if pre_hooks:  # only a declared global-norm clip of these very parameters is done here
            max_grad_norm = getattr(pre_hooks[0], 'max_grad_norm', None)
            clipped = getattr(pre_hooks[0], 'params', None)
            if not isinstance(max_grad_norm, float) or clipped is None:
                return None
        group = optimizer.param_groups[0]
        if group['weight_decay'] != 0 or group['amsgrad'] or group['maximize'] or group.get('capturable') or \
                group.get('differentiable') or group.get('fused') or isinstance(group['lr'], torch.Tensor):
            return None
        params = [p for layer in layers[0::2] for p in (layer.weight, layer.bias)]
        if [id(p) for p in group['params']] != [id(p) for p in params] or \
                any(p.dtype != torch.float32 or p.device.type != 'cpu' for p in params):
            return None
        if max_grad_norm is not None and [id(p) for p in clipped] != [id(p) for p in params]:
            return None
        steps = [optimizer.state[p].get('step') for p in params]
        if any(s is not None and (not isinstance(s, torch.Tensor) or float(s) != float(steps[0])) for s in steps):
            return None
        return cls(layers, optimizer, max_grad_norm)

    @torch.no_grad()
    def step(self, x, y):
        hs = [x]
        n_layers = len(self.weights)
        for i, (w, b) in enumerate(self.weights):
            z = torch.addmm(b, hs[-1], w.t())
            hs.append(torch.tanh(z) if i < n_layers - 1 else z)
        diff = hs[-1].squeeze(1) - y
        g = ((2.0 * diff) * (1.0 / diff.shape[0])).unsqueeze(1)  # d mean((v - y)^2) / dv, exact
        grads = []
        for i in range(n_layers - 1, -1, -1):
            w, _ = self.weights[i]
            h = hs[i]
            grads.append(g.sum(0))
            grads.append(g.t().mm(h))
            if i > 0:
                g = torch.ops.aten.tanh_backward(g.mm(w), h)
        grads.reverse()  # [W0, b0, W1, b1, ...]
        if self.max_grad_norm is not None:  # as torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
            total_norm = torch.nn.utils.get_total_norm(grads, 2.0)
            clip_coef = self.max_grad_norm / (total_norm + 1e-6)
            torch._foreach_mul_(grads, torch.clamp(clip_coef, max=1.0))
        self.grads = grads
        self.step_count += 1
        torch._foreach_lerp_(self.exp_avgs, grads, 1 - self.beta1)
        torch._foreach_mul_(self.exp_avg_sqs, self.beta2)
        torch._foreach_addcmul_(self.exp_avg_sqs, grads, grads, 1 - self.beta2)
        bias_correction1 = 1 - self.beta1 ** self.step_count
        bias_correction2 = 1 - self.beta2 ** self.step_count
        step_size = (self.lr / bias_correction1) * -1
        denom = torch._foreach_sqrt(self.exp_avg_sqs)
        torch._foreach_div_(denom, bias_correction2 ** 0.5)
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(self.params, self.exp_avgs, denom, step_size)

    def finish(self):
        for s in self.steps:
            s.fill_(self.step_count)
        if self.grads is not None:
            for p, g in zip(self.params, self.grads):
                p.grad = g.contiguous()
