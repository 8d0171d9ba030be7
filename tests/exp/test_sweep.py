"""Figure sweeps through Hydra's launchers: config composition, validation, skip/resume.

The kill test SIGKILLs a whole sweep (Hydra, joblib workers and the runs' processes)
while a run is between checkpoints, re-runs the same command, and checks that finished
runs are skipped and the interrupted one resumes to exactly the rows of a clean run.
"""

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from tests.support import sigkill_when
from vaml_ext.exp.__main__ import load_figure
from vaml_ext.exp.run import CONF_DIR, PRESETS, RunConfigError, resolve_run, seeds_for, selection_for
from vaml_ext.runlog.rundir import REPO

FIGURES = ("fig1", "fig2", "fig3", "fig4", "vagram")


def _compose(overrides, return_hydra_config=False):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return compose("run", overrides=overrides, return_hydra_config=return_hydra_config)


@pytest.mark.slow
@pytest.mark.parametrize("fig", FIGURES)
def test_every_figure_run_resolves_for_every_preset(fig):
    spec = load_figure(fig)
    if spec.get("paper", True):
        assert len(spec["seeds"]) == 5, "the paper used 5 seeds"
    else:  # beyond the paper: a pre-declared decision needs >= 8 seeds
        assert len(spec["seeds"]) >= 8
    for preset in PRESETS:
        if preset not in spec["presets"]:
            continue
        for env in selection_for(spec, preset, "envs"):
            for method in selection_for(spec, preset, "methods"):
                cfg = _compose(
                    [
                        f"figure={fig}",
                        f"preset={preset}",
                        f"env={env}",
                        f"method={method}",
                        f"seed={seeds_for(spec, preset)[0]}",
                    ]
                )
                run = resolve_run(cfg)
                assert (run["figure"], run["env"], run["method"]) == (fig, env, method)
                assert run["budget"] is not None, (fig, preset, env)


def test_paper_env_lists():
    assert load_figure("fig1")["envs"] == ["grid5", "grid8", "grid12", "grid16"]
    assert set(load_figure("fig3")["envs"]) == {
        "cartpole",
        "swimmer",
        "pusher",
        "walker",
        "hopper",
        "ant",
        "halfcheetah",
    }
    assert load_figure("fig3")["methods"] == ["mle", "ma_l1", "ma_vaml"]
    assert load_figure("fig4")["methods"] == ["mle", "ma_l1_naive", "ma_l1", "mle_va_slbo", "slbo"]
    assert selection_for(load_figure("fig4"), "smoke", "methods") == ["mle", "ma_l1_naive", "ma_l1", "mle_va_slbo"]


def test_preset_selects_envs_methods_seeds():
    fig4 = load_figure("fig4")
    assert selection_for(fig4, "medium", "envs") == ["swimmer", "hopper"]
    assert selection_for(fig4, "medium", "methods") == ["mle", "ma_l1_naive", "ma_l1", "slbo"]
    assert selection_for(fig4, "short", "methods") == fig4["methods"]  # no list: the figure's
    assert selection_for(fig4, "decision", "seeds") == list(range(1, 9))  # beyond the paper's 5: the protocol's 8
    assert seeds_for(fig4, "medium") == [1, 2, 3, 4]
    bad = dict(fig4, presets={"x": {"methods": ["mle", "nope"]}})
    with pytest.raises(RunConfigError, match="nope"):
        selection_for(bad, "x", "methods")


def test_figure_command_uses_the_presets_selection(capsys):
    from vaml_ext.exp.__main__ import main

    assert main(["fig4", "--preset", "medium", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 envs x 4 methods x 4 seeds = 32 runs" in out
    assert "env=swimmer,hopper" in out and "seed=1+2,3+4" in out  # SLBO: seeds batched evenly over --jobs 2
    assert main(["fig4", "--preset", "smoke", "--dry-run"]) == 0
    assert "method=mle,ma_l1_naive,ma_l1,mle_va_slbo " in capsys.readouterr().out
    assert {"pendulum", "acrobot", "hopper", "swimmer", "ant", "reacher"} <= set(load_figure("fig2")["envs"])


def test_mbpo_env_overrides_compose():
    """Every fig3 env's mbrl-lib config composes with the method and budget overrides."""
    from vaml_ext.exp.backends import mbpo_overrides
    from vaml_ext.mbpo.runner import compose as mbpo_compose

    for env in load_figure("fig3")["envs"]:
        cfg = _compose(["figure=fig3", "preset=smoke", f"env={env}", "method=ma_l1"])
        run = resolve_run(cfg)
        m = mbpo_compose(run["settings"]["env"]["overrides"], mbpo_overrides(run))
        assert m.overrides.model_loss == "ma_l1" and m.overrides.checkpoint_every == 1
        assert m.overrides.num_steps == 200
    GlobalHydra.instance().clear()


@pytest.mark.parametrize(
    "launcher,target",
    [
        ("local", "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"),
        ("slurm", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"),
    ],
)
def test_launcher_configs_compose(launcher, target):
    cfg = _compose(
        [
            "figure=fig3",
            "preset=paper",
            "env=hopper",
            "method=ma_l1",
            f"hydra/launcher={launcher}",
            "hydra.launcher.partition=learnfair" if launcher == "slurm" else "hydra.launcher.n_jobs=3",
        ],
        return_hydra_config=True,
    )
    lc = cfg.hydra.launcher
    assert lc._target_ == target
    if launcher == "slurm":
        assert lc.partition == "learnfair" and lc.max_num_timeout >= 1 and lc.cpus_per_task == 2
    else:
        assert lc.n_jobs == 3
    assert cfg.hydra.sweep.subdir == "hopper/ma_l1/seed0"  # unique per run


@pytest.mark.parametrize(
    "key,value,msg",
    [
        ("env", "humanoid", "env='humanoid' is not in fig3"),
        ("method", "slbo", "method='slbo' is not in fig3"),
        ("preset", "huge", "preset='huge' is not defined"),
        ("seed", "-1", "seed=-1 is invalid"),
    ],
)
def test_bad_run_names_fail_clearly(key, value, msg):
    base = {"figure": "fig3", "preset": "smoke", "env": "hopper", "method": "mle", "seed": "0"}
    base[key] = value
    cfg = _compose([f"{k}={v}" for k, v in base.items()])
    with pytest.raises(RunConfigError, match=msg):
        resolve_run(cfg)


def test_figure_command_dry_run_and_bad_subsets(capsys):
    from vaml_ext.exp.__main__ import main

    assert main(["fig3", "--preset", "smoke", "--envs", "hopper", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "env=hopper method=mle,ma_l1,ma_vaml seed=0,1" in out and "hydra/launcher=local" in out
    with pytest.raises(SystemExit, match="--envs humanoid: not in this figure"):
        main(["fig3", "--envs", "humanoid", "--dry-run"])
    with pytest.raises(SystemExit, match="unknown figure 'fig9'"):
        main(["fig9", "--dry-run"])


def _rows(run_dir):
    with open(Path(run_dir) / "returns.csv") as f:
        return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in csv.DictReader(f)]


@pytest.mark.slow
def test_sigkill_sweep_then_rerun(tmp_path):
    """kill -9 of the whole sweep mid-run; the same command then skips and resumes."""
    args = [
        "fig3",
        "--preset",
        "smoke",
        "--envs",
        "hopper",
        "--methods",
        "mle",
        "ma_l1",
        "--seeds",
        "0",
        "--jobs",
        "1",
        "--no-aggregate",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "vaml_ext.exp", *args, "--out", str(tmp_path / "a")]
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    sweep = tmp_path / "a" / "fig3" / "smoke" / "hopper"
    first, second = sweep / "mle" / "seed0", sweep / "ma_l1" / "seed0"
    # jobs run in order: kill once the first is done and the second has its first checkpoint
    sigkill_when(
        proc,
        lambda: (first / "done.json").is_file() and (second / "ckpt" / "latest.pt").is_file(),
        timeout=400,
        group=True,
    )
    time.sleep(0.5)  # the runs' processes die with their parents (PR_SET_PDEATHSIG)
    assert not (second / "done.json").exists(), "the kill did not land mid-run"
    done_mtime = (first / "done.json").stat().st_mtime_ns
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "fig3/smoke/hopper/mle/seed0] finished already, skipped" in out.stdout + out.stderr
    assert (first / "done.json").stat().st_mtime_ns == done_mtime
    assert "resumed from" in (second / "stdout.log").read_text()
    # the resumed run equals an uninterrupted one
    clean = subprocess.run(
        [
            sys.executable,
            "-m",
            "vaml_ext.exp",
            "fig3",
            "--preset",
            "smoke",
            "--envs",
            "hopper",
            "--methods",
            "ma_l1",
            "--seeds",
            "0",
            "--no-aggregate",
            "--out",
            str(tmp_path / "b"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert clean.returncode == 0, clean.stderr[-2000:]
    ref = tmp_path / "b" / "fig3" / "smoke" / "hopper" / "ma_l1" / "seed0"
    assert _rows(second) == _rows(ref) and len(_rows(ref)) == 2


#: a run that fails at once (an invalid MBPO setting)
FAILING_RUN = [
    "figure=fig3",
    "preset=smoke",
    "env=cartpole",
    "method=mle",
    "seed=0",
    "progress=false",
    "figure.presets.smoke.budget.default=['overrides.num_value_updates=-1']",
]


def test_failed_run_is_recorded_and_does_not_raise(tmp_path):
    """A run that fails writes failed.json (exit code + log tail) and returns, so the
    launcher goes on with the sweep; the same run directory is refused for another config."""
    import json

    from vaml_ext.exp.run import run_one

    cfg = _compose(FAILING_RUN)
    out = run_one(cfg, tmp_path)
    assert out["status"] == "failed" and out["returncode"] != 0
    info = json.loads((tmp_path / "failed.json").read_text())
    assert "overrides.num_value_updates=-1 is invalid" in info["log_tail"]
    assert not (tmp_path / "done.json").exists()
    other = _compose(["figure=fig3", "preset=smoke", "env=cartpole", "method=ma_l1", "seed=0"])
    with pytest.raises(RunConfigError, match="holds a run with a different config"):
        run_one(other, tmp_path)


def test_slbo_progress_watch_reads_the_final_row_after_the_run_ends(tmp_path, capsys, monkeypatch):
    """The SLBO progress watcher reads progress.csv once more when the run has ended, so its
    last line shows the final evaluation (it used to stop one stage short), and it leaves the
    end-of-run summary to vaml_ext.runlog.tracking (no second, differing "done:" line)."""
    import threading

    import yaml

    from vaml_ext.exp.backends import _slbo_watch

    monkeypatch.delenv("VAML_RUN_TAG", raising=False)
    (tmp_path / "config.yml").write_text(yaml.safe_dump({"slbo": {"n_stages": 2}, "rollout": {"n_train_samples": 100}}))
    rows = ["stage,n_real_samples,real_return_mean", "0,0,1.5", "1,100,2.5", "2,200,7.25"]
    (tmp_path / "progress.csv").write_text("\n".join(rows) + "\n")
    stop = threading.Event()
    stop.set()  # the run has already ended: one read, then close
    run = {"figure": "fig4", "env": "hopper", "method": "mle", "seed": 1}
    _slbo_watch(tmp_path, run, stop)
    err = capsys.readouterr().err
    assert "200/200 env steps" in err and "return 7.2" in err
    assert "done:" not in err


@pytest.mark.slow  # > 5 s: kept out of make test-fast (still in make test)
def test_one_run_command_exits_non_zero_when_its_run_fails(tmp_path):
    """`python -m vaml_ext.exp.run ...` (the README's one-run command, what each SLURM array
    task runs) exits 1 when its run failed, so shells, CI and schedulers see it."""
    import os
    import subprocess
    import sys

    from vaml_ext.runlog.rundir import REPO

    cmd = [sys.executable, "-m", "vaml_ext.exp.run", *FAILING_RUN, f"hydra.run.dir={tmp_path / 'run'}"]
    out = subprocess.run(
        cmd, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 1, (out.returncode, out.stderr[-2000:])
    assert (tmp_path / "run" / "failed.json").is_file() and "FAILED" in out.stderr


def test_seed_batches_for_slbo_figures_only():
    from vaml_ext.exp.__main__ import seed_jobs
    from vaml_ext.exp.run import job_seeds

    fig2, fig3 = load_figure("fig2"), load_figure("fig3")
    assert seed_jobs(fig2, [1, 2, 3, 4, 5], 2, 2, "local") == ["1+2", "3+4", 5]
    assert seed_jobs(fig2, [1, 2, 3, 4, 5, 6, 7, 8], None, 2, "local") == ["1+2+3+4", "5+6+7+8"]  # even over --jobs
    assert seed_jobs(fig2, [1, 2], None, 2, "local") == [1, 2]  # one per job slot: nothing to batch
    assert seed_jobs(fig2, [1, 2, 3], None, 2, "slurm") == [1, 2, 3]  # a SLURM job per seed unless asked
    assert seed_jobs(fig3, [0, 1], None, 1, "local") == [0, 1]  # MBPO: one seed per process
    with pytest.raises(ValueError, match="only SLBO figures"):
        seed_jobs(fig3, [0, 1], 2, 1, "local")
    with pytest.raises(ValueError, match=">= 1"):
        seed_jobs(fig2, [1], 0, 1, "local")
    assert job_seeds(3) == [3] and job_seeds("1+2+3") == [1, 2, 3]
    for bad in ("1+x", "1+1", "-1+2"):
        with pytest.raises(RunConfigError, match="is invalid"):
            job_seeds(bad)


def test_figure_command_batches_slbo_seeds(capsys):
    from vaml_ext.exp.__main__ import main

    assert main(["fig2", "--preset", "smoke", "--seeds", "1", "2", "3", "--batch-seeds", "2", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert " seed=1+2,3 " in out and "(seeds batched per job: 1+2 3)" in out
    with pytest.raises(SystemExit):
        main(["fig3", "--preset", "smoke", "--batch-seeds", "2", "--dry-run"])
    assert "only SLBO figures" in capsys.readouterr().err


def run_exp(args: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "vaml_ext.exp", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_batched_sweep_gives_the_one_seed_sweeps_runs(tmp_path):
    """``--batch-seeds 2``: each seed's run directory as a one-seed sweep writes it (same
    returns, same run.yaml but its start time), done.json naming the batched runner; the
    same command again skips both."""
    base = ["fig2", "--preset", "smoke", "--envs", "pendulum", "--methods", "ma_l1", "--seeds", "1", "2"]
    base += ["--jobs", "1", "--no-aggregate"]
    for name, batch in (("one", "1"), ("batched", "2")):
        out = run_exp(base + ["--batch-seeds", batch, "--out", str(tmp_path / name)])
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    for seed in (1, 2):
        one, batched = (
            tmp_path / n / "fig2" / "smoke" / "pendulum" / "ma_l1" / f"seed{seed}" for n in ("one", "batched")
        )
        assert _rows(one) == _rows(batched) and len(_rows(one)) == 3
        assert "batched (2 seeds)" in (batched / "done.json").read_text()
        strip = lambda d: [ln for ln in (d / "run.yaml").read_text().splitlines() if "started" not in ln]  # noqa: E731
        assert strip(one) == strip(batched)
    again = run_exp(base + ["--batch-seeds", "2", "--out", str(tmp_path / "batched")])
    assert again.returncode == 0 and again.stdout.count("finished already, skipped") == 2
