"""The five model-learning objectives on the gridworld, with exact expectations.

All reductions go through the shared registry (:mod:`vaml_ext.losses`): ``mle``,
``ma_l1`` (Eq. 10), ``ma_vaml`` (IterVAML L2, §4.2), ``ma_direct_l1`` (Eq. 8) and
``ma_direct_l2``; this module only computes their inputs -- the per-transition
negative log-likelihood and the model advantage -- for the categorical model, with
:func:`vaml_ext.losses.expected_value_categorical` (an exact sum over all cells).

**Value of a next state.** The paper's model advantage (Eq. 7-10) is
``A = γ·(V(s') − E_{ŝ~P_φ}[V(ŝ)])`` because its reward ``r(s, a)`` does not depend on
the next state. The gridworld reward does (``r(s, s', t)``, see
:mod:`vaml_ext.gridworld.env`), so the quantity whose expectation the model must get
right is the one-step backup ``U(s, ŝ, t) = r(s, ŝ, t) + γ·V(ŝ)·1[ŝ ≠ goal]`` and

    A(s, a, s', t) = U(s, s', t) − Σ_ŝ P_φ(ŝ | s, a) · U(s, ŝ, t)

(Lemma 1 with a next-state-dependent reward; with ``r(s, a)`` it reduces to the paper's
form). ``V`` is the A2C critic, detached: gradients reach the model logits only.
Because ``r(s, ŝ, t) = 0.5·d(s)/d0 + h_r(ŝ) + 1[ŝ = goal]·bonus(t)``, the ``s`` term
cancels inside ``A`` and the expectation over all cells factorises into one
``[S·A, S] × [S]`` product per run (:func:`grid_advantage`); the tests check it
against the direct per-row sum (:func:`transition_advantage`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vaml_ext.gridworld.env import GridSpec, goal_bonus
from vaml_ext.losses import expected_value_categorical, get_loss_class, make_loss, model_advantage

METHODS = ("mle", "ma_direct_l1", "ma_direct_l2", "ma_l1", "ma_vaml")
METHOD_LABELS = {
    "mle": "MLE",
    "ma_direct_l1": "MA Direct L1",
    "ma_direct_l2": "MA Direct L2",
    "ma_l1": "MA Upper Bound L1",
    "ma_vaml": "MA VAML L2",
    "ma_l1_naive": "MA Upper Bound L1 Naive",
}
#: Ablations: a run method that is a registry objective with Dyna options changed.
#: ``ma_l1_naive`` is MA-L1 with Algorithm 2's stale-value refit (lines 8-11) off -- the
#: paper's "Naive" substitution (Fig. 4).
VARIANTS: dict[str, tuple] = {"ma_l1_naive": ("ma_l1", {"value_update_interval": 0})}
RUN_METHODS = METHODS + tuple(VARIANTS)


def transition_advantage(probs: torch.Tensor, values: torch.Tensor, s_next: torch.Tensor) -> torch.Tensor:
    """Generic exact model advantage ``U(s') − Σ_ŝ P(ŝ)·U(ŝ)`` per transition.

    ``probs``: ``[..., S]`` predicted next-state distributions; ``values``: ``[..., S]``
    (or ``[S]``) value ``U`` of every candidate next state for that transition;
    ``s_next``: ``[...]`` the real next states. Returns ``[...]``.
    """
    values = values.detach().expand(probs.shape)
    v_real = torch.gather(values, -1, s_next.unsqueeze(-1)).squeeze(-1)
    return model_advantage(v_real, expected_value_categorical(probs, values))


def next_state_values(spec: GridSpec, V: torch.Tensor, gamma: float) -> torch.Tensor:
    """Time-free part of ``U`` per next state: ``h(ŝ) = −0.5·d(ŝ)/d0 + γ·V(ŝ)·1[ŝ ≠ goal]``.

    ``V``: ``[runs, S]`` -> ``[runs, S]`` (detached).
    """
    nonterm = torch.ones(spec.n_states, dtype=V.dtype)
    nonterm[spec.goal] = 0.0
    return (spec.next_state_potential().to(V.dtype) + gamma * V.detach() * nonterm).detach()


def grid_advantage(
    spec: GridSpec,
    probs: torch.Tensor,
    h: torch.Tensor,
    rows: torch.Tensor,
    s_next: torch.Tensor,
    t: torch.Tensor,
    ev_table: torch.Tensor | None = None,
) -> torch.Tensor:
    """Exact model advantage of real transitions for all runs at once.

    ``probs``: ``[runs, S·A, S]`` full model table; ``h``: ``[runs, S]`` from
    :func:`next_state_values`; ``rows`` (= ``s·A + a``), ``s_next``, ``t``: ``[runs, ...]``
    indices of real transitions (``t`` = steps taken including this one; ``s`` is never the
    terminal goal, whose row is unused). ``ev_table``
    may pass a precomputed ``Σ_ŝ P(ŝ|s,a)·h(ŝ)`` (``[runs, S·A]``).
    """
    if ev_table is None:
        ev_table = expected_value_categorical(probs, h.unsqueeze(1))  # [runs, S·A]
    flat_rows = rows.reshape(rows.shape[0], -1)
    bonus = goal_bonus(t.reshape(flat_rows.shape).to(probs.dtype), spec.max_steps)
    expected = ev_table.gather(1, flat_rows) + probs[:, :, spec.goal].gather(1, flat_rows) * bonus
    s2 = s_next.reshape(flat_rows.shape)
    real = h.gather(1, s2) + (s2 == spec.goal).to(probs.dtype) * bonus
    return model_advantage(real, expected).reshape(rows.shape)


class GridObjectives:
    """Evaluate the registered objective of every run in a batch of runs.

    ``methods[i]`` is the registry name used by run ``i``. Each run's loss is its own
    registry loss on its own data, and the returned total is the *sum* over runs, so the
    gradient w.r.t. run ``i``'s logits is exactly the gradient of run ``i``'s loss.
    """

    def __init__(self, methods: Sequence[str], va_loss_coeff: float = 0.01, gamma: float = 0.99):
        self.methods = list(methods)
        self.gamma = float(gamma)
        self.losses: dict[str, torch.nn.Module] = {}
        for name in dict.fromkeys(self.methods):
            if name not in METHODS:
                # get_loss_class raises UnknownLossError with the valid names for typos; a
                # registered but non-gridworld loss (e.g. slbo) is rejected here.
                get_loss_class(name)
                raise ValueError(f"model loss {name!r} is not a gridworld objective; use one of {METHODS}")
            self.losses[name] = make_loss(name) if name == "mle" else make_loss(name, coeff=va_loss_coeff)
        self.groups = {
            name: torch.tensor([i for i, m in enumerate(self.methods) if m == name], dtype=torch.long)
            for name in self.losses
        }
        self.value_aware = torch.tensor([self.losses[m].value_aware for m in self.methods])

    @property
    def needs_trajectories(self) -> bool:
        return any(self.losses[m].needs_trajectories for m in self.losses)

    def __call__(
        self,
        spec: GridSpec,
        logits,
        V: torch.Tensor,
        batch: dict[str, torch.Tensor],
        traj: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Total loss. ``logits``: either the model table ``[runs, S·A, S]`` (log-probabilities
        work too) or a model with ``row_logits(rows)`` and ``table_logits()``
        (:mod:`vaml_ext.gridworld.model`; a network model then evaluates only the rows it
        needs); ``batch``: transitions ``rows, s_next, t`` of shape ``[runs, M]``; ``traj``:
        whole real episodes ``rows, s_next, t, mask`` of shape ``[runs, m, L]`` (needed only
        by the direct forms). Per-transition objectives normalise only the rows they use;
        the direct forms normalise their runs' whole table once (episodes revisit rows).
        Every expectation is an exact sum over all ``S`` next cells."""
        if isinstance(logits, torch.Tensor):
            table = logits
            row_fn = lambda rows: torch.gather(table, 1, rows.unsqueeze(-1).expand(-1, -1, table.shape[-1]))  # noqa: E731
            table_fn = lambda: table  # noqa: E731
        else:
            row_fn, table_fn = logits.row_logits, logits.table_logits
        h = next_state_values(spec, V, self.gamma)
        total: torch.Tensor | None = None
        per_row = [n for n in self.groups if not self.losses[n].needs_trajectories]
        batch_logits = row_fn(batch["rows"]) if per_row else None  # [runs, M, S]
        full = table_fn() if len(per_row) < len(self.groups) else None  # [runs, S·A, S]
        for name, idx in self.groups.items():
            loss = self.losses[name]
            if not loss.needs_trajectories:
                assert batch_logits is not None
                s2 = batch["s_next"][idx]
                log_p = torch.log_softmax(batch_logits[idx], -1)  # [r, M, S]
                if name == "mle":
                    nll = -log_p.gather(-1, s2.unsqueeze(-1)).squeeze(-1)
                    term = len(idx) * loss(nll=nll)
                else:
                    adv = row_advantage(spec, log_p.exp(), h[idx], s2, batch["t"][idx])
                    term = len(idx) * loss(advantage=adv)
                total = term if total is None else total + term
            else:
                if traj is None:
                    raise ValueError(f"{name} needs whole trajectories (Eq. 8) but none were given")
                assert full is not None
                probs = torch.softmax(full[idx], -1)
                adv = grid_advantage(spec, probs, h[idx], traj["rows"][idx], traj["s_next"][idx], traj["t"][idx])
                mask = traj["mask"][idx]
                for k in range(len(idx)):  # |Σ| couples a run's trajectories: one loss call per run
                    term = loss(advantage=adv[k], gamma=self.gamma, mask=mask[k])
                    total = term if total is None else total + term
        assert total is not None
        return total


def row_advantage(
    spec: GridSpec, probs: torch.Tensor, h: torch.Tensor, s_next: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """Exact model advantage from the predicted rows ``probs[runs, M, S]`` of ``M`` real
    transitions (``s_next``, ``t``: ``[runs, M]``; ``h`` from :func:`next_state_values`)."""
    bonus = goal_bonus(t.to(probs.dtype), spec.max_steps)
    expected = expected_value_categorical(probs, h.unsqueeze(1)) + probs[..., spec.goal] * bonus
    real = h.gather(1, s_next) + (s_next == spec.goal).to(probs.dtype) * bonus
    return model_advantage(real, expected)
