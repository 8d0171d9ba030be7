"""Dyna loop of the gridworld study: Algorithm 2 of the paper, vectorised over runs.

A *run* is one (method, seed) pair; all runs of one grid size advance together as
batched tensors (the model of ``cfg.model``: :mod:`vaml_ext.gridworld.model`,
:class:`~vaml_ext.gridworld.a2c.TabularA2C`, :class:`~vaml_ext.gridworld.env.BatchedGridworld`),
so a whole panel of Figure 1 costs one loop. Runs never share parameters or data;
they share the random-number stream (deterministic for a given config and run list).

Per iteration (Algorithm 2):

1. ``D ← D ∪ {n samples from M⋆ collected by π}`` -- ``real_steps_per_iter`` real steps
   per run (one environment per run, episodes auto-reset);
2. model update step -- ``model_updates_per_iter`` Adam steps on the run's objective
   (``mle``/``ma_l1``/``ma_vaml`` on a minibatch of transitions, ``ma_direct_*`` on
   whole real episodes, Eq. 8); every ``value_update_interval`` of them (lines 8-11)
   collect ``refit_envs × refit_steps`` samples ``D''`` in the *current* model with the
   fixed policy and refit only the value table on them (value-aware runs only;
   ``value_update_interval = 0`` disables it -- the "naive" ablation);
3. policy update step -- ``policy_updates_per_iter`` A2C updates in the model
   (lines 13-16).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields

import torch

from vaml_ext.checks import check_bool, check_choice, check_int, check_number
from vaml_ext.gridworld.a2c import TabularA2C
from vaml_ext.gridworld.env import NUM_ACTIONS, BatchedGridworld, GridSpec, grid_spec
from vaml_ext.gridworld.model import ENCODINGS, MODELS, make_model
from vaml_ext.gridworld.objectives import GridObjectives


@dataclass
class DynaConfig:
    """Hyper-parameters of the gridworld Dyna loop (shared by every method and size)."""

    env_steps: int = 2000  # real environment steps per run
    real_steps_per_iter: int = 100
    # model learning
    model: str = "table"  # table | mlp (vaml_ext.gridworld.model)
    encoding: str = "coords"  # mlp input: coords (normalised cell coordinates) | onehot
    mlp_hidden: int = 32  # mlp: units per hidden layer
    mlp_layers: int = 2  # mlp: tanh hidden layers
    model_updates_per_iter: int = 20
    model_lr: float = 0.1
    batch_size: int = 256  # transitions per update (mle, ma_l1, ma_vaml)
    traj_batch: int = 8  # whole real episodes per update (ma_direct_l1/l2, Eq. 8)
    va_loss_coeff: float = 0.01
    # Algorithm 2 stale-value refit
    value_update_interval: int = 5
    refit_envs: int = 16
    refit_steps: int = 16
    refit_updates: int = 1
    # A2C in the model
    policy_updates_per_iter: int = 10
    model_envs: int = 16
    rollout_steps: int = 16
    gamma: float = 0.99
    gae_lambda: float = 0.95
    entropy_coef: float = 0.01
    policy_lr: float = 0.05
    value_lr: float = 0.05
    # evaluation (not counted as env steps)
    eval_every: int = 100
    eval_episodes: int = 1
    eval_greedy: bool = True

    def __post_init__(self):
        positive = {
            "mlp_hidden", "mlp_layers", "env_steps", "real_steps_per_iter", "model_updates_per_iter", "batch_size",
            "traj_batch", "refit_envs", "refit_steps", "refit_updates", "policy_updates_per_iter", "model_envs",
            "rollout_steps", "eval_every", "eval_episodes", "model_lr", "va_loss_coeff", "policy_lr", "value_lr",
        }  # fmt: skip
        for f in fields(self):
            key, v = f"dyna.{f.name}", getattr(self, f.name)
            if f.type in ("int", int):
                check_int(key, v, 1 if f.name in positive else 0 if f.name == "value_update_interval" else None)
            elif f.type in ("float", float):
                hi = 1.0 if f.name in ("gamma", "gae_lambda") else None
                lo_open = f.name in positive
                setattr(self, f.name, check_number(key, v, 0.0, hi, lo_open=lo_open))
        check_bool("dyna.eval_greedy", self.eval_greedy)
        check_choice("dyna.model", self.model, MODELS)
        check_choice("dyna.encoding", self.encoding, ENCODINGS)

    @classmethod
    def from_dict(cls, d: dict | None) -> DynaConfig:
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown dyna option(s) {unknown}; valid options: {sorted(known)}")
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)


class RealBuffer:
    """Per-run real transitions ``(s·A+a, s', t)`` with episode bookkeeping (all runs step in lockstep)."""

    def __init__(self, num_runs: int, capacity: int):
        z = lambda: torch.zeros(num_runs, capacity, dtype=torch.long)  # noqa: E731
        self.rows, self.s_next, self.t, self.ep_id = z(), z(), z(), z()
        self.ep_start = torch.zeros(num_runs, capacity, dtype=torch.bool)
        self.size = 0
        self.capacity = capacity
        self._ep = torch.zeros(num_runs, dtype=torch.long)
        self._new_ep = torch.ones(num_runs, dtype=torch.bool)

    def add(self, rows, s_next, t, done) -> None:
        i = self.size
        if i >= self.capacity:
            raise RuntimeError("real buffer full")
        self.rows[:, i], self.s_next[:, i], self.t[:, i] = rows, s_next, t
        self.ep_id[:, i], self.ep_start[:, i] = self._ep, self._new_ep
        self._ep = self._ep + done.long()
        self._new_ep = done.clone()
        self.size += 1

    def sample(self, n: int, generator=None) -> dict[str, torch.Tensor]:
        idx = torch.randint(0, self.size, (self.rows.shape[0], n), generator=generator)
        return {k: getattr(self, k).gather(1, idx) for k in ("rows", "s_next", "t")}

    def sample_episodes(self, m: int, length: int, generator=None) -> dict[str, torch.Tensor]:
        """``m`` whole episodes per run (the ongoing one may be partial), padded to ``length``
        with ``mask`` = 1 on real steps: the trajectories of Eq. 8."""
        n = self.size
        starts = torch.multinomial(self.ep_start[:, :n].double(), m, replacement=True, generator=generator)
        idx = starts.unsqueeze(-1) + torch.arange(length)  # [R, m, L]
        valid = idx < n
        idx = idx.clamp_max(n - 1)
        flat = idx.flatten(1)
        ep = self.ep_id.gather(1, flat).reshape(idx.shape)
        mask = valid & (ep == self.ep_id.gather(1, starts).unsqueeze(-1))
        out = {k: getattr(self, k).gather(1, flat).reshape(idx.shape) for k in ("rows", "s_next", "t")}
        out["mask"] = mask
        return out

    def states(self, n: int, generator=None):
        """``n`` visited states per run (with their time index) to start refit rollouts."""
        idx = torch.randint(0, self.size, (self.rows.shape[0], n), generator=generator)
        return self.rows.gather(1, idx) // NUM_ACTIONS, self.t.gather(1, idx) - 1


@torch.no_grad()
def evaluate(agent: TabularA2C, spec: GridSpec, episodes: int, generator=None, greedy: bool = False) -> torch.Tensor:
    """Mean undiscounted return of ``episodes`` real episodes per run -> ``[runs]``."""
    R = agent.V.shape[0]
    env = BatchedGridworld(spec, (R, episodes), dtype=agent.V.dtype)
    ret = torch.zeros(R, episodes, dtype=agent.V.dtype)
    alive = torch.ones(R, episodes, dtype=torch.bool)
    for _ in range(spec.max_steps):
        a = agent.act(env.state, generator, greedy=greedy)
        _, r, term, trunc = env.step(a)
        ret += r * alive
        alive &= ~(term | trunc)
        if not alive.any():
            break
    return ret.mean(1)


@dataclass
class DynaResult:
    size: int
    methods: list[str]
    seeds: list[int]
    steps: list[int] = field(default_factory=list)  # env steps at each evaluation
    returns: list[list[float]] = field(default_factory=list)  # [eval][run]
    wall_s: float = 0.0
    state: dict | None = None  # model / agent / buffer when run_dyna(keep_state=True)


def stream_seed(base_seed: int, size: int) -> int:
    """Seed of the random-number stream shared by all runs of one :func:`run_dyna` call."""
    return int(base_seed) * 1_000_003 + int(size) * 7919 + 17


class DynaTrainer:
    """Algorithm 2 for a batch of runs (``methods[i]`` is run ``i``'s objective), advanced one
    iteration at a time, with its complete state as a ``state_dict`` (checkpoint/resume).

    All runs draw from one ``torch.Generator`` seeded with :func:`stream_seed`; the draws
    have shape ``[runs, ...]``, so a run's numbers depend on the whole batch. Evaluations
    are scheduled every ``cfg.eval_every`` env steps (:meth:`due_evaluations`).
    """

    def __init__(
        self, size: int, methods: Sequence[str], cfg: DynaConfig, base_seed: int = 0, spec: GridSpec | None = None
    ):
        if not methods:
            raise ValueError("methods must be non-empty")
        self.cfg = cfg
        self.methods = list(methods)
        self.spec = spec = spec or grid_spec(size)
        self.gen = torch.Generator().manual_seed(stream_seed(base_seed, size))
        R, S = len(methods), spec.n_states
        self.objectives = GridObjectives(methods, va_loss_coeff=cfg.va_loss_coeff, gamma=cfg.gamma)
        self.model = make_model(cfg.model, R, S, cfg.encoding, cfg.mlp_hidden, cfg.mlp_layers, generator=self.gen)
        self.model_opt = torch.optim.Adam(self.model.parameters(), lr=cfg.model_lr, fused=True)
        self.agent = TabularA2C(R, S, cfg.gamma, cfg.gae_lambda, cfg.entropy_coef, cfg.policy_lr, cfg.value_lr)
        self.env = BatchedGridworld(spec, (R,))
        self.n_iters = -(-cfg.env_steps // cfg.real_steps_per_iter)
        self.buffer = RealBuffer(R, self.n_iters * cfg.real_steps_per_iter)
        self.imag_s = torch.full((R, cfg.model_envs), spec.start, dtype=torch.long)
        self.imag_t = torch.zeros_like(self.imag_s)
        self.refit_w = self.objectives.value_aware
        self.refit_on = cfg.value_update_interval > 0 and bool(self.refit_w.any())
        self.it = 0  # iterations done
        self.env_steps = 0  # real env steps per run so far
        self.next_eval = cfg.eval_every
        self.model_loss = float("nan")  # mean total model loss over the last iteration's updates

    @property
    def finished(self) -> bool:
        return self.it >= self.n_iters

    def evaluate(self) -> torch.Tensor:
        """Return of every run's current policy in the real room -> ``[runs]``."""
        return evaluate(self.agent, self.spec, self.cfg.eval_episodes, self.gen, self.cfg.eval_greedy)

    @torch.no_grad()
    def model_error(self) -> torch.Tensor:
        """Per run: mean over the real transitions collected so far of ``1 − P_φ(s'|s,a)``
        -> ``[runs]``. The room is deterministic, so this is the total-variation distance
        between the model's and the true next-cell distribution, averaged over the visited
        (s, a) rows weighted by how often they were visited (NaN before any data)."""
        b = self.buffer
        if b.size == 0:
            return torch.full((len(self.methods),), float("nan"))
        rows, s2 = b.rows[:, : b.size], b.s_next[:, : b.size]
        logp = torch.log_softmax(self.model.row_logits(rows), -1)
        return 1.0 - logp.gather(-1, s2.unsqueeze(-1)).squeeze(-1).exp().mean(1)

    def due_evaluations(self) -> int:
        """How many evaluations fall due at the current env step (and schedule the next)."""
        n = 0
        while self.env_steps >= self.next_eval:
            n += 1
            self.next_eval += self.cfg.eval_every
        return n

    def train_iteration(self) -> None:
        """One iteration of Algorithm 2 (real data, model updates + refit, A2C in the model)."""
        cfg, spec, gen = self.cfg, self.spec, self.gen
        env, agent, model, buffer, objectives = self.env, self.agent, self.model, self.buffer, self.objectives
        # 1. real data
        for _ in range(cfg.real_steps_per_iter):
            s = env.state
            a = agent.act(s.unsqueeze(1), gen).squeeze(1)
            s2, _, term, trunc = env.step(a)
            done = term | trunc
            buffer.add(model.row_index(s, a), s2, env.t, done)
            env.reset_done(done)
        self.env_steps += cfg.real_steps_per_iter
        # 2. model updates (+ Algorithm 2 refit)
        model_opt = self.model_opt
        loss_sum = torch.zeros(())
        for k in range(cfg.model_updates_per_iter):
            batch = buffer.sample(cfg.batch_size, gen)
            traj = (
                buffer.sample_episodes(cfg.traj_batch, spec.max_steps, gen) if objectives.needs_trajectories else None
            )
            loss = objectives(spec, model, agent.V, batch, traj)
            model_opt.zero_grad(set_to_none=True)
            loss.backward()
            model_opt.step()
            loss_sum += loss.detach().to(loss_sum.dtype)
            agent.V.grad = None  # V is an input of the model loss only (detached); keep it clean
            if self.refit_on and (k + 1) % cfg.value_update_interval == 0:
                s0, t0_ = buffer.states(cfg.refit_envs, gen)
                d2 = agent.rollout(model.frozen(), spec, s0, t0_, cfg.refit_steps, gen)
                agent.value_refit(d2, self.refit_w, cfg.refit_updates)
        self.model_loss = float(loss_sum) / cfg.model_updates_per_iter
        # 3. A2C in the model (fixed during these updates)
        frozen = model.frozen()
        for _ in range(cfg.policy_updates_per_iter):
            d1 = agent.rollout(frozen, spec, self.imag_s, self.imag_t, cfg.rollout_steps, gen)
            self.imag_s, self.imag_t = d1["final_state"], d1["final_t"]
            agent.a2c_update(d1)
        self.it += 1

    # ----------------------------------------------------------------- checkpointing
    _BUFFER_KEYS = ("rows", "s_next", "t", "ep_id", "ep_start")

    def state_dict(self) -> dict:
        """Everything the loop needs to continue bit-identically (tensors are copies)."""
        b = self.buffer
        return {
            "methods": list(self.methods),
            "size": self.spec.size,
            "cfg": self.cfg.to_dict(),
            "gen": self.gen.get_state(),
            "model": {k: v.clone() for k, v in self.model.state_dict().items()},
            "model_opt": self.model_opt.state_dict(),
            "agent": {k: v.clone() for k, v in self.agent.state_dict().items()},
            "policy_opt": self.agent.policy_opt.state_dict(),
            "value_opt": self.agent.value_opt.state_dict(),
            "refit_opt": self.agent.refit_opt.state_dict(),
            "env": {"state": self.env.state.clone(), "t": self.env.t.clone()},
            "buffer": dict(
                {k: getattr(b, k)[:, : b.size].clone() for k in self._BUFFER_KEYS},
                size=b.size,
                ep=b._ep.clone(),
                new_ep=b._new_ep.clone(),
            ),
            "imag_s": self.imag_s.clone(),
            "imag_t": self.imag_t.clone(),
            "it": self.it,
            "env_steps": self.env_steps,
            "next_eval": self.next_eval,
            "model_loss": self.model_loss,
        }

    def load_state_dict(self, state: dict) -> None:
        if state["methods"] != self.methods or state["size"] != self.spec.size or state["cfg"] != self.cfg.to_dict():
            raise ValueError(
                "checkpoint is of a different run (methods, grid size or Dyna config differ): "
                f"{state['methods']}, {state['size']}, {state['cfg']}"
            )
        self.gen.set_state(state["gen"])
        self.model.load_state_dict(state["model"])
        self.model_opt.load_state_dict(state["model_opt"])
        self.agent.load_state_dict(state["agent"])
        self.agent.policy_opt.load_state_dict(state["policy_opt"])
        self.agent.value_opt.load_state_dict(state["value_opt"])
        self.agent.refit_opt.load_state_dict(state["refit_opt"])
        self.env.state = state["env"]["state"].clone()
        self.env.t = state["env"]["t"].clone()
        b, sb = self.buffer, state["buffer"]
        b.size = int(sb["size"])
        for k in self._BUFFER_KEYS:
            getattr(b, k).zero_()
            getattr(b, k)[:, : b.size] = sb[k]
        b._ep, b._new_ep = sb["ep"].clone(), sb["new_ep"].clone()
        self.imag_s, self.imag_t = state["imag_s"].clone(), state["imag_t"].clone()
        self.it, self.env_steps, self.next_eval = int(state["it"]), int(state["env_steps"]), int(state["next_eval"])
        self.model_loss = float(state["model_loss"])


def run_dyna(
    size: int,
    methods: Sequence[str],
    seeds: Sequence[int],
    cfg: DynaConfig,
    base_seed: int = 0,
    progress: Callable[[str], None] | None = None,
    spec: GridSpec | None = None,
    keep_state: bool = False,
) -> DynaResult:
    """Train one run per (method, seed) pair -- ``methods[i]``, ``seeds[i]`` -- on an N×N room.

    Returns evaluation returns at ``0, eval_every, 2·eval_every, ...`` env steps. ``seeds``
    only label the runs: all runs share one random stream seeded from ``base_seed`` and
    ``size`` (:func:`stream_seed`), so runs of the same method differ through their place
    in the batch. (:func:`vaml_ext.gridworld.run.run_gridworld` runs one pair alone.)
    """
    if len(methods) != len(seeds) or not methods:
        raise ValueError("methods and seeds must be non-empty and of equal length")
    t0 = time.perf_counter()
    tr = DynaTrainer(size, methods, cfg, base_seed=base_seed, spec=spec)
    R, n_iters = len(methods), tr.n_iters
    result = DynaResult(size=tr.spec.size, methods=list(methods), seeds=[int(s) for s in seeds])

    def record(steps: int) -> None:
        r = tr.evaluate()
        result.steps.append(steps)
        result.returns.append([float(x) for x in r])

    record(0)
    while not tr.finished:
        tr.train_iteration()
        for _ in range(tr.due_evaluations()):
            record(tr.env_steps)
        it = tr.it - 1
        if progress is not None and ((it + 1) % max(1, n_iters // 10) == 0 or it + 1 == n_iters):
            progress(
                f"N={tr.spec.size:2d} steps {tr.env_steps:6d}/{cfg.env_steps} "
                f"mean return {sum(result.returns[-1]) / R:.3f} ({time.perf_counter() - t0:.0f}s)"
            )
    result.wall_s = time.perf_counter() - t0
    if keep_state:
        result.state = {
            "spec": tr.spec,
            "model": tr.model,
            "agent": tr.agent,
            "buffer": tr.buffer,
            "objectives": tr.objectives,
        }
    return result
