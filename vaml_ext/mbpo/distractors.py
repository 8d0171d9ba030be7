"""Distracting observation dimensions: ``overrides.distractor_dims=k`` for any env.

The setting where VaGraM (Voelcker et al., ICLR 2022) claims to beat MLE: ``k`` extra
state dimensions that follow their own dynamics, play no part in the reward or the
termination, and are hard to predict, so a model trained by likelihood spends capacity on
them. Modelled on the authors' ``mbrl/env/distractor_dimensions.py`` (``pairlab/vagram``)
with the options their runs used (``mbrl/util/mujoco.py``: ``switching=True,
correlated=False, linear=False``):

* state ``x ∈ R^k``, reset to ``N(0, 0.1²)``; every observation first advances it:
  ``y = M x``, ``x ← y + 0.1 sin(P y)`` (``M`` entries ``N(0, 1)``; ``P`` entries ``N(0, 10²)``
  squared), then entries with ``|x_i| > 20`` jump to a fixed reset vector (``switching``);
* ``pure_noise=True`` (the authors' ``pure_noise_distraction``): ``x ~ N(0, 1)`` i.i.d.
  instead;
* the observation is ``[obs, x]``: the appended columns come last, so reward and
  termination functions that index the original columns are unchanged.

Unlike the authors' wrapper (global ``np.random``), the maps and the state noise come from
the wrapper's own generator, seeded by ``distractor_seed`` (default: the run's ``seed``), so
a run is reproducible and the training and test envs share the same maps.
Works on gymnasium envs and on the paper base's old-API envs (``reset`` returning ``obs``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from vaml_ext.checks import check_int


class DistractorDims(gym.Wrapper):
    def __init__(
        self,
        env,
        dims: int,
        seed: int = 0,
        linear: bool = False,
        switching: bool = True,
        pure_noise: bool = False,
    ):
        super().__init__(env)
        self.dims = check_int("overrides.distractor_dims", dims, 1, "for the wrapper (0 = no wrapper)")
        self.linear, self.switching, self.pure_noise = bool(linear), bool(switching), bool(pure_noise)
        space = env.observation_space
        dtype = space.dtype if np.issubdtype(space.dtype, np.floating) else np.float32
        inf = np.full(self.dims, np.inf, dtype=dtype)
        self.observation_space = gym.spaces.Box(
            np.concatenate([space.low.astype(dtype), -inf]),
            np.concatenate([space.high.astype(dtype), inf]),
            dtype=dtype,
        )
        maps = np.random.default_rng([int(seed), 0x5EED])
        self.linear_map = maps.normal(0.0, 1.0, size=(self.dims, self.dims))
        self.sin_params = maps.normal(0.0, 10.0, size=(self.dims, self.dims)) ** 2
        self.reset_vector = maps.normal(size=self.dims)
        self._rng = np.random.default_rng([int(seed), 1])
        self.state = self._rng.normal(0.0, 0.1, size=self.dims)

    def _advance(self) -> None:
        if self.pure_noise:
            self.state = self._rng.normal(0.0, 1.0, size=self.dims)
            return
        x = self.linear_map @ self.state
        if not self.linear:
            x = x + 0.1 * np.sin(self.sin_params @ x)
        if self.switching:
            x = np.where(np.abs(x) > 20.0, self.reset_vector, x)
        self.state = x

    def _observe(self, obs) -> np.ndarray:
        self._advance()
        obs = np.asarray(obs)
        return np.concatenate([obs, self.state]).astype(self.observation_space.dtype)

    def reset(self, **kwargs: Any):
        out = self.env.reset(**kwargs)
        seed: int | None = kwargs.get("seed")
        if seed is not None:
            self._rng = np.random.default_rng([int(seed), 1])
        self.state = self._rng.normal(0.0, 0.1, size=self.dims)
        if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict):
            return self._observe(out[0]), out[1]
        return self._observe(out)

    def step(self, action):
        out = self.env.step(action)
        return (self._observe(out[0]), *out[1:])


def wrap(cfg, env):
    """The plugin's ``wrap_env``: ``env`` with ``overrides.distractor_dims`` columns (0 = as is)."""
    o = cfg.overrides
    dims = o.get("distractor_dims", 0)
    if not dims:
        return env
    seed = o.get("distractor_seed", None)
    if seed is None:
        seed = cfg.get("seed", 0) or 0
    return DistractorDims(env, dims, seed=seed, pure_noise=bool(o.get("distractor_pure_noise", False)))
