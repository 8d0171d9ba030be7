"""Checkpoint state of the vaml hooks in SLBO's stage loop (hook of patch 0010).

The patched port checkpoints its own state after every stage (networks, optimisers,
buffers, generators, runners and envs: patch 0009). The vaml hooks carry state across
stages too: Algorithm 2's :class:`~vaml_ext.slbo.refit.ValueRefit` (its model-update
count sets the refit schedule, its runner's env draws the virtual resets) and
:class:`~vaml_ext.slbo.diagnostics.ModelDiagnostics` (its private held-out sampler, the
last row that fills the next ``progress.csv`` row). Saving and restoring them makes a
resumed run bit-identical to an uninterrupted one for every variant.
"""

from __future__ import annotations


def hooks_state_dict(value_refit, model_diag) -> dict:
    """The ``'vaml'`` entry of the checkpoint (``value_refit`` may be ``None``)."""
    return {
        "value_refit": None if value_refit is None else value_refit.state_dict(),
        "model_diag": model_diag.state_dict(),
    }


def load_hooks_state(state: dict | None, value_refit, model_diag, start_stage: int) -> None:
    """Restore :func:`hooks_state_dict` (``None``: a checkpoint from before it, then only
    ``model_diag.csv`` is cut back) when resuming at ``start_stage``."""
    state = state or {}
    if value_refit is not None and state.get("value_refit") is not None:
        value_refit.load_state_dict(state["value_refit"])
    model_diag.load_state_dict(state.get("model_diag"), keep_until_stage=start_stage - 1)


__all__ = ["hooks_state_dict", "load_hooks_state"]
