"""Algorithm 2's stale-value correction for SLBO (hook 2 of the patch series).

Every ``value_update_interval`` model updates (paper: K_interval = 20 for SLBO):

1. ``D''`` <- ``n_samples`` (4000) steps of the *current* policy (fixed) in the *current*
   model: ``plan.n_envs`` (8) virtual envs started from real resets, ``plan.max_steps`` (500)
   steps each -- the same virtual-rollout machinery TRPO uses, in a separate runner so the
   TRPO runner's state is untouched;
2. GAE(γ 0.99, λ 0.95) targets ``R = Â + V(s)`` with the current value net;
3. value-only update: the TRPO value fit (5 epochs, minibatch 64, its Adam 1e-3).

Policy, model and the real-data buffers are untouched; only the value net changes.
``value_update_interval = 0`` disables the correction ("MA-L1 Naive", paper Fig. 4).
"""

from __future__ import annotations

import logging
import time

from slbo.envs.virtual_env import VirtualEnv
from slbo.utils.dataset import Dataset
from slbo.utils.runner import Runner

logger = logging.getLogger("slbo")


class ValueRefit:
    def __init__(self, policy, vfn, algo, runner: Runner, value_update_interval: int = 20, n_samples: int = 4000):
        if value_update_interval < 0:
            raise ValueError(f"vaml.value_update_interval={value_update_interval} must be >= 0")
        self.policy = policy
        self.vfn = vfn
        self.algo = algo
        self.runner = runner
        self.interval = int(value_update_interval)
        self.n_samples = int(n_samples)
        self.n_model_updates = 0
        self.n_refits = 0
        self.seconds = 0.0
        self.last_vf_loss = float("nan")

    def refit(self) -> float:
        t0 = time.time()
        self.runner.reset()
        data, _ = self.runner.run(self.policy, self.n_samples)
        advantages, values = self.runner.compute_advantage(self.vfn, data)
        returns = advantages + values
        dataset = Dataset.fromarrays(
            [data.state, returns], dtype=[("state", ("f8", self.algo.dim_state)), ("return_", "f8")]
        )
        self.last_vf_loss = self.algo.train_vf(dataset)
        self.n_refits += 1
        self.seconds += time.time() - t0
        return self.last_vf_loss

    def state_dict(self) -> dict:
        """What a resumed run needs to refit on the same schedule with the same resets: the
        model-update count (refits fire every ``interval``-th one, across stages), the totals,
        and the runner (its virtual env's real env draws the initial states)."""
        return {
            "n_model_updates": self.n_model_updates,
            "n_refits": self.n_refits,
            "seconds": self.seconds,
            "last_vf_loss": self.last_vf_loss,
            "runner": self.runner.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.n_model_updates = int(state["n_model_updates"])
        self.n_refits = int(state["n_refits"])
        self.seconds = float(state["seconds"])
        self.last_vf_loss = float(state["last_vf_loss"])
        self.runner.load_state_dict(state["runner"])

    def __call__(self) -> float | None:
        """Call after every model update; refits on every ``interval``-th call."""
        self.n_model_updates += 1
        if self.interval and self.n_model_updates % self.interval == 0:
            vf_loss = self.refit()
            logger.debug(
                "[refit] #%d after %d model updates: vf_loss = %.4f", self.n_refits, self.n_model_updates, vf_loss
            )
            return vf_loss
        return None


def make_value_refit(
    loss_mod,
    policy,
    vfn,
    algo,
    model,
    make_env,
    env_id,
    n_envs,
    max_steps,
    gamma=0.99,
    lambda_=0.95,
    value_update_interval=20,
    n_samples=4000,
    value_aware_only=True,
) -> ValueRefit | None:
    """Hook 2: the refit callback, or ``None`` if the interval is 0 or the objective is not
    value-aware (then the patched loop runs exactly as upstream). ``value_aware_only=False``
    (``vaml.refit_every_loss``, patch 0011) refits for every objective, as the authors' code
    did for every algorithm (va_slbo ``slbo/main.py`` l.327-330)."""
    if not value_update_interval or (value_aware_only and not getattr(loss_mod, "value_aware", False)):
        return None
    if n_samples % n_envs:
        raise ValueError(f"vaml.n_refit_samples={n_samples} must be a multiple of plan.n_envs={n_envs}")
    runner = Runner(VirtualEnv(model, make_env(env_id), n_envs), max_steps=max_steps, gamma=gamma, lambda_=lambda_)
    return ValueRefit(policy, vfn, algo, runner, value_update_interval, n_samples)
