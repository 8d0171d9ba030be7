"""Named SLBO run settings: ``upstream`` (default) and ``paper`` (the authors' runs).

``python -m vaml_ext.slbo.run variant=ma_l1 env=hopper setting=paper`` turns a setting into
upstream flags (``-s key=value``) placed *before* the user's own ``key=value`` arguments, so
anything given on the command line still wins.

* ``upstream`` -- facebookresearch/slbo's configs as ported (``configs/algos/slbo.yml`` +
  ``configs/envs/<env>.yml``: 500-step episodes, 8 virtual envs x 500 steps) and the
  ``configs/vaml/<variant>.yml`` of the patch series. Nothing is added.
* ``paper`` -- what the authors' README ran (GitHub ``nirbhayjm/va_slbo``, README "Run":
  ``--config configs/algos/${ALGO}.yml configs/env_tingwu/gym_cheetah.yml --set
  model.value_update_interval=20 ...``):

  - Pendulum and Acrobot are MBBL's tasks (``env.id=MBBLPendulum-v0`` / ``MBBLAcrobot-v0``,
    :mod:`vaml_ext.slbo.mbbl_envs`; va_slbo ``slbo/partial_envs.py`` l.20-57): a dense
    reward for hanging still at the bottom, and a three-torque Acrobot rewarded by its tip
    height without termination -- not Gymnasium's swing-up and the port's sparse Acrobot;
  - per-env episode length and virtual rollout horizon from ``configs/env_tingwu/gym_*.yml``
    (``runner.max_steps`` = ``plan.max_steps``; ``plan.n_envs`` then follows from
    ``plan.n_trpo_samples`` 4000, ``slbo/utils/flags.py`` l.48-52): MuJoCo 1000 (4 x 1000),
    Pendulum/Acrobot/CartPole 200 (20 x 200), Reacher 50 (80 x 50);
  - every value-net fit (TRPO's and the refit's) clips the value net's global gradient norm
    at 2.0 (``slbo/algos/TRPO.py`` l.163-178, ``compute_vf(..., max_grad_norm=2.0)``; built
    once in ``TRPO.__init__`` for every ``algorithm``, so the authors' ``slbo`` and ``mle``
    runs have it too);
  - value-aware variants: ``model.multi_step`` 1 (``configs/algos/va.yml`` sets none, flag
    default 1, ``slbo/utils/flags.py`` l.91), so the loss is ``0.01 * mean |A|`` over *one*
    step of 128 real transitions (``slbo/loss/va_loss.py`` l.101-108: sum over the step
    axis / step, then batch mean);
  - ``slbo``: upstream's "L2" criterion built with ``size_average=False`` (``slbo/main.py``
    l.129-135: ``size_average = FLAGS.algorithm == "va"``), i.e. the per-step error norm
    summed over state dims, ``sqrt(Σ_j e_j²)`` -- sqrt(d) times upstream's RMS;
  - ``mle_va_slbo``: ``configs/algos/mle.yml`` (criterion ``MSE``, ``multi_step`` 2) with
    the same ``size_average=False``; its loss itself is the registry entry ``mle_va_slbo``
    (:mod:`vaml_ext.slbo.losses`).

  - ``slbo``, ``mle``, ``mle_va_slbo``: Algorithm 2's value refit too
    (``vaml.refit_every_loss=true``, patch 0011): the authors' loop refits for every
    algorithm when the interval is > 0 (va_slbo ``slbo/main.py`` l.327-330) and their README
    command passes 20 whatever the algorithm. ``vaml.refit_every_loss=false`` switches it off.

  Refit interval (20), coefficient (0.01), optimiser and weight decay (1e-5) are the port's
  defaults already -- the authors kept upstream's (``va_loss.py`` l.116-136).
"""

from __future__ import annotations

SETTINGS = ("upstream", "paper")

#: ``configs/env_tingwu/gym_*.yml`` of nirbhayjm/va_slbo: ``runner.max_steps`` = ``plan.max_steps``
PAPER_EPISODE_STEPS: dict[str, int] = {
    "hopper": 1000,  # gym_hopper.yml
    "swimmer": 1000,  # gym_swimmer.yml
    "half_cheetah": 1000,  # gym_cheetah.yml
    "walker": 1000,  # gym_walker2d.yml
    "ant": 1000,  # gym_ant.yml
    "pendulum": 200,  # gym_pendulum.yml
    "acrobot": 200,  # gym_acrobot.yml
    "cartpole": 200,  # gym_cartpole.yml
    "reacher": 50,  # gym_reacher.yml
}

#: the authors' env classes where they are not the port's default (``slbo/partial_envs.py``
#: l.20-57 of va_slbo: MBBL's Pendulum and Acrobot, :mod:`vaml_ext.slbo.mbbl_envs`)
PAPER_ENV_IDS: dict[str, str] = {"pendulum": "MBBLPendulum-v0", "acrobot": "MBBLAcrobot-v0"}

#: flags every variant gets under ``setting=paper``
PAPER_COMMON: list[str] = ["vaml.vf_grad_clip=2.0"]

#: per-variant flags under ``setting=paper``
PAPER_VARIANT: dict[str, list[str]] = {
    "slbo": ["vaml.criterion_size_average=false", "vaml.refit_every_loss=true"],
    "mle": ["vaml.refit_every_loss=true"],  # our (correct) MLE ablation; the authors' is ``mle_va_slbo``
    "mle_va_slbo": [
        "model.loss=MSE",
        "model.multi_step=2",
        "vaml.criterion_size_average=false",
        "vaml.refit_every_loss=true",
    ],
    "ma_l1": ["model.multi_step=1"],
    "ma_vaml": ["model.multi_step=1"],
    "ma_l1_naive": ["model.multi_step=1"],
}


def setting_flags(setting: str, env: str, variant: str) -> list[str]:
    """Upstream ``-s`` flags of ``setting`` for ``env`` and ``variant``; clear errors otherwise."""
    if setting not in SETTINGS:
        raise ValueError(f"setting={setting!r}; valid: {', '.join(SETTINGS)}")
    if setting == "upstream":
        return []
    if env not in PAPER_EPISODE_STEPS:
        raise ValueError(
            f"setting=paper has no settings for env={env!r} (the authors' configs/env_tingwu "
            f"covers: {', '.join(PAPER_EPISODE_STEPS)})"
        )
    if variant not in PAPER_VARIANT:
        raise ValueError(f"setting=paper has no settings for variant={variant!r}; valid: {', '.join(PAPER_VARIANT)}")
    steps = PAPER_EPISODE_STEPS[env]
    env_id = [f"env.id={PAPER_ENV_IDS[env]}"] if env in PAPER_ENV_IDS else []
    return [*env_id, f"runner.max_steps={steps}", f"plan.max_steps={steps}", *PAPER_COMMON, *PAPER_VARIANT[variant]]
