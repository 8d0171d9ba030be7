import os

from vaml_ext.runlog import numerics

# Pinned CPU numerics for the whole suite and every process it starts (they inherit the
# environment): same seed, same floats on any x86-64 machine with AVX2
# (vaml_ext/runlog/numerics.py). VAML_NUMERICS=native runs the machine's own code paths.
numerics.pin()

import pytest  # noqa: E402
import torch  # noqa: E402

# CI machines have 2 cores; one intra-op thread keeps runs reproducible and avoids
# oversubscription when several test processes run.
torch.set_num_threads(1)
os.environ.setdefault("MUJOCO_GL", "disable")


# Markers (`slow`) are registered in pyproject.toml [tool.pytest.ini_options].


@pytest.fixture
def repo_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[1]
