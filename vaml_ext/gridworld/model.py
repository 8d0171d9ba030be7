"""Categorical dynamics models for the gridworld: a table of logits or a small network.

Two model classes, chosen by the Dyna config's ``model`` option; both give logits over
*all* ``S`` cells, so every objective stays an exact sum over next cells:

* ``table`` (:class:`TabularCategoricalModel`) -- one free row of logits per (cell, action);
* ``mlp`` (:class:`MLPCategoricalModel`) -- a small network on an encoding of the cell and
  the action, whose limited capacity is shared across cells (it must generalise).

Table model:

``P_φ(ŝ | s, a) = softmax(φ[run, s, a, :])`` over *all* ``S = (N−2)²`` cells, so the
prediction space grows quadratically with the grid (paper §5.1). Why a table (the
default): the MDP is finite and the agent observes only its cell index, so the table
*is* the general categorical model (a network on one-hot inputs with enough capacity is
a reparameterisation of it); it keeps every expectation an exact sum that can be
checked by hand, adds no function-approximation confound to the MLE-vs-value-aware
comparison, and lets many independent runs (methods × seeds) live in one
``[runs, S·A, S]`` tensor updated by one optimiser step (Adam is elementwise, so
runs do not interact). Logits start at 0: an untrained row predicts the uniform
distribution over all cells. Its weakness as a test of the paper's argument: every
visited row is fitted on its own, so MLE's model error does not grow with ``S``; the
network model shares limited capacity across cells, so it does (see docs/slbo-and-gridworld.md).
"""

from __future__ import annotations

import torch
from torch import nn

from vaml_ext.checks import check_choice, invalid
from vaml_ext.gridworld.env import NUM_ACTIONS


def sample_categorical(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One draw per row of ``probs[..., K]`` by inverse CDF (batched, any leading shape)."""
    u = torch.rand(probs.shape[:-1] + (1,), generator=generator, dtype=probs.dtype)
    cdf = probs.cumsum(-1)
    idx = (cdf < u * cdf[..., -1:]).sum(-1)
    return idx.clamp_max(probs.shape[-1] - 1)


class TabularCategoricalModel(nn.Module):
    """Batched categorical transition model: ``logits`` has shape ``[runs, S·A, S]``."""

    def __init__(self, num_runs: int, n_states: int, n_actions: int = NUM_ACTIONS, dtype=torch.float32):
        super().__init__()
        self.num_runs, self.n_states, self.n_actions = int(num_runs), int(n_states), int(n_actions)
        self.logits = nn.Parameter(torch.zeros(num_runs, n_states * n_actions, n_states, dtype=dtype))

    def row_index(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Flat (state, action) row index ``s·A + a``."""
        return s * self.n_actions + a

    def log_probs(self) -> torch.Tensor:
        """``log P_φ(· | s, a)`` for every run and (s, a): ``[runs, S·A, S]``."""
        return torch.log_softmax(self.logits, dim=-1)

    def rows(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Logits of the rows ``(s, a)``; ``s``, ``a``: ``[runs, n]`` -> ``[runs, n, S]``."""
        idx = self.row_index(s, a)
        return torch.gather(self.logits, 1, idx.unsqueeze(-1).expand(-1, -1, self.n_states))

    @torch.no_grad()
    def sample(self, s: torch.Tensor, a: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample ``ŝ ~ P_φ(·|s, a)``; ``s``, ``a``: ``[runs, n]`` -> ``[runs, n]``."""
        probs = torch.softmax(self.rows(s, a), dim=-1)
        return sample_categorical(probs, generator)

    def table_logits(self) -> torch.Tensor:
        """Logits of every (s, a) row: ``[runs, S·A, S]``."""
        return self.logits

    def frozen(self) -> TabularCategoricalModel:
        """A sampler of the current model for rollouts (the table samples its rows directly)."""
        return self

    def row_logits(self, rows: torch.Tensor) -> torch.Tensor:
        """Logits of flat rows ``s·A + a`` (``[runs, n]``) -> ``[runs, n, S]``."""
        return torch.gather(self.logits, 1, rows.unsqueeze(-1).expand(-1, -1, self.n_states))


MODELS = ("table", "mlp")
ENCODINGS = ("coords", "onehot")


def state_encoding(n_states: int, encoding: str, dtype=torch.float32) -> torch.Tensor:
    """Input features of every cell: ``[S, 2]`` normalised coordinates or ``[S, S]`` one-hot.

    Cell ``s`` is interior column ``x = s mod n`` and row ``y = s div n`` (``n = √S``, as in
    :meth:`~vaml_ext.gridworld.env.CardinalEmptyRoom.state_to_pos`); coordinates are mapped
    to ``[−1, 1]``.
    """
    if encoding == "onehot":
        return torch.eye(n_states, dtype=dtype)
    if encoding != "coords":
        check_choice("encoding", encoding, ENCODINGS)
    n = int(round(n_states**0.5))
    if n * n != n_states:
        raise ValueError(f"n_states={n_states} is not a square grid")
    s = torch.arange(n_states)
    xy = torch.stack([s % n, s // n], -1).to(dtype)
    return 2.0 * xy / max(n - 1, 1) - 1.0


class MLPCategoricalModel(nn.Module):
    """Batched categorical network model: ``P_φ(·|s, a) = softmax(f_φ(enc(s), onehot(a)))``.

    ``f_φ`` is an MLP with ``layers`` tanh hidden layers of ``hidden`` units and a linear
    output over all ``S`` cells; every run has its own weights (``[runs, ...]`` tensors,
    batched matrix products), so runs never share parameters. Hidden layers start at
    PyTorch's default ``nn.Linear`` scale (uniform ±1/√fan_in), drawn from ``generator``;
    the output layer starts at 0, so an untrained model predicts the uniform distribution
    over all cells, like the table.
    """

    def __init__(
        self,
        num_runs: int,
        n_states: int,
        n_actions: int = NUM_ACTIONS,
        encoding: str = "coords",
        hidden: int = 32,
        layers: int = 2,
        dtype=torch.float32,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.num_runs, self.n_states, self.n_actions = int(num_runs), int(n_states), int(n_actions)
        self.encoding = encoding
        enc = state_encoding(n_states, encoding, dtype)
        s = torch.arange(n_states * n_actions) // n_actions
        a = torch.arange(n_states * n_actions) % n_actions
        # input of every flat row s·A + a: [S·A, in]
        inputs = torch.cat([enc[s], torch.eye(n_actions, dtype=dtype)[a]], -1)
        self.inputs: torch.Tensor
        self.register_buffer("inputs", inputs, persistent=False)
        sizes = [int(inputs.shape[1])] + [int(hidden)] * int(layers)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1.0 / fan_in**0.5
            w = (torch.rand(self.num_runs, fan_in, fan_out, generator=generator, dtype=dtype) * 2 - 1) * bound
            b = (torch.rand(self.num_runs, 1, fan_out, generator=generator, dtype=dtype) * 2 - 1) * bound
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(b))
        self.weights.append(nn.Parameter(torch.zeros(self.num_runs, sizes[-1], self.n_states, dtype=dtype)))
        self.biases.append(nn.Parameter(torch.zeros(self.num_runs, 1, self.n_states, dtype=dtype)))

    def row_index(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Flat (state, action) row index ``s·A + a``."""
        return s * self.n_actions + a

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits from inputs ``x``: ``[runs, n, in]`` -> ``[runs, n, S]``."""
        n = len(self.weights)
        for i in range(n):
            w, b = self.weights[i], self.biases[i]
            x = torch.baddbmm(b, x, w)
            if i < n - 1:
                x = torch.tanh(x)
        return x

    def row_logits(self, rows: torch.Tensor) -> torch.Tensor:
        """Logits of flat rows ``s·A + a`` (``[runs, n]``) -> ``[runs, n, S]``."""
        return self(self.inputs[rows])

    def table_logits(self) -> torch.Tensor:
        """Logits of every (s, a) row: ``[runs, S·A, S]`` (one forward pass over all rows)."""
        return self(self.inputs.unsqueeze(0).expand(self.num_runs, -1, -1))

    def log_probs(self) -> torch.Tensor:
        """``log P_φ(· | s, a)`` for every run and (s, a): ``[runs, S·A, S]``."""
        return torch.log_softmax(self.table_logits(), dim=-1)

    def rows(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Logits of the rows ``(s, a)``; ``s``, ``a``: ``[runs, n]`` -> ``[runs, n, S]``."""
        return self.row_logits(self.row_index(s, a))

    @torch.no_grad()
    def sample(self, s: torch.Tensor, a: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample ``ŝ ~ P_φ(·|s, a)``; ``s``, ``a``: ``[runs, n]`` -> ``[runs, n]``."""
        probs = torch.softmax(self.rows(s, a), dim=-1)
        return sample_categorical(probs, generator)

    @torch.no_grad()
    def frozen(self) -> FrozenCategorical:
        """The current model as a table of probabilities, for rollouts while the weights stay
        fixed (A2C, the refit): one forward pass over all rows instead of one per step."""
        return FrozenCategorical(torch.softmax(self.table_logits(), -1), self.n_actions)


class FrozenCategorical:
    """Sampler over a fixed ``[runs, S·A, S]`` table of next-cell probabilities."""

    def __init__(self, probs: torch.Tensor, n_actions: int = NUM_ACTIONS):
        self.probs, self.n_actions = probs, int(n_actions)

    @torch.no_grad()
    def sample(self, s: torch.Tensor, a: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample ``ŝ ~ P(·|s, a)``; ``s``, ``a``: ``[runs, n]`` -> ``[runs, n]``."""
        rows = (s * self.n_actions + a).unsqueeze(-1).expand(-1, -1, self.probs.shape[-1])
        return sample_categorical(torch.gather(self.probs, 1, rows), generator)


CategoricalModel = TabularCategoricalModel | MLPCategoricalModel


def make_model(
    kind: str,
    num_runs: int,
    n_states: int,
    encoding: str = "coords",
    hidden: int = 32,
    layers: int = 2,
    generator: torch.Generator | None = None,
) -> CategoricalModel:
    """The model class named by the Dyna config's ``model`` option (``table`` | ``mlp``)."""
    if kind == "table":
        return TabularCategoricalModel(num_runs, n_states)
    if kind == "mlp":
        return MLPCategoricalModel(
            num_runs, n_states, encoding=encoding, hidden=hidden, layers=layers, generator=generator
        )
    raise invalid("model", kind, "one of " + ", ".join(MODELS))
