"""Compose mbrl-lib's MBPO config in-process and run it (tests, demo, benchmarks).

The command-line entry point is upstream's ``python -m mbrl.examples.main``; this
module composes the *same* config files through Hydra's compose API, so a run here
and a run from the CLI with the same overrides are the same run.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Sequence
from pathlib import Path

from vaml_ext.figures import load_figure, preset_budget
from vaml_ext.runlog.lock import RunLock
from vaml_ext.runlog.rundir import read_csv_rows

_FIG3 = load_figure("fig3")

#: Tiny budgets that keep every stage of the MBPO loop (exploration, model training,
#: model rollouts, SAC updates, evaluation) but finish in seconds: paper Fig. 3's
#: ``smoke`` preset (exp/conf/figure/fig3.yaml) without its value-refit size, which
#: the tests leave at the plugin's default.
SMOKE_OVERRIDES = tuple(
    o for o in preset_budget(_FIG3, "smoke", "default") if not o.startswith("overrides.value_refit_batch_size=")
)

MBPO_OVERRIDES = (
    "mbpo_cartpole",
    "mbpo_inv_pendulum",
    "mbpo_hopper",
    "mbpo_walker",
    "mbpo_halfcheetah",
    "mbpo_ant",
    "mbpo_humanoid",
    "mbpo_pusher",
)


def compose(overrides_name: str, extra: Sequence[str] = (), algorithm: str = "mbpo"):
    """The composed config of ``main.yaml`` with ``algorithm=<algorithm> overrides=<name>``."""
    import hydra
    import mbrl.util  # registers the mbrl_default_device resolver
    import mbrl.util.plugins
    from hydra.core.global_hydra import GlobalHydra

    mbrl.util.plugins.register_configs()
    GlobalHydra.instance().clear()
    import mbrl.examples

    conf_dir = str(Path(mbrl.examples.__file__).resolve().parent / "conf")
    with hydra.initialize_config_dir(config_dir=conf_dir, version_base=None):
        cfg = hydra.compose(
            config_name="main",
            overrides=[f"algorithm={algorithm}", f"overrides={overrides_name}", *extra],
        )
    return cfg


def run_mbpo(cfg, work_dir: os.PathLike, silent: bool = True) -> dict[str, object]:
    """Run ``mbrl.algorithms.mbpo.train`` as ``mbrl.examples.main`` does; return a summary.

    Holds ``work_dir``'s :class:`~vaml_ext.runlog.lock.RunLock` for the whole run (raises
    ``RunInUse`` at once if another process is writing there)."""
    work_dir = Path(work_dir).resolve()
    with RunLock(work_dir):
        return _run_mbpo(cfg, work_dir, silent)


def _run_mbpo(cfg, work_dir: Path, silent: bool) -> dict[str, object]:
    import mbrl.algorithms.mbpo as mbpo
    import mbrl.util.env
    import numpy as np
    import torch

    env, term_fn, _ = mbrl.util.env.EnvHandler.make_env(cfg)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    test_env, *_ = mbrl.util.env.EnvHandler.make_env(cfg)
    t0 = time.perf_counter()
    cwd = os.getcwd()
    try:
        os.chdir(work_dir)  # as hydra.job.chdir does for the CLI
        best = mbpo.train(env, test_env, term_fn, cfg, silent=silent, work_dir=str(work_dir))
    finally:
        os.chdir(cwd)
    complete_results(work_dir)
    seconds = time.perf_counter() - t0
    return {"best_eval_reward": float(best), "seconds": seconds, "results": read_results(work_dir)}


def read_results(work_dir: os.PathLike) -> list[dict[str, float]]:
    """Rows of mbrl's ``results.csv`` (env_step, episode_reward, epoch, rollout_length)."""
    return read_csv_rows(Path(work_dir) / "results.csv", numeric=True)


def complete_results(work_dir: os.PathLike) -> bool:
    """Give a resumed run's ``results.csv`` its rows from before the resume; True if rewritten.

    mbrl's logger reopens ``results.csv`` empty when a checkpointed run resumes. The
    checkpoint plugin refills it through the loop's logger, which a ``silent`` run does not
    hand to plugins, so there the file would hold only the rows after the resume. This
    rewrites it from ``returns.csv`` (the plugin's complete record, one row per evaluation)
    in mbrl's own columns and numbering, provided the rows it holds are the last rows of
    that record (none, when the run resumed after its last evaluation); otherwise (another
    run's file, no record, or no ``results.csv`` at all) it is left as it is.
    """
    from vaml_ext.runlog.rundir import read_eval

    work_dir = Path(work_dir)
    path = work_dir / "results.csv"
    evals, rows = read_eval(work_dir), read_results(work_dir)
    if not path.is_file() or len(rows) >= len(evals) or not {"epoch", "rollout_length"} <= evals[0].keys():
        return False
    full = [
        {
            "env_step": float(e["env_steps"] - 1),  # results.csv counts from 0, returns.csv from 1
            "episode_reward": float(e["return"]),
            "epoch": float(e["epoch"]),
            "rollout_length": float(e["rollout_length"]),
            "step": i + 1,
        }
        for i, e in enumerate(evals)
    ]
    key = ("env_step", "episode_reward", "epoch")
    if [[r[k] for k in key] for r in rows] != [[r[k] for k in key] for r in full[len(full) - len(rows) :]]:
        return False
    with open(path) as f:  # mbrl's logger writes its header (sorted keys) with the first row
        fields = next(csv.reader(f), sorted(full[0]))
    if sorted(fields) != sorted(full[0]):
        return False
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(full)
    os.replace(tmp, path)
    return True


def random_data_start(cfg, n_transitions: int, seed: int):
    """``(env, term_fn, agent, dynamics_model, replay_buffer)`` for ``cfg`` as MBPO builds
    them (untrained SAC agent, Gaussian ensemble, mbrl's replay buffer), the buffer holding
    ``n_transitions`` random-policy transitions and the model's input normaliser fitted to
    them (tests and ``exp/mbpo/bench_overhead.py --per-update``: one model update on real
    mbrl objects without running the loop). Seeds torch's global generator with ``seed``."""
    import hydra
    import mbrl.planning
    import mbrl.util.common
    import mbrl.util.env
    import numpy as np
    import torch
    from mbrl.planning.sac_wrapper import SACAgent

    torch.manual_seed(seed)
    env, term_fn, _ = mbrl.util.env.EnvHandler.make_env(cfg)
    mbrl.planning.complete_agent_cfg(env, cfg.algorithm.agent)
    agent = SACAgent(hydra.utils.instantiate(cfg.algorithm.agent))
    obs_shape, act_shape = env.observation_space.shape, env.action_space.shape
    dyn = mbrl.util.common.create_one_dim_tr_model(cfg, obs_shape, act_shape)
    rb = mbrl.util.common.create_replay_buffer(cfg, obs_shape, act_shape, rng=np.random.default_rng(seed))
    random_agent = mbrl.planning.RandomAgent(env)
    mbrl.util.common.rollout_agent_trajectories(env, n_transitions, random_agent, {}, replay_buffer=rb)
    dyn.update_normalizer(rb.get_all())
    return env, term_fn, agent, dyn, rb


def random_policy_return(cfg, episodes: int = 10, seed: int | None = None) -> float:
    """Mean return of uniformly random actions on the config's env (the learning floor)."""
    import mbrl.util.env

    env, *_ = mbrl.util.env.EnvHandler.make_env(cfg)
    env.action_space.seed(cfg.seed if seed is None else seed)
    total = 0.0
    for ep in range(episodes):
        env.reset(seed=(cfg.seed if seed is None else seed) + 1000 + ep)
        done = False
        while not done:
            _, r, term, trunc, _ = env.step(env.action_space.sample())
            total += float(r)
            done = term or trunc
    return total / episodes


#: Learning regressions (tests/mbpo/test_learning_regression.py, baselines made by
#: exp/mbpo/make_baselines.py). Name -> (mbrl-lib overrides config, extra overrides);
#: the stored curves are ``tests/baselines/mbpo_<name>_<method>.{csv,json}``.
#:
#: * ``inv_pendulum_1k`` (InvertedPendulum is in no figure, so its settings live here):
#:   upstream InvertedPendulum hyper-parameters, a 250-step
#:   warm-up, model training capped at 10 epochs per call, 1,000 env steps. MLE beats a
#:   random policy here; ma_l1 does not learn yet (its critic starts uninformative and
#:   MSE-based early stopping keeps its first model trainings short, exp/mbpo/README.md).
#: * ``cartpole_2k``: paper Fig. 3's CartPole at the figure's ``short`` preset (both
#:   read from exp/conf/figure/fig3.yaml)
#:   (upstream mbrl-lib CartPole: 5,000 exploration steps, 200-step epochs; 10 SAC
#:   updates per step instead of 20, model training capped at 20 epochs per call),
#:   stopped after 2,000 of its 5,000 env steps. Both MLE and MA-L1 learn here, so
#:   the value-aware run is compared with the stored MLE curve (paper: "comparable
#:   but not excess return" on CartPole).
REGRESSIONS = {
    "inv_pendulum_1k": (
        "mbpo_inv_pendulum",
        (
            "device=cpu",
            "algorithm.initial_exploration_steps=250",
            "++overrides.num_epochs_train_model=10",
            "overrides.num_steps=1000",
        ),
    ),
    "cartpole_2k": (
        _FIG3["env_settings"]["cartpole"]["overrides"],
        (
            "device=cpu",
            *preset_budget(_FIG3, "short", "cartpole"),
            "overrides.num_steps=2000",
        ),
    ),
}


def regression_config(name: str, method: str, seed: int, extra: Sequence[str] = ()):
    """Compose the config of learning regression ``name`` for one method and seed."""
    if name not in REGRESSIONS:
        raise KeyError(f"unknown regression {name!r}; valid: {', '.join(REGRESSIONS)}")
    env, overrides = REGRESSIONS[name]
    return compose(env, [*overrides, f"seed={seed}", f"overrides.model_loss={method}", *extra])
