"""vaml_ext: value-aware model learning extensions for mbrl-lib's MBPO, the SLBO port
and the gridworld study (Modhe et al., "Model-Advantage and Value-Aware Models for
Model-Based Reinforcement Learning").

Sub-packages by role:

* :mod:`vaml_ext.losses`    - the shared model-loss registry (``mle``, ``ma_l1``,
  ``ma_vaml``, ``ma_direct_l1``, ``ma_direct_l2``, ``vagram``) and value estimators;
* :mod:`vaml_ext.mbpo`      - the mbrl-lib plugin (value-aware model update, value
  estimators, the stale-value refits, VaGraM, distracting dimensions, ``overrides.profile``,
  the SAC clip, diagnostics, the run recorder and checkpoints);
* :mod:`vaml_ext.slbo`      - value-aware SLBO through the port's patch hooks, the MBBL tasks,
  ``setting=paper``;
* :mod:`vaml_ext.gridworld` - the Figure-1 study;
* :mod:`vaml_ext.exp`       - figure sweeps, aggregation and the claims protocol;
* :mod:`vaml_ext.runlog`    - run directories, numerics, locks, checkpoints, progress (imports
  nothing else of ``vaml_ext``);
* :mod:`vaml_ext.patching`  - the generic patch-series tool (``vaml-patch``) and upstream's
  test suites against the patched trees;
* :mod:`vaml_ext.demo`      - ``make demo``;
* :mod:`vaml_ext.checks`, :mod:`vaml_ext.figures` - leaf modules any layer may use: settings
  validation (one wording), the figure configs.

Layers: ``runlog`` and ``losses`` <- ``mbpo`` / ``slbo`` / ``gridworld`` <- ``exp``.
"""

__version__ = "0.1.0"
