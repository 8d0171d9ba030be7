"""How well can maximum likelihood fit each gridworld model class? (capacity check, issue #16)

    OMP_NUM_THREADS=1 python exp/gridworld/model_capacity.py                  # default grid
    OMP_NUM_THREADS=1 python exp/gridworld/model_capacity.py --hidden 16 32 --sizes 8 16

Data: every (cell, action) row of the N×N room except the goal's, with its true next cell
(each row "visited"; the easiest case for memorising). MLE is fitted with the Dyna loop's
model-update schedule of Figure 1: Adam, minibatches of 256 rows drawn uniformly, as many
updates as a Figure-1 run of that size makes (``env_steps / real_steps_per_iter ×
model_updates_per_iter`` = 600, 1000, 2000, 3200 for N = 5, 8, 12, 16). Reported over
all rows: the expected total-variation distance to the true next-cell distribution
(``1 − P_φ(s'|s,a)`` for a deterministic room) and the NLL. Seed-averaged over ``--seeds``.
"""

from __future__ import annotations

import argparse
import time

import torch

from vaml_ext.gridworld.env import grid_spec
from vaml_ext.gridworld.model import make_model

BUDGET = {5: 3000, 8: 5000, 12: 10000, 16: 16000}  # Figure-1 env steps per size


def fit(size: int, kind: str, lr: float, seed: int, encoding="coords", hidden=32, layers=2, updates=None):
    spec = grid_spec(size)
    S, A = spec.n_states, 4
    rows = torch.arange(S * A)
    keep = rows // A != spec.goal
    rows = rows[keep]
    target = spec.next_state.reshape(-1)[keep]
    gen = torch.Generator().manual_seed(seed)
    model = make_model(kind, 1, S, encoding, hidden, layers, generator=gen)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n_updates = updates or BUDGET[size] // 100 * 20
    for _ in range(n_updates):
        idx = torch.randint(0, len(rows), (1, 256), generator=gen)
        logp = torch.log_softmax(model.row_logits(rows[idx]), -1)
        loss = -logp.gather(-1, target[idx].unsqueeze(-1)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        logp = torch.log_softmax(model.row_logits(rows.unsqueeze(0)), -1)[0]
        p_true = logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
        n_params = sum(p.numel() for p in model.parameters())
        return float(1 - p_true.exp().mean()), float(-p_true.mean()), n_params, n_updates


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[5, 8, 12, 16])
    ap.add_argument("--hidden", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--encodings", nargs="+", default=["coords", "onehot"])
    ap.add_argument("--table-lr", type=float, default=0.1)
    ap.add_argument("--mlp-lr", type=float, default=0.01)
    ap.add_argument("--seeds", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    configs = [("table", None, None, args.table_lr)] + [
        ("mlp", enc, h, args.mlp_lr) for enc in args.encodings for h in args.hidden
    ]
    print("| model | params (16x16) | " + " | ".join(f"{n}x{n} TV / NLL" for n in args.sizes) + " |")
    print("|---|---|" + "---|" * len(args.sizes))
    for kind, enc, hidden, lr in configs:
        cells, params = [], ""
        for n in args.sizes:
            t0 = time.perf_counter()
            res = [fit(n, kind, lr, s, enc or "coords", hidden or 32, args.layers) for s in range(args.seeds)]
            tv = sum(r[0] for r in res) / len(res)
            nll = sum(r[1] for r in res) / len(res)
            params = str(res[0][2])
            cells.append(f"{tv:.3f} / {nll:.2f}")
            print(f"  [{kind} {enc} {hidden} N={n}: {time.perf_counter() - t0:.1f}s]", flush=True)
        name = "table" if kind == "table" else f"mlp {enc} {args.layers}x{hidden}"
        print(f"| {name} (lr {lr}) | {params} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
