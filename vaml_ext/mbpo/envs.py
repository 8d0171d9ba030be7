"""MBPO's Ant and Humanoid as the authors' runs saw them: no contact forces in the reward.

The authors pinned ``mujoco-py==2.1.2.14`` (GitHub ``nirbhayjm/va_mbpo``,
``requirements/va_mbpo_requirements.txt``; ``requirements/conda_va_mbpo.yaml``). On MuJoCo
2.x, mujoco-py never runs ``mj_rnePostConstraint`` after a step, so ``data.cfrc_ext`` stays
zero (openai/gym#1541) and mbrl's ``ant_truncated_obs`` / ``humanoid_truncated_obs`` reward
terms that read it -- Ant's contact cost ``0.5e-3 Σ clip(cfrc_ext, -1, 1)²``, Humanoid's
impact cost ``0.5e-6 Σ cfrc_ext²`` -- were zero in every step of their runs. Gymnasium's
``MujocoEnv`` (our stack) calls it after every step, so those costs count for us.

The variants below step the same simulation without that call (observations, dynamics
and termination unchanged: ``cfrc_ext`` feeds only the reward), registered as gymnasium ids
when the plugin loads, so either base runs them through mbrl's own ``gym___`` env path:

    python -m mbrl.examples.main algorithm=mbpo overrides=mbpo_ant overrides.profile=paper \\
        overrides.env=gym___vaml/AntTruncatedObsNoContactForces-v0 ++overrides.term_fn=ant

Humanoid: ``overrides.env=gym___vaml/HumanoidTruncatedObsNoContactForces-v0`` with
``++overrides.term_fn=ant`` on the paper base (mbrl 0.2.0.dev3 gives the humanoid the ant's
termination function, as the authors ran it) or ``humanoid`` on the default base.
``exp/mbpo/FIDELITY.md`` names the difference.
"""

from __future__ import annotations

#: gymnasium id -> entry point
VARIANTS: dict[str, str] = {
    "vaml/AntTruncatedObsNoContactForces-v0": "vaml_ext.mbpo.envs:AntTruncatedObsNoContactForces",
    "vaml/HumanoidTruncatedObsNoContactForces-v0": "vaml_ext.mbpo.envs:HumanoidTruncatedObsNoContactForces",
}


def _step_without_contact_forces(self, ctrl, n_frames) -> None:
    """Gymnasium's ``MujocoEnv._step_mujoco_simulation`` without ``mj_rnePostConstraint``:
    what mujoco-py 2.1 did, so ``cfrc_ext`` keeps the zeros ``mj_resetData`` left."""
    import mujoco

    self.data.ctrl[:] = ctrl
    mujoco.mj_step(self.model, self.data, nstep=n_frames)


def _variant(name: str, base):
    return type(name, (base,), {"_step_mujoco_simulation": _step_without_contact_forces, "__module__": __name__})


def __getattr__(name: str):  # the env classes import mbrl and MuJoCo: built on first use
    from mbrl.env.mujoco_envs import AntTruncatedObsEnv, HumanoidTruncatedObsEnv

    bases = {
        "AntTruncatedObsNoContactForces": AntTruncatedObsEnv,
        "HumanoidTruncatedObsNoContactForces": HumanoidTruncatedObsEnv,
    }
    if name not in bases:
        raise AttributeError(name)
    cls = _variant(name, bases[name])
    globals()[name] = cls
    return cls


def register() -> None:
    """Register :data:`VARIANTS` with gymnasium (idempotent); 1,000-step episodes, as mbrl
    wraps ``ant_truncated_obs`` and ``humanoid_truncated_obs``."""
    import gymnasium as gym

    for env_id, entry_point in VARIANTS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, max_episode_steps=1000)
