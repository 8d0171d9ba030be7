"""The process-global random streams (python ``random``, numpy's legacy global state,
torch's CPU generator), captured into a checkpoint and restored on resume.

The numpy state is stored as plain Python values (a list of ints, not an array) so the
result loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import random

import numpy as np


def capture_rng() -> dict:
    import torch

    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": (name, [int(x) for x in keys], int(pos), int(has_gauss), float(cached)),
    }


def restore_rng(state: dict) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
