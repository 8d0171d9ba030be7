"""The replay buffers of the two mbrl-lib bases, in one place.

* ``mbrl.util.ReplayBuffer`` -- the real-data buffer of both bases, and 0.2.0's model-rollout
  (SAC) buffer: arrays ``obs``/``next_obs``/``action``/``reward`` and ``terminated``/``truncated``
  (0.2.0) or ``done`` (0.2.0.dev3), its own numpy ``Generator``;
* Yarats' ``mbrl.third_party.pytorch_sac.ReplayBuffer`` -- 0.2.0.dev3's (and the authors')
  model-rollout buffer: ``obses``/``next_obses``/``actions``/``rewards``/``not_dones``/
  ``not_dones_no_max``, sampled with numpy's global RNG.

What the plugin does to them: empty one in place (the authors' refit), sample a critic batch
from either, and checkpoint/restore one exactly (:mod:`vaml_ext.mbpo.checkpoint`).
"""

from __future__ import annotations

import numpy as np
import torch


def gen_state(gen: np.random.Generator):
    return gen.bit_generator.state


def set_gen_state(gen: np.random.Generator, state) -> None:
    gen.bit_generator.state = state  # in place: the loop and the buffer share the object


#: per-transition arrays of mbrl's ``ReplayBuffer`` (0.2.0: ``terminated``/``truncated``;
#: 0.2.0.dev3: ``done``) and of Yarats' ``pytorch_sac.ReplayBuffer`` (0.2.0.dev3's
#: model-rollout buffer, ``mbrl/third_party/pytorch_sac/replay_buffer.py``)
_MBRL_ARRAYS = ("obs", "next_obs", "action", "reward", "terminated", "truncated", "done")
_YARATS_ARRAYS = ("obses", "next_obses", "actions", "rewards", "not_dones", "not_dones_no_max")


def _buffer_rng(buf) -> np.random.Generator:
    return buf.rng if hasattr(buf, "rng") else buf._rng  # 0.2.0 | 0.2.0.dev3


def buffer_state(buf) -> dict:
    if hasattr(buf, "obses"):  # Yarats' pytorch_sac buffer (samples with numpy's global RNG)
        n = len(buf)
        return {
            "kind": "pytorch_sac",
            "capacity": buf.capacity,
            "obs_shape": buf.obses.shape[1:],
            "act_shape": buf.actions.shape[1:],
            "device": str(buf.device),
            "idx": buf.idx,
            "full": buf.full,
            "last_save": buf.last_save,
            "arrays": {k: getattr(buf, k)[:n].copy() for k in _YARATS_ARRAYS},
        }
    n = buf.num_stored
    return {
        "capacity": buf.capacity,
        "cur_idx": buf.cur_idx,
        "num_stored": n,
        "obs_shape": buf.obs.shape[1:],
        "act_shape": buf.action.shape[1:],
        "dtypes": (buf.obs.dtype, buf.action.dtype, buf.reward.dtype),
        "arrays": {k: getattr(buf, k)[:n].copy() for k in _MBRL_ARRAYS if hasattr(buf, k)},
        "trajectory_indices": buf.trajectory_indices,
        "start_last_trajectory": buf._start_last_trajectory,
        "rng": gen_state(_buffer_rng(buf)),
    }


def load_buffer_state(buf, st: dict) -> None:
    obs = buf.obses if st.get("kind") == "pytorch_sac" else buf.obs
    if buf.capacity != st["capacity"] or obs.shape[1:] != tuple(st["obs_shape"]):
        raise RuntimeError(
            f"checkpointed replay buffer (capacity {st['capacity']}, obs {st['obs_shape']}) "
            f"does not fit this run's buffer (capacity {buf.capacity}, obs {obs.shape[1:]})"
        )
    if st.get("kind") == "pytorch_sac":
        n = len(st["arrays"]["obses"])
        for k, v in st["arrays"].items():
            getattr(buf, k)[:n] = v
        buf.idx, buf.full, buf.last_save = st["idx"], st["full"], st["last_save"]
        return
    n = st["num_stored"]
    for k, v in st["arrays"].items():
        getattr(buf, k)[:n] = v
    buf.num_stored, buf.cur_idx = n, st["cur_idx"]
    buf.trajectory_indices = st["trajectory_indices"]
    buf._start_last_trajectory = st["start_last_trajectory"]
    set_gen_state(_buffer_rng(buf), st["rng"])


def new_buffer(st: dict):
    if st.get("kind") == "pytorch_sac":
        from mbrl.third_party.pytorch_sac import ReplayBuffer

        sac_buf = ReplayBuffer(
            tuple(st["obs_shape"]), tuple(st["act_shape"]), st["capacity"], torch.device(st["device"])
        )
        load_buffer_state(sac_buf, st)
        return sac_buf
    import mbrl.util

    obs_t, act_t, rew_t = st["dtypes"]
    buf = mbrl.util.ReplayBuffer(
        st["capacity"],
        tuple(st["obs_shape"]),
        tuple(st["act_shape"]),
        obs_type=obs_t,
        action_type=act_t,
        reward_type=rew_t,
        rng=np.random.default_rng(),
    )
    load_buffer_state(buf, st)
    return buf


def clear_buffer(buf) -> None:
    """Empty the agent's SAC buffer in place (the authors' ``clear_all_contents``,
    va_mbpo pytorch_sac/replay_buffer.py l.47-60: the index and fill state reset)."""
    if hasattr(buf, "not_dones_no_max"):  # pytorch_sac.ReplayBuffer (mbrl 0.2.0.dev3)
        buf.idx, buf.full = 0, False
        if hasattr(buf, "last_save"):
            buf.last_save = 0
    elif hasattr(buf, "num_stored") and hasattr(buf, "cur_idx"):  # mbrl.util.ReplayBuffer
        buf.cur_idx, buf.num_stored = 0, 0
        if hasattr(buf, "_start_last_trajectory"):
            buf._start_last_trajectory = 0
        if getattr(buf, "trajectory_indices", None) is not None:
            buf.trajectory_indices = []
    else:
        raise TypeError(f"value_refit_mode=authors cannot clear a SAC buffer of type {type(buf).__name__}")


def sample_buffer(buf, n: int, device) -> tuple[torch.Tensor, ...]:
    """``(s, a, r [n,1], s', not_done [n,1])`` from either buffer type; ``not_done`` is
    ``1 − terminated`` (time-limit truncations bootstrap, as ``not_done_no_max``)."""
    if hasattr(buf, "not_dones_no_max"):
        s, a, r, s2, _not_done, not_done_no_max = buf.sample(n)
        return s.to(device), a.to(device), r.to(device), s2.to(device), not_done_no_max.to(device)
    s, a, s2, r, term, _ = buf.sample(n).astuple()

    def t(x):
        return torch.as_tensor(x, dtype=torch.float32, device=device)

    return t(s), t(a), t(r).reshape(-1, 1), t(s2), 1.0 - t(term).reshape(-1, 1)
