"""``overrides.profile``: one switch for what the authors' MBPO code did.

* ``current`` (default) -- this project's settings, each key as configured.
* ``paper`` -- the authors' fork (GitHub ``nirbhayjm/va_mbpo``, commit 203ea3e):

  =========================== ============ ==================================================
  key                         paper value  where the authors' code does it
  =========================== ============ ==================================================
  ``va_value``                ``q1_indep`` ``mbrl/models/gaussian_mlp.py`` l.352-374
  ``value_refit_mode``        ``authors``  ``mbrl/models/model_trainer.py`` l.151-204
  ``value_refit_batch_size``  50000        ``mbrl/algorithms/mbpo.py`` l.244
  ``sac_grad_clip``           2.0          ``mbrl/third_party/pytorch_sac/agent/sac.py`` l.137, l.158
  ``va_loss_coeff``           0.01         ``…/gaussian_mlp_ensemble.yaml`` l.12
  ``value_update_interval``   5            ``mbrl/algorithms/mbpo.py`` l.197
  ``num_value_updates``       5            ``mbrl/algorithms/mbpo.py`` l.245-247
  ``va_samples``              1            ``gaussian_mlp.py`` l.340 (one ``rsample``)
  ``va_grad_clip``            2.0          ``mbrl/models/model.py`` l.178
  ``va_reduction``            ``sum``      ``gaussian_mlp.py`` l.389-396
  =========================== ============ ==================================================

A key the user did not set takes its profile's value; a key set explicitly (command
line, config file or code) to anything but the paper value is a conflict under
``profile=paper`` and fails validation naming the key -- also when the value is the
``current`` default (``overrides.va_value=q1`` with ``profile=paper`` is an error, not a
silent ``q1_indep``). "Not set" is visible in the config: the plugin's default for each
key above is the interpolation ``${vaml_profile:<key>}`` (:data:`UNSET`), which resolves to
the profile's value, so code reading ``cfg.overrides.<key>`` directly gets it too.
Upstream hyper-parameters (the override files) are never changed: the SAC gradient clip
is installed on the agent's optimisers through the plugin seam
(:class:`vaml_ext.mbpo.sac_clip.SacGradClip`).
"""

from __future__ import annotations

from typing import Any

from vaml_ext.losses import DEFAULT_VA_LOSS_COEFF

PROFILES = ("current", "paper")
REFIT_MODES = ("separate", "authors")

#: this project's values (``profile=current``) of the keys a profile governs
CURRENT: dict[str, Any] = {
    "va_value": "q1",  # the shared-draw Q1; q1_indep = the authors' (vaml_ext.mbpo.values)
    "value_refit_mode": "separate",  # separate D'' (vaml_ext.mbpo.refit) | authors (refit_authors)
    "value_refit_batch_size": 1000,  # exp/mbpo/README.md: the refit-size-vs-overhead curve
    "sac_grad_clip": None,  # SAC critic/actor grad-norm clip; null = upstream's none
    "va_loss_coeff": DEFAULT_VA_LOSS_COEFF,  # the paper's 0.01
    "value_update_interval": 5,  # K_interval (paper: 5 for MBPO)
    "num_value_updates": 5,  # critic updates per refit
    "va_samples": 1,  # k
    "va_grad_clip": 2.0,
    "va_reduction": "sum",
}

PAPER: dict[str, Any] = {
    "va_value": "q1_indep",
    "value_refit_mode": "authors",
    "value_refit_batch_size": 50000,
    "sac_grad_clip": 2.0,
    "va_loss_coeff": 0.01,
    "value_update_interval": 5,
    "num_value_updates": 5,
    "va_samples": 1,
    "va_grad_clip": 2.0,
    "va_reduction": "sum",
}


RESOLVER = "vaml_profile"
#: the plugin's default of a profile-governed key: "not set, take the profile's value"
UNSET: dict[str, str] = {key: f"${{{RESOLVER}:{key}}}" for key in CURRENT}


def _profile_value(key: str, *, _parent_) -> Any:
    profile = _parent_.get("profile", "current")
    if profile not in PROFILES:
        raise ValueError(f"overrides.profile={profile!r} is invalid: expected one of {', '.join(PROFILES)}")
    return (PAPER if profile == "paper" else CURRENT)[key]


def register_resolver() -> None:
    """Make ``${vaml_profile:<key>}`` resolvable (idempotent; done when the plugin loads)."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, _profile_value)


def is_set(o, key: str) -> bool:
    """Whether ``o`` (``cfg.overrides``, a DictConfig or a plain dict) sets ``key`` explicitly."""
    from omegaconf import DictConfig

    if key not in o:
        return False
    if isinstance(o, DictConfig):
        node = o._get_node(key)
        return node is None or node._value() != UNSET.get(key)
    return o[key] != UNSET.get(key)


def effective(o, defaults: dict[str, Any]) -> dict[str, Any]:
    """The settings a run uses: ``o`` (``cfg.overrides``) with the profile applied.

    ``defaults`` are the plugin's ``config_defaults``. A profile-governed key not set
    explicitly takes its profile's value; under ``profile=paper`` an explicit value other
    than the paper's raises ``ValueError`` naming the key, as does an unknown profile.
    """
    register_resolver()
    profile = o.get("profile", "current")
    if profile not in PROFILES:
        raise ValueError(f"overrides.profile={profile!r} is invalid: expected one of {', '.join(PROFILES)}")
    chosen = PAPER if profile == "paper" else CURRENT
    out = {}
    for k, default in defaults.items():
        if k not in CURRENT:
            out[k] = o.get(k, default)
        elif not is_set(o, k):
            out[k] = chosen[k]
        else:
            out[k] = o.get(k)
            if profile == "paper" and out[k] != PAPER[k]:
                raise ValueError(
                    f"overrides.{k}={out[k]!r} conflicts with overrides.profile=paper, which sets "
                    f"{k}={PAPER[k]!r} (the authors' code); drop the override or use profile=current"
                )
    return out
