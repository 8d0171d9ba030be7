"""One-line entry point for the paper's SLBO variants on the patched port.

    python -m vaml_ext.slbo.run variant=ma_l1 env=hopper seed=1 [setting=paper] [slbo.n_stages=2 ...]

* ``variant``: ``slbo`` | ``mle`` | ``ma_l1`` | ``ma_vaml`` | ``ma_l1_naive`` (Fig. 2 and 4) |
  ``mle_va_slbo`` (the authors' MLE, bug included: :mod:`vaml_ext.slbo.losses`)
* ``setting``: ``upstream`` (default: upstream's configs) | ``paper`` (the authors' runs:
  per-env episode length / virtual envs x horizon, value-net gradient clip, one-step
  value-aware loss -- :mod:`vaml_ext.slbo.settings`); its flags precede the user's
* ``env``: a stem of ``configs/envs/*.yml`` (hopper, swimmer, half_cheetah, walker, ant,
  reacher, pendulum, acrobot, cartpole, half_cheetah_short)
* ``wandb=true`` (with optional ``wandb_project=``, ``wandb_entity=``, ``wandb_mode=offline``):
  log the run's ``progress.csv`` rows to Weights & Biases (``pip install wandb``);
* any other ``key=value`` is an upstream flag (``-s key=value``), e.g. ``slbo.n_stages=2``.

It composes upstream's command line ``-c configs/algos/slbo.yml configs/envs/<env>.yml
configs/vaml/<variant>.yml -s log_dir=... seed=... key=value ...`` and runs
``slbo.main`` from the patched tree (``third_party/slbo-patched``, built by
``vaml-patch apply slbo``; override with ``$SLBO_PATCHED``). The default ``log_dir`` is
``runs/slbo/<env>/<variant>/seed<seed>`` (``runs/slbo/paper/<env>/...`` for
``setting=paper``), so re-running the same command resumes a killed run.
The run holds ``log_dir``'s :class:`~vaml_ext.runlog.lock.RunLock` from before anything is
written: a second process on the same ``log_dir`` exits at once, naming the holder.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from vaml_ext.runlog.lock import RunInUse, RunLock
from vaml_ext.runlog.rundir import REPO, read_csv_rows

VARIANTS = ("slbo", "mle", "ma_l1", "ma_vaml", "ma_l1_naive", "mle_va_slbo")


def patched_tree() -> Path:
    tree = Path(os.environ.get("SLBO_PATCHED", REPO / "third_party" / "slbo-patched"))
    if not (tree / "slbo" / "main.py").is_file() or not (tree / "configs" / "vaml").is_dir():
        raise SystemExit(f"patched SLBO tree not found at {tree}; build it with `vaml-patch apply slbo`")
    return tree


def build_argv(argv, tree: Path):
    from vaml_ext.slbo.settings import setting_flags

    opts = dict(variant="slbo", env="hopper", seed="100", setting="upstream")
    sets = []
    for a in argv:
        key, sep, value = a.partition("=")
        if not sep:
            raise SystemExit(f"expected key=value, got {a!r}")
        if key in opts:
            opts[key] = value
        else:
            sets.append(a)
    if opts["variant"] not in VARIANTS:
        raise SystemExit(f"variant={opts['variant']!r}; valid: {', '.join(VARIANTS)}")
    env_cfg = tree / "configs" / "envs" / f"{opts['env']}.yml"
    if not env_cfg.is_file():
        valid = sorted(p.stem for p in (tree / "configs" / "envs").glob("*.yml"))
        raise SystemExit(f"env={opts['env']!r}; valid: {', '.join(valid)}")
    try:
        setting = setting_flags(opts["setting"], opts["env"], opts["variant"])
    except ValueError as e:
        raise SystemExit(str(e)) from None
    if not any(s.startswith("log_dir=") for s in sets):
        root = REPO / "runs" / "slbo" / ("" if opts["setting"] == "upstream" else opts["setting"])
        sets.append(f"log_dir={root / opts['env'] / opts['variant'] / ('seed' + opts['seed'])}")
    return [
        "-c",
        str(tree / "configs" / "algos" / "slbo.yml"),
        str(env_cfg),
        str(tree / "configs" / "vaml" / f"{opts['variant']}.yml"),
        "-s",
        f"seed={opts['seed']}",
        *setting,
        *sets,
    ]


def main(argv=None):
    from vaml_ext.runlog import numerics

    numerics.pin()  # before slbo imports torch ($VAML_NUMERICS; pinned by default)
    from vaml_ext.runlog import tracking

    tree = patched_tree()
    try:
        wandb_opts, argv = tracking.pop_wandb_args(sys.argv[1:] if argv is None else argv)
        tracking.check_wandb_options(wandb_opts)
    except (ValueError, tracking.WandbNotInstalled) as e:
        raise SystemExit(str(e)) from None
    args = build_argv(argv, tree)
    sys.path.insert(0, str(tree))
    from slbo.main import cli
    from slbo.utils.flags import FLAGS
    from vaml_ext.slbo.mbbl_envs import register

    register()  # MBBLPendulum-v0, MBBLAcrobot-v0: the paper's Pendulum and Acrobot (setting=paper)

    if not hasattr(FLAGS, "vaml"):
        raise SystemExit(f"`slbo` was imported from {sys.modules['slbo'].__file__}, not the patched tree {tree}")
    log_dir = Path(next(a.partition("=")[2] for a in reversed(args) if a.startswith("log_dir=")))
    tag = os.environ.get("VAML_RUN_TAG") or f"slbo {log_dir}"
    try:
        lock = RunLock(log_dir).acquire()
    except RunInUse as e:
        raise SystemExit(f"slbo: {e}") from None
    try:
        # W&B (optional): the run's key=value arguments as config, progress.csv rows as they are written
        with tracking.follow_csv_in_wandb(wandb_opts, {"argv": list(argv)}, log_dir, "progress.csv", "n_real_samples"):
            out = cli(args)
        tracking.finish_run(
            read_csv_rows(log_dir / "progress.csv"),
            None,
            log_dir,
            tag=tag,
            step_key="n_real_samples",
            return_key="real_return_mean",
        )  # two-line summary + done.json
        return out
    finally:
        lock.release()


if __name__ == "__main__":
    main()
