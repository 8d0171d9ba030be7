"""One run of a figure sweep -- the Hydra app behind every figure command (issue #6).

    python -m vaml_ext.exp.run figure=fig3 preset=smoke env=hopper method=ma_l1 seed=0
    python -m vaml_ext.exp.run -m figure=fig3 preset=smoke env=hopper,walker method=mle,ma_l1 seed=0,1
    python -m vaml_ext.exp fig3 --preset smoke         # the whole figure + aggregation

Configs: ``exp/conf/run.yaml`` (this app), ``exp/conf/figure/fig*.yaml`` (envs, methods,
seeds and the ``smoke``/``short``/``paper`` budgets per figure), launchers in
``exp/conf/hydra/launcher/`` (``local`` = hydra-joblib-launcher, the default;
``slurm`` = hydra-submitit-launcher).

MBPO runs go on the mbrl-lib base ``base=`` names (``current`` = mbrl 0.2.0, the default;
``paper`` = the authors' 0.2.0.dev3 in ``.venv-paper``; a preset may set its own,
:mod:`vaml_ext.exp.bases`); ``run.yaml`` records it with its pinned upstream.

Each job owns the run directory ``<out_root>/<figure>/<run_group>/<env>/<method>/seed<k>``
(``run_group`` = the preset, ``<preset>-<base>`` for another base than the preset's;
format: :mod:`vaml_ext.runlog.rundir`). It writes ``run.yaml`` (resolved config, git
commit), then runs the backend (``vaml_ext.exp.backends``; MBPO and SLBO in a child
process, the gridworld in-process); its verbose log goes to ``stdout.log``, progress
lines to stderr. A run directory with
``done.json`` is skipped, one with a checkpoint resumes, one that another process is
writing (its :class:`~vaml_ext.runlog.lock.RunLock` is held) is reported "in use" and
skipped, and a failed run writes ``failed.json`` and is reported without stopping the
rest of the sweep. ``restart=true`` starts unfinished runs over (their checkpoints are
set aside, not deleted) -- the explicit choice when no checkpoint of a run can be loaded.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from vaml_ext.exp.bases import BaseError, base_budget, base_for, base_settings, interpreter, pin
from vaml_ext.figures import preset_budget
from vaml_ext.runlog.atomic import RunWriteError, atomic_write_text
from vaml_ext.runlog.lock import RunInUse, RunLock, child_env, describe
from vaml_ext.runlog.rundir import REPO, git_provenance, is_done, read_done, read_run_config, write_run_config

CONF_DIR = REPO / "exp" / "conf"
PRESETS = ("smoke", "short", "medium", "decision", "paper", "smoke_mlp", "paper_mlp", "paper_mlp_onehot")
FAILED_FILE = "failed.json"


class RunConfigError(ValueError):
    pass


def budget_for(figure: dict, preset: str, env: str):
    try:
        return preset_budget(figure, preset, env)
    except KeyError as e:
        raise RunConfigError(e.args[0]) from None


def seeds_for(figure: dict, preset: str):
    """The seeds a preset runs by default: its own ``seeds`` list, else the figure's."""
    return selection_for(figure, preset, "seeds")


def selection_for(figure: dict, preset: str, kind: str) -> list:
    """The ``envs`` / ``methods`` / ``seeds`` a preset runs by default: the preset's own list
    (a subset of the figure's), else the figure's. A preset naming an env or method the figure
    lacks is an error: the figure's lists are the valid names. Seeds are not names: a preset
    may run more than the figure's (the paper's) seeds, e.g. the 8 a decision needs."""
    p = (figure.get("presets") or {}).get(preset) or {}
    chosen = list(p.get(kind, figure[kind]))
    bad = [c for c in chosen if c not in figure[kind]] if kind != "seeds" else []
    if bad:
        raise RunConfigError(
            f"{figure['name']} preset {preset}: {kind} {bad} not in the figure's {kind} {figure[kind]}"
        )
    return chosen


def resolve_run(cfg: DictConfig) -> dict:
    """The run's resolved config (what run.yaml holds, minus provenance); validates names."""
    fig: Any = OmegaConf.to_container(cfg.figure, resolve=True)
    env, method, seed, preset = cfg.env, cfg.method, cfg.seed, cfg.preset
    if env not in fig["envs"]:
        raise RunConfigError(f"env={env!r} is not in {fig['name']}; valid: {', '.join(fig['envs'])}")
    if method not in fig["methods"]:
        raise RunConfigError(f"method={method!r} is not in {fig['name']}; valid: {', '.join(fig['methods'])}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise RunConfigError(f"seed={seed!r} is invalid: expected an integer >= 0")
    try:
        base = base_for(fig, preset, cfg.get("base"))
    except BaseError as e:
        raise RunConfigError(str(e)) from None
    out = {
        "figure": fig["name"],
        "preset": preset,
        "backend": fig["backend"],
        "env": env,
        "method": method,
        "seed": seed,
        "budget": base_budget(fig, base, budget_for(fig, preset, env)),
    }
    if fig["backend"] == "mbpo":
        out["settings"] = {"env": fig["env_settings"][env], "method": fig["method_settings"][method]}
        if base_settings(fig, base):
            out["settings"]["base"] = base_settings(fig, base)
        out["base"] = pin(base)  # the mbrl-lib base the run ran on, with its pinned upstream
    elif fig["backend"] == "gridworld":
        import yaml

        dyna = yaml.safe_load((REPO / fig["dyna_config"]).read_text()).get("dyna", {})
        out["settings"] = {"size": int(env.removeprefix("grid")), "dyna": dyna}
    elif fig["backend"] != "slbo":
        raise RunConfigError(f"figure {fig['name']}: unknown backend {fig['backend']!r}")
    return out


def recorded_config(recorded: dict, run: dict) -> dict:
    """The part of a run directory's ``run.yaml`` that must equal :func:`resolve_run`'s for the
    run to continue there (provenance and resume records aside). A ``run.yaml`` written before
    runs recorded their base ran on the default base: it matches a ``current``-base run."""
    old = {k: v for k, v in recorded.items() if k not in ("provenance", "resumes")}
    if "base" in run and "base" not in old and run["base"].get("name") == "current":
        old["base"] = run["base"]
    return old


def _die_with_parent():  # pragma: no cover - runs in the child
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


#: backends run inside the launcher's job process: they use private random generators
#: only and no global framework state, so they need no process of their own (saves the
#: ~3 s interpreter + torch start-up per run). MBPO (Hydra compose, global RNG seeding)
#: and SLBO (global FLAGS) each run in a fresh child process.
IN_PROCESS = ("gridworld",)


def _run_in_process(run_dir: Path, cfg: DictConfig, tag: str, log) -> int:
    import contextlib
    import random
    import traceback

    import numpy as np
    import torch

    from vaml_ext.exp import backends

    saved = {k: os.environ.get(k) for k in ("VAML_PROGRESS", "VAML_RUN_TAG", "VAML_RESTART")}
    os.environ.update(
        VAML_PROGRESS="1" if cfg.progress else "0", VAML_RUN_TAG=tag, VAML_RESTART="1" if cfg.get("restart") else "0"
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(int(cfg.threads))
    torch.manual_seed(int(cfg.seed))  # defensive: the run must not depend on what ran before in this process
    np.random.seed(int(cfg.seed))
    random.seed(int(cfg.seed))
    try:
        with contextlib.redirect_stdout(log):
            return backends.main([str(run_dir)])
    except Exception:
        log.write(traceback.format_exc())
        return 1
    finally:
        torch.set_num_threads(threads)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _claim(run_dir: Path, tag: str) -> tuple[RunLock | None, dict | None]:
    """``run_dir``'s lock, or (None, why it is skipped): finished already, or in use by
    another process. The lock is taken before anything is written, and ``done.json`` is
    looked at again under it (the run may have finished while we looked)."""
    if not is_done(run_dir):
        try:
            lock = RunLock(run_dir).acquire()
        except RunInUse as e:
            print(f"[{tag}] in use by {describe(e.holder)}; skipped", file=sys.stderr, flush=True)
            return None, {"status": "in use", "holder": e.holder}
        if not is_done(run_dir):
            return lock, None
        lock.release()
    print(f"[{tag}] finished already, skipped", flush=True)
    return None, {"status": "skipped", **(read_done(run_dir) or {})}


def run_one(cfg: DictConfig, run_dir: Path) -> dict:
    run_dir = Path(run_dir)
    if len(job_seeds(cfg.seed)) > 1:
        return run_batch(cfg, run_dir)
    tag = f"{cfg.figure.name}/{cfg.preset}/{cfg.env}/{cfg.method}/seed{cfg.seed}"
    lock, skipped = _claim(run_dir, tag)
    if lock is None:
        return skipped or {}
    try:
        return _run_one_locked(cfg, run_dir, tag)
    finally:
        lock.release()


def _prepare(cfg: DictConfig, run_dir: Path, tag: str) -> tuple[dict, str, dict]:
    """Check or write ``run_dir``'s ``run.yaml`` for ``cfg``; the run, its interpreter and
    the child's environment."""
    run = resolve_run(cfg)
    python = sys.executable
    if "base" in run:
        try:
            python = interpreter(run["base"]["name"])
        except BaseError as e:
            raise RunConfigError(str(e)) from None
    if (run_dir / "run.yaml").is_file():
        old = recorded_config(read_run_config(run_dir), run)
        if old != run:
            raise RunConfigError(
                f"{run_dir} holds a run with a different config; "
                f"remove it or choose another out_root (old: {old}, new: {run})"
            )
        prev = read_run_config(run_dir)
        run["provenance"] = prev.get("provenance")
        run["resumes"] = list(prev.get("resumes") or []) + [git_provenance()]
        print(f"[{tag}] restarting an unfinished run (resumes from its checkpoint if any)", flush=True)
    else:
        run["provenance"] = git_provenance()
    write_run_config(run_dir, run)
    (run_dir / FAILED_FILE).unlink(missing_ok=True)
    env = child_env(
        run_dir,
        dict(
            os.environ,
            OMP_NUM_THREADS=str(cfg.threads),
            MKL_NUM_THREADS=str(cfg.threads),
            VAML_PROGRESS="1" if cfg.progress else "0",
            VAML_RUN_TAG=tag,
            VAML_RESTART="1" if cfg.get("restart") else "0",
        ),
    )
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return run, python, env


def _outcome(run_dir: Path, tag: str, returncode: int, t0: float, log_file: Path) -> dict:
    """``done.json``'s summary, or ``failed.json`` written (with the log's tail) and returned."""
    if returncode != 0 or not is_done(run_dir):
        tail = log_file.read_text(errors="replace")[-2000:] if log_file.is_file() else ""
        info = {"returncode": returncode, "seconds": round(time.time() - t0, 1), "log_tail": tail}
        try:
            atomic_write_text(run_dir / FAILED_FILE, json.dumps(info, indent=2) + "\n")
        except RunWriteError as e:  # e.g. the disk that stopped the run is still full
            print(f"[{tag}] {e}", file=sys.stderr, flush=True)
        print(f"[{tag}] FAILED (exit {returncode}); see {log_file}", file=sys.stderr, flush=True)
        return {"status": "failed", **info}
    return {"status": "finished", **(read_done(run_dir) or {})}


def _backends(python: str, args: list[str], env: dict, log) -> int:
    """``python -m vaml_ext.exp.backends ARGS`` in a child that dies with this process."""
    cmd = [python, "-m", "vaml_ext.exp.backends", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, stdout=log, stderr=None, preexec_fn=_die_with_parent).returncode


def _run_one_locked(cfg: DictConfig, run_dir: Path, tag: str) -> dict:
    run, python, env = _prepare(cfg, run_dir, tag)
    t0 = time.time()
    with open(run_dir / "stdout.log", "a") as log:
        log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} start {tag}\n")
        log.flush()
        if run["backend"] in IN_PROCESS:
            returncode = _run_in_process(run_dir, cfg, tag, log)
        else:
            returncode = _backends(python, [str(run_dir)], env, log)
    return _outcome(run_dir, tag, returncode, t0, run_dir / "stdout.log")


# ---- several seeds as one job (SLBO: the seed-batched runner) ----------------------------
def job_seeds(seed) -> list[int]:
    """The seeds of a job: ``seed=3`` -> [3]; ``seed=1+2+3`` -> [1, 2, 3] (one job, batched)."""
    if isinstance(seed, int) and not isinstance(seed, bool):
        return [seed]
    try:
        seeds = [int(s) for s in str(seed).split("+")]
    except ValueError:
        raise RunConfigError(f"seed={seed!r} is invalid: expected an integer >= 0, or several as 1+2+3") from None
    if len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds):
        raise RunConfigError(f"seed={seed!r} is invalid: each seed once, each >= 0")
    return seeds


OmegaConf.register_new_resolver("vaml_first_seed", lambda seed: str(job_seeds(seed)[0]), replace=True)


def run_batch(cfg: DictConfig, first_dir: Path) -> dict:
    """Seeds ``cfg.seed`` (``a+b+...``) of one env and method as one job: each seed keeps its
    own run directory (``<...>/seed<k>``, ``run.yaml`` as a one-seed run writes it); those
    not finished and not in use run in one process, the SLBO seed-batched runner
    (:mod:`vaml_ext.slbo.batched.run`: the same numbers per seed as one seed per process).
    The batch's console log is the first running seed's ``stdout.log``."""
    seeds = job_seeds(cfg.seed)
    if cfg.figure.backend != "slbo":
        raise RunConfigError(f"seed={cfg.seed}: several seeds per job only for SLBO figures, not {cfg.figure.backend}")
    root = Path(first_dir).parent
    todo, locks, out = [], [], {}
    try:
        for k in seeds:
            cfg_k = cfg.copy()
            cfg_k.seed = k
            run_dir, tag = root / f"seed{k}", f"{cfg.figure.name}/{cfg.preset}/{cfg.env}/{cfg.method}/seed{k}"
            run_dir.mkdir(parents=True, exist_ok=True)
            lock, skipped = _claim(run_dir, tag)
            if lock is None:
                out[k] = skipped or {}
                continue
            locks.append(lock)
            run, python, env = _prepare(cfg_k, run_dir, tag)
            todo.append((k, run_dir, tag))
        if todo:
            t0 = time.time()
            log_file = todo[0][1] / "stdout.log"
            names = "+".join(str(k) for k, _, _ in todo)
            for _, run_dir, tag in todo[1:]:
                with open(run_dir / "stdout.log", "a") as log:
                    log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} start {tag}, batched with seeds {names}: ")
                    log.write(f"the batch's log is {log_file}; this seed's own log is log.txt\n")
            env = child_env(todo[0][1], env, more=[d for _, d, _ in todo[1:]])
            env.pop("VAML_RUN_TAG", None)  # each seed's progress line names its own run
            with open(log_file, "a") as log:
                log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} start seeds {names} as one batch\n")
                log.flush()
                returncode = _backends(python, ["--batch", *(str(d) for _, d, _ in todo)], env, log)
            for k, run_dir, tag in todo:
                own = run_dir / "log.txt" if run_dir != todo[0][1] else log_file
                out[k] = _outcome(run_dir, tag, returncode if not is_done(run_dir) else 0, t0, own)
    finally:
        for lock in locks:
            lock.release()
    statuses = {v["status"] for v in out.values()}
    status = "failed" if "failed" in statuses else "in use" if "in use" in statuses else "finished"
    return {"status": status, "seeds": out}


@hydra.main(config_path=str(CONF_DIR), config_name="run", version_base=None)
def main(cfg: DictConfig):
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    out = run_one(cfg, Path(hc.runtime.output_dir))
    if hc.mode == RunMode.RUN and out.get("status") in ("failed", "in use"):
        # one run (the README's command, each SLURM array task): shells, CI and schedulers see
        # the failure. A multirun's jobs return instead: the sweep counts failed.json files.
        sys.exit(1)
    return out


if __name__ == "__main__":
    from vaml_ext.runlog import numerics

    numerics.pin()  # before torch loads; the runs' processes inherit it ($VAML_NUMERICS)
    main()
