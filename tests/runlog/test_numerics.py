"""Pinned CPU numerics (vaml_ext/runlog/numerics.py): what ``pin`` sets, that it wins over
the caller's environment, that it fails loudly when torch already chose another path, and
that ``run.yaml``'s provenance records it. Each check runs in a fresh interpreter: the
libraries read these settings once per process."""

import json
import os
import subprocess
import sys

import pytest

from vaml_ext.runlog import numerics
from vaml_ext.runlog.rundir import REPO, git_provenance

pytestmark = [
    pytest.mark.numerics,
    pytest.mark.skipif(not numerics.can_pin(), reason="pinned numerics need an x86-64 CPU with AVX2 and FMA"),
]

#: a matrix product through MKL and an ATen reduction + transcendental: both take
#: CPU-dependent code paths unless pinned
PROBE = (
    "import hashlib, json, os, torch\n"
    "g = torch.Generator().manual_seed(0)\n"
    "a = torch.randn(257, 129, generator=g); b = torch.randn(129, 65, generator=g)\n"
    "c = torch.tanh(a @ b).sum(0)\n"
    "print(json.dumps({'sha': hashlib.sha256(c.numpy().tobytes()).hexdigest()[:16],"
    " 'cap': torch.backends.cpu.get_cpu_capability(), 'mkl_cbwr': os.environ.get('MKL_CBWR')}))\n"
)


def _probe(env_extra: dict, pin_first: bool = True, mode: str = "pinned") -> dict:
    code = ("from vaml_ext.runlog import numerics; numerics.pin()\n" if pin_first else "") + PROBE
    env = {k: v for k, v in os.environ.items() if k not in numerics.PINS and k != numerics.MODE_ENV}
    env.update(env_extra, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    env[numerics.MODE_ENV] = mode
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_pinned_mode_wins_over_the_callers_dispatch_settings():
    plain = _probe({})
    other = _probe({"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"})
    assert plain["cap"] == other["cap"] == "AVX2"
    assert plain["mkl_cbwr"] == other["mkl_cbwr"] == numerics.PINS["MKL_CBWR"]
    assert plain["sha"] == other["sha"]


def test_native_mode_keeps_the_callers_settings_and_they_change_the_numbers():
    """The pins matter: the settings they override do change results on this CPU."""
    pinned = _probe({})
    other = _probe({"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}, mode="native")
    assert other["cap"] == "DEFAULT" and other["mkl_cbwr"] == "COMPATIBLE"
    assert other["sha"] != pinned["sha"]


def test_pin_after_torch_chose_other_kernels_fails_naming_the_fix():
    code = (
        "import os, torch\n"
        "os.environ['ATEN_CPU_CAPABILITY'] = 'default'; torch.backends.cpu.get_cpu_capability()\n"
        "from vaml_ext.runlog import numerics; numerics.pin()\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO), VAML_NUMERICS="pinned")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "NumericsError" in out.stderr and "before torch" in out.stderr and "VAML_NUMERICS=native" in out.stderr


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: OpenMP's default team is one thread anyway")
def test_pin_after_torch_loaded_still_runs_one_thread():
    """``python -m vaml_ext.slbo.run`` loads torch (its package registers a loss) before
    ``main`` pins: OpenMP had read its (unset) thread count, and MKL ran every GEMM on a team
    of all cores with a worker spinning at the barrier. The pin must set torch's count."""
    code = (
        "import os, torch, vaml_ext.slbo\n"
        "from vaml_ext.runlog import numerics; numerics.pin()\n"
        "a = torch.randn(512, 512)\n"
        "before = len(os.listdir('/proc/self/task'))\n"
        "for _ in range(50): a @ a\n"
        "print(torch.get_num_threads(), len(os.listdir('/proc/self/task')) - before)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in numerics.THREAD_VARS}
    env.update(PYTHONPATH=str(REPO), VAML_NUMERICS="pinned")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    threads, new_tasks = map(int, out.stdout.split()[-2:])
    assert threads == 1 and new_tasks == 0, f"torch threads {threads}, {new_tasks} thread(s) started by a GEMM"


def test_unknown_mode_is_refused_naming_the_valid_ones(monkeypatch):
    monkeypatch.setenv(numerics.MODE_ENV, "exact")
    with pytest.raises(numerics.NumericsError, match="pinned, native"):
        numerics.pin()


def test_the_suite_runs_pinned_and_run_yaml_records_it():
    """tests/conftest.py pins the suite; every run directory's provenance records the mode,
    the settings in force, the CPU and the library versions."""
    prov = git_provenance()
    rec = prov["numerics"]
    assert rec["mode"] == os.environ[numerics.MODE_ENV]
    assert rec["cpu"]["arch"] == "x86_64" and rec["torch"] and rec["numpy"] and rec["mujoco"]
    if rec["mode"] == "pinned":
        assert rec["env"]["MKL_CBWR"] == numerics.PINS["MKL_CBWR"] and rec["aten_capability"] == "AVX2"
    kind = numerics.machine_kind(rec)
    assert ("cpu" in kind) == (rec["mode"] == "native")  # native numbers are claimed for one CPU only


def test_exports_put_an_outside_process_in_the_same_numerics():
    """`eval "$(python -m vaml_ext.runlog.numerics)"` before upstream's own entry point."""
    env = {k: v for k, v in os.environ.items() if k not in numerics.PINS and k != numerics.MODE_ENV}
    env["PYTHONPATH"] = str(REPO)
    script = f'eval "$({sys.executable} -m vaml_ext.runlog.numerics)"; {sys.executable} -c "{PROBE}"'
    out = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == _probe({})


def test_the_record_is_plain_yaml():
    """run.yaml is written with yaml.safe_dump: the record holds plain types only."""
    import yaml

    rec = numerics.fingerprint()
    assert yaml.safe_load(yaml.safe_dump(rec)) == rec
