"""Seed-batched virtual rollouts that stay on the device (issue 27, part 4: the GPU path).

On a GPU the port is launch-bound: ``Runner.run`` on the model moves the states to the
host after every virtual step (``env.mb_step`` is NumPy), and each of its tiny ops is one
kernel launch for one seed. Here a whole rollout of S seeds runs on the device: the
policy, the model, the reward/termination function (:data:`MB_STEPS`, torch versions of
the port's ``mb_step``), the episode bookkeeping and the resets; the records come back to
the host once, at the end.

**Relaxed, not exact.** Layers are ``baddbmm`` for every shape (the CPU kernels of
:mod:`vaml_ext.slbo.batched.kernels` loop over seeds where that differs from the port's
op), the reward is computed by torch instead of NumPy, and on a GPU every op is the GPU's.
Every random draw is still the port's, in its order: the action noise is drawn by the
caller in the seed's generator (:func:`kernels.rollout_request`), and the resets come from
each seed's real env, which is left exactly as the port leaves it (same generator state,
same number of ``reset()`` calls). How close the numbers are is checked by the tests
(``tests/slbo/test_batched_device.py``, lockstep with tolerances) and on a GPU by
``exp/device_check.py slbo-batch``.

**Resets without a host round-trip.** A seed's initial states come from its real env's
``reset()``, a function of that env's generator only. Before the rollout each seed draws a
pool of initial states with its generator saved; the generator is put back, and the device
loop hands the pool out in the port's order (step by step, env index by env index). At the
end the env is reset as many times as the pool was used, which leaves its generator (and
its simulator) where the port leaves them -- and the redrawn states are checked to equal the
pool's. A pool that ran out is detected at the end (no sync per step) and that rollout is
run again with a pool as large as the rollout could need.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from vaml_ext.slbo.batched.kernels import StackedNets

MBStep = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


# --------------------------------------------------------------------------------------
# mb_step in torch: (states, scaled actions, next states) [S, E, d] float64 -> (rewards, dones)
# --------------------------------------------------------------------------------------
def _mbbl_pendulum(env, device) -> MBStep:
    max_torque = float(env.max_torque)

    def mb_step(s, a, s2):  # vaml_ext.slbo.mbbl_envs MBBLPendulumEnv.mb_step (MBBL cost_np_vec)
        u = a[..., 0].clamp(-max_torque, max_torque)
        costs = s[..., 0] + 0.1 * s[..., 1].abs() + 0.1 * s[..., 2] ** 2 + 0.001 * u**2
        return -costs, torch.zeros_like(costs, dtype=torch.bool)

    return mb_step


def _pendulum(env, device) -> MBStep:
    max_torque = float(env.max_torque)

    def mb_step(s, a, s2):  # slbo/envs/classic_control/pendulum_env.py
        th = torch.atan2(s[..., 1], s[..., 0])
        u = a[..., 0].clamp(-max_torque, max_torque)
        costs = th**2 + 0.1 * s[..., 2] ** 2 + 0.001 * (u**2)
        return -costs, torch.zeros_like(costs, dtype=torch.bool)

    return mb_step


def _forward(env, device, x_index: int = 0) -> MBStep:
    dt, w_fwd, w_ctrl = float(env.mb_dt()), float(env._forward_reward_weight), float(env._ctrl_cost_weight)

    def mb_step(s, a, s2):  # slbo/envs/mujoco/{swimmer,half_cheetah}_env.py
        reward = w_fwd * (s2[..., x_index] - s[..., x_index]) / dt - w_ctrl * (a**2).sum(-1)
        return reward, torch.zeros_like(reward, dtype=torch.bool)

    return mb_step


def _hopper(env, device) -> MBStep:
    dt, w_fwd, w_ctrl = float(env.mb_dt()), float(env._forward_reward_weight), float(env._ctrl_cost_weight)
    healthy_reward, terminate = float(env._healthy_reward), bool(env._terminate_when_unhealthy)
    env._healthy(np.zeros((1, env.observation_space.shape[0])))  # builds the port's bound vectors
    lo, hi = (torch.as_tensor(b, dtype=torch.float64, device=device) for b in env.__dict__["_healthy_bounds"])

    def mb_step(s, a, s2):  # slbo/envs/mujoco/hopper_env.py (mb_step, _healthy)
        rest = s2[..., 1:]
        healthy = ((lo < rest) & (rest < hi)).all(-1)
        x_velocity = (s2[..., 0] - s[..., 0]) / dt
        reward = w_fwd * x_velocity + healthy.double() * healthy_reward - w_ctrl * (a**2).sum(-1)
        return reward, (~healthy if terminate else torch.zeros_like(healthy))

    return mb_step


def _walker2d(env, device) -> MBStep:
    dt, w_fwd, w_ctrl = float(env.mb_dt()), float(env._forward_reward_weight), float(env._ctrl_cost_weight)
    healthy_reward, terminate = float(env._healthy_reward), bool(env._terminate_when_unhealthy)
    (min_z, max_z), (min_angle, max_angle) = env._healthy_z_range, env._healthy_angle_range

    def mb_step(s, a, s2):  # slbo/envs/mujoco/walker2d_env.py
        z, angle = s2[..., 1], s2[..., 2]
        healthy = (min_z < z) & (z < max_z) & (min_angle < angle) & (angle < max_angle)
        x_velocity = (s2[..., 0] - s[..., 0]) / dt
        reward = w_fwd * x_velocity + healthy.double() * healthy_reward - w_ctrl * (a**2).sum(-1)
        return reward, (~healthy if terminate else torch.zeros_like(healthy))

    return mb_step


#: the real env's class name -> a factory of its ``mb_step`` in torch; other envs run their
#: NumPy ``mb_step`` on the host each step (correct, with one round-trip per step)
MB_STEPS: dict[str, Callable[..., MBStep]] = {
    "MBBLPendulumEnv": _mbbl_pendulum,
    "PendulumEnv": _pendulum,
    "SwimmerEnv": _forward,
    "HalfCheetahEnv": _forward,
    "HopperEnv": _hopper,
    "Walker2DEnv": _walker2d,
}


def torch_mb_step(env, device) -> MBStep | None:
    """``env.mb_step`` in torch (same formula; float64), or None where there is none."""
    factory = MB_STEPS.get(type(env).__name__)
    return None if factory is None else factory(env, torch.device(device))


def _host_mb_step(envs) -> MBStep:
    """Each seed's own NumPy ``mb_step``, one host round-trip per step."""

    def mb_step(s, a, s2):
        s_np, a_np, s2_np = (t.cpu().numpy() for t in (s, a, s2))
        out = [env.mb_step(s_np[i], a_np[i], s2_np[i]) for i, env in enumerate(envs)]
        rewards = torch.as_tensor(np.stack([np.asarray(r, dtype=np.float64) for r, _ in out]), device=s.device)
        dones = torch.as_tensor(np.stack([np.asarray(d).astype(bool) for _, d in out]), device=s.device)
        return rewards, dones

    return mb_step


# --------------------------------------------------------------------------------------
# resets
# --------------------------------------------------------------------------------------
def _draw_pool(env, k: int) -> np.ndarray:
    """``k`` initial states from ``env.reset()``; the env is put back as it was after (its
    ``state_dict``: simulator and generators; else its generator alone)."""
    try:
        saved, restore = env.state_dict(), env.load_state_dict
    except (AttributeError, NotImplementedError):  # an env without the port's resume methods
        gen = env.np_random.bit_generator
        saved = gen.state

        def restore(state):
            gen.state = state

    try:
        return np.array([env.reset()[0] for _ in range(k)], dtype=np.float64).reshape(k, -1)
    finally:
        restore(saved)


def _replay_resets(env, pool: np.ndarray, used: int) -> None:
    """Reset ``env`` ``used`` times, as the port's ``partial_reset`` calls would have, and check
    that it gives the pool's states (the reset is a function of the generator alone)."""
    if used == 0:
        return
    again = np.array([env.reset()[0] for _ in range(used)], dtype=np.float64).reshape(used, -1)
    if not np.array_equal(again, pool[:used]):
        raise RuntimeError(
            f"{type(env).__name__}.reset() gave other states when replayed: its initial states depend on more than "
            "its generator, so the device rollout cannot draw them ahead (run this env without the device path)"
        )


# --------------------------------------------------------------------------------------
# the rollout
# --------------------------------------------------------------------------------------
def _linear(x, w, b):
    return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))


@torch.inference_mode()
def rollout_group(group: list) -> None:
    """Run a group of :class:`kernels.RolloutRequest` (same shapes) on their device; each
    gets ``result = (dataset, ep_infos)`` as ``Runner.run`` returns them, with the runner
    and env left in the port's state (states, episode counters, env generator)."""
    runners = [r.runner for r in group]
    n_steps, n_envs = group[0].n_steps, runners[0].n_envs
    hint = max([n_envs, *(2 * getattr(r, "_vaml_resets_last", 0) for r in runners)])
    # a pool that ran out (None): again with one that cannot (a reset per env and step)
    out = _run(group, min(hint, n_envs * n_steps)) or _run(group, n_envs * n_steps)
    records, ended, ep_returns, used, pools, final = out
    for s, r in enumerate(group):
        runner, venv = runners[s], runners[s].env
        _replay_resets(venv._env, pools[s], int(used[s]))
        runner._vaml_resets_last = int(used[s])
        venv._states = final["states"][s].copy()
        runner._returns[:] = final["returns"][s]
        runner._n_steps[:] = final["n_steps"][s]
        runner._states = venv._states.copy()
        fields = runner._new_fields(n_steps)
        for name, values in records.items():
            fields[name][...] = values[:, s]
        t_idx, e_idx = np.nonzero(ended[:, s])  # step by step, env index by env index: the port's order
        ep_infos = [{"return": ep_returns[t, s, e]} for t, e in zip(t_idx, e_idx)]
        r.result = (runner._to_dataset(fields, n_steps * n_envs), ep_infos)


def _run(group: list, pool_size: int):
    runners = [r.runner for r in group]
    venvs = [r.env for r in runners]
    n_seeds, n_steps, n_envs = len(group), group[0].n_steps, runners[0].n_envs
    dev = venvs[0]._model.net[0].weight.device
    f64 = dict(dtype=torch.float64, device=dev)
    nets = StackedNets.of(group)
    lo = torch.as_tensor(np.stack([v.action_space.low for v in venvs]), **f64).unsqueeze(1)
    span = torch.as_tensor(np.stack([v.action_space.high - v.action_space.low for v in venvs]), **f64).unsqueeze(1)
    mb_step = torch_mb_step(venvs[0]._env, dev) or _host_mb_step([v._env for v in venvs])
    max_steps = runners[0].max_steps

    pools_np = [_draw_pool(v._env, pool_size) for v in venvs]
    pool = torch.as_tensor(np.stack(pools_np), **f64)  # [S, K, d]
    noise = torch.as_tensor(np.stack([r.noise for r in group], 1), **f64)  # [T, S, E, da]
    states = torch.as_tensor(np.stack([v._states for v in venvs]), **f64)  # [S, E, d]
    returns = torch.as_tensor(np.stack([r._returns for r in runners]), **f64)
    n_ep = torch.as_tensor(np.stack([r._n_steps for r in runners]), device=dev)
    used = torch.zeros(n_seeds, dtype=torch.long, device=dev)
    dim = states.shape[2]
    rec = {
        "state": torch.empty(n_steps, n_seeds, n_envs, dim, **f64),
        "action": torch.empty_like(noise),
        "next_state": torch.empty(n_steps, n_seeds, n_envs, dim, **f64),
        "reward": torch.empty(n_steps, n_seeds, n_envs, **f64),
        "done": torch.empty(n_steps, n_seeds, n_envs, dtype=torch.bool, device=dev),
        "timeout": torch.empty(n_steps, n_seeds, n_envs, dtype=torch.bool, device=dev),
    }
    ended_rec = torch.empty(n_steps, n_seeds, n_envs, dtype=torch.bool, device=dev)
    ep_ret = torch.empty(n_steps, n_seeds, n_envs, **f64)
    for t in range(n_steps):  # as kernels._rollout_group / VirtualEnv.fast_rollout + Runner._run_fast
        s32 = states.float()
        mean, norm = nets.policy_mean(s32, _linear)
        actions = mean.double() + noise[t]
        nxt = nets.next_states(s32, norm, actions.float().clamp(-1.0, 1.0), _linear).double()
        rewards, dones = mb_step(states, lo + (actions + 1.0) * 0.5 * span, nxt)
        returns += rewards
        n_ep += 1
        timeouts = n_ep == max_steps
        ended = dones | timeouts
        rec["state"][t], rec["action"][t], rec["next_state"][t] = states, actions, nxt
        rec["reward"][t], rec["done"][t], rec["timeout"][t] = rewards, dones, timeouts
        ended_rec[t], ep_ret[t] = ended, returns
        # resets: the k-th ended env of this step takes the seed's next pool entry, in env order
        rank = used.unsqueeze(1) + ended.long().cumsum(1) - 1
        fresh = pool.gather(1, rank.clamp(0, pool_size - 1).unsqueeze(2).expand(-1, -1, dim))
        states = torch.where(ended.unsqueeze(2), fresh, nxt)
        used += ended.sum(1)
        returns = returns.masked_fill(ended, 0.0)
        n_ep = n_ep.masked_fill(ended, 0)
    used_np = used.cpu().numpy()  # the rollout's one sync before its records come back
    if (used_np > pool_size).any():
        return None
    records = {k: v.cpu().numpy() for k, v in rec.items()}
    final = {"states": states.cpu().numpy(), "returns": returns.cpu().numpy(), "n_steps": n_ep.cpu().numpy()}
    return records, ended_rec.cpu().numpy(), ep_ret.cpu().numpy(), used_np, pools_np, final
