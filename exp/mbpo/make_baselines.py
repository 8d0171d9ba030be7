"""Regenerate the MBPO learning-regression baselines under tests/baselines/.

Runs patched mbrl-lib MBPO at a learning-regression setting (``REGRESSIONS`` in
``vaml_ext/mbpo/runner.py``) for each method and seed, and writes one CSV per method
(``mbpo_<regression>_<method>.csv``: seed, env_step, episode_reward) plus a JSON sidecar
with the exact command, commit, date, overrides and the random-policy return.

    python exp/mbpo/make_baselines.py                                   # inv_pendulum_1k, mle, seeds 0 1 2
    python exp/mbpo/make_baselines.py --regression cartpole_2k --methods mle ma_l1
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from vaml_ext.runlog import numerics  # noqa: E402

numerics.pin()  # stored baselines are made with pinned numerics ($VAML_NUMERICS), before torch loads

import torch  # noqa: E402

from vaml_ext.mbpo.runner import (  # noqa: E402
    REGRESSIONS,
    random_policy_return,
    regression_config,
    run_mbpo,
)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", default=["mle"])
    p.add_argument("--regression", choices=sorted(REGRESSIONS), default="inv_pendulum_1k")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--out", type=Path, default=REPO / "tests" / "baselines")
    p.add_argument("--work", type=Path, default=REPO / "runs" / "baselines")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    env, overrides = REGRESSIONS[a.regression]
    a.out.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    dirty = bool(
        subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    )
    for method in a.methods:
        rows, seconds = [], []
        for seed in a.seeds:
            cfg = regression_config(a.regression, method, seed)
            t0 = time.perf_counter()
            out = run_mbpo(cfg, a.work / a.regression / method / str(seed), silent=True)
            seconds.append(time.perf_counter() - t0)
            for r in out["results"]:
                rows.append({"seed": seed, "env_step": int(r["env_step"]), "episode_reward": r["episode_reward"]})
            print(
                f"{method} seed {seed}: {[round(r['episode_reward'], 1) for r in out['results']]} ({seconds[-1]:.0f}s)",
                flush=True,
            )
        rnd = random_policy_return(regression_config(a.regression, "mle", 0), episodes=20)
        stem = f"mbpo_{a.regression}_{method}"
        with open(a.out / f"{stem}.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["seed", "env_step", "episode_reward"])
            w.writeheader()
            w.writerows(rows)
        meta = {
            "command": f"python exp/mbpo/make_baselines.py --regression {a.regression} --methods "
            + " ".join(a.methods)
            + " --seeds "
            + " ".join(map(str, a.seeds)),
            "commit": commit + ("-dirty" if dirty else ""),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "env": env,
            "method": method,
            "seeds": a.seeds,
            "regression": a.regression,
            "overrides": list(overrides) + [f"overrides.model_loss={method}"],
            "random_policy_return": rnd,
            "seconds_per_run": seconds,
            "torch": torch.__version__,
            "numerics": numerics.fingerprint(),
        }
        (a.out / f"{stem}.json").write_text(json.dumps(meta, indent=2) + "\n")
        print(f"wrote {a.out / stem}.csv/.json (random policy: {rnd:.1f})")


if __name__ == "__main__":
    main()
