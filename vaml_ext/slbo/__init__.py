"""Value-aware model learning for the SLBO port (paper §5, Figures 2 and 4).

Importing this module registers ``slbo`` (SLBO's multi-step loss) in the shared
registry :mod:`vaml_ext.losses`; ``mle``, ``ma_l1`` and ``ma_vaml`` are the shared
built-ins. The patched SLBO tree (``vaml-patch apply slbo``) calls two hooks:

* :func:`make_model_loss` -- the model-learning objective chosen by ``vaml.model_loss``;
* :func:`make_value_refit` -- Algorithm 2's stale-value correction, called after every
  model update (``vaml.value_update_interval``, default 20; 0 = "MA-L1 Naive").
* :func:`vaml_ext.slbo.value_fit.clip_value_fit` -- the authors' value-net gradient clip
  (``vaml.vf_grad_clip``; ``setting=paper`` sets 2.0);
* :func:`vaml_ext.slbo.diagnostics.make_model_diagnostics` -- per-iteration held-out
  ``mean |A|``, one-step normalised MSE, max |W| per layer, refits (``model_diag.csv``);
* :mod:`vaml_ext.slbo.resume` -- the refit's and the diagnostics' state in the run's
  checkpoint, so a resumed run is bit-identical to an uninterrupted one.

``setting=paper`` (:mod:`vaml_ext.slbo.settings`) runs the authors' settings; the variant
``mle_va_slbo`` is the authors' MLE, bug included. The SLBO port itself
(``third_party/slbo``) knows nothing of any of these.
"""

from vaml_ext.slbo.losses import SLBOMultiStepLoss  # registers "slbo"; needs no SLBO install

_LAZY = {
    "RegistryModelLoss": "model_loss",
    "make_model_loss": "model_loss",
    "ValueRefit": "refit",
    "make_value_refit": "refit",
}


def __getattr__(name):  # the hooks import the SLBO port, so load them on first use
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"vaml_ext.slbo.{_LAZY[name]}"), name)
    raise AttributeError(name)


__all__ = ["SLBOMultiStepLoss", "RegistryModelLoss", "ValueRefit", "make_model_loss", "make_value_refit"]
