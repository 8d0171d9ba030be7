"""Share finished runs between figures that run the very same run (e.g. Figures 2 and 4).

    python exp/share_runs.py exp/slbo/decision_runs --from fig2 --to fig4 --preset decision
    python exp/share_runs.py exp/slbo/decision_runs --from fig2 --to fig4 --preset decision --dry-run

Figure 4's ``decision`` preset shares ``mle``, ``mle_va_slbo`` and ``ma_l1`` with Figure 2's
(same env, seed, budget and settings), so those runs need not run twice. For every finished
run of ``<root>/<from>/<preset>/`` whose method the target figure also runs, this resolves
the target figure's run (``vaml_ext.exp.run.resolve_run``) and compares it with the run's
``run.yaml``, figure aside: only an identical run is shared. Its small files (those
``exp/commit_finished.py`` commits) are copied to ``<root>/<to>/<preset>/<env>/<method>/seed<n>/``
with ``figure: <to>`` and ``provenance.shared_from`` naming the source, so the target sweep
skips it (``done.json``) and its aggregation reads one figure. Existing targets are left
as they are; a run whose settings differ is reported and not shared.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vaml_ext.runlog import rundir  # noqa: E402

SMALL_FILES = ("done.json", "returns.csv", "progress.csv", "model_diag.csv", "config.yml", "va_model.csv")


def resolved(figure: str, preset: str, env: str, method: str, seed: int) -> dict | None:
    """The run ``figure`` would make (None: the figure does not run that env or method)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from vaml_ext.exp.run import CONF_DIR, RunConfigError, resolve_run

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose(
            "run", overrides=[f"figure={figure}", f"preset={preset}", f"env={env}", f"method={method}", f"seed={seed}"]
        )
    try:
        return resolve_run(cfg)
    except RunConfigError:
        return None


def share(root: Path, src: str, dst: str, preset: str, dry_run: bool = False) -> dict[str, list[str]]:
    """``{"shared": [...], "exists": [...], "differs": [...], "not in target": [...]}``
    (run paths relative to ``root``)."""
    from vaml_ext.exp.run import recorded_config

    out: dict[str, list[str]] = {"shared": [], "exists": [], "differs": [], "not in target": []}
    src_dir = root / src / preset
    for run_dir in rundir.iter_run_dirs(src_dir):
        if not rundir.is_done(run_dir):
            continue
        rel = str(run_dir.relative_to(root))
        rec = rundir.read_run_config(run_dir)
        want = resolved(dst, preset, rec["env"], rec["method"], int(rec["seed"]))
        if want is None:
            out["not in target"].append(rel)
            continue
        have = dict(recorded_config(rec, want), figure=dst)
        if have != want:
            keys = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
            out["differs"].append(f"{rel} ({', '.join(keys)})")
            continue
        dest = root / dst / preset / run_dir.relative_to(src_dir)
        if dest.exists():
            out["exists"].append(rel)
            continue
        out["shared"].append(rel)
        if dry_run:
            continue
        dest.mkdir(parents=True)
        for name in SMALL_FILES:
            if (run_dir / name).is_file():
                shutil.copy2(run_dir / name, dest / name)
        rec = dict(rec, figure=dst)
        rec["provenance"] = dict(rec.get("provenance") or {}, shared_from=rel)
        rundir.write_run_config(dest, rec)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path, help="the sweeps' out dir (holds <figure>/<preset>/)")
    ap.add_argument("--from", dest="src", required=True, help="the figure whose runs are shared")
    ap.add_argument("--to", dest="dst", required=True, help="the figure that reuses them")
    ap.add_argument("--preset", required=True)
    ap.add_argument("--dry-run", action="store_true")
    a = ap.parse_args(argv)
    if not (a.root / a.src / a.preset).is_dir():
        ap.error(f"no sweep at {a.root / a.src / a.preset}")
    res = share(a.root, a.src, a.dst, a.preset, a.dry_run)
    for kind, runs in res.items():
        print(f"{kind}: {len(runs)}" + "".join(f"\n  {r}" for r in runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
