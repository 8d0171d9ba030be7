"""Both SAC implementations inside the real MBPO test context (``tests/mbpo/conftest.py``).

* ``pranz24``: mbrl 0.2.0's MBPO agent, as the context builds it.
* ``yarats``: the real ``mbrl.third_party.pytorch_sac.agent.sac.SACAgent`` (mbrl 0.2.0
  ships it; its ``agent/sac.py`` and ``agent/actor.py`` are byte-identical to
  mbrl 0.2.0.dev3's, the authors' base), small networks, wrapped like mbrl 0.2.0.dev3's
  ``mbrl.planning.SACAgent`` (``.sac_agent`` + ``act`` under ``no_grad``).
"""

import torch
from omegaconf import OmegaConf


class YaratsWrapper:
    """mbrl 0.2.0.dev3's ``mbrl/planning/sac_wrapper.py`` contract: ``sac_agent`` and ``act``."""

    def __init__(self, sac_agent):
        self.sac_agent = sac_agent

    def act(self, obs, sample=False, batched=False, **_kwargs):
        with torch.no_grad():
            return self.sac_agent.act(obs, sample=sample, batched=batched)


def make_yarats(obs_dim, act_dim, hidden=32, target_every=2, seed=0):
    from mbrl.third_party.pytorch_sac.agent.sac import SACAgent

    torch.manual_seed(seed)
    critic = {
        "_target_": "mbrl.third_party.pytorch_sac.agent.critic.DoubleQCritic",
        "obs_dim": obs_dim,
        "action_dim": act_dim,
        "hidden_dim": hidden,
        "hidden_depth": 2,
    }
    actor = {
        "_target_": "mbrl.third_party.pytorch_sac.agent.actor.DiagGaussianActor",
        "obs_dim": obs_dim,
        "action_dim": act_dim,
        "hidden_dim": hidden,
        "hidden_depth": 2,
        "log_std_bounds": [-5, 2],
    }
    return SACAgent(
        obs_dim=obs_dim,
        action_dim=act_dim,
        action_range=[-1.0, 1.0],
        device="cpu",
        critic_cfg=OmegaConf.create(critic),
        actor_cfg=OmegaConf.create(actor),
        discount=0.99,
        init_temperature=0.1,
        alpha_lr=1e-4,
        alpha_betas=[0.9, 0.999],
        actor_lr=1e-4,
        actor_betas=[0.9, 0.999],
        actor_update_frequency=1,
        critic_lr=1e-3,
        critic_betas=[0.9, 0.999],
        critic_tau=0.005,
        critic_target_update_frequency=target_every,
        batch_size=32,
        learnable_temperature=True,
    )


def with_agent(ctx, kind):
    """``ctx`` with its agent replaced by ``kind`` (``pranz24`` keeps the context's own)."""
    if kind == "yarats":
        obs_dim = ctx.env.observation_space.shape[0]
        act_dim = ctx.env.action_space.shape[0]
        ctx.agent = YaratsWrapper(make_yarats(obs_dim, act_dim))
    else:
        assert kind == "pranz24"
    return ctx
