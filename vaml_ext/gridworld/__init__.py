"""Gridworld study of the paper (§5.1, Figure 1): exact value-aware objectives vs MLE.

* :mod:`.env`        -- minigrid empty room with cardinal moves and the shaped reward;
* :mod:`.model`      -- batched categorical models over all cells (table or MLP);
* :mod:`.objectives` -- exact model advantages feeding the shared loss registry;
* :mod:`.a2c`        -- tabular A2C inside the model;
* :mod:`.dyna`       -- Algorithm 2 (Dyna loop with stale-value refit), vectorised over runs;
* :mod:`.run`        -- one run in the run-directory format (what the figure command runs);
* :mod:`.steps`      -- steps-to-goal table of a Figure-1 sweep.

Importing this package registers no new loss: every objective is a registry entry of
:mod:`vaml_ext.losses` (``mle``, ``ma_direct_l1``, ``ma_direct_l2``, ``ma_l1``, ``ma_vaml``).
"""

from vaml_ext.gridworld.dyna import DynaConfig, DynaResult, run_dyna
from vaml_ext.gridworld.env import ACTIONS, BatchedGridworld, CardinalEmptyRoom, GridSpec, grid_spec
from vaml_ext.gridworld.model import MLPCategoricalModel, TabularCategoricalModel
from vaml_ext.gridworld.objectives import METHOD_LABELS, METHODS, GridObjectives, transition_advantage

__all__ = [
    "ACTIONS",
    "BatchedGridworld",
    "CardinalEmptyRoom",
    "DynaConfig",
    "DynaResult",
    "GridObjectives",
    "GridSpec",
    "METHODS",
    "METHOD_LABELS",
    "MLPCategoricalModel",
    "TabularCategoricalModel",
    "grid_spec",
    "run_dyna",
    "transition_advantage",
]
