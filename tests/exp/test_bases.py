"""The figure command's mbrl-lib base (``--base paper|current``, a preset's ``base``):
the sweep command, what run.yaml records, the interpreter choice and its errors."""

import tomllib
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from vaml_ext.exp import bases
from vaml_ext.exp.__main__ import load_figure, main
from vaml_ext.exp.run import CONF_DIR, RunConfigError, recorded_config, resolve_run, run_one
from vaml_ext.runlog.rundir import REPO


def _cfg(*overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return compose("run", overrides=list(overrides))


def _toml(series):
    return tomllib.loads((REPO / "patches" / series / "upstream.toml").read_text())


def test_dry_run_names_the_base_and_its_directory(capsys):
    assert main(["fig3", "--preset", "smoke", "--envs", "hopper", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "base=current run_group=smoke " in out and "preset smoke, base current" in out
    assert main(["fig3", "--preset", "smoke", "--envs", "hopper", "--base", "paper", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "base=paper run_group=smoke-paper " in out and out.split("-> ")[1].split()[0].endswith("fig3/smoke-paper")
    # Figure 3's paper preset runs on the paper base unless told otherwise
    assert main(["fig3", "--preset", "paper", "--dry-run"]) == 0
    assert "base=paper run_group=paper " in capsys.readouterr().out
    assert main(["fig3", "--preset", "paper", "--base", "current", "--dry-run"]) == 0
    assert "base=current run_group=paper-current " in capsys.readouterr().out


def test_only_mbpo_figures_take_another_base(capsys):
    with pytest.raises(SystemExit):
        main(["fig2", "--preset", "smoke", "--base", "paper", "--dry-run"])
    assert "applies to MBPO figures only; fig2 runs the slbo backend" in capsys.readouterr().err
    assert main(["fig2", "--preset", "smoke", "--base", "current", "--dry-run"]) == 0
    with pytest.raises(SystemExit):
        main(["fig3", "--base", "dev3", "--dry-run"])
    assert "invalid choice: 'dev3'" in capsys.readouterr().err
    bad = dict(load_figure("fig3"), presets={"x": {"base": "nope"}})
    with pytest.raises(bases.BaseError, match="fig3 preset x: base='nope' is invalid: expected one of current, paper"):
        bases.base_for(bad, "x")


def test_run_yaml_records_the_base_and_its_pin():
    cur = resolve_run(_cfg("figure=fig3", "preset=smoke", "env=hopper", "method=ma_l1"))
    pin = _toml("mbrl-lib")
    assert cur["base"] == {
        "name": "current",
        "series": "patches/mbrl-lib",
        "package": "mbrl",
        "version": pin["version"],
        "sha256": pin["sha256"],
    }
    assert pin["version"] == "0.2.0" and "base" not in cur["settings"]
    assert "overrides.sac_batch_size=32" in cur["budget"] and "overrides.value_refit_batch_size=100" in cur["budget"]

    paper = resolve_run(_cfg("figure=fig3", "preset=smoke", "env=hopper", "method=ma_l1", "base=paper"))
    pin = _toml("mbrl-lib-dev3")
    assert paper["base"]["name"] == "paper" and paper["base"]["series"] == "patches/mbrl-lib-dev3"
    assert (paper["base"]["version"], paper["base"]["sha256"]) == ("0.2.0.dev3", pin["sha256"])
    assert paper["settings"]["base"] == ["overrides.profile=paper"]
    # budget keys of 0.2.0 renamed for 0.2.0.dev3, the one the paper profile fixes dropped
    assert "algorithm.agent.batch_size=32" in paper["budget"]
    assert not any(
        b.startswith(("overrides.sac_batch_size", "overrides.value_refit_batch_size")) for b in paper["budget"]
    )
    assert [b for b in paper["budget"] if "batch_size" not in b] == [b for b in cur["budget"] if "batch_size" not in b]

    # the paper preset's own base, and base= overriding it
    assert resolve_run(_cfg("figure=fig3", "preset=paper", "env=ant", "method=mle"))["base"]["name"] == "paper"
    assert (
        resolve_run(_cfg("figure=fig3", "preset=paper", "env=ant", "method=mle", "base=current"))["base"]["name"]
        == "current"
    )
    # non-MBPO runs record no base; asking them for another one is an error
    assert "base" not in resolve_run(_cfg("figure=fig1", "preset=smoke", "env=grid5", "method=mle"))
    with pytest.raises(RunConfigError, match="applies to MBPO figures only"):
        resolve_run(_cfg("figure=fig1", "preset=smoke", "env=grid5", "method=mle", "base=paper"))


def test_run_yaml_from_before_bases_continues_on_the_default_base():
    run = resolve_run(_cfg("figure=fig3", "preset=smoke", "env=hopper", "method=mle"))
    old = {k: v for k, v in run.items() if k != "base"}
    assert recorded_config({**old, "provenance": {"commit": "x"}}, run) == run
    paper = resolve_run(_cfg("figure=fig3", "preset=smoke", "env=hopper", "method=mle", "base=paper"))
    assert recorded_config(old, paper) != paper  # a current-base run does not continue on the paper base


def test_missing_paper_venv_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(bases.PAPER_VENV_ENV, str(tmp_path / "no-venv"))
    with pytest.raises(bases.BaseNotInstalled, match="make install-paper"):
        bases.interpreter("paper")
    assert bases.interpreter("current")  # the sweep's own interpreter
    # the figure command refuses before starting anything; its dry run says so
    with pytest.raises(SystemExit):
        main(["fig3", "--preset", "smoke", "--base", "paper", "--envs", "hopper", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert "no-venv/bin/python, which is missing: build the paper base with `make install-paper`" in err
    assert not (tmp_path / "out").exists()
    assert main(["fig3", "--preset", "smoke", "--base", "paper", "--dry-run"]) == 0
    assert "note: base=paper runs MBPO with" in capsys.readouterr().out
    # one run of the sweep app: refused before its run.yaml is written
    run_dir = tmp_path / "run"
    cfg = _cfg("figure=fig3", "preset=smoke", "env=hopper", "method=mle", "base=paper", "progress=false")
    with pytest.raises(RunConfigError, match="make install-paper"):
        run_one(cfg, run_dir)
    assert not (run_dir / "run.yaml").exists()


def test_paper_venv_is_used_when_present(tmp_path, monkeypatch):
    py = tmp_path / "venv" / "bin" / "python"
    py.parent.mkdir(parents=True)
    py.symlink_to(Path("/bin/true"))
    monkeypatch.setenv(bases.PAPER_VENV_ENV, str(tmp_path / "venv"))
    assert bases.interpreter("paper") == str(py)


def test_the_mbpo_backend_refuses_another_mbrl_than_the_pinned_one():
    from vaml_ext.exp.backends import check_base_version

    run = resolve_run(_cfg("figure=fig3", "preset=smoke", "env=hopper", "method=mle"))
    check_base_version(run)  # this interpreter runs the default base
    run["base"] = bases.pin("paper")
    with pytest.raises(RuntimeError, match="base=paper pins mbrl 0.2.0.dev3, but .* has mbrl 0.2.0"):
        check_base_version(run)
