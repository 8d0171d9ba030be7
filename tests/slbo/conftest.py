"""Shared setup for the SLBO-port tests: import the pristine port, one torch thread."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SLBO_SRC = REPO / "third_party" / "slbo"
if str(SLBO_SRC) not in sys.path:
    sys.path.insert(0, str(SLBO_SRC))

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """The patched tree of this checkout's series (not a possibly stale third_party/slbo-patched)."""
    from vaml_ext.patching.core import build
    from vaml_ext.patching.spec import load_spec

    t = tmp_path_factory.mktemp("slbo") / "tree"
    build(load_spec(REPO, "slbo"), REPO, t, log=lambda *_: None)
    return t


def run_slbo(args, cwd, pythonpath, timeout=600):
    """Run ``python -m slbo.main ARGS`` in a subprocess (fresh FLAGS, like a user would)."""
    import subprocess

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(pythonpath), str(REPO)]), OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "slbo.main", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
