"""Pinned CPU numerics: the same seed gives the same floats on any x86-64 machine with AVX2.

A float result of a run depends on more than its seed: on which code path each library
picks *for the CPU it finds*. Measured on the SLBO same-numbers run (Hopper, 1 stage, see
``tests/slbo/test_same_numbers.py``) by changing one setting at a time on one machine:

* **MKL's code path** (``MKL_CBWR``, torch's BLAS): ``AVX2`` or ``COMPATIBLE`` instead of
  MKL's automatic choice changes the final weights and, through the policy's actions,
  the *real* replay buffer. MKL picks its path by CPU vendor and ISA, so an Intel AVX-512
  machine and an AMD one differ by default.
* **ATen's vectorised kernels** (``ATEN_CPU_CAPABILITY``): ``default`` instead of
  ``avx2`` changes the same fields. ATen picks the widest ISA the CPU has (AVX-512 on
  most servers, AVX2 on others).
* **intra-op threads**: a reduction split over threads sums in another order.
* changed nothing on that run: oneDNN's ISA (``ONEDNN_MAX_CPU_ISA``), NumPy's SIMD dispatch
  (``NPY_DISABLE_CPU_FEATURES``), OpenBLAS's core type (``OPENBLAS_CORETYPE``). oneDNN and
  NumPy are pinned anyway (cheap: our networks are small); OpenBLAS is left alone (some
  machines set ``OPENBLAS_CORETYPE`` to work around broken kernels).

:func:`pin` sets these before the libraries read them (MKL reads ``MKL_CBWR`` at its first
call, ATen its capability at its first dispatch, NumPy its features at import), so the
numbers are those of the AVX2 code paths on every x86-64 machine that has AVX2 and FMA.
What it cannot pin: MuJoCo's compiled simulation and glibc's libm (same wheel and same
libm give the same numbers; another build may not), and any library version (the
:func:`fingerprint` records them). The mode is chosen by ``$VAML_NUMERICS``:

* ``pinned`` -- the settings above (the default of the tests, the stored baselines and the
  figure sweeps);
* ``native`` -- each library's own choice for this CPU (fastest where AVX-512 pays).

The mode and what it set are recorded in each run's ``run.yaml`` (``numerics``).
This module imports nothing heavy: it must run before torch and NumPy are imported.
"""

from __future__ import annotations

import functools
import os
import platform
import sys
import warnings
from typing import Any

MODE_ENV = "VAML_NUMERICS"
MODES = ("pinned", "native")
#: forced in pinned mode (whatever the environment said: a pin that the caller's
#: environment could undo would not pin)
PINS: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2,STRICT",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
}
#: thread counts: set to 1 when unset (a run that asks for more threads keeps them and
#: records it; its reductions then depend on the count, not on the machine)
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
_NPY_CHECKED = "VAML_NUMERICS_NPY_CHECKED"
#: CPU flags the pinned code paths need
REQUIRED_FLAGS = ("avx2", "fma")


class NumericsError(RuntimeError):
    """A pin that cannot take effect in this process (a library already chose its path)."""


def mode(default: str = "pinned") -> str:
    value = os.environ.get(MODE_ENV, default) or default
    if value not in MODES:
        raise NumericsError(f"${MODE_ENV}={value!r}; valid: {', '.join(MODES)}")
    return value


def cpu_info() -> dict[str, Any]:
    """Model, vendor and the ISA flags that matter here, from /proc/cpuinfo (Linux); read
    once per process (a copy each call)."""
    return dict(_cpu_info())


@functools.lru_cache(maxsize=1)
def _cpu_info() -> dict[str, Any]:
    model = vendor = None
    flags: set = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model is None:
                    model = value.strip()
                elif key == "vendor_id" and vendor is None:
                    vendor = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
                if model and vendor and flags:
                    break
    except OSError:
        pass
    isa = [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
    return {
        "model": model or platform.processor() or "unknown",
        "vendor": vendor,
        "isa": isa,
        "arch": platform.machine(),
    }


def can_pin() -> bool:
    info = cpu_info()
    return info["arch"] in ("x86_64", "AMD64") and all(f in info["isa"] for f in REQUIRED_FLAGS)


def _apply_threads() -> None:
    """Where torch is already loaded (e.g. ``python -m vaml_ext.slbo.run``: its package imports
    torch before ``main`` pins), OpenMP and MKL read ``OMP_NUM_THREADS`` when they loaded, so
    setting the variable now changes nothing: set torch's thread count instead. Without this,
    MKL ran its GEMMs on an OpenMP team of every core, one worker spinning at a barrier."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    try:
        n = int(os.environ["OMP_NUM_THREADS"])
    except ValueError:
        return
    if n >= 1 and torch.get_num_threads() != n:
        torch.set_num_threads(n)


def pin(default_mode: str = "pinned") -> str:
    """Apply ``$VAML_NUMERICS`` (``default_mode`` when unset) to this process's environment,
    which its children inherit. Returns the mode in force. Call it before torch/NumPy load;
    if torch has already chosen another kernel path, raises :class:`NumericsError`."""
    m = mode(default_mode)
    os.environ[MODE_ENV] = m
    if m == "native":
        return m
    for var in THREAD_VARS:
        os.environ.setdefault(var, "1")
    _apply_threads()
    if not can_pin():
        warnings.warn(
            "VAML_NUMERICS=pinned needs an x86-64 CPU with AVX2 and FMA; this one "
            f"({cpu_info()['model']}) runs its native code paths: same-seed numbers may differ from other machines",
            RuntimeWarning,
            stacklevel=2,
        )
        return m
    os.environ.update(PINS)
    if "avx512f" in cpu_info()["isa"]:  # the NumPy pin disables something here: does NumPy accept it?
        if _NPY_CHECKED not in os.environ and "numpy" not in sys.modules:
            os.environ[_NPY_CHECKED] = "ok" if _numpy_imports() else "refused"  # once per process tree
        if os.environ.get(_NPY_CHECKED) == "refused":  # then NumPy's own dispatch
            del os.environ["NPY_DISABLE_CPU_FEATURES"]
    torch = sys.modules.get("torch")
    if torch is not None:  # already imported: its capability must not be fixed yet, or fixed to ours
        got = torch.backends.cpu.get_cpu_capability()
        if got.lower() != PINS["ATEN_CPU_CAPABILITY"]:
            raise NumericsError(
                f"torch already runs {got} kernels; pin numerics before torch's first operation "
                f"(or run with {MODE_ENV}=native)"
            )
    return m


def fingerprint() -> dict[str, Any]:
    """What decides this process's float results: the mode, the pins in force, the CPU,
    the library versions and the thread count. Recorded in ``run.yaml``."""
    out: dict[str, Any] = {"mode": os.environ.get(MODE_ENV, "native")}
    out["env"] = {k: os.environ[k] for k in (*PINS, *THREAD_VARS, "OPENBLAS_CORETYPE") if k in os.environ}
    out["cpu"] = cpu_info()
    out["python"] = platform.python_version()
    try:
        import torch

        out["torch"] = str(torch.__version__)  # a str subclass that yaml.safe_dump refuses
        out["aten_capability"] = str(torch.backends.cpu.get_cpu_capability())
        out["threads"] = int(torch.get_num_threads())
        out["mkl"] = _mkl_version()
    except ImportError:
        pass
    for name in ("numpy", "mujoco", "gymnasium"):
        mod = sys.modules.get(name)
        if mod is None:
            try:
                mod = __import__(name)
            except ImportError:
                continue
        version = getattr(mod, "__version__", None)
        out[name] = None if version is None else str(version)
    return out


def machine_kind(fp: dict[str, Any]) -> dict[str, Any]:
    """The part of a :func:`fingerprint` that must match for stored floats to replay bit for
    bit: in pinned mode the pinned paths and library versions, in native mode also the CPU."""
    keys = ["mode", "torch", "mkl", "numpy", "mujoco", "threads"]
    kind = {k: fp.get(k) for k in keys}
    kind["aten_capability"] = fp.get("aten_capability")
    if fp.get("mode") != "pinned":
        cpu = fp.get("cpu") or {}
        kind["cpu"] = {"model": cpu.get("model"), "vendor": cpu.get("vendor"), "isa": cpu.get("isa")}
    return kind


def _numpy_imports() -> bool:
    """Whether NumPy imports with the pinned ``NPY_DISABLE_CPU_FEATURES`` (checked once per
    process tree, in a child, on machines where the setting disables something)."""
    import subprocess

    try:
        r = subprocess.run(
            [sys.executable, "-c", "import numpy"], env=dict(os.environ), capture_output=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def _mkl_version() -> str | None:
    try:
        import ctypes

        import torch

        lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
        buf = ctypes.create_string_buffer(256)
        lib.MKL_Get_Version_String(buf, 256)
        return buf.value.decode().strip() or None
    except (OSError, AttributeError, ImportError):
        return None


def exports(default_mode: str = "pinned") -> str:
    """Shell ``export`` lines that put a process started outside ``vaml_ext`` (e.g. upstream's
    ``python -m mbrl.examples.main``) in the same numerics: ``eval "$(python -m vaml_ext.runlog.numerics)"``."""
    import shlex

    saved = dict(os.environ)
    try:
        pin(default_mode)
        keys = (MODE_ENV, *PINS, *THREAD_VARS, _NPY_CHECKED)
        return "\n".join(f"export {k}={shlex.quote(os.environ[k])}" for k in keys if k in os.environ)
    finally:
        os.environ.clear()
        os.environ.update(saved)


if __name__ == "__main__":
    print(exports())
