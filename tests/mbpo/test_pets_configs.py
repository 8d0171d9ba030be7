"""PETS through the patched base: the restored action-optimizer configs take each env's
settings from its overrides file (patch ``examples: restore ...``), as upstream's do."""

import hydra
import numpy as np
import pytest
from omegaconf import OmegaConf

from vaml_ext.mbpo.runner import compose

#: override file -> (optimizer config, key prefix in the overrides file)
PETS = {
    "pets_cartpole": "cem",
    "pets_halfcheetah": "cem",
    "pets_hopper": "cem",
    "pets_icem_cartpole": "icem",
    "pets_mppi_halfcheetah": "mppi",
}


@pytest.mark.parametrize("override", sorted(PETS))
def test_action_optimizer_takes_the_envs_settings(override):
    opt = PETS[override]
    cfg = compose(override, ["device=cpu", f"action_optimizer={opt}"], algorithm="pets")
    o = cfg.overrides
    prefix = "mppi" if opt == "mppi" else "cem"
    assert cfg.action_optimizer.population_size == o[f"{prefix}_population_size"]
    assert cfg.action_optimizer.num_iterations == o[f"{prefix}_num_iters"]
    if opt != "mppi":
        assert cfg.action_optimizer.elite_ratio == o.cem_elite_ratio and cfg.action_optimizer.alpha == o.cem_alpha
    bounds = OmegaConf.create({"lower_bound": [[-1.0]] * 2, "upper_bound": [[1.0]] * 2})
    optimizer = hydra.utils.instantiate(OmegaConf.merge(cfg.action_optimizer, bounds))
    assert type(optimizer).__name__ == {"cem": "CEMOptimizer", "icem": "ICEMOptimizer", "mppi": "MPPIOptimizer"}[opt]
    assert optimizer.population_size == o[f"{prefix}_population_size"]


def test_pets_cartpole_population_is_its_own_not_a_default():
    cfg = compose("pets_cartpole", ["device=cpu"], algorithm="pets")
    assert cfg.overrides.cem_population_size == 350 and cfg.action_optimizer.population_size == 350
    assert np.isclose(compose("pets_halfcheetah", ["device=cpu"], algorithm="pets").action_optimizer.alpha, 0.12)


@pytest.mark.slow
@pytest.mark.parametrize("base", ["current", "paper"])
def test_pets_runs_through_the_entry_point(tmp_path, base):
    """`python -m mbrl.examples.main algorithm=pets ...` on each base (tiny budget). Under
    hydra-core >= 1.1 the agent config was instantiated recursively and its optimizer failed
    on the bounds the agent fills in (`_recursive_: false`, patch 0001 of each base)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    python = sys.executable if base == "current" else str(repo / ".venv-paper" / "bin" / "python")
    if not Path(python).exists():
        if os.environ.get("VAML_REQUIRE_PAPER_BASE") == "1":
            pytest.fail("paper base required (VAML_REQUIRE_PAPER_BASE=1) but .venv-paper is missing")
        pytest.skip("paper base not installed (make install-paper)")
    cmd = [
        python,
        "-m",
        "mbrl.examples.main",
        "algorithm=pets",
        "overrides=pets_cartpole",
        "device=cpu",
        f"hydra.run.dir={tmp_path}",
        "overrides.num_steps=60",
        "overrides.trial_length=20",
        "overrides.cem_population_size=20",
        "overrides.planning_horizon=3",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = (tmp_path / "results.csv").read_text().strip().splitlines()
    assert rows[0].startswith("env_step") and len(rows) >= 3
