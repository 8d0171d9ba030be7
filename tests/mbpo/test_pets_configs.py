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
