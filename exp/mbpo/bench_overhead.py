"""Wall-clock overhead of value-aware MBPO vs. MLE, measured side by side in one run.

For each env and variant (``mle``; ``ma_l1`` without refit; ``ma_l1`` with the
stale-value refit at the given sizes) it runs patched mbrl-lib MBPO in-process with
the same seed and a short budget, repeats the variants interleaved, and prints
medians of: seconds per env step (whole loop), seconds per model-training call
(refits included, since they run inside model training), refit seconds per call,
the final evaluation return, and each variant's ratio to ``mle``.

    python exp/mbpo/bench_overhead.py                                  # InvertedPendulum + Hopper, defaults
    python exp/mbpo/bench_overhead.py --envs mbpo_inv_pendulum --refit-sizes 100 1000 10000 50000 --repeats 3

Model training is capped at ``--model-epochs`` epochs per call so every variant does
the same amount of model work (patience-based early stopping otherwise differs per
loss and would confound the timing). Results are also written as CSV (``--out``).

``--per-update`` instead times single model minibatch updates (``mle`` vs. the value-aware
update with each estimator) on training batches of the same shape, and lists the value-aware
update's top ops: where its extra cost per model call comes from.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from vaml_ext.mbpo.runner import compose, run_mbpo  # noqa: E402

BUDGETS = {
    # env override: (initial exploration, env steps, extra overrides); upstream hyper-parameters otherwise.
    "mbpo_inv_pendulum": (250, 1000, []),
    # mbrl's loop always finishes the 1,000-step epoch it is in (1,000 steps x 40 SAC updates, ~20 min per
    # variant on 2 cores), so Hopper is timed with 250-step epochs: the model is still trained every 250
    # steps (freq_train_model) and SAC still does 40 updates per step; only evaluation is more frequent.
    "mbpo_hopper": (250, 750, ["overrides.epoch_length=250"]),
}


def variants(refit_sizes):
    out = [
        ("mle", ["overrides.model_loss=mle"]),
        ("ma_l1 no refit", ["overrides.model_loss=ma_l1", "overrides.value_update_interval=0"]),
    ]
    for n in refit_sizes:
        out.append((f"ma_l1 refit {n}", ["overrides.model_loss=ma_l1", f"overrides.value_refit_batch_size={n}"]))
    return out


def git_commit() -> str:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
            ).stdout.strip()
            or "unknown"
        )
    except OSError:
        return "unknown"


def one(env, extra, steps, init, seed, model_epochs, work):
    cfg = compose(
        env,
        [
            "device=cpu",
            f"seed={seed}",
            f"algorithm.initial_exploration_steps={init}",
            f"overrides.num_steps={steps}",
            f"++overrides.num_epochs_train_model={model_epochs}",
            *extra,
        ],
    )
    t0 = time.perf_counter()
    out = run_mbpo(cfg, work, silent=False)  # the diagnostics CSV needs the logger
    total = time.perf_counter() - t0
    diag = []
    p = Path(work) / "va_model.csv"
    if p.is_file():
        with open(p) as f:
            diag = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]
    calls = max(1, len(diag))
    model_s = sum(r["model_train_seconds"] for r in diag) / calls if diag else float("nan")
    refit_s = (diag[-1]["refit_s_total"] / calls) if diag else 0.0
    rets = [r["episode_reward"] for r in out["results"]]
    # mbrl's MBPO loop finishes the epoch it is in, so the real step count can exceed `steps`
    done = int(max((r["env_step"] for r in out["results"]), default=steps - 1)) + 1
    return {
        "per_step": total / max(done, steps),
        "model_call": model_s,
        "refit_call": refit_s,
        "final_return": rets[-1] if rets else float("nan"),
    }


def per_update(env: str, seed: int, repeats: int, n: int = 20) -> None:
    """CPU ms of one model minibatch update, ``mle`` (upstream's ``update``) vs. the
    value-aware update per estimator, on a training batch of mbrl's own bootstrap iterator
    (``[E, B, ·]``, upstream's sizes; 1,000 random-policy transitions, untrained agent),
    interleaved, medians; then the value-aware update's top ops (torch.profiler)."""
    import mbrl.util.common
    from mbrl.util.plugins import TrainingContext
    from torch.profiler import ProfilerActivity, profile

    from vaml_ext.mbpo.model_loss import ValueAwareModelUpdate
    from vaml_ext.mbpo.runner import random_data_start

    cfg = compose(env, ["device=cpu", f"seed={seed}", "overrides.model_loss=ma_l1"])
    menv, _, agent, dyn, rb = random_data_start(cfg, 1000, seed)
    train_it, _ = mbrl.util.common.get_basic_buffer_iterators(
        rb,
        cfg.overrides.model_batch_size,
        cfg.overrides.validation_ratio,
        ensemble_size=len(dyn),
        shuffle_each_epoch=True,
    )
    batches: list = []
    while len(batches) < n:  # a few epochs of the iterator (1,000 transitions make ~4 batches each)
        batches.extend(train_it)
    batches = batches[:n]
    ctx = TrainingContext(cfg=cfg, work_dir=".", env=menv, agent=agent, dynamics_model=dyn, rollout_length=1)
    opt = torch.optim.Adam(dyn.parameters(), lr=cfg.overrides.model_lr)
    ups = {"mle": lambda b: dyn.update(b, opt)}
    for value in ("q1", "q1_indep"):
        ups[f"ma_l1 {value}"] = ValueAwareModelUpdate(ctx, "ma_l1", coeff=0.01, value=value).__call__
    times = {k: [] for k in ups}
    for _ in range(repeats):
        for k, f in ups.items():
            t = time.process_time()
            for b in batches:
                f(b) if k == "mle" else f(b, opt)
            times[k].append((time.process_time() - t) / len(batches))
    shape = tuple(batches[0].obs.shape)
    print(f"\n== {env}: one model update, batch {shape}, {repeats} x {n} updates, CPU ms (median) ==")
    base = statistics.median(times["mle"])
    for k, ts in times.items():
        print(f"{k:16s} {statistics.median(ts) * 1e3:8.2f} ms  {statistics.median(ts) / base:5.2f}x mle")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for b in batches:
            ups["ma_l1 q1"](b, opt)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", nargs="+", default=list(BUDGETS))
    p.add_argument("--refit-sizes", nargs="+", type=int, default=[1000])
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--model-epochs", type=int, default=5)
    p.add_argument("--steps", type=int, default=None, help="override the env-step budget")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=REPO / "runs" / "bench_overhead")
    p.add_argument(
        "--per-update", action="store_true", help="time single model updates (mle vs. value-aware) instead of runs"
    )
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.per_update:
        for env in a.envs:
            per_update(env, a.seed, max(a.repeats, 5))
        return
    a.out.mkdir(parents=True, exist_ok=True)
    commit = git_commit()
    rows = []
    for env in a.envs:
        init, steps, env_extra = BUDGETS.get(env, (250, 1000, []))
        steps = a.steps or steps
        vs = [(n, [*env_extra, *x]) for n, x in variants(a.refit_sizes)]
        samples = {name: [] for name, _ in vs}
        for rep in range(a.repeats):
            order = vs[rep % len(vs) :] + vs[: rep % len(vs)]  # rotate to spread machine drift
            for name, extra in order:
                print(f"[{env}] repeat {rep + 1}/{a.repeats}: {name} ...", flush=True)
                r = one(
                    env, extra, steps, init, a.seed, a.model_epochs, a.out / env / name.replace(" ", "_") / str(rep)
                )
                samples[name].append(r)
                print(
                    f"    {r['per_step'] * 1e3:.1f} ms/env step, model call {r['model_call']:.2f}s "
                    f"(refit {r['refit_call']:.2f}s), final return {r['final_return']:.1f}",
                    flush=True,
                )
        med = {n: {k: statistics.median(s[k] for s in ss) for k in ss[0]} for n, ss in samples.items()}
        base = med["mle"]
        print(f"\n== {env}: {steps} env steps, {a.repeats} repeat(s), medians, commit {commit} ==")
        print(
            f"{'variant':22s} {'ms/step':>9s} {'x mle':>6s} {'model s/call':>13s} {'x mle':>6s} "
            f"{'refit s/call':>13s} {'final ret':>9s}"
        )
        for n, m in med.items():
            print(
                f"{n:22s} {m['per_step'] * 1e3:9.1f} {m['per_step'] / base['per_step']:6.2f} "
                f"{m['model_call']:13.2f} {m['model_call'] / base['model_call']:6.2f} "
                f"{m['refit_call']:13.2f} {m['final_return']:9.1f}"
            )
            rows.append(
                {
                    "env": env,
                    "variant": n,
                    "commit": commit,
                    "steps": steps,
                    "repeats": a.repeats,
                    **m,
                    "ratio_per_step": m["per_step"] / base["per_step"],
                    "ratio_model_call": m["model_call"] / base["model_call"],
                }
            )
    path = a.out / "bench_overhead.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()
