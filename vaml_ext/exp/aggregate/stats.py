"""Statistics of the sweep report: IQM, mean and probability of improvement with rliable's
stratified-bootstrap percentile CIs.

rliable 1.2.0 passes ``random_state=`` to ``arch.bootstrap.IIDBootstrap``; arch 8 (the
first release that imports with pandas 3) renamed that keyword ``seed`` and treats unknown
keywords as data. :func:`interval_estimates` therefore runs rliable's bootstrap classes
through thin subclasses that translate the keyword for their own construction only;
nothing in arch or rliable is modified.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

CI = 0.95


def rliable_modules():
    """``(rliable.library, rliable.metrics)``."""
    from rliable import library, metrics

    return library, metrics


def _arch_compat_bootstraps():
    """rliable's ``StratifiedBootstrap`` and ``StratifiedIndependentBootstrap``, built so that
    their ``super().__init__(..., random_state=...)`` call reaches arch under the keyword the
    installed arch accepts (``seed`` from arch 8 on; the meaning it had in arch 5-7)."""
    import arch
    from arch.bootstrap import IIDBootstrap, IndependentSamplesBootstrap

    library, _ = rliable_modules()
    renamed = int(arch.__version__.split(".")[0]) >= 8

    def compat(base):
        class Compat(base):
            def __init__(self, *args, random_state=None, **kwargs):
                if renamed:
                    kwargs.setdefault("seed", random_state)
                else:
                    kwargs["random_state"] = random_state
                super().__init__(*args, **kwargs)

        return Compat

    # MRO: rliable class -> Compat -> arch class, so rliable's super() call lands in Compat.
    class Stratified(library.StratifiedBootstrap, compat(IIDBootstrap)):
        pass

    class StratifiedIndependent(library.StratifiedIndependentBootstrap, compat(IndependentSamplesBootstrap)):
        pass

    return Stratified, StratifiedIndependent


# The statistics below are exact re-implementations of rliable.metrics' aggregate_iqm
# (scipy.stats.trim_mean(x, 0.25, axis=None)) and probability_of_improvement (Mann-Whitney
# U / (n_x n_y) per task, 0.5 for identical columns, averaged over tasks); the tests check
# them against rliable's on random data with ties. They are used inside the bootstrap
# because scipy's per-call overhead (~0.4 ms) made 2000 replicates of a 4-env sweep take
# about a minute; with these it takes seconds. The bootstrap itself is rliable's.
def iqm(x: np.ndarray) -> float:
    """IQM over all entries = ``rliable.metrics.aggregate_iqm``."""
    a = np.sort(np.ravel(x))
    cut = int(0.25 * a.size)
    return float(a[cut : a.size - cut].mean())


def iqm_columns(y: np.ndarray) -> np.ndarray:
    """``[runs, points]`` -> IQM over runs of every column (``aggregate_iqm`` per column)."""
    a = np.sort(y, axis=0)
    cut = int(0.25 * a.shape[0])
    return a[cut : a.shape[0] - cut].mean(axis=0)


def probability_of_improvement(scores_x: np.ndarray, scores_y: np.ndarray) -> float:
    """= ``rliable.metrics.probability_of_improvement``: ``[runs_x, tasks]``, ``[runs_y, tasks]``."""
    probs = []
    for j in range(scores_x.shape[1]):
        x, y = scores_x[:, j], scores_y[:, j]
        if np.array_equal(x, y):
            probs.append(0.5)
            continue
        gt = (x[:, None] > y[None, :]).sum()
        eq = (x[:, None] == y[None, :]).sum()
        probs.append((gt + 0.5 * eq) / (len(x) * len(y)))
    return float(np.mean(probs))


def iqm_mean_fn(x: np.ndarray) -> np.ndarray:
    """``[runs, 1]`` -> ``[IQM, mean]`` (``aggregate_iqm``, ``aggregate_mean``)."""
    return np.array([iqm(x), np.mean(np.mean(x, axis=0))])


def curve_fn(x: np.ndarray) -> np.ndarray:
    """``x``: ``[runs, 1, points]`` -> ``[iqm per point..., mean per point...]``."""
    y = x[:, 0, :]
    return np.concatenate([iqm_columns(y), y.mean(axis=0)])


def interval_estimates(score_dict: dict, func: Callable, reps: int) -> tuple[dict, dict]:
    """``rliable.library.get_interval_estimates(score_dict, func, reps, CI)`` (percentile
    method, no task bootstrap), with rliable's own bootstrap classes made to run on arch 8.
    Indices come from NumPy's global RNG, as in rliable."""
    stratified, independent = _arch_compat_bootstraps()
    points, intervals = {}, {}
    for key, scores in score_dict.items():
        if isinstance(scores, np.ndarray):
            bs = stratified(scores, task_bootstrap=False, random_state=None)
            points[key] = func(scores)
        else:
            bs = independent(*scores, random_state=None)
            points[key] = func(*scores)
        intervals[key] = bs.conf_int(func, reps=reps, size=CI, method="percentile")
    return points, intervals
