"""What a user of mbrl-lib's own API does with a patched base, as plain checks that run in
this interpreter or, for the paper base, in ``.venv-paper``'s:

    python -m tests.mbpo.upstream_compat_checks <MBPO run dir> <obs dim> <action dim>

* a model an MBPO run saved loads back through
  ``mbrl.util.common.create_one_dim_tr_model(cfg, ..., model_dir=run_dir)`` (torch >= 2.6
  defaults ``torch.load`` to ``weights_only``; patch ``compat: torch >= 2.6 loads ...``);
* ``mbrl.util.mujoco``'s state helpers (``get_current_state``, ``set_env_state``,
  ``FreezeMujoco``) on a ``gym.make``d MuJoCo env (gymnasium 1.x wrappers; patch
  ``compat: gymnasium 1.x wrappers in the mujoco state helpers``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def check_model_loads_back(run_dir: Path, obs_shape: tuple, act_shape: tuple) -> int:
    """Load ``run_dir``'s model through mbrl's API; its tensors must equal the file's.
    Returns the number of tensors compared."""
    import mbrl.util.common as common
    import torch

    cfg = common.load_hydra_cfg(run_dir)
    model = common.create_one_dim_tr_model(cfg, obs_shape, act_shape, model_dir=run_dir)
    saved = torch.load(run_dir / "model.pth", map_location="cpu", weights_only=False)["state_dict"]
    loaded = model.model.state_dict()
    assert saved.keys() == loaded.keys(), (sorted(saved), sorted(loaded))
    for k, v in saved.items():
        assert torch.equal(v.cpu(), loaded[k].cpu()), k
    return len(saved)


def check_mujoco_state_helpers(env_id: str = "InvertedPendulum-v4") -> None:
    """Save the state, step, restore, step again: the same observation both times; the same
    through ``FreezeMujoco``."""
    from mbrl.util.mujoco import FreezeMujoco, MujocoEnvHandler

    env = MujocoEnvHandler.make_env_from_str(f"gym___{env_id}")
    env.reset(seed=0)
    action = np.full(env.action_space.shape, 0.5, dtype=env.action_space.dtype)
    state = MujocoEnvHandler.get_current_state(env)
    first = env.step(action)[0]
    env.step(-action)
    MujocoEnvHandler.set_env_state(state, env)
    assert np.array_equal(env.step(action)[0], first)
    snapshot = env.unwrapped.data.qpos.copy(), env._elapsed_steps
    with FreezeMujoco(env):
        for _ in range(5):
            env.step(action)
    assert np.array_equal(env.unwrapped.data.qpos, snapshot[0]) and env._elapsed_steps == snapshot[1]


if __name__ == "__main__":
    n = check_model_loads_back(Path(sys.argv[1]), (int(sys.argv[2]),), (int(sys.argv[3]),))
    check_mujoco_state_helpers()
    print(f"ok: {n} model tensors loaded back; mujoco state helpers round-trip")
