"""``report.md``: runs, final performance, PoI, the paper's claims next to the measured
result, figures and method notes."""

from __future__ import annotations

import math
import time
from pathlib import Path

from vaml_ext.exp.aggregate.loading import Loaded, _seed_key
from vaml_ext.exp.aggregate.stats import CI
from vaml_ext.exp.aggregate.sweep import SweepData, _env_order, _method_order, _num
from vaml_ext.exp.claims import FIGURE_ENVS, FIGURE_METHODS, MARGIN, MIN_SEEDS


def _fmt(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.4g}"


def _ci(p, lo, hi) -> str:
    return f"{_fmt(p)} [{_fmt(lo)}, {_fmt(hi)}]"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(out)


def _run_counts(loaded: Loaded, include_unfinished: bool) -> str:
    """env x method table of finished / unfinished / skipped / missing seeds."""
    all_runs = {(r.env, r.method, r.seed): r for r in loaded.runs + loaded.unfinished}
    skipped = set(loaded.skipped_keys)
    keys = set(all_runs) | skipped
    envs = sorted({k[0] for k in keys}, key=_env_order)
    methods = sorted({k[1] for k in keys}, key=_method_order)
    seeds = sorted({k[2] for k in keys}, key=_seed_key)
    rows = []
    n_missing = 0
    for e in envs:
        for m in methods:
            fin = [s for s in seeds if (e, m, s) in all_runs and all_runs[(e, m, s)].done]
            unf = [s for s in seeds if (e, m, s) in all_runs and not all_runs[(e, m, s)].done]
            skp = [s for s in seeds if (e, m, s) in skipped and (e, m, s) not in all_runs]
            mis = [s for s in seeds if (e, m, s) not in all_runs and (e, m, s) not in skipped]
            n_missing += len(mis)
            j = lambda xs: " ".join(map(str, xs)) if xs else "-"  # noqa: E731
            rows.append(
                [
                    e,
                    m,
                    f"{len(fin)} ({j(fin)})",
                    f"{len(unf)} ({j(unf)})",
                    f"{len(skp)} ({j(skp)})",
                    f"{len(mis)} ({j(mis)})",
                ]
            )
    n_fin = sum(r.done for r in all_runs.values())
    n_unf = len(all_runs) - n_fin
    head = (
        f"{len(all_runs)} run(s) with data: {n_fin} finished, {n_unf} unfinished "
        f"({'included' if include_unfinished else 'excluded'}); {n_missing} missing "
        f"(seeds {', '.join(map(str, seeds))} expected for every env × method present); "
        f"{len(loaded.skipped)} skipped (no usable data, listed below)."
    )
    table = _md_table(
        ["env", "method", "finished (seeds)", "unfinished (seeds)", "skipped (seeds)", "missing (seeds)"], rows
    )
    fig = loaded.figure
    if fig in FIGURE_ENVS:
        no_env = [e for e in FIGURE_ENVS[fig] if e not in envs]
        no_method = [m for m in FIGURE_METHODS[fig] if m not in methods]
        if no_env or no_method:
            head += (
                f" Not in this sweep at all (of {fig}'s envs/methods): envs {', '.join(no_env) or '-'}; "
                f"methods {', '.join(no_method) or '-'}."
            )
    return head + "\n\n" + table


def _ver(pkg: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return "?"


def _header_section(sweep_dir: Path, loaded: Loaded, data: SweepData, reps: int, seed: int) -> list[str]:
    fig = loaded.figure
    L = [f"# Sweep report: `{sweep_dir}`", ""]
    L += [
        f"* figure: **{fig or 'not set in run.yaml'}**"
        + (
            f" (expected envs {', '.join(FIGURE_ENVS[fig])}; methods {', '.join(FIGURE_METHODS[fig])})"
            if fig in FIGURE_ENVS
            else ""
        ),
        f"* preset: {', '.join(loaded.presets) or 'n/a'}; backend: {', '.join(loaded.backends) or 'n/a'}"
        + (f"; MBPO base: {', '.join(loaded.bases)}" if loaded.bases else ""),
        f"* envs: {', '.join(data.envs)}; methods: {', '.join(data.methods)}",
        "* git commit(s) (run.yaml `provenance.commit`): "
        + ", ".join(f"`{c}` ({n} runs)" for c, n in sorted(loaded.commits.items(), key=lambda kv: -kv[1]))
        + (f"; {loaded.dirty} run(s) started from a dirty work tree" if loaded.dirty else ""),
        f"* statistics: rliable {_ver('rliable')} (arch {_ver('arch')}) stratified bootstrap, {reps} reps, "
        f"{int(CI * 100)}% percentile CIs, seed {seed}; generated {time.strftime('%Y-%m-%d %H:%M:%S')}",
        "",
    ]
    return L


def _runs_section(sweep_dir: Path, loaded: Loaded, include_unfinished: bool) -> list[str]:
    L: list[str] = []
    counts = _run_counts(loaded, include_unfinished)
    L += ["## Runs", "", counts, ""]
    if loaded.skipped:
        L += ["Skipped run directories:", ""] + [f"* `{p}`: {why}" for p, why in loaded.skipped] + [""]
    unf = list(loaded.unfinished)
    if unf:
        L += (
            [
                f"Unfinished runs ({'included' if include_unfinished else 'excluded; --include-unfinished uses them'}):",
                "",
            ]
            + [
                f"* `{r.path.relative_to(sweep_dir)}`: {r.env}/{r.method} seed {r.seed}, "
                f"{len(r.steps)} evaluations, last at {_num(r.last_step)} env steps"
                for r in unf
            ]
            + [""]
        )

    return L


def _final_section(final: list[dict]) -> list[str]:
    L: list[str] = []
    L += [
        "## Final performance",
        "",
        "Final return = last evaluation of each seed. AUC = mean return over the env's grid up to "
        "the horizon every run of the env reached.",
        "",
    ]
    L.append(
        _md_table(
            [
                "env",
                "method",
                "seeds",
                "final IQM [95% CI]",
                "final mean [95% CI]",
                "final env steps",
                "AUC IQM [95% CI]",
            ],
            [
                [
                    r["env"],
                    r["method"],
                    r["n_seeds"],
                    _ci(r["iqm"], r["iqm_lo"], r["iqm_hi"]),
                    _ci(r["mean"], r["mean_lo"], r["mean_hi"]),
                    f"{r['final_steps_min']}"
                    + (f"–{r['final_steps_max']}" if r["final_steps_max"] != r["final_steps_min"] else ""),
                    _ci(r["auc_iqm"], r["auc_lo"], r["auc_hi"])
                    + (f" @{r['auc_horizon']}" if r["auc_horizon"] is not None else ""),
                ]
                for r in final
            ],
        )
    )
    single = [f"{r['env']}/{r['method']}" for r in final if r["n_seeds"] == 1]
    if single:
        L += [
            "",
            f"**One seed only** for {', '.join(single)}: the bootstrap has nothing to resample, "
            "so those CIs are degenerate (a single point) and say nothing about uncertainty.",
        ]
    few = [f"{r['env']}/{r['method']}" for r in final if 1 < r["n_seeds"] < MIN_SEEDS]
    if few:
        L += [
            "",
            f"Fewer than {MIN_SEEDS} seeds for {', '.join(few)}: the protocol decides nothing on them; "
            "claims that need them are inconclusive.",
        ]
    return L


def _poi_section(poi: list[dict], poi_notes: list[str], separation: list[dict] | None) -> list[str]:
    L: list[str] = []
    L += ["", "## Probability of improvement (over MLE; over the Naive ablation where it ran)", ""]
    if poi:
        L.append(
            _md_table(
                ["env", "method", "baseline", "P(method > baseline) [95% CI]", "seeds (method / baseline)"],
                [
                    [
                        r["env"],
                        r["method"],
                        r["baseline"],
                        _ci(r["poi"], r["poi_lo"], r["poi_hi"]),
                        f"{r['n_seeds']} / {r['n_seeds_baseline']}",
                    ]
                    for r in poi
                ],
            )
        )
    L += [""] + [f"* {n}" for n in poi_notes] + ([""] if poi_notes else [])
    if separation:
        L += [
            "### Seeds that would separate each pair (planning figure)",
            "",
            "Final return, for each pair above and each pair a claim below compares. Seeds per method at "
            "which the disjoint-CI rule separates a true difference equal to the observed one with 80% power, "
            f"n >= (5.11 sd / |delta|)^2 with the pooled seed sd, at least {MIN_SEEDS} "
            "(`vaml_ext/exp/aggregate/power.py`): "
            "a lower bound at *this* budget (longer runs change both delta and sd); CPU hours = 2 methods x n x "
            "the median wall-clock of these runs.",
            "",
            _md_table(
                [
                    "env",
                    "method",
                    "baseline",
                    "mean (method / baseline)",
                    "delta",
                    "pooled sd",
                    "seeds to separate",
                    "CPU h",
                ],
                [
                    [
                        r["env"],
                        r["method"],
                        r["baseline"],
                        f"{r['mean']:.4g} / {r['mean_baseline']:.4g}",
                        f"{r['delta']:+.3g}",
                        f"{r['pooled_sd']:.3g}",
                        "never (delta = 0)" if r["seeds_to_separate"] is None else str(r["seeds_to_separate"]),
                        "-" if r["cpu_h_to_separate"] is None else f"{r['cpu_h_to_separate']:.3g}",
                    ]
                    for r in separation
                ],
            ),
            "",
        ]

    return L


def _learned_mark(x) -> str:
    return {True: "yes", False: "no"}.get(x, "?")


def _versus_section(versus: list[dict]) -> list[str]:
    """Per cell (env), each method against its baseline: IQMs, the ratio with its CI, and the
    cell's reading; then which cells a method beats, matches or falls below its baseline in."""
    if not versus:
        return []
    L = [
        "",
        "## Per cell: each method against its baseline (final return)",
        "",
        "Ratio = IQM(method) / IQM(baseline) with its 95% bootstrap CI (each method's seeds resampled "
        "independently; n/a where the baseline's CI is not above 0). Learned = final-return CI above the "
        "first evaluation's. Reading, by the claims' rule: *beats* / *below* need disjoint CIs; *matches* "
        f"needs the ratio CI inside 1 ± {MARGIN:g}; *does not beat*: CIs overlap, ratio CI top <= 1 + "
        f"{MARGIN:g}; a cell where neither learned is *not testable*; fewer than {MIN_SEEDS} seeds decide "
        "nothing.",
        "",
        _md_table(
            [
                "env",
                "method",
                "baseline",
                "IQM method [95% CI]",
                "IQM baseline [95% CI]",
                "ratio [95% CI]",
                "learned (method / baseline)",
                "seeds",
                "reading",
            ],
            [
                [
                    r["env"],
                    r["method"],
                    r["baseline"],
                    _ci(r["iqm"], r["iqm_lo"], r["iqm_hi"]),
                    _ci(r["iqm_baseline"], r["iqm_baseline_lo"], r["iqm_baseline_hi"]),
                    _ci(r["ratio"], r["ratio_lo"], r["ratio_hi"]),
                    f"{_learned_mark(r['learned'])} / {_learned_mark(r['learned_baseline'])}",
                    f"{r['n_seeds']} / {r['n_seeds_baseline']}",
                    f"**{r['reading']}**",
                ]
                for r in versus
            ],
        ),
        "",
    ]
    for word in ("beats", "matches", "does not beat", "below"):
        hits = [f"{r['env']}: {r['method']}" for r in versus if r["reading"].startswith(word + " ")]
        L.append(f"* {word} its baseline: {', '.join(hits) if hits else 'no cell'}")
    untestable = [f"{r['env']}: {r['method']}" for r in versus if r["reading"].startswith("not testable")]
    L += [f"* not testable (nothing learned): {', '.join(untestable) if untestable else 'no cell'}", ""]
    return L


def _claims_section(fig: str | None, claims: list[dict]) -> list[str]:
    L: list[str] = []
    L += ["## The paper's claims vs this sweep", ""]
    if not fig:
        L.append("run.yaml sets no `figure`: no claims evaluated.")
    elif not claims:
        L.append(f"No claims registered for figure `{fig}` (vaml_ext/exp/claims.py).")
    else:
        L.append(
            _md_table(
                ["#", "paper's claim", "how we test it", "verdict", "measured (IQM [95% CI])"],
                [[c["id"], c["claim"], c["rule"], f"**{c['verdict']}**", c["evidence"]] for c in claims],
            )
        )
        L += [
            "",
            f"Verdict rule: a comparison counts only where at least one of its methods learned (final "
            f"{int(CI * 100)}% CI above its first evaluation's), else it is not testable at this budget; "
            f"it needs >= {MIN_SEEDS} seeds per method; two methods differ on an env only if their CIs are "
            f"disjoint (overlap never supports a claim); 'near-matches' needs the CI of the IQM ratio inside "
            f"1 ± {MARGIN:g}; a claim holds if every env it covers supports it, does not hold if any "
            "contradicts it (details: vaml_ext/exp/claims.py).",
        ]
    return L


def _figures_and_notes(files: dict[str, Path | None], data: SweepData, max_points: int) -> list[str]:
    L: list[str] = []
    L += ["", "## Figures", ""]
    curves_png, poi_png = files.get("curves_png"), files.get("poi_png")
    if curves_png:
        L.append(f"![return curves]({Path(curves_png).name})")
    if poi_png:
        L += ["", f"![probability of improvement]({Path(poi_png).name})"]
    else:
        L += ["", "No PoI figure (no probability of improvement computed, see above)."]
    ratios_png = files.get("ratios_png")
    if ratios_png:
        L += ["", f"![ratio to the baseline per cell]({Path(ratios_png).name})"]
    shared = [e for e in data.envs if data.shared[e]]
    L += [
        "",
        "## Method notes",
        "",
        f"* Grid: per env, the union of evaluation steps (at most {max_points} points). "
        + (f"All runs share their evaluation steps on: {', '.join(shared)}. " if shared else "")
        + (
            "Runs with different evaluation steps on: "
            + ", ".join(e for e in data.envs if not data.shared[e])
            + " -- there a run's value at a grid point is its last evaluation at or before that point. "
            if len(shared) < len(data.envs)
            else ""
        )
        + "A run counts at a grid point only between its first and last evaluation (`n_seeds` in curves.csv).",
        "* Curves: IQM/mean over seeds per grid point with pointwise bootstrap CIs (each point resampled "
        "independently, rliable's stratified bootstrap over a runs × 1 × points array).",
        "* Files: " + ", ".join(f"`{Path(p).name}`" for k, p in files.items() if p and k != "report"),
        "",
    ]
    return L


def write_report(
    path: Path,
    sweep_dir: Path,
    loaded: Loaded,
    data: SweepData,
    final: list[dict],
    poi: list[dict],
    poi_notes: list[str],
    versus: list[dict],
    claims: list[dict],
    files: dict[str, Path | None],
    reps: int,
    seed: int,
    include_unfinished: bool,
    max_points: int,
    separation: list[dict] | None = None,
) -> None:
    """``report.md``: header, runs, final performance, PoI and seeds to separate, each method
    against its baseline per cell, the claims, figures and method notes, one section builder
    each."""
    L = _header_section(sweep_dir, loaded, data, reps, seed)
    L += _runs_section(sweep_dir, loaded, include_unfinished)
    L += _final_section(final)
    L += _poi_section(poi, poi_notes, separation)
    L += _versus_section(versus)
    L += _claims_section(loaded.figure, claims)
    L += _figures_and_notes(files, data, max_points)
    path.write_text("\n".join(L))
