"""overrides.profile=paper: what it selects, its validation, the SAC gradient clip seam."""

import copy

import pytest
import torch
from omegaconf import OmegaConf

from tests.mbpo.agent_fixtures import make_yarats
from vaml_ext.mbpo import plugin
from vaml_ext.mbpo.agents import adapter_for
from vaml_ext.mbpo.profile import PAPER
from vaml_ext.mbpo.sac_clip import SacGradClip


def test_paper_profile_settable_without_plus_and_selects_the_authors_settings():
    from vaml_ext.mbpo.runner import compose

    cfg = compose("mbpo_inv_pendulum", ["device=cpu", "overrides.profile=paper", "overrides.model_loss=ma_l1"])
    plugin.validate_config(cfg)
    s = plugin.settings(cfg)
    assert {k: s[k] for k in PAPER} == PAPER
    assert s["va_value"] == "q1_indep" and s["value_refit_mode"] == "authors"
    assert s["value_refit_batch_size"] == 50000 and s["sac_grad_clip"] == 2.0
    # upstream hyper-parameters are not touched by the profile
    base = compose("mbpo_inv_pendulum", ["device=cpu", "overrides.model_loss=ma_l1"])
    for key in ("sac_lr", "sac_alpha", "num_sac_updates_per_step", "model_wd", "patience"):
        if key in base.overrides:
            assert cfg.overrides[key] == base.overrides[key]
    cur = plugin.settings(base)
    assert cur["va_value"] == "q1" and cur["value_refit_mode"] == "separate" and cur["sac_grad_clip"] is None


def test_paper_profile_callbacks(mbpo_ctx):
    cfg = copy.deepcopy(mbpo_ctx.cfg)
    cfg.overrides.profile = "paper"
    cbs = plugin.make_callbacks(cfg, mbpo_ctx)
    assert [type(c).__name__ for c in cbs] == [
        "SacGradClip",
        "AuthorsValueRefit",
        "ValueAwareDiagnostics",
        "RunRecorder",
    ]
    assert cbs[0].max_norm == 2.0 and cbs[1].num_starts == 50000 and cbs[2].value == "q1_indep"
    cfg.overrides.model_loss = "mle"  # the authors refit for every loss (FIDELITY.md): mle too
    assert [type(c).__name__ for c in plugin.make_callbacks(cfg, mbpo_ctx)] == [
        "SacGradClip",
        "AuthorsValueRefit",
        "ValueAwareDiagnostics",
        "RunRecorder",
    ]
    cfg.overrides.profile = "current"  # this project's mle: upstream's, no refit
    assert [type(c).__name__ for c in plugin.make_callbacks(cfg, mbpo_ctx)] == ["ValueAwareDiagnostics", "RunRecorder"]


@pytest.mark.parametrize(
    "key,value",
    [
        ("va_value", "soft"),
        ("value_refit_mode", "separate"),
        ("value_refit_batch_size", 2000),
        ("va_reduction", "mean"),
        ("sac_grad_clip", 1.0),
        ("va_value", "q1"),  # the current default, set explicitly: still a conflict
        ("sac_grad_clip", None),
        ("value_refit_batch_size", 1000),
    ],
)
def test_conflicts_with_the_paper_profile_name_the_key(mbpo_ctx, key, value):
    cfg = copy.deepcopy(mbpo_ctx.cfg)
    cfg.overrides.profile = "paper"
    plugin.validate_config(cfg)  # unset: the profile's value
    assert plugin.settings(cfg)[key] == PAPER[key] and cfg.overrides[key] == PAPER[key]
    OmegaConf.update(cfg, f"overrides.{key}", value)
    with pytest.raises(ValueError, match=rf"overrides\.{key}=.* conflicts with overrides\.profile=paper"):
        plugin.validate_config(cfg)
    OmegaConf.update(cfg, f"overrides.{key}", PAPER[key])  # the paper value, explicitly: fine
    plugin.validate_config(cfg)


def test_explicit_current_default_conflicts_on_the_command_line():
    """``overrides.profile=paper overrides.va_value=q1`` used to run ``q1_indep`` silently."""
    from vaml_ext.mbpo.profile import CURRENT
    from vaml_ext.mbpo.runner import compose

    cfg = compose("mbpo_inv_pendulum", ["device=cpu", "overrides.profile=paper", "overrides.va_value=q1"])
    with pytest.raises(ValueError, match=r"overrides\.va_value='q1' conflicts with overrides\.profile=paper"):
        plugin.validate_config(cfg)
    cfg = compose("mbpo_inv_pendulum", ["device=cpu", "overrides.va_value=q1_indep"])
    assert plugin.settings(cfg)["va_value"] == "q1_indep"  # profile=current: any valid value
    cfg = compose("mbpo_inv_pendulum", ["device=cpu"])  # unset keys read as the profile's values
    assert {k: cfg.overrides[k] for k in CURRENT} == CURRENT == {k: plugin.settings(cfg)[k] for k in CURRENT}


@pytest.mark.parametrize(
    "key,value,msg",
    [
        ("profile", "exact", "overrides.profile='exact'"),
        ("sac_grad_clip", -1.0, "overrides.sac_grad_clip"),
        ("sac_grad_clip", True, "overrides.sac_grad_clip"),
    ],
)
def test_invalid_profile_keys(mbpo_ctx, key, value, msg):
    cfg = copy.deepcopy(mbpo_ctx.cfg)
    OmegaConf.update(cfg, f"overrides.{key}", value)
    with pytest.raises(ValueError, match=msg.replace(".", r"\.")):
        plugin.validate_config(cfg)


def _grad_norms_at_step(ag, kind):
    opt, module = (ag.critic_optimizer, ag.critic) if kind == "critic" else (ag.actor_optimizer, ag.actor)
    seen = []

    def spy(o, args, kwargs):
        seen.append(torch.norm(torch.stack([p.grad.norm() for p in module.parameters() if p.grad is not None])).item())

    return seen, opt.register_step_pre_hook(spy)


@pytest.mark.parametrize("kind", ["pranz24", "yarats"])
def test_sac_grad_clip_applies_to_the_agents_own_updates(mbpo_ctx, kind):
    if kind == "pranz24":
        agent = mbpo_ctx.agent

        def update():
            agent.sac_agent.update_parameters(mbpo_ctx.sac_buffer, 32, 0, reverse_mask=True)
    else:
        from mbrl.third_party.pytorch_sac.logger import Logger
        from mbrl.third_party.pytorch_sac.replay_buffer import ReplayBuffer

        agent = make_yarats(4, 1)
        rb = ReplayBuffer((4,), (1,), 200, "cpu")
        s = mbpo_ctx.replay_buffer.get_all()
        rb.add_batch(
            s.obs[:100],
            s.act[:100],
            s.rewards[:100, None],
            s.next_obs[:100],
            s.terminateds[:100, None],
            s.terminateds[:100, None],
        )

        class _Quiet(Logger):
            def __init__(self):
                pass

            def log(self, *a, **k):
                pass

            def log_histogram(self, *a, **k):
                pass

            def log_param(self, *a, **k):
                pass

        def update():
            agent.update(rb, _Quiet(), 0)

    ag = adapter_for(agent)
    clip = SacGradClip(1e-4)
    clip.install(agent)
    critic_seen, h1 = _grad_norms_at_step(ag, "critic")  # registered after the clip: sees clipped grads
    actor_seen, h2 = _grad_norms_at_step(ag, "actor")
    update()
    assert critic_seen and actor_seen and max(critic_seen + actor_seen) <= 1e-4 * (1 + 1e-4)
    clip.remove()
    critic_seen.clear()
    actor_seen.clear()
    update()
    assert max(critic_seen) > 1e-3  # without the hook gradients are larger: the check above can fail
    h1.remove()
    h2.remove()
