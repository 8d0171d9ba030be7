import os

import pytest
import torch

# CI machines have 2 cores; one intra-op thread keeps runs reproducible and avoids
# oversubscription when several test processes run.
torch.set_num_threads(1)
os.environ.setdefault("MUJOCO_GL", "disable")


# Markers (`slow`) are registered in pyproject.toml [tool.pytest.ini_options].


@pytest.fixture
def repo_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[1]
