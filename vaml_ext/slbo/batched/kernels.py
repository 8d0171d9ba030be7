"""Seed-batched kernels of the SLBO port, exact per seed (issue 27).

A stage of SLBO spends most of its time in two small-network loops: the value fit after
every TRPO step (``TRPO.train_vf``: 5 epochs of minibatch-64 Adam, ~310 steps of a
64-64 tanh MLP) and the virtual rollouts before it (``Runner.run`` on the model:
``plan.max_steps`` steps of the policy and the model). One seed per process pays Python
and dispatcher overhead for every one of those tiny ops. These kernels run the same ops
for S seeds at once on stacked weights (``[S, out, in]``), so the overhead is paid once.

**Exact per seed.** Every seed's numbers are the ones the port computes for it alone
(``TRPO.train_vf``'s ``_TanhMLPAdamFit`` path; ``Runner._run_fast`` on
``VirtualEnv.fast_rollout``), bit for bit:

* a layer runs as a batched product only where that shape's product equals the per-seed
  ``addmm``/``F.linear`` of the port (checked once per shape by :func:`linear_mode`:
  ``baddbmm``, or the transposed ``baddbmm``, exact here for one-column outputs such as
  the value net's last layer), else a loop of the port's own op over seeds;
* weight gradients as ``bmm(gᵀ, h)`` (the port's ``g.t().mm(h)`` per slice), bias
  gradients ``g.sum(1)``, the clip's norms per seed -- each checked equal per slice by the
  tests (``tests/slbo/test_batched.py``);
* element-wise ops (normalisation, tanh, Adam's ``_foreach`` update) are the port's ops on
  more elements; Adam's bias corrections are the same Python floats, so seeds are grouped
  by their optimiser's step count;
* every random draw (minibatch shuffles, action noise) is made by the caller in the
  seed's own generator state, in the port's order, before the batched work starts
  (:func:`vf_request`, :func:`rollout_request`); the env's resets draw from that seed's
  own env generator as in the port.

What stays per seed: TRPO's step (conjugate gradient, line search: compute-bound and
branching per seed), model updates, ``mb_step`` (NumPy, per seed's env) and episode
bookkeeping.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


# --------------------------------------------------------------------------------------
# exact batched linear layers
# --------------------------------------------------------------------------------------
def _probe(n_seeds: int, batch: int, n_in: int, n_out: int):
    gen = torch.Generator().manual_seed(1234 + 7 * batch + 13 * n_in + 17 * n_out)
    x = torch.randn(n_seeds, batch, n_in, generator=gen)
    w = torch.randn(n_seeds, n_out, n_in, generator=gen)
    b = torch.randn(n_seeds, n_out, generator=gen)
    g = torch.randn(n_seeds, batch, n_out, generator=gen)
    return x, w, b, g


@functools.cache
def linear_mode(n_seeds: int, batch: int, n_in: int, n_out: int) -> str:
    """How :func:`linear` runs ``[batch, n_in] -> [batch, n_out]`` for ``n_seeds`` stacked
    layers: the first of these forms that gives, bit for bit, each seed's ``F.linear`` /
    ``addmm`` on this machine's code path (the BLAS picks its kernel by shape, not by values:
    one random probe per shape):

    * ``"bmm"`` -- ``baddbmm(b, x, wᵀ)``;
    * ``"bmm_t"`` -- the transposed product ``baddbmm(b, w, xᵀ)ᵀ``: on this AVX2 machine it
      is exact for one-column outputs (the value net's last layer, a 1-d policy's mean),
      where ``bmm`` is not;
    * ``"loop"`` -- the port's op seed by seed (always exact).

    (Picking the fastest exact form by timing each once per shape was tried: slower in use,
    value fit by 10 %, as a product timed alone is not timed in its loop.)"""
    x, w, b, _ = _probe(n_seeds, batch, n_in, n_out)
    with torch.no_grad():
        ref = torch.stack([F.linear(x[s], w[s], b[s]) for s in range(n_seeds)])
        if torch.equal(torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2)), ref):
            return "bmm"
        if torch.equal(torch.baddbmm(b.unsqueeze(2), w, x.transpose(1, 2)).transpose(1, 2), ref):
            return "bmm_t"
    return "loop"


@functools.cache
def input_grad_mode(n_seeds: int, batch: int, n_in: int, n_out: int) -> str:
    """How :func:`input_grad` runs each seed's ``g.mm(w)``: ``"bmm"`` where ``bmm(g, w)`` is
    exact for this shape (probed as :func:`linear_mode`), else ``"loop"``."""
    _, w, _, g = _probe(n_seeds, batch, n_in, n_out)
    with torch.no_grad():
        exact = torch.equal(torch.bmm(g, w), torch.stack([g[s].mm(w[s]) for s in range(n_seeds)]))
    return "bmm" if exact else "loop"


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``F.linear`` per seed on ``x [S, B, in]``, ``w [S, out, in]``, ``b [S, out]``, in a
    form that is exact for this shape (:func:`linear_mode`). Off the CPU: ``baddbmm``
    always (relaxed, ``device.py``)."""
    n_seeds, batch, n_in = x.shape
    mode = "bmm" if not x.is_cpu else linear_mode(n_seeds, batch, n_in, w.shape[1])
    x = x.contiguous()  # the layout the probe checked (a product's path can depend on strides)
    if mode == "bmm":
        return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))
    if mode == "bmm_t":
        return torch.baddbmm(b.unsqueeze(2), w, x.transpose(1, 2)).transpose(1, 2)
    return torch.stack([F.linear(x[s], w[s], b[s]) for s in range(n_seeds)])


def input_grad(g: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``g.mm(w)`` per seed (the gradient w.r.t. a linear layer's input)."""
    n_seeds, batch, n_out = g.shape
    if not g.is_cpu or input_grad_mode(n_seeds, batch, w.shape[2], n_out) == "bmm":
        return torch.bmm(g, w)
    return torch.stack([g[s].mm(w[s]) for s in range(n_seeds)])


def _stack(tensors) -> torch.Tensor:
    return torch.stack([t.detach() for t in tensors])


# --------------------------------------------------------------------------------------
# value fit
# --------------------------------------------------------------------------------------
@dataclass
class VFRequest:
    """One seed's ``TRPO.train_vf`` call, its random draws made: what the batched fit
    needs and where it writes back (the port's ``_TanhMLPAdamFit`` of that seed)."""

    fit: Any  # slbo.algos.TRPO._TanhMLPAdamFit: the seed's weights and Adam state
    inputs: torch.Tensor  # vf.normalizer(states), float32 [n, dim_state]
    returns: torch.Tensor  # float32 [n]
    perms: list = field(default_factory=list)  # one int64 permutation per epoch
    loss: float | None = None  # after the fit: get_vf_loss(states, returns), as train_vf returns it

    def key(self):
        fit = self.fit
        shapes = tuple(tuple(w.shape) for w, _ in fit.weights)
        return (
            shapes,
            tuple(self.inputs.shape),
            len(self.perms),
            fit.lr,
            fit.beta1,
            fit.beta2,
            fit.eps,
            fit.max_grad_norm,
            fit.step_count,
        )


def vf_request(algo, dataset) -> VFRequest | None:
    """``algo.train_vf(dataset)`` up to its first fit step, in the caller's (the seed's)
    generator state: the fast fit object, the normalised inputs, the returns, and the
    epochs' shuffles drawn as ``TRPO.train_vf`` draws them (one ``np.random.shuffle`` of
    ``arange(n, int32)`` per epoch; nothing else draws in between). None where the port
    itself would not take its fast path (then call ``train_vf``)."""
    from slbo.algos.TRPO import _t, _TanhMLPAdamFit
    from slbo.utils.torch_utils import module_device

    d = module_device(algo.vf)  # off the CPU the fit is batched too, relaxed (``baddbmm`` for every shape)
    fit = _TanhMLPAdamFit.create(algo.vf, algo.vf_optimizer)
    if fit is None:
        return None
    n = len(dataset)
    states, returns = _t(dataset.state, d), _t(dataset.return_, d)
    with torch.no_grad():
        inputs = algo.vf.normalizer(states)
    perms = []
    for _ in range(algo.n_vf_iters):
        indices = np.arange(n, dtype=np.int32)
        np.random.shuffle(indices)
        perms.append(torch.from_numpy(indices.astype(np.int64)).to(d))
    return VFRequest(fit, inputs, returns, perms)


@torch.no_grad()
def fit_values(requests: list[VFRequest]) -> None:
    """Run every request's fit, batching those that agree on shapes, hyperparameters and
    Adam step count; writes each seed's weights, Adam state, step counts and last
    gradients back as ``_TanhMLPAdamFit.step`` + ``finish`` leave them."""
    groups: dict = {}
    for r in requests:
        groups.setdefault(r.key(), []).append(r)
    for group in groups.values():
        _fit_group(group)


def _views(flat: torch.Tensor, shapes) -> list[torch.Tensor]:
    """Consecutive blocks of the 1-d ``flat`` as contiguous tensors of ``shapes``."""
    views, start = [], 0
    for shape in shapes:
        n = math.prod(shape)
        views.append(flat[start : start + n].view(shape))
        start += n
    return views


def _flat(blocks: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One 1-d buffer holding ``blocks`` one after another, and each block as a view of it."""
    flat = torch.cat([b.reshape(-1) for b in blocks])
    return flat, _views(flat, [b.shape for b in blocks])


def _fit_group(group: list[VFRequest]) -> None:
    """The fit of a group, every tensor ``[S, ...]``. Parameters, Adam's moments and the
    gradients each live in one flat buffer (blocks ``[S, *shape]`` in ``fit.params`` order),
    so Adam's update is one elementwise op per step over every seed and parameter instead of
    one per parameter (``_foreach`` on the CPU runs op by op): elementwise, so each number is
    the one the per-parameter op gives."""
    fits = [r.fit for r in group]
    f0 = fits[0]
    n_layers = len(f0.weights)
    n_params = len(f0.params)  # [W0, b0, W1, b1, ...]
    flat_params, params = _flat([_stack([f.params[j] for f in fits]) for j in range(n_params)])
    weights, biases = params[0::2], params[1::2]
    flat_avgs, exp_avgs = _flat([_stack([f.exp_avgs[j] for f in fits]) for j in range(n_params)])
    flat_avg_sqs, exp_avg_sqs = _flat([_stack([f.exp_avg_sqs[j] for f in fits]) for j in range(n_params)])
    flat_grads = torch.empty_like(flat_params)
    grads = _views(flat_grads, [p.shape for p in params])
    x_all = _stack([r.inputs for r in group])  # [S, n, d]
    y_all = _stack([r.returns for r in group])  # [S, n]
    n_seeds, n, dim = x_all.shape
    seeds = torch.arange(n_seeds, device=x_all.device).unsqueeze(1)
    step_count = f0.step_count
    stepped = False
    for epoch in range(len(group[0].perms)):
        perm = torch.stack([r.perms[epoch] for r in group])  # [S, n]
        x_epoch, y_epoch = x_all[seeds, perm], y_all[seeds, perm]  # the epoch's order, gathered once
        for start in range(0, n - 64 + 1, 64):
            hs = [x_epoch[:, start : start + 64].contiguous()]  # = x_all[seeds, perm[:, start : start + 64]]
            for i in range(n_layers):
                z = linear(hs[-1], weights[i], biases[i])
                hs.append(torch.tanh(z) if i < n_layers - 1 else z)
            diff = hs[-1].squeeze(2) - y_epoch[:, start : start + 64]
            g = ((2.0 * diff) * (1.0 / diff.shape[1])).unsqueeze(2)
            for i in range(n_layers - 1, -1, -1):  # each seed's g.sum(0), g.t().mm(h) into the buffer
                torch.sum(g, 1, out=grads[2 * i + 1])
                torch.bmm(g.transpose(1, 2), hs[i], out=grads[2 * i])
                if i > 0:
                    g = torch.ops.aten.tanh_backward(input_grad(g, weights[i]), hs[i])
            if f0.max_grad_norm is not None:  # clip_grad_norm_ per seed (get_total_norm's two norms)
                norms = [torch.linalg.vector_norm(gr.reshape(n_seeds, -1), 2.0, dim=1) for gr in grads]
                total = torch.linalg.vector_norm(torch.stack(norms, 1), 2.0, dim=1)  # contiguous rows, as per seed
                coef = torch.clamp(f0.max_grad_norm / (total + 1e-6), max=1.0)
                for gr in grads:
                    gr.mul_(coef.view(n_seeds, *([1] * (gr.dim() - 1))))
            step_count += 1
            stepped = True
            # _TanhMLPAdamFit.step's _foreach Adam, each op once over the flat buffers
            flat_avgs.lerp_(flat_grads, 1 - f0.beta1)
            flat_avg_sqs.mul_(f0.beta2)
            flat_avg_sqs.addcmul_(flat_grads, flat_grads, value=1 - f0.beta2)
            bias_correction1 = 1 - f0.beta1**step_count
            bias_correction2 = 1 - f0.beta2**step_count
            step_size = (f0.lr / bias_correction1) * -1
            denom = flat_avg_sqs.sqrt()
            denom.div_(bias_correction2**0.5)
            denom.add_(f0.eps)
            flat_params.addcdiv_(flat_avgs, denom, value=step_size)
    for s, fit in enumerate(fits):
        for j, p in enumerate(fit.params):
            p.data.copy_(params[j][s])
            fit.exp_avgs[j].copy_(exp_avgs[j][s])
            fit.exp_avg_sqs[j].copy_(exp_avg_sqs[j][s])
        fit.step_count = step_count
        fit.grads = [gr[s].clone() for gr in grads] if stepped else None
        fit.finish()
    # the loss train_vf returns (TRPO.get_vf_loss on all states, the fitted weights), batched:
    # the same layers on the same normalised inputs, each seed's mean over its own row
    h = x_all
    for i in range(n_layers):
        h = linear(h, weights[i], biases[i])
        h = torch.tanh(h) if i < n_layers - 1 else h.squeeze(2)
    for s, r in enumerate(group):
        r.loss = float(((h[s] - y_all[s]) ** 2).mean())


# --------------------------------------------------------------------------------------
# virtual rollouts
# --------------------------------------------------------------------------------------
@dataclass
class RolloutRequest:
    """One seed's ``Runner.run(policy, n_samples)`` on a ``VirtualEnv`` that the port
    would run on its fused path, its action noise drawn."""

    runner: Any  # slbo.utils.runner.Runner (its env a VirtualEnv)
    policy: Any  # GaussianMLPPolicy
    n_steps: int
    noise: np.ndarray  # [n_steps, n_envs, dim_action], already scaled by exp(log_std)
    device_path: bool = False  # run by vaml_ext.slbo.batched.device (relaxed), not the exact kernel
    result: tuple | None = None

    def key(self):
        env = self.runner.env
        layers = tuple(tuple(p.shape) for p in self.policy.net.parameters())
        model = tuple(tuple(p.shape) for p in env._model.net.parameters())
        shared = self.policy.normalizer is env._model.normalizers.state
        where = (self.device_path, str(env._model.net[0].weight.device), type(env._env).__name__)
        return (self.n_steps, self.runner.n_envs, layers, model, shared, self.runner.max_steps, where)


def rollout_request(
    runner, policy, n_samples: int, device_path: bool | None = None, device_only: bool = False
) -> RolloutRequest | None:
    """``runner.run(policy, n_samples)`` up to its first step, in the caller's (the seed's)
    generator state, where the port runs ``_run_fast`` on ``VirtualEnv.fast_rollout``
    (same conditions), else None. The noise is drawn as ``GaussianMLPPolicy.make_sampler``
    draws it: one ``np.random.randn(n_steps, n_envs, dim_action)``, scaled by
    ``exp(log_std)``.

    ``device_path``: run it on the networks' device with :mod:`.device` (relaxed numbers);
    default: off the CPU, or on the CPU where ``$VAML_SLBO_DEVICE_ROLLOUT=1`` (to test
    that path without a GPU). On the CPU otherwise: the exact kernel. ``device_only``: None
    unless it is the device path (a seed alone in its batch gains nothing from the exact
    kernel: the port's own rollout is as exact, and faster)."""
    from slbo.dynamics_model import DynamicsModel
    from slbo.envs.virtual_env import VirtualEnv
    from slbo.policies.gaussian_mlp_policy import GaussianMLPPolicy

    env = runner.env
    if type(env) is not VirtualEnv or runner.rescale_action or env._opt_model:
        return None
    if type(policy) is not GaussianMLPPolicy or type(env._model) is not DynamicsModel:
        return None
    where = env._model.net[0].weight.device
    if policy.op_log_std.device != where:
        return None
    if device_path is None:
        device_path = where.type != "cpu" or os.environ.get("VAML_SLBO_DEVICE_ROLLOUT") == "1"
    if (where.type != "cpu" or device_only) and not device_path:
        return None
    n_steps = n_samples // runner.n_envs
    assert n_steps * runner.n_envs == n_samples
    if not np.array_equal(runner._states, env._states):
        return None
    log_std = policy.op_log_std.detach().double().cpu().numpy()
    noise = np.random.randn(n_steps, runner.n_envs, policy.dim_action)
    noise *= np.exp(log_std)
    return RolloutRequest(runner, policy, n_steps, noise, device_path)


def _layers(net) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(m.weight, m.bias) for m in net if isinstance(m, torch.nn.Linear)]


@torch.inference_mode()
def rollout(requests: list[RolloutRequest]) -> None:
    """Run every request (batching those of the same shapes); each gets ``result =
    (dataset, ep_infos)`` as ``Runner.run`` returns them, with the runner and env left in
    the port's state."""
    groups: dict = {}
    for r in requests:
        groups.setdefault(r.key(), []).append(r)
    for group in groups.values():
        if group[0].device_path:
            from vaml_ext.slbo.batched import device

            device.rollout_group(group)
        else:
            _rollout_group(group)


@dataclass
class StackedNets:
    """A group's policies and models stacked over seeds (``[S, ...]``), with the normalisers'
    statistics as ``VirtualEnv.fast_rollout`` uses them; shared by the exact kernel and the
    device path (``device.py``), which differ only in how a layer is computed (``lin``)."""

    policy: list  # [(w [S, out, in], b [S, out])], Linear (Tanh Linear)*
    model: list  # the same for the model: Linear (ReLU Linear)*
    s_mean: torch.Tensor  # [S, 1, d]: the model's state normaliser (mean, clamped std, std)
    s_scale: torch.Tensor
    s_std: torch.Tensor
    d_mean: torch.Tensor  # the model's difference normaliser
    d_std: torch.Tensor
    p_mean: torch.Tensor  # the policy's state normaliser (the model's where shared)
    p_scale: torch.Tensor
    shared_norm: bool

    @classmethod
    def of(cls, group: list[RolloutRequest]) -> StackedNets:
        models = [r.runner.env._model for r in group]
        policies = [r.policy for r in group]

        def stack_layers(nets):
            per_seed = [_layers(n) for n in nets]
            return [(_stack(ws), _stack(bs)) for ws, bs in (zip(*layer) for layer in zip(*per_seed))]

        def stats(normalizers):
            mean = _stack([n.op_mean for n in normalizers]).unsqueeze(1)
            return mean, _stack([n.op_std.clamp_min(n.eps) for n in normalizers]).unsqueeze(1)

        shared = policies[0].normalizer is models[0].normalizers.state
        s_mean, s_scale = stats([m.normalizers.state for m in models])
        p_mean, p_scale = (s_mean, s_scale) if shared else stats([p.normalizer for p in policies])
        return cls(
            policy=stack_layers([p.net for p in policies]),
            model=stack_layers([m.net for m in models]),
            s_mean=s_mean,
            s_scale=s_scale,
            s_std=_stack([m.normalizers.state.op_std for m in models]).unsqueeze(1),
            d_mean=_stack([m.normalizers.diff.op_mean for m in models]).unsqueeze(1),
            d_std=_stack([m.normalizers.diff.op_std for m in models]).unsqueeze(1),
            p_mean=p_mean,
            p_scale=p_scale,
            shared_norm=shared,
        )

    def policy_mean(self, s32: torch.Tensor, lin=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(the policy's mean action, the model-normalised states) for float32 states
        ``[S, E, d]`` -- the normalisation made once and shared where the normaliser is."""
        lin = lin or linear
        norm = (s32 - self.s_mean) / self.s_scale
        x = norm if self.shared_norm else (s32 - self.p_mean) / self.p_scale
        for i, (w, b) in enumerate(self.policy):  # as GaussianMLPPolicy's bound layers
            x = lin(x, w, b)
            if i < len(self.policy) - 1:
                x = torch.tanh_(x)
        return x, norm

    def next_states(self, s32: torch.Tensor, norm: torch.Tensor, a32: torch.Tensor, lin=None) -> torch.Tensor:
        """The model's float32 next states for clipped float32 actions, as
        ``DynamicsModel.make_stepper``'s step."""
        lin = lin or linear
        x = torch.cat([norm, a32], dim=2)
        for i, (w, b) in enumerate(self.model):  # Linear (ReLU Linear)*
            x = lin(x, w, b)
            if i < len(self.model) - 1:
                x = torch.relu_(x)
        x = x.mul_(self.d_std).add_(self.d_mean).add_(s32)
        return x.sub_(self.s_mean).div_(self.s_scale).clamp_(-100, 100).mul_(self.s_std).add_(self.s_mean)


def _rollout_group(group: list[RolloutRequest]) -> None:
    n_seeds = len(group)
    runners = [r.runner for r in group]
    envs = [r.env for r in runners]
    n_steps = group[0].n_steps
    nets = StackedNets.of(group)
    lo = [env.action_space.low for env in envs]
    span = [env.action_space.high - env.action_space.low for env in envs]

    fields = [runner._new_fields(n_steps) for runner in runners]
    ep_infos: list[list] = [[] for _ in group]
    for t in range(n_steps):
        states = [env._states for env in envs]
        s32 = torch.from_numpy(np.stack(states)).float()  # [S, E, d]: each seed's .float() cast
        mean, norm = nets.policy_mean(s32)
        means = mean.double().numpy()
        actions = [means[s] + group[s].noise[t] for s in range(n_seeds)]
        a32 = torch.from_numpy(np.stack(actions)).float()
        nxt = nets.next_states(s32, norm, a32.clamp(-1.0, 1.0)).double().numpy()
        for s in range(n_seeds):
            next_states = nxt[s]
            rewards, dones = envs[s]._env.mb_step(states[s], lo[s] + (actions[s] + 1.0) * 0.5 * span[s], next_states)
            envs[s]._states = next_states
            _record(runners[s], fields[s], t, states[s], actions[s], next_states, rewards, dones, ep_infos[s])
    for s, r in enumerate(group):
        runners[s]._states = envs[s]._states.copy()
        r.result = (runners[s]._to_dataset(fields[s], n_steps * runners[s].n_envs), ep_infos[s])


def _record(runner, fields, t, states, actions, next_states, rewards, dones, ep_infos) -> None:
    """One step's records and episode bookkeeping, as the loop of ``Runner._run_fast``."""
    dones = np.asarray(dones).astype(bool)
    runner._returns += rewards
    runner._n_steps += 1
    timeouts = runner._n_steps == runner.max_steps
    fields["state"][t] = states
    fields["action"][t] = actions
    fields["next_state"][t] = next_states
    fields["reward"][t] = rewards
    fields["done"][t] = dones
    fields["timeout"][t] = timeouts
    ended = dones | timeouts
    if ended.any():
        indices = np.flatnonzero(ended)
        runner.env.partial_reset(indices)
        for index in indices:
            ep_infos.append({"return": runner._returns[index]})
        runner._n_steps[indices] = 0
        runner._returns[indices] = 0.0
