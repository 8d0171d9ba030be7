"""With model_loss=mle, patched MBPO is upstream MBPO: deterministic, and untouched by plugins."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from vaml_ext.mbpo.runner import SMOKE_OVERRIDES, compose, run_mbpo

pytestmark = [pytest.mark.slow, pytest.mark.numerics]  # two MBPO runs per test, one of them in subprocesses

DET_OVERRIDES = ["device=cpu", "seed=3", *SMOKE_OVERRIDES, "overrides.num_steps=300"]


def _flatten(obj, prefix=""):
    if isinstance(obj, torch.Tensor):
        return {prefix: obj.detach().clone()}
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {}


def _weights(path):
    flat = _flatten(torch.load(path / "model.pth", map_location="cpu", weights_only=False))
    assert flat, "no tensors in model.pth"
    return flat


def test_same_seed_same_returns_and_weights(tmp_path):
    cfg = compose("mbpo_inv_pendulum", DET_OVERRIDES)
    a = run_mbpo(cfg, tmp_path / "a")
    b = run_mbpo(cfg, tmp_path / "b")
    ra = [r["episode_reward"] for r in a["results"]]
    rb = [r["episode_reward"] for r in b["results"]]
    assert len(ra) == 3 and ra == rb
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_plugins_do_not_perturb_mle(tmp_path):
    """Same run with every plugin disabled (MBRL_PLUGINS=none) vs. enabled: identical.

    The value-aware plugin's callbacks (diagnostics) run for every loss, including mle;
    they must not consume upstream's random streams or touch its data.
    """
    code = (
        "import json,sys,torch; torch.set_num_threads(1);"
        "from vaml_ext.mbpo.runner import compose, run_mbpo;"
        f"cfg=compose('mbpo_inv_pendulum', {DET_OVERRIDES!r});"
        "out=run_mbpo(cfg, sys.argv[1]);"
        "print(json.dumps([r['episode_reward'] for r in out['results']]))"
    )
    outs = []
    for flag in ("none", ""):
        env = {**os.environ, "MBRL_PLUGINS": flag}
        wd = tmp_path / (flag or "all")
        proc = subprocess.run(
            [sys.executable, "-c", code, str(wd)], capture_output=True, text=True, env=env, timeout=600
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        outs.append((proc.stdout.strip().splitlines()[-1], _weights(wd)))
    assert outs[0][0] == outs[1][0]
    for k in outs[0][1]:
        assert torch.equal(outs[0][1][k], outs[1][1][k]), k
    assert np.isfinite(json.loads(outs[0][0])).all()


def test_config_without_model_loss_runs_as_mle(tmp_path):
    """A programmatic caller who never heard of the plugin (upstream's own test_mbpo builds
    such a config) gets upstream's behaviour, i.e. exactly the `model_loss=mle` run."""
    from omegaconf import OmegaConf

    cfg = compose("mbpo_inv_pendulum", [*DET_OVERRIDES, "overrides.model_loss=mle"])
    bare = compose("mbpo_inv_pendulum", DET_OVERRIDES)
    OmegaConf.set_struct(bare, False)
    del bare.overrides["model_loss"]
    assert "model_loss" not in bare.overrides
    a = run_mbpo(cfg, tmp_path / "a")
    b = run_mbpo(bare, tmp_path / "b")
    assert [r["episode_reward"] for r in a["results"]] == [r["episode_reward"] for r in b["results"]]
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
