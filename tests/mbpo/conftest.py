"""Real mbrl-lib objects (env, SAC agent, Gaussian ensemble, buffers) for MBPO plugin tests."""

import numpy as np
import pytest
import torch


@pytest.fixture
def mbpo_ctx(tmp_path):
    import mbrl.models
    import mbrl.util
    from mbrl.util.plugins import TrainingContext

    from vaml_ext.mbpo.runner import SMOKE_OVERRIDES, compose, random_data_start

    cfg = compose("mbpo_inv_pendulum", ["device=cpu", "seed=0", *SMOKE_OVERRIDES, "overrides.model_loss=ma_l1"])
    env, term_fn, agent, dyn, rb = random_data_start(cfg, 300, seed=0)
    obs_shape, act_shape = env.observation_space.shape, env.action_space.shape
    gen = torch.Generator().manual_seed(0)
    model_env = mbrl.models.ModelEnv(env, dyn, term_fn, None, generator=gen)
    sac_buffer = mbrl.util.ReplayBuffer(1000, obs_shape, act_shape, rng=np.random.default_rng(1))
    s = rb.get_all()
    sac_buffer.add_batch(
        s.obs[:100], s.act[:100], s.next_obs[:100], s.rewards[:100], s.terminateds[:100], s.truncateds[:100]
    )
    ctx = TrainingContext(
        cfg=cfg,
        work_dir=str(tmp_path),
        env=env,
        agent=agent,
        dynamics_model=dyn,
        model_env=model_env,
        replay_buffer=rb,
        sac_buffer=sac_buffer,
        torch_generator=gen,
        rollout_length=3,
    )
    trainer = mbrl.models.ModelTrainer(dyn, optim_lr=1e-3, weight_decay=1e-5)
    ctx.model_trainer = trainer
    return ctx


def snapshot(module_or_params):
    params = module_or_params.parameters() if hasattr(module_or_params, "parameters") else module_or_params
    return [p.detach().clone() for p in params]


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))
