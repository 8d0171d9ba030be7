"""vaml_ext: value-aware model learning extensions for mbrl-lib's MBPO, the SLBO port
and the gridworld study (Modhe et al., "Model-Advantage and Value-Aware Models for
Model-Based Reinforcement Learning").

Sub-packages by role:

* :mod:`vaml_ext.losses`   - the shared model-loss registry (``mle``, ``ma_l1``,
  ``ma_vaml``, ``ma_direct_l1``, ``ma_direct_l2``, ...) and value estimators.
* :mod:`vaml_ext.patching` - the generic patch-series tool (``vaml-patch``).
"""

__version__ = "0.1.0"
