"""The ``vaml`` plugin for mbrl-lib (entry point ``mbrl.plugins: vaml``).

Registers, through the seam added by the ``plugins`` patch of ``patches/mbrl-lib``:

* ``config_defaults`` -- the ``overrides.*`` keys below (no ``+`` needed on the CLI);
* ``model_losses`` -- every per-transition value-aware loss of the shared registry
  (``ma_l1`` = paper Eq. 10, ``ma_vaml`` = squared model advantage; ``vagram`` = VaGraM,
  :mod:`vaml_ext.mbpo.vagram`, which also scores validation batches);
* ``wrap_env`` -- ``overrides.distractor_dims`` extra observation columns
  (:mod:`vaml_ext.mbpo.distractors`);
* ``validate_config`` -- rejects bad values before any training, naming the key;
* ``make_callbacks`` -- the stale-value refit (Algorithm 2) when the loss takes it
  (``ModelLoss.takes_refit``; under ``profile=paper``: any loss, as the authors' loop) and
  ``value_update_interval > 0`` (``value_refit_mode``: ``separate`` =
  :mod:`vaml_ext.mbpo.refit`, ``authors`` = :mod:`vaml_ext.mbpo.refit_authors`), the
  SAC gradient clip when ``sac_grad_clip`` is set, diagnostics for every loss, and the
  run recorder (``returns.csv``, checkpoint/resume, progress; :mod:`vaml_ext.mbpo.recorder`).

``profile=paper`` selects what the authors' code did (:mod:`vaml_ext.mbpo.profile`).
"""

from __future__ import annotations

from mbrl.util.plugins import Callback

from vaml_ext.checks import SettingError, check_bool, check_choice, check_int, check_number, invalid
from vaml_ext.losses import available_losses, get_loss_class
from vaml_ext.mbpo.envs import register as _register_envs
from vaml_ext.mbpo.profile import UNSET, register_resolver
from vaml_ext.runlog.tracking import WANDB_DEFAULTS, check_wandb_options

#: Defaults. The keys a profile governs (vaml_ext.mbpo.profile: CURRENT, PAPER) default to
#: "not set" (``${vaml_profile:<key>}``, resolving to the profile's value), so an explicit
#: setting that contradicts ``profile=paper`` is caught whatever its value.
#: value_refit_batch_size: see exp/mbpo/README.md for the refit-size-vs-overhead curve it
#: was chosen from (the paper's code used 50,000).
config_defaults = {
    **UNSET,
    "profile": "current",  # current | paper (vaml_ext.mbpo.profile)
    # run management (vaml_ext.mbpo.checkpoint): checkpoint every N epochs (0 = off),
    # resume from <work_dir>/ckpt/latest.pt when present, progress bar / summary line
    "checkpoint_every": 0,
    "resume": True,
    "progress_bar": False,
    # VaGraM (vaml_ext.mbpo.vagram): corrected | published (the code of the paper's runs);
    # bounded (per-dimension) or Taylor form; quantile clip of the value gradients (null = off);
    # average over the target critic's heads too (the authors' use_all_vf)
    "vagram_mode": "corrected",
    "vagram_bounded": True,
    "vagram_clip_quantile": 0.95,
    "vagram_target_heads": True,
    # distracting observation dimensions for any env (vaml_ext.mbpo.distractors); 0 = off,
    # seed null = the run's seed
    "distractor_dims": 0,
    "distractor_seed": None,
    "distractor_pure_noise": False,
    # optional Weights & Biases logging (vaml_ext.runlog.tracking): wandb, wandb_project, wandb_entity, wandb_mode
    **WANDB_DEFAULTS,
}
register_resolver()
_register_envs()  # gym___vaml/...NoContactForces-v0 (vaml_ext.mbpo.envs)


def settings(cfg):
    """``cfg.overrides``' plugin keys with ``overrides.profile`` applied (a dict)."""
    from vaml_ext.mbpo.profile import effective

    return effective(cfg.overrides, config_defaults)


#: the loss inputs MBPO computes: the model advantage (Eq. 9-10; ValueAwareModelUpdate) and
#: the prediction error with value gradients (VaGraM; vaml_ext.mbpo.vagram)
_MBPO_INPUTS = {"advantage", "error", "value_grad"}


def _per_transition_value_aware():
    names = []
    for name in available_losses():
        cls = get_loss_class(name)
        if cls.value_aware and not cls.needs_trajectories and set(cls.in_keys) <= _MBPO_INPUTS:
            names.append(name)
    return names


def is_value_aware(name: str) -> bool:
    return name in _per_transition_value_aware()


def takes_refit(name: str) -> bool:
    """Whether ``model_loss=name`` runs with Algorithm 2's stale-value refit."""
    return name in available_losses() and get_loss_class(name).takes_refit


def _factory(name):
    def make(ctx):
        from vaml_ext.mbpo.model_loss import ValueAwareModelUpdate

        o = settings(ctx.cfg)
        return ValueAwareModelUpdate(
            ctx,
            name,
            coeff=o["va_loss_coeff"],
            value=o["va_value"],
            num_samples=o["va_samples"],
            grad_clip=o["va_grad_clip"],
            seed=ctx.cfg.seed if ctx.cfg.seed is not None else 0,
            reduction=o["va_reduction"],
        )

    return make


def _vagram_factory(ctx):
    from vaml_ext.mbpo.profile import is_set
    from vaml_ext.mbpo.vagram import VaGraMModelUpdate

    o = settings(ctx.cfg)
    # VaGraM's loss has no coefficient: 1.0 unless va_loss_coeff is set explicitly
    coeff = o["va_loss_coeff"] if is_set(ctx.cfg.overrides, "va_loss_coeff") else None
    return VaGraMModelUpdate(
        ctx,
        coeff=coeff,
        bounded=o["vagram_bounded"],
        mode=o["vagram_mode"],
        clip_quantile=o["vagram_clip_quantile"],
        target_heads=o["vagram_target_heads"],
    )


model_losses = {
    name: (_vagram_factory if name == "vagram" else _factory(name)) for name in _per_transition_value_aware()
}


def wrap_env(cfg, env):
    from vaml_ext.mbpo.distractors import wrap

    return wrap(cfg, env)


def _validate_vagram(cfg, o) -> None:
    from vaml_ext.mbpo.vagram import MODES

    if o["profile"] == "paper":
        raise SettingError(
            "overrides.model_loss=vagram with overrides.profile=paper: the paper profile is the "
            "model-advantage authors' code; VaGraM's published code is overrides.vagram_mode=published"
        )
    check_choice("overrides.vagram_mode", o.get("vagram_mode"), MODES)
    for key in ("vagram_bounded", "vagram_target_heads"):
        check_bool(f"overrides.{key}", o.get(key))
    check_number(
        "overrides.vagram_clip_quantile", o.get("vagram_clip_quantile"), 0.0, 1.0, lo_open=True, allow_none=True
    )
    if not cfg.get("dynamics_model", {}).get("deterministic", False):
        raise SettingError(
            "overrides.model_loss=vagram trains a deterministic model, as the authors' VAMLMLP "
            "(pairlab/vagram conf/dynamics_model/vaml_ensemble.yaml); add dynamics_model.deterministic=true"
        )


def validate_config(cfg) -> None:
    """Every plugin setting, before any training; a bad one raises :class:`SettingError`
    naming the key (wording: :mod:`vaml_ext.checks`)."""
    from vaml_ext.mbpo.model_loss import REDUCTIONS
    from vaml_ext.mbpo.profile import REFIT_MODES
    from vaml_ext.mbpo.values import VALUE_ESTIMATORS

    o = settings(cfg)  # profile conflicts fail here, naming the key
    name = cfg.overrides.get("model_loss", "mle")
    if name in available_losses() and get_loss_class(name).needs_trajectories:
        raise SettingError(
            f"overrides.model_loss={name!r} needs whole trajectories and is only "
            "available in the gridworld study; MBPO supports: mle, " + ", ".join(_per_transition_value_aware())
        )
    for key, minimum in (
        ("value_update_interval", 0),
        ("num_value_updates", 0),
        ("value_refit_batch_size", 1),
        ("va_samples", 1),
        ("checkpoint_every", 0),
        ("distractor_dims", 0),
    ):
        check_int(f"overrides.{key}", o.get(key), minimum)
    for key in ("resume", "progress_bar", "distractor_pure_noise"):
        check_bool(f"overrides.{key}", o.get(key))
    check_choice("overrides.va_value", o.get("va_value"), VALUE_ESTIMATORS)
    check_choice("overrides.value_refit_mode", o.get("value_refit_mode"), REFIT_MODES)
    check_choice("overrides.va_reduction", o.get("va_reduction"), REDUCTIONS)
    for key in ("va_grad_clip", "sac_grad_clip"):
        check_number(f"overrides.{key}", o.get(key), 0.0, lo_open=True, allow_none=True)
    if o.get("distractor_seed") is not None:
        check_int("overrides.distractor_seed", o.get("distractor_seed"))
    check_wandb_options(o, prefix="overrides.")
    if name == "vagram":
        _validate_vagram(cfg, o)
    if is_value_aware(name):
        check_number("overrides.va_loss_coeff", o.get("va_loss_coeff"), 0.0, lo_open=True)
        if takes_refit(name) and o.get("value_update_interval", 0) > 0 and o.get("num_value_updates", 0) < 1:
            raise invalid(
                "overrides.num_value_updates",
                o.get("num_value_updates"),
                "an integer >= 1 when value_update_interval > 0",
            )
        import mbrl

        if (
            getattr(mbrl, "__version__", "") == "0.2.0.dev3"
            and takes_refit(name)
            and o.get("value_update_interval", 0) > 0
            and o.get("value_refit_mode") == "separate"
        ):
            # the separate D'' (vaml_ext.mbpo.refit) is built on mbrl 0.2.0's ReplayBuffer.add_batch
            raise SettingError(
                "overrides.value_refit_mode=separate is not available on the paper base "
                "(mbrl 0.2.0.dev3); use value_refit_mode=authors or profile=paper"
            )


def make_callbacks(cfg, ctx):
    from vaml_ext.mbpo.diagnostics import ValueAwareDiagnostics, readable_log_formats
    from vaml_ext.mbpo.recorder import RunRecorder
    from vaml_ext.mbpo.refit import StaleValueRefit
    from vaml_ext.mbpo.sac_clip import SacGradClip

    readable_log_formats()  # mbrl's console lines labelled with their CSV column names
    o = settings(cfg)
    # mbrl 0.2.0's overrides name the SAC batch size; 0.2.0.dev3's agent holds it (256)
    sac_batch = cfg.overrides.get("sac_batch_size") or getattr(getattr(ctx.agent, "sac_agent", None), "batch_size", 256)
    refit = None
    # a config built without this plugin's keys (e.g. upstream's own tests) is upstream's MLE run.
    # profile=paper refits for every loss, mle included, as the authors' loop did: it passed the
    # refit to ModelTrainer whatever the loss, only value_update_interval=0 turned it off
    # (va_mbpo mbrl/algorithms/mbpo.py l.197 and l.237-249, mbrl/models/model_trainer.py l.179-204)
    every_loss = o["profile"] == "paper"
    if (every_loss or takes_refit(cfg.overrides.get("model_loss", "mle"))) and o["value_update_interval"] > 0:
        if o["value_refit_mode"] == "authors":
            from vaml_ext.mbpo.refit_authors import AuthorsValueRefit

            refit = AuthorsValueRefit(
                o["value_update_interval"], o["num_value_updates"], o["value_refit_batch_size"], batch_size=sac_batch
            )
        else:
            refit = StaleValueRefit(
                o["value_update_interval"],
                o["num_value_updates"],
                o["value_refit_batch_size"],
                batch_size=sac_batch,
                seed=cfg.seed or 0,
            )
    clip = SacGradClip(o["sac_grad_clip"]) if o["sac_grad_clip"] is not None else None
    diag = ValueAwareDiagnostics(o["va_value"], refit=refit, num_samples=o["va_samples"], wandb_opts=o)
    stateful = {"diagnostics": diag, **({"refit": refit} if refit is not None else {})}
    # last: it restores a checkpoint after the others have built their objects
    recorder = RunRecorder(o["checkpoint_every"], resume=o["resume"], progress=o["progress_bar"], stateful=stateful)
    # a model update that tracks the training loop (VaGraM's published mode) is a callback too
    update = getattr(getattr(ctx, "model_trainer", None), "update_fn", None)
    update_cb = update if isinstance(update, Callback) else None
    return [cb for cb in (clip, refit, update_cb, diag, recorder) if cb is not None]
