"""The paper's claims (paper §5, Figures 1-4), one table entry each, evaluated on a sweep's results.

Each :class:`Claim` is ``(figure, id, text, rule, evaluate)``; ``evaluate`` takes a
:class:`ClaimData` view of the aggregated sweep and returns ``(verdict, evidence)``,
where ``verdict`` is ``"holds"``, ``"does not hold"`` or ``"inconclusive (reason)"``
and ``evidence`` lists the numbers that decided it.

Verdict rule (shared by every claim; declared before the runs it judges). Two methods are
compared on one env with the IQM over seeds of a per-run score and its 95%
stratified-bootstrap CI, in this order:

* ``missing``      -- either method has no data on that env;
* ``not testable`` -- neither method learned: a method *learned* when the CI of its final
  return lies above the CI of its first evaluation (the initial policy). Comparing two runs
  that never left the initial policy measures nothing about the claim at this budget;
* ``few``          -- either side has fewer than :data:`MIN_SEEDS` seeds: no decision (with 4
  seeds a percentile-bootstrap "95 %" CI of the IQM is the seeds' min-max, coverage ~87 %);
* ``above`` / ``below`` -- A's CI lies entirely above / below B's;
* ``overlap``      -- otherwise.

An ordering claim ("A ≥ B", "A beats B", "A ≫ B") is supported on an env by ``above``
and contradicted by ``below``; "A is poor (vs B)" is supported by ``below`` and
contradicted by ``above``. Overlapping CIs never support a claim. An *equivalence* claim
("A near-matches B") is decided by the 95% bootstrap CI of the ratio IQM(A) / IQM(B)
against the pre-declared margin :data:`MARGIN` (δ): supported when the CI lies inside
``[1 - δ, 1 + δ]``, contradicted when it lies entirely outside, undecided otherwise (and
untestable by ratio when B's IQM CI is not above 0). "A rarely beats B" counts an env as
"beats" when A is CI-above B and as "does not beat" only when the ratio CI's upper end is at
most ``1 + δ`` (overlap alone is not "does not beat"). A claim over several envs *does not
hold* if any env contradicts it, *holds* if every env present supports it, is *not testable
at this budget* if no env had a method that learned, and is *inconclusive* otherwise (the
reasons are listed). Envs the claim names that are absent from the sweep are listed; a claim
none of whose envs are present is inconclusive (env missing).

Scores: figures 2-4 use the **final return** (last evaluation of each seed). Figure 1's
claims are about learning speed, so they use the **AUC**: the mean return over the env's
evaluation grid up to a horizon every compared run reached (area under the learning
curve divided by its length); "MLE's sample efficiency drops as N grows" compares
consecutive sizes at the same horizon (the smaller size's last common grid point), so the
larger room's bigger budget does not enter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from vaml_ext.figures import figure_names, load_figure

#: seeds per method a decision needs (fewer: "inconclusive (too few seeds)")
MIN_SEEDS = 8
#: the equivalence margin δ of "near-matches" and "rarely beats": IQM ratios within 1 ± δ
#: count as equal. 0.1: a method at 0.85x its baseline does not near-match it.
MARGIN = 0.1

# Methods that are not value-aware (no PoI over MLE is computed for them).
BASELINES = ("mle", "slbo", "mle_va_slbo")
# Extra spellings of a canonical env name (after norm_env).
ENV_ALIASES: dict[str, tuple[str, ...]] = {"walker": ("walker2d",), "halfcheetah": ("cheetah", "half_cheetah")}


def norm_env(name) -> str:
    """Lower case, a trailing gym version (``-v4``) dropped, ``-``/spaces as ``_``, runs of
    ``_`` as one (``cartpole_d16`` stays as spelled, so reports show the figure's names)."""
    s = re.sub(r"-v\d+$", "", str(name).strip().lower())
    return re.sub(r"[_\-\s]+", "_", s).strip("_")


def canonical_env(name) -> str:
    """:func:`norm_env`, then the aliases (``half_cheetah`` -> ``halfcheetah``, ``walker2d`` ->
    ``walker``) and ``grid_16`` -> ``grid16``."""
    n = norm_env(name)
    for canon, aliases in ENV_ALIASES.items():
        if n in aliases:
            return canon
    return re.sub(r"^grid_(\d+)$", r"grid\1", n)


# Per figure, the envs (canonical names) and methods the paper shows, from the figure
# configs (exp/conf/figure/fig*.yaml, the one place they are defined). Only used to say
# which envs/methods a sweep lacks; claims are evaluated on what is present.
FIGURE_ENVS: dict[str, list[str]] = {n: [canonical_env(e) for e in load_figure(n)["envs"]] for n in figure_names()}
FIGURE_METHODS: dict[str, list[str]] = {n: list(load_figure(n)["methods"]) for n in figure_names()}


def norm_figure(fig) -> str | None:
    """``fig2``, ``Fig_2``, ``figure2``, ``2`` -> ``fig2``; None/empty -> None."""
    if fig is None or str(fig).strip() == "":
        return None
    m = re.fullmatch(r"(?:fig(?:ure)?)?[_\-\s]*(\d+)", str(fig).strip().lower())
    return f"fig{int(m.group(1))}" if m else str(fig).strip().lower()


@dataclass(frozen=True)
class Stat:
    """IQM over seeds with its 95% CI, plus the seed count (and the mean, for reports)."""

    iqm: float
    lo: float
    hi: float
    n: int
    mean: float = float("nan")

    def fmt(self) -> str:
        return f"{self.iqm:.4g} [{self.lo:.4g}, {self.hi:.4g}] (n={self.n})"


class ClaimData:
    """What a claim may look at. ``stat(env, method, metric, horizon)`` returns a
    :class:`Stat` or None; ``metric`` is ``"final"`` or ``"auc"``. ``envs`` are the
    canonical names of the envs present; ``horizon(env, methods)`` is the last grid
    point every run of those methods on ``env`` reached."""

    envs: Sequence[str] = ()

    def stat(
        self, env: str, method: str, metric: str = "final", horizon: float | None = None
    ) -> Stat | None:  # pragma: no cover
        raise NotImplementedError

    def horizon(self, env: str, methods: Sequence[str]) -> float | None:  # pragma: no cover
        raise NotImplementedError

    def initial(self, env: str, method: str) -> Stat | None:
        """IQM of the runs' first evaluation (the initial policy) with its CI; None if unknown."""
        return None

    def ratio(
        self, env: str, a: str, b: str, metric: str = "final", horizon: float | None = None
    ) -> tuple[float, float, float] | None:
        """``(IQM(a) / IQM(b), lo, hi)``: the ratio and its 95% bootstrap CI (seeds of each
        method resampled independently); None when ``b``'s IQM CI is not above 0 or the
        per-seed scores are not available."""
        return None


def learned(final: Stat | None, initial: Stat | None) -> bool | None:
    """Whether a method left its initial policy: final-return CI above the first evaluation's
    CI. None when either is unknown."""
    if final is None or initial is None:
        return None
    return final.lo > initial.hi


def compare(a: Stat | None, b: Stat | None, learned_a: bool | None = None, learned_b: bool | None = None) -> str:
    """The outcome of one comparison (module docstring). ``learned_*``: whether each method
    learned (:func:`learned`); unknown (None) for both skips the gate."""
    if a is None or b is None:
        return "missing"
    if learned_a is not None or learned_b is not None:
        if not (learned_a or learned_b):
            return "not testable"
    if min(a.n, b.n) < MIN_SEEDS:
        return "few"
    if a.lo > b.hi:
        return "above"
    if a.hi < b.lo:
        return "below"
    return "overlap"


_REASON = {
    "overlap": "CIs overlap",
    "few": f"too few seeds (< {MIN_SEEDS})",
    "missing": "method missing",
    "not testable": "neither method learned at this budget",
    "straddles": f"ratio CI straddles the margin 1 ± {MARGIN:g}",
    "no ratio": "baseline IQM CI not above 0: no ratio margin",
}
NOT_TESTABLE = "not testable at this budget (nothing learned)"


@dataclass
class Check:
    """One comparison inside a claim: supported / contradicted / undecided, and why."""

    label: str
    outcome: str  # compare()'s result
    support: bool
    contradict: bool
    evidence: str
    pair: tuple[str, str, str, str] | None = None  # (env, method a, method b, metric) of a two-method check


class Verdict(NamedTuple):
    """What a claim's ``evaluate`` returns: the verdict, the numbers that decided it, and the
    comparisons it made (the report's planning table lists the seeds each would need)."""

    verdict: str
    evidence: str
    checks: tuple[Check, ...] = ()


def _learned(data: ClaimData, env: str, method: str) -> bool | None:
    return learned(data.stat(env, method, "final"), data.initial(env, method))


def _within_margin(lo: float, hi: float) -> bool:
    """A ratio CI ``[lo, hi]`` inside ``1 ± MARGIN``: a near-match."""
    return 1 - MARGIN <= lo and hi <= 1 + MARGIN


def _margin(data: ClaimData, env: str, a: str, b: str, metric: str, horizon: float | None) -> tuple[str, str]:
    """(outcome, evidence) of the ratio test: ``within`` / ``outside`` / ``straddles`` /
    ``no ratio``."""
    r = data.ratio(env, a, b, metric, horizon)
    if r is None:
        return "no ratio", "ratio n/a"
    point, lo, hi = r
    if _within_margin(lo, hi):
        out = "within"
    elif hi < 1 - MARGIN or lo > 1 + MARGIN:
        out = "outside"
    else:
        out = "straddles"
    return out, f"ratio {point:.3g} [{lo:.3g}, {hi:.3g}] vs 1 ± {MARGIN:g}"


def _pair(data: ClaimData, env: str, a: str, b: str, metric: str, kind: str, horizon: float | None = None) -> Check:
    """``kind``: ``ge`` (A ≥ / beats / ≫ B), ``near`` (A near-matches B: ratio margin),
    ``poor`` (A below B)."""
    if metric == "auc" and horizon is None:
        horizon = data.horizon(env, [a, b])
    sa, sb = data.stat(env, a, metric, horizon), data.stat(env, b, metric, horizon)
    out = compare(sa, sb, _learned(data, env, a), _learned(data, env, b))
    extra = ""
    if kind == "near":
        if out in ("above", "below", "overlap"):
            out, extra = _margin(data, env, a, b, metric, horizon)
            extra = "; " + extra
        support, contradict = out == "within", out == "outside"
    else:
        support = {"ge": out == "above", "poor": out == "below"}[kind]
        contradict = {"ge": out == "below", "poor": out == "above"}[kind]
    h = f" @{horizon:g} steps" if metric == "auc" and horizon is not None else ""
    ev = f"{env}: {a} {sa.fmt() if sa else 'n/a'} vs {b} {sb.fmt() if sb else 'n/a'} [{metric}{h}; {out}{extra}]"
    return Check(f"{env}:{a}/{b}", out, support, contradict, ev, (env, a, b, metric))


def combine(checks: list[Check], missing_envs: Sequence[str] = ()) -> Verdict:
    """Verdict of a claim over its checks (see the module docstring)."""
    miss = f"; envs missing: {', '.join(missing_envs)}" if missing_envs else ""
    if not checks:
        return Verdict("inconclusive (env missing)", f"no env of the claim in the sweep{miss}")
    evidence = "; ".join(c.evidence for c in checks) + miss
    if any(c.contradict for c in checks):
        return Verdict("does not hold", evidence, tuple(checks))
    if all(c.support for c in checks):
        return Verdict("holds", evidence, tuple(checks))
    if all(c.outcome == "not testable" for c in checks):
        return Verdict(NOT_TESTABLE, evidence, tuple(checks))
    reasons = sorted({_REASON.get(c.outcome, c.outcome) for c in checks if not c.support})
    return Verdict(f"inconclusive ({' / '.join(reasons)})", evidence, tuple(checks))


def _envs(
    data: ClaimData, wanted: Sequence[str] | None = None, exclude: Sequence[str] = (), figure: str | None = None
) -> tuple[list[str], list[str]]:
    """(envs present to evaluate, named envs missing). ``wanted=None``: every env present
    (the figure's expected envs that are absent are reported missing)."""
    present = [e for e in data.envs if e not in exclude]
    if wanted is None:
        expected = [e for e in FIGURE_ENVS.get(figure or "", []) if e not in exclude]
        return present, [e for e in expected if e not in data.envs]
    return [e for e in wanted if e in data.envs], [e for e in wanted if e not in data.envs]


def ordering(
    a: str | Sequence[str],
    b: str,
    envs: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    metric: str = "final",
    kind: str = "ge",
    figure: str | None = None,
):
    """Claim "``a`` (kind) ``b`` on ``envs`` (all present but ``exclude`` if None)". ``a``
    may be a tuple of methods: each is checked."""
    methods = a if isinstance(a, (tuple, list)) else (a,)

    def evaluate(data: ClaimData):
        todo, missing = _envs(data, envs, exclude, figure)
        checks = [_pair(data, e, m, b, metric, kind) for e in todo for m in methods]
        return combine(checks, missing)

    return evaluate


def pairs(
    pairs_: Sequence[tuple[str, str]],
    envs: Sequence[str] | None = None,
    metric: str = "final",
    kind: str = "ge",
    figure: str | None = None,
):
    """Several ``(a, b)`` ordering pairs on every env present (a method with no data makes
    the claim inconclusive: method missing)."""

    def evaluate(data: ClaimData):
        todo, missing = _envs(data, envs, (), figure)
        checks = [_pair(data, e, a, b, metric, kind) for e in todo for a, b in pairs_]
        return combine(checks, missing)

    return evaluate


def mle_efficiency_drops(data: ClaimData):
    """Fig. 1: MLE's AUC falls from each grid size to the next larger one, both measured
    over the same number of env steps."""
    sizes = sorted((e for e in data.envs if re.fullmatch(r"grid\d+", e)), key=lambda e: int(e[4:]))
    missing = [e for e in FIGURE_ENVS["fig1"] if e not in data.envs]
    if len(sizes) < 2:
        return Verdict(
            "inconclusive (env missing)",
            f"needs >= 2 grid sizes, sweep has {sizes or 'none'}"
            + (f"; envs missing: {', '.join(missing)}" if missing else ""),
        )
    checks = []
    for small, big in zip(sizes, sizes[1:]):
        hs, hb = data.horizon(small, ["mle"]), data.horizon(big, ["mle"])
        if hs is None or hb is None:
            checks.append(Check(f"{small}>{big}", "missing", False, False, f"{small}/{big}: mle missing"))
            continue
        h = min(hs, hb)
        s, b = data.stat(small, "mle", "auc", h), data.stat(big, "mle", "auc", h)
        out = compare(s, b, _learned(data, small, "mle"), _learned(data, big, "mle"))
        checks.append(
            Check(
                f"{small}>{big}",
                out,
                out == "above",
                out == "below",
                f"mle auc@{h:g} steps: {small} {s.fmt() if s else 'n/a'} vs {big} {b.fmt() if b else 'n/a'} [{out}]",
            )
        )
    return combine(checks, missing)


def rarely_beats(a: str, b: str, figure: str, max_fraction: float = 1 / 3, metric: str = "final"):
    """ "``a`` rarely beats ``b``": ``a`` beats ``b`` (CI-above) on fewer than ``max_fraction``
    of the testable envs. An env counts as "does not beat" only when the ratio CI's upper end
    is at most ``1 + MARGIN``; overlap alone leaves it undecided. Envs where neither method
    learned are not testable and left out of the count (listed)."""

    def evaluate(data: ClaimData):
        todo, missing = _envs(data, None, (), figure)
        checks = [_pair(data, e, a, b, metric, "ge") for e in todo]
        checks = [c for c in checks if c.outcome != "missing"]
        miss = f"; envs missing: {', '.join(missing)}" if missing else ""
        if not checks:
            return Verdict("inconclusive (env missing)", f"no env with both {a} and {b}{miss}")
        testable = [c for c in checks if c.outcome != "not testable"]
        n = len(testable)
        beats = sum(c.outcome == "above" for c in testable)
        reasons = set()
        for c in testable:
            if c.outcome == "below":
                c.outcome = "does not beat"
            elif c.outcome == "overlap":
                r = data.ratio(c.label.split(":")[0], a, b, metric)  # label: "<env>:<a>/<b>"
                if r is None:
                    reasons.add(_REASON["no ratio"])
                    continue
                c.evidence += f" (ratio {r[0]:.3g} [{r[1]:.3g}, {r[2]:.3g}] vs 1 + {MARGIN:g})"
                if r[2] <= 1 + MARGIN:
                    c.outcome = "does not beat"
                else:
                    reasons.add(f"ratio CI reaches above 1 + {MARGIN:g}")
            elif c.outcome == "few":
                reasons.add(_REASON["few"])
        undecided = sum(c.outcome not in ("above", "does not beat") for c in testable)
        evidence = (
            f"{a} above {b} on {beats}/{n} testable envs, {undecided} undecided "
            f"(limit: < {max_fraction:.2g} of envs); " + "; ".join(c.evidence for c in checks) + miss
        )
        if n == 0:
            return Verdict(NOT_TESTABLE, evidence, tuple(checks))
        if beats >= max_fraction * n:
            return Verdict("does not hold", evidence, tuple(checks))
        if beats + undecided >= max_fraction * n:
            return Verdict(f"inconclusive ({' / '.join(sorted(reasons))})", evidence, tuple(checks))
        return Verdict("holds", evidence, tuple(checks))

    return evaluate


def any_beats(methods: Sequence[str], b: str, envs: Sequence[str], metric: str = "final"):
    """ "Some method of ``methods`` beats ``b`` on some env of ``envs``": *holds* when any
    pair is CI-above; *does not hold* when every testable pair is decided "does not beat"
    (CI-below, or the ratio CI's upper end at most ``1 + MARGIN``); *not testable* when no
    pair had a method that learned; *inconclusive* otherwise."""

    def evaluate(data: ClaimData):
        todo, missing = _envs(data, envs, (), None)
        checks = [_pair(data, e, m, b, metric, "ge") for e in todo for m in methods]
        miss = f"; envs missing: {', '.join(missing)}" if missing else ""
        if not checks:
            return Verdict("inconclusive (env missing)", f"no env of the claim in the sweep{miss}")
        reasons = set()
        for c in checks:
            if c.outcome == "below":
                c.outcome = "does not beat"
            elif c.outcome == "overlap":
                env, pair = c.label.split(":")
                r = data.ratio(env, pair.split("/")[0], b, metric)
                if r is not None and r[2] <= 1 + MARGIN:
                    c.outcome = "does not beat"
                    c.evidence += f" (ratio {r[0]:.3g} [{r[1]:.3g}, {r[2]:.3g}] vs 1 + {MARGIN:g})"
                else:
                    reasons.add(_REASON["no ratio"] if r is None else f"ratio CI reaches above 1 + {MARGIN:g}")
            elif c.outcome in _REASON:
                reasons.add(_REASON[c.outcome])
        evidence = "; ".join(c.evidence for c in checks) + miss
        testable = [c for c in checks if c.outcome not in ("not testable", "missing")]
        if any(c.outcome == "above" for c in testable):
            return Verdict("holds", evidence, tuple(checks))
        if not testable:
            return Verdict(NOT_TESTABLE, evidence, tuple(checks))
        if all(c.outcome == "does not beat" for c in testable):
            return Verdict("does not hold", evidence, tuple(checks))
        return Verdict(f"inconclusive ({' / '.join(sorted(reasons))})", evidence, tuple(checks))

    return evaluate


def cell_reading(outcome: str, ratio: tuple[float, float, float] | None, baseline: str) -> str:
    """One env's reading of a method against ``baseline`` (the report's per-cell table), by
    the rule of the module docstring: :func:`compare`'s ``outcome`` (``"beats"`` needs disjoint
    CIs), and where the CIs overlap, the ratio CI ``(point, lo, hi)`` against ``1 ± MARGIN``:
    inside it, ``matches``; its top at most ``1 + MARGIN``, ``does not beat`` (as
    :func:`any_beats` and :func:`rarely_beats` count it); else undecided."""
    if outcome == "overlap":
        if ratio is None:
            return f"undecided ({_REASON['no ratio']})"
        _, lo, hi = ratio
        if _within_margin(lo, hi):
            return f"matches {baseline}"
        if hi <= 1 + MARGIN:
            return f"does not beat {baseline}"
        return f"undecided (CIs overlap; ratio CI reaches above 1 + {MARGIN:g})"
    return {
        "above": f"beats {baseline}",
        "below": f"below {baseline}",
        "not testable": "not testable (nothing learned)",
        "few": f"undecided ({_REASON['few']})",
    }.get(outcome, outcome)


@dataclass(frozen=True)
class Claim:
    figure: str
    id: str
    text: str  # the paper's claim (paper §5)
    rule: str  # how we test it, in words
    evaluate: Callable[[ClaimData], Verdict]


VA_FIG1 = ("ma_direct_l1", "ma_direct_l2", "ma_l1", "ma_vaml")

CLAIMS: list[Claim] = [
    Claim(
        "fig1",
        "1a",
        "MLE's sample efficiency drops as the grid size N grows",
        "MLE AUC (same env-step horizon) of each size CI-above the next larger size",
        mle_efficiency_drops,
    ),
    Claim(
        "fig1",
        "1b",
        "At 16×16 every value-aware method beats MLE",
        "on grid16, AUC of each of ma_direct_l1, ma_direct_l2, ma_l1, ma_vaml CI-above mle",
        ordering(VA_FIG1, "mle", envs=["grid16"], metric="auc"),
    ),
    Claim(
        "fig1",
        "1c",
        "The upper bounds (MA-L1, MA-VAML) converge faster than the direct forms",
        "AUC of ma_l1 CI-above ma_direct_l1 and ma_vaml CI-above ma_direct_l2, every size",
        pairs([("ma_l1", "ma_direct_l1"), ("ma_vaml", "ma_direct_l2")], metric="auc", figure="fig1"),
    ),
    Claim(
        "fig2",
        "2a",
        "MA-L1 ≥ MA-VAML everywhere but Ant",
        "final IQM of ma_l1 CI-above ma_vaml on every env but ant",
        ordering("ma_l1", "ma_vaml", exclude=["ant"], figure="fig2"),
    ),
    Claim(
        "fig2",
        "2b",
        "Value-aware ≫ MLE except on Reacher",
        "final IQM of ma_l1 and of ma_vaml CI-above mle on every env but reacher",
        ordering(("ma_l1", "ma_vaml"), "mle", exclude=["reacher"], figure="fig2"),
    ),
    Claim(
        "fig2",
        "2b-authors",
        "Value-aware ≫ MLE except on Reacher, MLE as the authors ran it (mle_va_slbo, bug included)",
        "final IQM of ma_l1 and of ma_vaml CI-above mle_va_slbo on every env but reacher",
        ordering(("ma_l1", "ma_vaml"), "mle_va_slbo", exclude=["reacher"], figure="fig2"),
    ),
    Claim(
        "fig2",
        "2c",
        "MA-L1 ≥ SLBO on Swimmer and Hopper",
        "final IQM of ma_l1 CI-above slbo on swimmer and hopper",
        ordering("ma_l1", "slbo", envs=["swimmer", "hopper"]),
    ),
    Claim(
        "fig3",
        "3a",
        "Value-aware near-matches MLE on CartPole, Swimmer, Pusher, Walker, Hopper",
        f"95% CI of the final IQM ratio ma_l1 / mle and ma_vaml / mle inside 1 ± {MARGIN:g} on those envs",
        ordering(("ma_l1", "ma_vaml"), "mle", envs=["cartpole", "swimmer", "pusher", "walker", "hopper"], kind="near"),
    ),
    Claim(
        "fig3",
        "3b",
        "Value-aware is poor (vs MLE) on Ant and HalfCheetah",
        "final IQM CI of ma_l1 and of ma_vaml lies below mle's on ant and halfcheetah",
        ordering(("ma_l1", "ma_vaml"), "mle", envs=["ant", "halfcheetah"], kind="poor"),
    ),
    Claim(
        "fig4",
        "4a",
        "MA-L1 beats MA-L1 Naive everywhere but Pendulum and Acrobot",
        "final IQM of ma_l1 CI-above ma_l1_naive on every env but pendulum and acrobot",
        ordering("ma_l1", "ma_l1_naive", exclude=["pendulum", "acrobot"], figure="fig4"),
    ),
    Claim(
        "fig4",
        "4b",
        "MA-L1 Naive rarely beats MLE",
        "ma_l1_naive final IQM CI-above mle's on fewer than 1/3 of the testable envs, the others "
        f"'not beating' (ratio CI top <= 1 + {MARGIN:g}) or undecided",
        rarely_beats("ma_l1_naive", "mle", figure="fig4"),
    ),
    Claim(
        "fig4",
        "4b-authors",
        "MA-L1 Naive rarely beats MLE, MLE as the authors ran it (mle_va_slbo, bug included)",
        "ma_l1_naive final IQM CI-above mle_va_slbo's on fewer than 1/3 of the testable envs, the others "
        f"'not beating' (ratio CI top <= 1 + {MARGIN:g}) or undecided",
        rarely_beats("ma_l1_naive", "mle_va_slbo", figure="fig4"),
    ),
]


# Beyond the paper (exp/conf/figure/vagram.yaml, plan: exp/mbpo/VAGRAM.md): VaGraM's claim
# (Voelcker et al., ICLR 2022) that a value-aware model beats MLE with distracting state
# dimensions or a model too small to fit everything.
VA_MBPO = ("ma_l1", "ma_vaml", "vagram")
HARD_CELLS = ("cartpole_d16", "cartpole_small", "cartpole_d16_small")
CLAIMS += [
    Claim(
        "vagram",
        "V1",
        "With distracting dimensions or a small model, some value-aware loss beats MLE",
        "final IQM of ma_l1, ma_vaml or vagram CI-above mle on some of cartpole_d16, cartpole_small, "
        f"cartpole_d16_small; 'does not hold' needs every pair CI-below or its ratio CI top <= 1 + {MARGIN:g}",
        any_beats(VA_MBPO, "mle", HARD_CELLS),
    ),
    Claim(
        "vagram",
        "V2",
        "VaGraM beats MLE with distracting dimensions (VaGraM paper)",
        "final IQM of vagram CI-above mle on cartpole_d16 and cartpole_d16_small",
        ordering("vagram", "mle", envs=["cartpole_d16", "cartpole_d16_small"]),
    ),
    Claim(
        "vagram",
        "V3",
        "VaGraM beats MLE with a small model (VaGraM paper)",
        "final IQM of vagram CI-above mle on cartpole_small and cartpole_d16_small",
        ordering("vagram", "mle", envs=["cartpole_small", "cartpole_d16_small"]),
    ),
    Claim(
        "vagram",
        "V4",
        "Without distractors, at full size, value-aware near-matches MLE (as paper claim 3a)",
        f"95% CI of the final IQM ratio of ma_l1, ma_vaml and vagram to mle inside 1 ± {MARGIN:g} on cartpole",
        ordering(VA_MBPO, "mle", envs=["cartpole"], kind="near"),
    ),
]


def claims_for(figure: str | None) -> list[Claim]:
    return [c for c in CLAIMS if c.figure == figure]


def evaluate_claims(figure: str | None, data: ClaimData) -> list[dict]:
    """One dict per claim of ``figure``: its text, rule, verdict, evidence and ``compared``
    (every two-method comparison it made: env, method, baseline, metric, outcome)."""
    out = []
    for c in claims_for(figure):
        v = c.evaluate(data)
        compared = [
            {
                "env": ch.pair[0],
                "method": ch.pair[1],
                "baseline": ch.pair[2],
                "metric": ch.pair[3],
                "outcome": ch.outcome,
            }
            for ch in v.checks
            if ch.pair is not None
        ]
        out.append(
            {
                "figure": c.figure,
                "id": c.id,
                "claim": c.text,
                "rule": c.rule,
                "verdict": v.verdict,
                "evidence": v.evidence,
                "compared": compared,
            }
        )
    return out
