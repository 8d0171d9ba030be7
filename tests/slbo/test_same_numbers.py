"""Same numbers before and after the SLBO port's speed-ups (issues 14 and 27).

A fixed-seed short SLBO run on Hopper (1 stage, 2 iterations, tiny sample counts) through
the patched tree, for ``slbo`` and ``ma_l1`` with Algorithm 2's refit firing four times,
fingerprinted: the evaluation returns, the logged model / TRPO losses, a SHA-256 of every
tensor of the final policy / model / value net / normalisers, of both Adam states, of the
train buffer and of the NumPy and torch RNG states after the run. Compared bit for bit:

* ``test_same_numbers_as_the_code_before_the_speed_up`` -- against the same run of the
  code *before* the speed-up (``REFERENCE_COMMITS``, taken from this clone's git history),
  run now, on this machine, under the same numerics: replays on any machine. Upstream's
  settings (``slbo``, ``ma_l1``) against the port before issue 14's speed-up;
  ``setting=paper`` (``ma_l1``: the value-net clip in every TRPO and refit value fit) against
  the port whose clipped fit still took autograd, before issue 27's;
* ``test_stored_reference_replays`` -- against ``tests/baselines/slbo_same_numbers.json``,
  where this machine is of the kind the reference names (pinned numerics, the same
  torch / MKL / NumPy / MuJoCo, the same CPU vendor): evidence that the pinned numerics
  (:mod:`vaml_ext.runlog.numerics`) give the same floats across machines of a kind.
  Elsewhere it says why it does not apply.

    python -m tests.slbo.test_same_numbers --write     # regenerate the stored reference here
"""

from __future__ import annotations

import argparse
import csv
import datetime
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import tarfile
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
import torch

from vaml_ext.runlog.numerics import fingerprint as numerics_fingerprint
from vaml_ext.runlog.numerics import machine_kind

pytestmark = pytest.mark.numerics  # bit-exact

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "tests" / "baselines" / "slbo_same_numbers.json"
#: the port before the speed-up of issue 14 (the code the speed-up must not change)
REFERENCE_COMMIT = "81225a6bc32eeeb4dd755d60ebac7c6329e57fe9"
#: per setting, the code whose numbers the current port must give: upstream's settings against
#: the port before issue 14's speed-up; ``setting=paper`` against the port before its clipped
#: value fit took the hand-written path (issue 27: before, the clip forced autograd)
REFERENCE_COMMITS = {"upstream": REFERENCE_COMMIT, "paper": "4046066c6c0fd31b3489929578898df3cd87dabf"}
SETTING_ARGS = {"upstream": [], "paper": ["setting=paper"]}
#: what the reference commit's tree needs to build and run the SLBO port
REFERENCE_PATHS = ("vaml_ext", "third_party/slbo", "patches/slbo")
VARIANTS = ("slbo", "ma_l1")
ARGS = [
    "env=hopper",
    "seed=7",
    "slbo.n_stages=1",
    "slbo.n_iters=2",
    "slbo.n_model_iters=10",
    "slbo.n_policy_iters=2",
    "rollout.n_train_samples=400",
    "rollout.n_test_samples=400",
    "plan.max_steps=50",
    "plan.n_trpo_samples=400",
    "runner.max_steps=50",
    "rollout.max_buf_size=5000",
    "vaml.value_update_interval=5",
    "vaml.n_refit_samples=400",
    "ckpt.resume=false",
]
LOG_KEYS = ("# Iter", "[TRPO] iter", "Reward on", "[refit]", "episode:")


def _digest(x) -> str:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().contiguous().numpy()
    return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()[:24]


def _tensors(prefix, state, out):
    if isinstance(state, dict):
        for k, v in state.items():
            _tensors(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(state, (list, tuple)):
        for i, v in enumerate(state):
            _tensors(f"{prefix}.{i}", v, out)
    elif isinstance(state, torch.Tensor):
        x = state.detach().double().cpu().numpy().ravel()  # exact sums: independent of threads and kernels
        out[prefix] = {"sha": _digest(state), "sum": math.fsum(x), "norm": math.sqrt(math.fsum(x * x))}
    elif isinstance(state, (int, float)):
        out[prefix] = state


def fingerprint(log_dir: Path) -> dict:
    with open(log_dir / "progress.csv") as f:
        returns = [
            {
                k: r[k]
                for k in (
                    "stage",
                    "real_return_mean",
                    "real_return_std",
                    "real_n_episodes",
                    "virt_return_mean",
                    "virt_return_std",
                    "virt_n_episodes",
                )
            }
            for r in csv.DictReader(f)
        ]
    log = [re.sub(r"^\d\d:\d\d:\d\d ", "", ln) for ln in (log_dir / "log.txt").read_text().splitlines()]
    log = [re.sub(r", [\d.]+ s in total", "", ln) for ln in log if any(k in ln for k in LOG_KEYS)]
    weights: dict = {}
    _tensors("", torch.load(log_dir / "final.pt", weights_only=False), weights)
    ckpt = torch.load(log_dir / "ckpt" / "latest.pt", weights_only=False)
    optim: dict = {}
    _tensors("model", ckpt["model_optimizer"]["state"], optim)
    _tensors("vf", ckpt["vf_optimizer"]["state"], optim)
    np_state = ckpt["np_random"]
    return {
        "returns": returns,
        "log": log,
        "weights": weights,
        "optimizers": optim,
        "train_set": _digest(ckpt["train_set"]["buf"]),
        "noise": _digest(ckpt["noise"]["state"]),
        "np_random": [_digest(np_state[1]), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch_random": _digest(ckpt["torch_random"]),
    }


def run_variant(variant: str, tree: Path, log_dir: Path, code_root: Path = REPO, setting: str = "upstream") -> dict:
    """One run of ``code_root``'s ``vaml_ext.slbo.run`` on the patched ``tree``. The child
    inherits this process's numerics (tests: pinned by ``tests/conftest.py``)."""
    env = dict(os.environ, SLBO_PATCHED=str(tree), PYTHONPATH=str(code_root), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-m", "vaml_ext.slbo.run", f"variant={variant}", f"log_dir={log_dir}", *ARGS]
        + SETTING_ARGS[setting],
        cwd=code_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return fingerprint(log_dir)


def build_tree(into: Path, code_root: Path = REPO) -> Path:
    """The patched tree of ``code_root``'s port (default: the *current* port, not a
    possibly stale third_party/slbo-patched), built by ``code_root``'s own patch tool."""
    code = (
        "import sys; from pathlib import Path; from vaml_ext.patching.core import build; "
        "from vaml_ext.patching.spec import load_spec; r = Path(sys.argv[1]); "
        "build(load_spec(r, 'slbo'), r, Path(sys.argv[2]), log=lambda *_: None)"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(code_root), str(into)],
        cwd=code_root,
        env=dict(os.environ, PYTHONPATH=str(code_root)),
        check=True,
        capture_output=True,
        timeout=300,
    )
    return into


def checkout_reference(into: Path, commit: str = REFERENCE_COMMIT) -> Path | None:
    """``REFERENCE_PATHS`` of ``commit`` from this clone's history, into ``into``;
    None when the history does not hold it (a shallow clone, a tarball)."""
    try:
        blob = subprocess.run(
            ["git", "archive", "--format=tar", commit, *REFERENCE_PATHS],
            cwd=REPO,
            capture_output=True,
            check=True,
            timeout=120,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    return into


def _diff(ref, new, path="", out=None, limit=12):
    out = [] if out is None else out
    if len(out) >= limit:
        return out
    if isinstance(ref, dict) and isinstance(new, dict):
        for k in ref.keys() | new.keys():
            if k not in ref or k not in new:
                out.append(f"{path}.{k}: only in {'reference' if k in ref else 'new run'}")
            else:
                _diff(ref[k], new[k], f"{path}.{k}", out, limit)
    elif isinstance(ref, list) and isinstance(new, list) and len(ref) == len(new):
        for i, (a, b) in enumerate(zip(ref, new)):
            _diff(a, b, f"{path}[{i}]", out, limit)
    elif ref != new:
        out.append(f"{path}: reference {ref!r} != new {new!r}")
    return out


def _first_differences(ref: dict, new: dict) -> str:
    """Where two fingerprints part: the first evaluation return that differs (what a reader
    checks first), the number of differing fields, and a few of them."""
    diffs = _diff(ref, new, limit=10_000)
    if not diffs:
        return ""
    returns = [d for d in diffs if d.startswith(".returns")]
    head = f"first evaluation return that differs: {returns[0]}" if returns else "the evaluation returns agree"
    return f"{len(diffs)} fields differ; {head}; e.g. " + "; ".join(diffs[:3])


@pytest.fixture(scope="module")
def reference_codes(tmp_path_factory):
    """setting -> (code root, patched tree) of its reference commit, or None; built on first use."""
    built: dict = {}

    def get(setting):
        if setting not in built:
            commit = REFERENCE_COMMITS[setting]
            root = checkout_reference(tmp_path_factory.mktemp(f"reference-{setting}") / "code", commit)
            built[setting] = None if root is None else (root, build_tree(root / "tree", root))
        return built[setting]

    return get


@pytest.mark.slow  # > 5 s: kept out of make test-fast (still in make test)
@pytest.mark.parametrize("setting,variant", [("upstream", v) for v in VARIANTS] + [("paper", "ma_l1")], ids=lambda x: x)
def test_same_numbers_as_the_code_before_the_speed_up(tmp_path, setting, variant, reference_codes):
    commit = REFERENCE_COMMITS[setting]
    reference_code = reference_codes(setting)
    if reference_code is None and setting != "upstream":
        pytest.skip(f"commit {commit[:10]} not in this checkout's history (a shallow clone?)")
    if reference_code is None:  # no history: the stored reference is the check where it applies
        mismatch = _kind_mismatch(json.loads(REFERENCE.read_text())["machine_kind"], reference_kind())
        if mismatch:
            pytest.skip(
                f"commit {commit[:10]} is not in this checkout's history (a shallow clone? "
                "`git fetch --unshallow`), and the stored reference is of another machine kind "
                f"({'; '.join(mismatch)}): nothing to compare with on this machine"
            )
        pytest.skip(f"commit {commit[:10]} not in this checkout's history; test_stored_reference_replays runs")
    ref_root, ref_tree = reference_code
    ref = run_variant(variant, ref_tree, tmp_path / "reference_run", code_root=ref_root, setting=setting)
    new = run_variant(variant, build_tree(tmp_path / "tree"), tmp_path / "run", setting=setting)
    if variant == "ma_l1":
        assert sum("[refit]" in ln for ln in new["log"]) >= 1
    differs = _first_differences(ref, new)
    assert not differs, (
        f"{variant} (setting={setting}): the current port differs from the code of {commit[:10]} run on this "
        f"machine under the same numerics: {differs}"
    )


def _kind_mismatch(stored: dict, here: dict) -> list:
    return [
        f"{k}: reference {stored.get(k)!r}, here {here.get(k)!r}"
        for k in stored.keys() | here.keys()
        if stored.get(k) != here.get(k)
    ]


def reference_kind() -> dict:
    """The machine kind of a stored reference made in this process's numerics: pinned
    numerics do not depend on the CPU's ISA, but the reference is claimed only for the CPU
    vendor it was checked on (MKL's paths are vendor-aware)."""
    fp = numerics_fingerprint()
    kind = machine_kind(fp)
    kind.pop("threads")  # this process's; the runs are given one (run_variant)
    kind["cpu_vendor"] = (fp.get("cpu") or {}).get("vendor")
    return kind


@pytest.mark.slow  # > 5 s: kept out of make test-fast (still in make test)
@pytest.mark.parametrize("variant", VARIANTS)
def test_stored_reference_replays(tmp_path, variant):
    stored = json.loads(REFERENCE.read_text())
    assert stored["args"] == ARGS, "the reference was made with other arguments; regenerate it with --write"
    here = reference_kind()
    mismatch = _kind_mismatch(stored["machine_kind"], here)
    if mismatch:
        pytest.skip(
            f"{REFERENCE.name} was made on another machine kind ({stored['machine']['cpu']['model']}); "
            f"differs in {'; '.join(mismatch)}. Its numbers are not claimed here: the comparison with the reference "
            "commit's code run on this machine (above) is the check. To add this kind: "
            "`python -m tests.slbo.test_same_numbers --write` (then commit the JSON)."
        )
    new = run_variant(variant, build_tree(tmp_path / "tree"), tmp_path / "run")
    differs = _first_differences(stored["variants"][variant], new)
    assert not differs, (
        f"{variant}: pinned numerics did not replay the reference made on {stored['machine']['cpu']} "
        f"here ({here}, CPU {numerics_fingerprint()['cpu']}): {differs}. Same kind, other floats: "
        "report it with both CPUs; `VAML_NUMERICS` and vaml_ext/runlog/numerics.py say what is pinned."
    )


def main(argv=None):
    from vaml_ext.runlog import numerics

    numerics.pin()  # as the test suite (tests/conftest.py)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--write", action="store_true", help=f"write {REFERENCE.relative_to(REPO)}")
    args = p.parse_args(argv)
    import tempfile

    commit = subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=REPO, text=True).strip()
    dirty = bool(
        subprocess.check_output(
            ["git", "status", "--porcelain", "--", "third_party/slbo", "patches/slbo", "vaml_ext"], cwd=REPO, text=True
        ).strip()
    )
    with tempfile.TemporaryDirectory() as tmp:
        tree = build_tree(Path(tmp) / "tree")
        variants = {v: run_variant(v, tree, Path(tmp) / v) for v in VARIANTS}
    doc = {
        "command": "python -m tests.slbo.test_same_numbers --write",
        "commit": commit,
        "dirty": dirty,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine_kind": reference_kind(),
        "machine": numerics_fingerprint(),
        "args": ARGS,
        "variants": variants,
    }
    if args.write:
        REFERENCE.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {REFERENCE}")
    else:
        print(json.dumps(doc, indent=1)[:4000])


if __name__ == "__main__":
    main()


# -- the fast paths against the plain autograd code they replace (seconds) -------------
def _vf_setup(seed=0):
    from slbo.algos.TRPO import TRPO
    from slbo.policies.gaussian_mlp_policy import GaussianMLPPolicy
    from slbo.utils.dataset import Dataset
    from slbo.utils.normalizer import Normalizers
    from slbo.v_function.mlp_v_function import MLPVFunction

    torch.manual_seed(seed)
    rng = np.random.RandomState(seed)
    norms = Normalizers(3, 11)
    norms.state.update(rng.randn(300, 11) * 2 + 1)
    vfn = MLPVFunction(11, [64, 64], norms.state)
    policy = GaussianMLPPolicy(11, 3, [32, 32], norms.state)
    algo = TRPO(11, 3, policy, vfn, max_kl=0.01, n_cg_iters=10, cg_damping=0.1, vf_lr=1e-3, n_vf_iters=2)
    data = Dataset.fromarrays(
        [rng.randn(1000, 11), rng.randn(1000) * 5], dtype=[("state", ("f8", 11)), ("return_", "f8")]
    )
    return algo, data


def _autograd_fit(algo, data):
    """Upstream's value fit loop, verbatim, with the default (single-tensor) Adam."""
    for _ in range(algo.n_vf_iters):
        for subset in data.iterator(64):
            loss = algo.get_vf_loss(subset.state, subset.return_)
            algo.vf_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            algo.vf_optimizer.step()


@pytest.mark.parametrize("resumed", [False, True])
@pytest.mark.parametrize("clip", [None, 4.0])
def test_fast_value_fit_is_bit_identical_to_autograd_adam(resumed, clip):
    """The hand-written fit against autograd + ``torch.optim.Adam``; with ``clip``, against
    autograd + ``clip_grad_norm_`` before every step (the paper setting's value-net clip), where
    the fast fit applies the clip itself (some steps clipped, some not)."""
    import copy

    from slbo.algos.TRPO import _TanhMLPAdamFit
    from vaml_ext.slbo.value_fit import GlobalNormClip

    ref, data = _vf_setup()
    fast = copy.deepcopy(ref)
    ref.vf_optimizer = torch.optim.Adam(ref.vf.parameters(), lr=1e-3, foreach=False)
    fast.vf_optimizer = torch.optim.Adam(fast.vf.parameters(), lr=1e-3)
    clipped = []
    if clip is not None:
        ref_params = list(ref.vf.parameters())

        def ref_clip(opt, args, kwargs):  # the autograd path's clip, written out
            clipped.append(float(torch.nn.utils.clip_grad_norm_(ref_params, clip)) > clip)

        ref.vf_optimizer.register_step_pre_hook(ref_clip)
        fast.vf_optimizer.register_step_pre_hook(GlobalNormClip(fast.vf.parameters(), clip))
        fit = _TanhMLPAdamFit.create(fast.vf, fast.vf_optimizer)
        assert fit is not None and fit.max_grad_norm == clip  # the clip does not force autograd
    if resumed:  # an optimiser with state already (a second fit, or a resumed run)
        np.random.seed(5)
        _autograd_fit(ref, data)
        np.random.seed(5)
        _autograd_fit(fast, data)
    np.random.seed(1)
    _autograd_fit(ref, data)
    after_ref = np.random.rand()
    np.random.seed(1)
    fast.train_vf(data)
    assert np.random.rand() == after_ref  # the same NumPy draws (one shuffle per epoch)
    for (name, a), b in zip(ref.vf.named_parameters(), fast.vf.parameters()):
        assert torch.equal(a, b), name
        assert torch.equal(a.grad, b.grad), name
    for a, b in zip(ref.vf.parameters(), fast.vf.parameters()):
        sa, sb = ref.vf_optimizer.state[a], fast.vf_optimizer.state[b]
        assert float(sa["step"]) == float(sb["step"])
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
    if clip is not None:
        assert any(clipped) and not all(clipped), "the test must see clipped and unclipped steps"


def test_value_fit_with_a_step_hook_takes_the_autograd_path():
    from slbo.algos.TRPO import _TanhMLPAdamFit
    from vaml_ext.slbo.value_fit import GlobalNormClip

    algo, data = _vf_setup()
    assert _TanhMLPAdamFit.create(algo.vf, algo.vf_optimizer) is not None
    calls = []
    h = algo.vf_optimizer.register_step_pre_hook(lambda *a: calls.append(1))
    assert _TanhMLPAdamFit.create(algo.vf, algo.vf_optimizer) is None
    algo.train_vf(data)
    assert len(calls) == algo.n_vf_iters * (len(data) // 64)
    h.remove()
    # a clip of other parameters, or a clip next to another hook, is not the fast fit's to do
    h = algo.vf_optimizer.register_step_pre_hook(GlobalNormClip(list(algo.vf.parameters())[:-1], 1.0))
    assert _TanhMLPAdamFit.create(algo.vf, algo.vf_optimizer) is None
    h.remove()
    algo.vf_optimizer.register_step_pre_hook(GlobalNormClip(algo.vf.parameters(), 1.0))
    assert _TanhMLPAdamFit.create(algo.vf, algo.vf_optimizer) is not None
    algo.vf_optimizer.register_step_pre_hook(lambda *a: None)
    assert _TanhMLPAdamFit.create(algo.vf, algo.vf_optimizer) is None


def test_trpo_fisher_vector_product_equals_the_full_forward_one():
    from slbo.utils.torch_utils import hessian_vec_prod

    algo, _ = _vf_setup()
    rng = np.random.RandomState(3)
    states = torch.from_numpy(rng.randn(400, 11).astype(np.float32))
    actions = torch.from_numpy(rng.randn(400, 3).astype(np.float32))
    with torch.no_grad():
        for p in algo.policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    tangent = rng.randn(sum(p.numel() for p in algo.policy.parameters()))
    fast = algo.get_hessian_vec_prod(states, tangent, actions)
    mean_kl = algo(states, actions, torch.zeros(400), 0.0)[0]  # upstream: the whole surrogate forward
    full = (
        hessian_vec_prod(mean_kl, list(algo.policy.parameters()), torch.from_numpy(tangent.astype(np.float32)))
        .double()
        .numpy()
    )
    assert np.array_equal(fast, full)


def test_mbpo_q1_head_alone_equals_the_critic_q1():
    from mbrl.third_party.pytorch_sac_pranz24.model import QNetwork

    from vaml_ext.mbpo.values import critic_q1

    torch.manual_seed(0)
    critic = QNetwork(5, 2, 64)
    s = torch.randn(300, 5, requires_grad=True)
    a = torch.randn(300, 2)
    q_fast = critic_q1(critic, s, a)
    (g_fast,) = torch.autograd.grad(q_fast.sum(), s)
    q_full = critic(s, a)[0]
    (g_full,) = torch.autograd.grad(q_full.sum(), s)
    assert torch.equal(q_fast, q_full) and torch.equal(g_fast, g_full)
