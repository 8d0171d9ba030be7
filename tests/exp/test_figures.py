"""Each figure's envs, methods and budgets are defined once (exp/conf/figure/fig*.yaml)."""

import pytest

from vaml_ext.exp.claims import FIGURE_ENVS, FIGURE_METHODS, canonical_env
from vaml_ext.figures import figure_names, load_figure, preset_budget
from vaml_ext.mbpo.runner import REGRESSIONS, SMOKE_OVERRIDES


def test_claims_read_the_figure_configs():
    assert figure_names() == ["fig1", "fig2", "fig3", "fig4", "vagram"]
    for name in figure_names():
        fig = load_figure(name)
        assert FIGURE_ENVS[name] == [canonical_env(e) for e in fig["envs"]]
        assert FIGURE_METHODS[name] == fig["methods"]
    assert "halfcheetah" in FIGURE_ENVS["fig2"]  # SLBO's half_cheetah, canonical


def test_mbpo_settings_derive_from_fig3():
    fig3 = load_figure("fig3")
    smoke = preset_budget(fig3, "smoke", "cartpole")  # no cartpole entry: the default
    assert smoke == fig3["presets"]["smoke"]["budget"]["default"]
    assert list(SMOKE_OVERRIDES) == [o for o in smoke if "value_refit_batch_size" not in o]
    env, overrides = REGRESSIONS["cartpole_2k"]
    assert env == fig3["env_settings"]["cartpole"]["overrides"]
    assert set(fig3["presets"]["short"]["budget"]["cartpole"]) <= set(overrides)


def test_unknown_figure_and_preset_name_the_valid_ones():
    with pytest.raises(KeyError, match="valid: fig1, fig2, fig3, fig4, vagram"):
        load_figure("fig9")
    with pytest.raises(KeyError, match="preset='huge'.*valid: smoke, smoke_mlp, short, paper, paper_mlp"):
        preset_budget(load_figure("fig1"), "huge", "grid5")
