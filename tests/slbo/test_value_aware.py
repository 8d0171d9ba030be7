"""Value-aware SLBO (vaml_ext.slbo) and the patch series against the port."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from slbo.algos.TRPO import TRPO
from slbo.dynamics_model import DynamicsModel
from slbo.loss.criteria import L2Loss
from slbo.loss.multi_step_loss import MultiStepLoss
from slbo.partial_envs import make_env
from slbo.policies.gaussian_mlp_policy import GaussianMLPPolicy
from slbo.utils.normalizer import Normalizers
from slbo.v_function.mlp_v_function import MLPVFunction
from tests.slbo.conftest import REPO
from vaml_ext.losses import UnknownLossError, available_losses, get_loss_class
from vaml_ext.slbo import make_model_loss, make_value_refit
from vaml_ext.slbo.refit import ValueRefit

ENV = "Pendulum-v1"
DS, DA = 3, 1


def _components(hidden=(32, 32)):
    env = make_env(ENV)
    norms = Normalizers(DA, DS)
    rng = np.random.RandomState(0)
    states = np.stack([np.cos(rng.uniform(-3, 3, 500)), np.sin(rng.uniform(-3, 3, 500)), rng.randn(500)], 1)
    norms.state.update(states)
    norms.diff.update(rng.randn(500, DS) * 0.2)
    policy = GaussianMLPPolicy(DS, DA, [32, 32], norms.state)
    vfn = MLPVFunction(DS, [64, 64], norms.state)
    model = DynamicsModel(DS, DA, norms, list(hidden))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.1)
    algo = TRPO(
        DS, DA, policy, vfn, max_kl=0.01, n_cg_iters=10, ent_coef=0.005, cg_damping=0.1, vf_lr=1e-3, n_vf_iters=5
    )
    return env, norms, policy, vfn, model, algo


def _batch(seed=0, b=128):
    rng = np.random.RandomState(seed)
    s = rng.randn(2, b, DS)
    a = rng.uniform(-1, 1, (2, b, DA))
    w = np.random.RandomState(99).randn(DS + DA, DS)
    ns = s + 0.3 * np.tanh(np.concatenate([s, a], -1) @ w)  # learnable deterministic dynamics
    masks = np.ones((2, b))
    return s, ns, a, masks


def _snapshot(*modules):
    return [[p.detach().clone() for p in m.parameters()] + [b.clone() for b in m.buffers()] for m in modules]


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


def test_slbo_registered_and_contract_keys():
    assert {"slbo", "mle", "ma_l1", "ma_vaml"} <= set(available_losses())
    assert get_loss_class("slbo").in_keys == ("multi_step_sq_err",)
    assert not get_loss_class("slbo").value_aware


def test_registry_slbo_equals_upstream_multi_step_loss():
    _, norms, _, vfn, model, _ = _components()
    up = MultiStepLoss(model, norms, DS, DA, L2Loss(), 2)
    reg = make_model_loss("slbo", model, norms, DS, DA, L2Loss(), 2, vfn=vfn)
    s, ns, a, m = _batch()
    m[0, :10] = 0
    l_up = up.training_loss(s, ns, a, m)
    g_up = torch.autograd.grad(l_up, list(model.parameters()))
    l_reg = reg.training_loss(s, ns, a, m)
    g_reg = torch.autograd.grad(l_reg, list(model.parameters()))
    torch.testing.assert_close(l_reg, l_up)
    for x, y in zip(g_up, g_reg):
        torch.testing.assert_close(x, y)
    assert not reg.value_aware


def test_mle_is_single_step_normalised_mse():
    _, norms, _, vfn, model, _ = _components()
    loss = make_model_loss("mle", model, norms, DS, DA, L2Loss(), 2, vfn=vfn)
    s, ns, a, m = _batch()
    got = float(loss.training_loss(s, ns, a, m).detach())
    with torch.no_grad():
        pred = (
            model(
                torch.tensor(s.reshape(-1, DS), dtype=torch.float32),
                torch.tensor(a.reshape(-1, DA), dtype=torch.float32),
            )
            .double()
            .numpy()
        )
    sd = np.maximum(norms.diff.op_std.numpy(), 1e-6)
    want = (((pred - ns.reshape(-1, DS)) / sd) ** 2).mean()
    assert got == pytest.approx(want, rel=1e-4)


@pytest.mark.parametrize("name,power", [("ma_l1", 1), ("ma_vaml", 2)])
def test_value_aware_loss_value_and_coefficient(name, power):
    _, norms, _, vfn, model, _ = _components()
    loss = make_model_loss(name, model, norms, DS, DA, L2Loss(), 2, vfn=vfn, va_loss_coeff=0.01)
    assert loss.value_aware and loss.objective.coeff == 0.01
    s, ns, a, m = _batch()
    got = float(loss.training_loss(s, ns, a, m).detach())
    with torch.no_grad():
        ts = lambda x: torch.tensor(x, dtype=torch.float32)  # noqa: E731
        pred = model(ts(s.reshape(-1, DS)), ts(a.reshape(-1, DA)))
        adv = vfn(ts(ns.reshape(-1, DS))) - vfn(pred)
    want = 0.01 * float(adv.abs().pow(power).mean())
    assert got == pytest.approx(want, rel=1e-4)
    assert got > 0


@pytest.mark.parametrize("name", ["ma_l1", "ma_vaml"])
def test_value_aware_gradients_reach_the_model_only(name):
    _, norms, policy, vfn, model, _ = _components()
    loss = make_model_loss(name, model, norms, DS, DA, L2Loss(), 2, vfn=vfn)
    loss.build_backward(1e-3, 1e-5)
    s, ns, a, m = _batch()
    v_before, p_before = _snapshot(vfn, policy)
    m_before = _snapshot(model)[0]
    loss_val = loss.training_loss(s, ns, a, m)
    loss_val.backward()
    assert all(p.grad is None for p in vfn.parameters())
    assert all(p.requires_grad for p in vfn.parameters())  # frozen only inside the loss
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    model.zero_grad()
    for _ in range(3):
        loss.train_step(s, ns, a, m)
    assert _same(_snapshot(vfn)[0], v_before) and _same(_snapshot(policy)[0], p_before)
    assert not _same(_snapshot(model)[0], m_before)


def test_value_aware_training_reduces_the_objective():
    """From upstream's model init (weights ~1e-5), Adam 1e-3, clip 2 -- but weight decay 0.

    With upstream's weight decay (1e-5) and the paper's coefficient (0.01) the decay
    gradient on the ~1e-5 initial weights outweighs the value-aware gradient and the
    hidden layers collapse (measured: no decrease in 2,000 steps, [500, 500] model);
    see PORTING.md "value-aware variants". This test checks the objective itself is
    optimisable; ``-s model.weight_decay=0`` is the run-time switch.
    """
    norms = Normalizers(DA, DS)
    s, ns, a, m = _batch(b=256)
    norms.state.update(s.reshape(-1, DS))
    norms.diff.update((ns - s).reshape(-1, DS))
    vfn = MLPVFunction(DS, [64, 64], norms.state)
    model = DynamicsModel(DS, DA, norms, [64, 64])
    loss = make_model_loss("ma_l1", model, norms, DS, DA, L2Loss(), 2, vfn=vfn)
    loss.build_backward(1e-3, 0.0)
    first = float(loss.training_loss(s, ns, a, m).detach())
    for _ in range(300):
        loss.train_step(s, ns, a, m)
    assert float(loss.training_loss(s, ns, a, m).detach()) < 0.5 * first


def test_unknown_and_unsupported_names():
    _, norms, _, vfn, model, _ = _components()
    with pytest.raises(UnknownLossError, match="ma_l1"):
        make_model_loss("ma_l3", model, norms, DS, DA, L2Loss(), 2, vfn=vfn)
    with pytest.raises(ValueError, match="not supported by SLBO"):
        make_model_loss("ma_direct_l1", model, norms, DS, DA, L2Loss(), 2, vfn=vfn)
    with pytest.raises(ValueError, match="va_loss_coeff"):
        make_model_loss("ma_l1", model, norms, DS, DA, L2Loss(), 2, vfn=vfn, va_loss_coeff=0.0)


def _refit(interval=20, n_samples=400, **kw):
    env, norms, policy, vfn, model, algo = _components()
    loss = make_model_loss(kw.pop("loss", "ma_l1"), model, norms, DS, DA, L2Loss(), 2, vfn=vfn)
    cb = make_value_refit(
        loss,
        policy,
        vfn,
        algo,
        model,
        make_env,
        ENV,
        n_envs=4,
        max_steps=100,
        value_update_interval=interval,
        n_samples=n_samples,
    )
    return cb, (norms, policy, vfn, model, algo)


def test_refit_changes_the_value_net_only():
    cb, (norms, policy, vfn, model, algo) = _refit()
    assert isinstance(cb, ValueRefit)
    v0, p0, m0, n0 = _snapshot(vfn, policy, model, norms)
    for _ in range(19):
        assert cb() is None
    assert _same(_snapshot(vfn)[0], v0)
    vf_loss = cb()  # the 20th model update triggers the refit
    assert vf_loss is not None and np.isfinite(vf_loss) and cb.n_refits == 1
    assert not _same(_snapshot(vfn)[0], v0)
    assert _same(_snapshot(policy)[0], p0) and _same(_snapshot(model)[0], m0) and _same(_snapshot(norms)[0], n0)


def test_refit_fits_model_returns():
    cb, (norms, policy, vfn, model, algo) = _refit()
    losses = [cb.refit() for _ in range(4)]
    assert losses[-1] < losses[0]


def test_refit_disabled_for_naive_and_non_value_aware():
    assert _refit(interval=0)[0] is None  # MA-L1 Naive
    assert _refit(loss="slbo")[0] is None
    assert _refit(loss="mle")[0] is None
    with pytest.raises(ValueError, match="multiple"):
        _refit(n_samples=401)


# -- the patch series -------------------------------------------------------------------
def test_series_applies_and_touches_only_hook_points(tmp_path):
    from vaml_ext.patching.core import build
    from vaml_ext.patching.spec import load_spec

    spec = load_spec(REPO, "slbo")
    assert spec.kind == "local" and spec.source == (REPO / "third_party" / "slbo").resolve()
    tree = tmp_path / "slbo-patched"
    build(spec, REPO, tree, log=lambda *_: None)
    hook_points = {"slbo/main.py", "slbo/utils/flags.py"} | {
        f"configs/vaml/{v}.yml" for v in ("slbo", "mle", "ma_l1", "ma_vaml", "ma_l1_naive", "mle_va_slbo")
    }
    # the one upstreamable fix of the port itself (0009: runner / env state in the checkpoint)
    resume_fix = {"slbo/main.py", "slbo/utils/runner.py", "PORTING.md"} | {
        f"slbo/envs/{f}.py" for f in ("__init__", "batched_env", "virtual_env")
    }
    for name in spec.series():
        text = (spec.patch_dir / name).read_text()
        header = text.split("diff --git", 1)[0]
        assert "Why:" in header, f"{name} has no header saying why it exists"
        touched = {ln.split(" b/")[-1] for ln in text.splitlines() if ln.startswith("diff --git")}
        added = [ln for ln in text[len(header) :].splitlines() if ln.startswith("+") and not ln.startswith("+++")]
        upstreamable = "Upstreamable: yes" in header and not any("vaml" in ln for ln in added)
        allowed = resume_fix if upstreamable else hook_points
        assert touched <= allowed, f"{name} touches {sorted(touched - allowed)}"
    main_src = (tree / "slbo" / "main.py").read_text()
    assert "make_model_loss" in main_src and "value_refit()" in main_src
    assert "vaml" not in (REPO / "third_party" / "slbo" / "slbo" / "main.py").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["slbo", "mle", "ma_vaml", "ma_l1", "ma_l1_naive"])
def test_every_variant_runs_through_the_patched_tree(tmp_path, variant):
    from vaml_ext.patching.core import build
    from vaml_ext.patching.spec import load_spec

    tree = tmp_path / "tree"
    build(load_spec(REPO, "slbo"), REPO, tree, log=lambda *_: None)
    log_dir = tmp_path / "run"
    env = dict(os.environ, SLBO_PATCHED=str(tree), PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    args = [
        f"variant={variant}",
        "env=pendulum",
        "seed=5",
        f"log_dir={log_dir}",
        "slbo.n_stages=1",
        "slbo.n_iters=1",
        "slbo.n_model_iters=20",
        "slbo.n_policy_iters=1",
        "rollout.n_train_samples=400",
        "rollout.n_test_samples=400",
        "vaml.n_refit_samples=400",
    ]
    out = subprocess.run(
        [sys.executable, "-m", "vaml_ext.slbo.run", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    import yaml

    cfg = yaml.safe_load((log_dir / "config.yml").read_text())
    assert cfg["vaml"]["model_loss"] == variant.replace("_naive", "")
    refits = "[refit]" in out.stdout
    assert refits == (variant in ("ma_l1", "ma_vaml")), out.stdout[-2000:]
    # the end-of-run summary: two lines on stderr, the same numbers in done.json
    import csv
    import json

    with open(log_dir / "progress.csv") as f:
        last = list(csv.DictReader(f))[-1]
    done = json.loads((log_dir / "done.json").read_text())
    assert np.allclose(done["final_return"], float(last["real_return_mean"]), equal_nan=True)
    assert done["env_steps"] == int(last["n_real_samples"])
    assert f"finished: final return {done['final_return']:.1f}" in out.stderr and f"files: {log_dir}/" in out.stderr


def test_supported_losses_follow_registry_attributes(monkeypatch):
    """SLBO accepts a registered loss iff it is per transition and its inputs are ones SLBO computes."""
    from vaml_ext.losses import ModelLoss, registry
    from vaml_ext.slbo.model_loss import supported_losses

    assert set(supported_losses()) >= {"slbo", "mle", "ma_l1", "ma_vaml"}
    assert not {"ma_direct_l1", "ma_direct_l2"} & set(supported_losses())  # need whole trajectories

    class Combined(ModelLoss):  # a new loss on SLBO's inputs: accepted with no SLBO-side list to edit
        name, value_aware, in_keys = "tmp_combined", True, ("multi_step_sq_err", "advantage")

        def _loss(self, multi_step_sq_err, advantage, **_):
            return self.reduce(multi_step_sq_err) + self.reduce(advantage.abs())

    class Foreign(ModelLoss):
        name, in_keys = "tmp_foreign", ("logits",)

    monkeypatch.setitem(registry._REGISTRY, "tmp_combined", Combined)
    monkeypatch.setitem(registry._REGISTRY, "tmp_foreign", Foreign)
    assert "tmp_combined" in supported_losses() and "tmp_foreign" not in supported_losses()
    _, norms, _, vfn, model, _ = _components()
    s, ns, a, m = _batch()
    got = make_model_loss("tmp_combined", model, norms, DS, DA, L2Loss(), 2, vfn=vfn, va_loss_coeff=1.0)
    slbo = make_model_loss("slbo", model, norms, DS, DA, L2Loss(), 2, vfn=vfn)
    ma = make_model_loss("ma_l1", model, norms, DS, DA, L2Loss(), 2, vfn=vfn, va_loss_coeff=1.0)
    torch.testing.assert_close(
        got.training_loss(s, ns, a, m), slbo.training_loss(s, ns, a, m) + ma.training_loss(s, ns, a, m)
    )
    with pytest.raises(ValueError, match="not supported by SLBO; valid: .*tmp_combined"):
        make_model_loss("tmp_foreign", model, norms, DS, DA, L2Loss(), 2, vfn=vfn)
