"""Reports that compare algorithms, or commits of jaxrl, the way papers should (Agarwal et al. 2021).

    jaxrl report DIR... [--out REPORT_DIR] [--labels a,b] [--reps 2000] [--seed 0]

Each DIR is a run directory (`jaxrl train`), a sweep directory (its best point) or a bench directory
(`jaxrl bench`: scores.csv + suite.yaml). Its runs are labelled by algorithm and short git commit (or by
--labels, one per DIR), so that every label has a score matrix [runs x tasks] over the envs it ran on.
The report directory holds

    report.md         per-env scores, aggregate IQM / mean / median / optimality gap, probability of
                      improvement between labels, the provenance of every input; all with 95% stratified
                      bootstrap confidence intervals
    aggregates.png    aggregate metrics with their intervals
    profiles.png      performance profiles (score distributions) with CI bands
    improvement.png   P(X > Y) for every pair of labels
    curves.png        sample efficiency: IQM return over runs against env steps, CI band, one panel per env

A score is a run's final return: the mean return of the training episodes that finished in the last 5% of
its updates (as summary.json's final_return). Scores are normalised, (score - random) / (reference - random),
with the per-env references of jaxrl/bench/references.yaml (a bench directory's scores.csv carries them);
aggregates over envs without a reference use raw returns, and the report says so.
"""

from __future__ import annotations

import dataclasses
import itertools
from datetime import datetime
from pathlib import Path

import numpy as np
import yaml

from jaxrl import plots, records, stats
from jaxrl.bench.suite import load_references as load_shipped_references
from jaxrl.errors import JaxrlError

BENCH_COLUMNS = ("algo", "env", "seed", "final_return", "normalized_score", "status", "run_dir")
METRICS = ("iqm", "mean", "median", "optimality_gap")  # stats.AGGREGATES in the order of the tables
CURVE_POINTS = 60  # env-step grid of the sample-efficiency curves
PROVENANCE = ("jaxrl_version", "git_commit", "git_dirty", "packages_hash", "device_kind", "device_count", "python",
              "command", "status", "start_time")


@dataclasses.dataclass
class Runs:
    """Some runs of one algorithm on one env, from one input."""

    algo: str
    env: str
    finals: np.ndarray  # [runs] final returns (NaN: no episode finished near the end)
    normalized: np.ndarray  # [runs] normalised final returns where the input gives them, else NaN
    curves: list  # per run: (env_steps [T], smoothed return [T]); fewer than runs where a record is missing


@dataclasses.dataclass
class Source:
    """One input directory: what it is, its metadata.json and its runs."""

    path: Path
    kind: str  # run, sweep or bench
    meta: dict
    runs: list[Runs]
    note: str = ""  # what was taken from it (a sweep's best point)
    config: dict | None = None  # the config its runs share (a bench directory's runs have one each)
    labels: dict = dataclasses.field(default_factory=dict)  # algo -> label


@dataclasses.dataclass
class ReportResult:
    """What `write_report` wrote and the numbers in it."""

    out: Path
    score_kind: str  # "normalised score" or "raw return"
    tasks: dict[str, list[str]]  # label -> the envs it has scores on: the columns of its score matrix
    scores: dict[str, np.ndarray]  # label -> [runs, tasks]
    aggregates: dict[str, dict[str, stats.Estimate]]  # label -> metric -> estimate
    improvement: dict[tuple[str, str], stats.Estimate]  # (x, y) -> P(X > Y)
    warnings: list[str]


def load_source(path: str | Path) -> Source:
    """A run, sweep or bench directory's runs; anything else is a one-line JaxrlError."""
    path = Path(path)
    if not path.is_dir():
        raise JaxrlError(f"{str(path)!r} is not a directory; give run, sweep or bench directories")
    if (path / "scores.csv").is_file() and (path / "suite.yaml").is_file():
        kind, load = "bench", _load_bench
    elif (path / "metrics.csv").is_file() and (path / "config.yaml").is_file():
        kind, load = "run", _load_run
    else:
        from jaxrl.sweep.record import is_sweep_dir  # only here: jaxrl.sweep imports the algorithms (seconds)

        if not is_sweep_dir(path):
            raise JaxrlError(f"{str(path)!r} is not a run directory (config.yaml, metrics.csv), a sweep directory "
                             f"(spec.yaml, points.yaml) or a bench directory (scores.csv, suite.yaml)")
        kind, load = "sweep", _load_sweep
    try:
        return load(path)
    except (KeyError, ValueError, IndexError, TypeError) as err:  # a missing column, a cell that is no number
        raise JaxrlError(f"{kind} directory {str(path)!r} has a damaged file ({type(err).__name__}: {err}); "
                         f"it cannot be reported") from None


def _metadata(path: Path) -> dict:
    return records.read_metadata(path / "metadata.json") if (path / "metadata.json").is_file() else {}


def _read_csv(path: Path) -> list[dict]:
    try:
        return records.read_metrics(path)
    except (OSError, UnicodeDecodeError) as err:
        raise JaxrlError(f"cannot read {str(path)!r}: {getattr(err, 'strerror', None) or err}") from None


def _number(text) -> float:
    """A CSV cell as a number, NaN where empty; raises ValueError where it is no number."""
    return float(text) if text not in ("", None) else np.nan


def _load_run(path: Path) -> Source:
    config = _read_yaml(path / "config.yaml")
    if not isinstance(config, dict) or "algo" not in config or "env" not in config:
        raise JaxrlError(f"{str(path / 'config.yaml')!r} names no algo and env; is {str(path)!r} a run directory?")
    curves, finals = _run_metrics(path / "metrics.csv")
    runs = Runs(config["algo"], config["env"], finals, np.full(len(finals), np.nan), curves)
    return Source(path, "run", _metadata(path), [runs], config=config)


def _read_yaml(path: Path):
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        problem = " ".join(str(getattr(err, "strerror", None) or err).split())  # YAML errors span lines
        raise JaxrlError(f"cannot read {str(path)!r}: {problem}") from None


def _run_metrics(path: Path, only_seeds=None):
    """A run record's metrics.csv (the rows of `only_seeds`, default all): each seed's (env_steps, smoothed
    return) curve and its final return (`records.final_returns`, as summary.json has it)."""
    by_seed: dict[int, list[dict]] = {}
    for row in _read_csv(path):
        by_seed.setdefault(int(row["seed"]), []).append(row)
    seeds = sorted(s for s in by_seed if only_seeds is None or s in only_seeds)
    length = min((len(by_seed[s]) for s in seeds), default=0)
    table = {s: sorted(by_seed[s], key=lambda r: int(r["update"]))[:length] for s in seeds}
    episodes = np.array([[_number(r["episodes"]) for r in table[s]] for s in seeds]).reshape(len(seeds), length)
    returns = np.array([[_number(r["episode_return"]) for r in table[s]] for s in seeds]).reshape(len(seeds), length)
    steps = np.array([int(r["env_steps"]) for r in table[seeds[0]]]) if seeds else np.zeros(0)
    if length == 0:
        raise JaxrlError(f"{str(path)!r} has no rows{' for seeds ' + str(sorted(only_seeds)) if only_seeds else ''}; "
                         f"has the run logged an update yet?")
    metrics = {"episodes": np.nan_to_num(episodes), "episode_return_sum": np.nan_to_num(returns * episodes)}
    smoothed = records.smoothed_returns(metrics)
    return [(steps, smoothed[i]) for i in range(len(seeds))], records.final_returns(metrics)


def _load_sweep(path: Path) -> Source:
    """A sweep directory's best point (ranking.csv's first row): its seeds' final returns and curves."""
    spec = _read_yaml(path / "spec.yaml")  # as the sweep was given it, and validated then
    if not isinstance(spec, dict) or not isinstance(spec.get("algo"), str):
        raise JaxrlError(f"{str(path / 'spec.yaml')!r} names no algo; is {str(path)!r} a sweep directory?")
    ranking = _read_csv(path / "ranking.csv") if (path / "ranking.csv").is_file() else []
    if not ranking:
        raise JaxrlError(f"sweep {str(path)!r} has no ranked point yet (no ranking.csv); report it once a group "
                         f"has finished")
    best = int(ranking[0]["point"])
    rows = [r for r in _read_csv(path / "runs.csv") if int(r["point"]) == best]
    finals = np.array([_number(r["final_return"]) for r in rows])
    curves = []
    data = dict(np.load(path / "curves.npz")) if (path / "curves.npz").is_file() else {}
    for row in rows:
        group = f"group{row['group']}"
        if f"{group}_runs" in data:
            index = int(np.flatnonzero(data[f"{group}_runs"] == int(row["run"]))[0])
            per_update = data[f"{group}_returns"][index][None]  # mean return per logged update, NaN: none
            smoothed = records.smoothed_returns({"episodes": np.isfinite(per_update).astype(np.float64),
                                                 "episode_return_sum": np.nan_to_num(per_update)})[0]
            curves.append((data[f"{group}_env_steps"], smoothed))
    env = spec.get("env") or (spec.get("base") or {}).get("env")
    if env is None:  # the algorithm's default env; importing the algorithms costs seconds, so only here
        from jaxrl import algos

        env = algos.get(spec["algo"]).Config.env
    runs = Runs(spec["algo"], env, finals, np.full(len(finals), np.nan), curves)
    points = _read_yaml(path / "points.yaml")
    config = _read_yaml(path / "best.yaml") if (path / "best.yaml").is_file() else None  # the full config of `best`
    return Source(path, "sweep", _metadata(path), [runs], note=f"best point {best} of {len(points)}", config=config)


def _load_bench(path: Path) -> Source:
    """A bench directory: scores.csv's rows per (algo, env), curves from each row's run record."""
    rows = _read_csv(path / "scores.csv")
    if not rows or any(column not in rows[0] for column in BENCH_COLUMNS):
        raise JaxrlError(f"{str(path / 'scores.csv')!r} has no rows or lacks columns; expected "
                         f"{','.join(BENCH_COLUMNS)}")
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["algo"], row["env"]), []).append(row)
    runs = []
    for (algo, env), group in groups.items():
        seeds_of: dict[str, set] = {}  # a run record may hold several seeds of the group
        for row in group:
            seeds_of.setdefault(row["run_dir"], set()).add(int(row["seed"]))
        curves = []
        for run_dir, seeds in seeds_of.items():
            if run_dir and (path / run_dir / "metrics.csv").is_file():
                curves += _run_metrics(path / run_dir / "metrics.csv", seeds)[0]
        runs.append(Runs(algo, env, np.array([_number(r["final_return"]) for r in group]),
                         np.array([_number(r["normalized_score"]) for r in group]), curves))
    return Source(path, "bench", _metadata(path), runs)


def load_references(references=None) -> dict[str, dict]:
    """{env: {random, reference, source}} from a YAML file or a dict (default: the shipped
    jaxrl/bench/references.yaml)."""
    if isinstance(references, dict):
        return references
    if references is None:
        return load_shipped_references()
    path = Path(references)
    if not path.is_file():
        raise JaxrlError(f"references file {str(path)!r} does not exist")
    data = _read_yaml(path) or {}
    if not isinstance(data, dict) or not all(isinstance(v, dict) and {"random", "reference"} <= set(v)
                                              for v in data.values()):
        raise JaxrlError(f"{str(path)!r} must map env ids to {{random, reference, source}}")
    return data


def default_label(source: Source, algo: str) -> str:
    """algo@commit (7 hex digits, +dirty for uncommitted changes), or the algorithm alone without a commit."""
    commit = source.meta.get("git_commit")
    if not commit:
        return algo
    return f"{algo}@{commit[:7]}" + ("+dirty" if source.meta.get("git_dirty") else "")


def _fmt(x: float) -> str:
    """A score as the report prints it."""
    if not np.isfinite(x):
        return "n/a"
    return f"{x:.3f}" if abs(x) < 100 else f"{x:.1f}"


def _ci(estimate: stats.Estimate) -> str:
    return f"{_fmt(estimate.point)} [{_fmt(estimate.low)}, {_fmt(estimate.high)}]"


def write_report(dirs, out: str | Path | None = None, labels: list[str] | None = None, *, reps: int = 2000,
                 seed: int = 0, references=None) -> ReportResult:
    """Compare the runs of run, sweep and bench directories in a Markdown report with plots (see the
    module docstring). `labels`: one per directory (default algo@commit); `references`: a YAML path or dict
    of per-env {random, reference} returns (default jaxrl/bench/references.yaml); `reps`: bootstrap
    resamples, drawn from a generator seeded with `seed`."""
    dirs = [dirs] if isinstance(dirs, (str, Path)) else list(dirs)
    if not dirs:
        raise JaxrlError("report needs at least one run, sweep or bench directory")
    if labels is not None and len(labels) != len(dirs):
        raise JaxrlError(f"--labels gives {len(labels)} label(s) for {len(dirs)} director(ies); give one per "
                         f"directory, comma-separated")
    if not isinstance(reps, (int, np.integer)) or reps < 1:
        raise JaxrlError(f"--reps={reps!r}: must be a positive integer")
    refs = load_references(references)
    sources = [load_source(d) for d in dirs]
    _label(sources, labels)
    pooled, warnings = _pool(sources, refs)
    names = list(pooled)
    tasks, normalised, scores = _score_matrices(pooled, warnings)
    score_kind = "normalised score" if normalised else "raw return"
    metrics = {k: stats.AGGREGATES[k] for k in METRICS if normalised or k != "optimality_gap"}
    # Each label resampled on its own (its intervals do not depend on the other labels in the report), over
    # its own envs.
    aggregates = {label: stats.interval_estimates({label: m}, metrics, reps=reps, seed=seed)[label]
                  for label, m in scores.items()}
    improvement = {}
    for x, y in itertools.combinations(names, 2):  # over the envs both ran; pairs with none are not compared
        shared = [env for env in tasks[x] if env in tasks[y]]
        if shared:
            pair = {label: scores[label][:, [tasks[label].index(env) for env in shared]] for label in (x, y)}
            improvement[(x, y)] = stats.probability_of_improvement(pair, x, y, reps=reps, seed=seed)
    warnings += _provenance_warnings(sources)

    out = _output_dir(out)
    every = np.concatenate([s.ravel() for s in scores.values()])
    taus = np.linspace(min(every.min(), 0.0 if normalised else every.min()),
                       max(every.max(), 1.0 if normalised else every.max()), 81)
    profiles = {label: stats.performance_profile({label: m}, taus, reps=reps, seed=seed)[label]
                for label, m in scores.items()}
    plots.plot_aggregates(out / "aggregates.png", aggregates, score_kind)
    plots.plot_profiles(out / "profiles.png", taus, profiles, score_kind)
    if improvement:
        plots.plot_improvement(out / "improvement.png", improvement)
    curves = {}
    for label, envs in pooled.items():
        for env, entry in envs.items():
            curve = _curve_estimate(entry["curves"], reps, seed)
            if curve is not None:
                curves.setdefault(env, {})[label] = curve
    if curves:
        plots.plot_sample_efficiency(out / "curves.png", curves, names,
                                     {env: "normalised return" if env in refs else "return" for env in curves})
    text = _markdown(sources, pooled, tasks, score_kind, scores, aggregates, improvement, bool(curves),
                     warnings, refs, reps, seed)
    records.atomic_write(out / "report.md", text)
    return ReportResult(out, score_kind, tasks, scores, aggregates, improvement, warnings)


def _label(sources: list[Source], labels: list[str] | None) -> None:
    """Each source's label per algorithm: algo@commit, or the given label (label/algo where a bench
    directory holds several algorithms)."""
    for i, source in enumerate(sources):
        algos_here = list(dict.fromkeys(r.algo for r in source.runs))
        for algo in algos_here:
            if labels is None:
                source.labels[algo] = default_label(source, algo)
            else:
                source.labels[algo] = labels[i] if len(algos_here) == 1 else f"{labels[i]}/{algo}"


def _pool(sources: list[Source], refs: dict) -> tuple[dict, list[str]]:
    """{label: {env: {finals, normalized: [runs], curves}}} over all sources (normalised by `refs` where the
    source gave no normalised scores; runs without a score left out), and warnings."""
    pooled: dict[str, dict[str, dict]] = {}
    for source in sources:
        for runs in source.runs:
            entry = pooled.setdefault(source.labels[runs.algo], {}).setdefault(
                runs.env, {"finals": [], "normalized": [], "curves": []})
            ref = refs.get(runs.env)
            normalized = runs.normalized
            if ref is not None and np.isnan(normalized).all():
                normalized = stats.normalize(runs.finals[:, None], [ref["random"]], [ref["reference"]])[:, 0]
            entry["finals"].append(runs.finals)
            entry["normalized"].append(normalized)
            entry["curves"] += [(x, _normalize_curve(y, ref)) for x, y in runs.curves]
    warnings = []
    for label, envs in pooled.items():
        for env, entry in envs.items():
            finals, normalized = np.concatenate(entry["finals"]), np.concatenate(entry["normalized"])
            missing = np.isnan(finals)
            if missing.any():
                warnings.append(f"{label} on {env}: {missing.sum()} of {missing.size} run(s) finished no episode near "
                                f"the end and have no score; left out")
            entry["finals"], entry["normalized"] = finals[~missing], normalized[~missing]
    return pooled, warnings


def _score_matrices(pooled: dict, warnings: list[str]) -> tuple[dict[str, list[str]], bool, dict[str, np.ndarray]]:
    """Each label's tasks (the envs it has scores on), whether all scores are normalised, and each label's
    [runs, tasks] matrix (normalised, else raw; as many runs per task as its fewest); appends to `warnings`
    what was left out. Labels that ran different envs (a bench: sac only where actions are continuous) are
    aggregated over their own envs and compared over the envs they share."""
    names = list(pooled)
    tasks = {label: [env for env in pooled[label] if pooled[label][env]["finals"].size] for label in names}
    empty = [label for label in names if not tasks[label]]
    if empty:
        raise JaxrlError(f"no scored run for {', '.join(empty)}: every run finished no episode near its end")
    if len({tuple(sorted(t)) for t in tasks.values()}) > 1:
        warnings.append("the labels ran different envs: each label's aggregates are over its own envs (listed in "
                        "the table), so compare aggregates only between labels with the same envs; P(X > Y) is "
                        "over the envs both labels ran")
    every_env = list(dict.fromkeys(env for label in names for env in tasks[label]))
    unreferenced = [env for env in every_env if not all(np.isfinite(pooled[label][env]["normalized"]).all()
                                                        for label in names if env in tasks[label])]
    if unreferenced:
        warnings.append(f"no normalisation reference for {', '.join(unreferenced)} (not in references.yaml and "
                        f"not in every input's scores.csv): aggregates use raw returns"
                        + (", which mix the envs' scales" if len(every_env) > 1 else "") + " and have no optimality gap")
    key = "finals" if unreferenced else "normalized"
    scores = {}
    for label in names:
        count = min(pooled[label][env][key].size for env in tasks[label])
        if any(pooled[label][env][key].size > count for env in tasks[label]):
            warnings.append(f"{label}: envs have different numbers of runs; the aggregates use the first {count} "
                            f"of each")
        scores[label] = np.stack([pooled[label][env][key][:count] for env in tasks[label]], axis=1)
    return tasks, not unreferenced, scores


def _normalize_curve(y: np.ndarray, ref: dict | None) -> np.ndarray:
    return y if ref is None else (y - ref["random"]) / (ref["reference"] - ref["random"])


def _curve_estimate(curves: list, reps: int, seed: int):
    """IQM over runs of the curves on a common env-step grid, with bootstrap CI bands: (steps, Estimate),
    or None where the runs have no step at which every one has a return."""
    curves = [(x, y) for x, y in curves if np.isfinite(y).any()]
    if not curves:
        return None
    start = max(x[np.isfinite(y)][0] for x, y in curves)
    end = min(x[-1] for x, _ in curves)
    if start > end:
        return None
    grid = np.unique(np.linspace(start, end, CURVE_POINTS).round())
    ys = np.stack([np.interp(grid, x[np.isfinite(y)], y[np.isfinite(y)]) for x, y in curves])

    def iqm_per_step(sample):  # [..., runs, steps] -> [..., steps]
        return stats.iqm(np.swapaxes(sample, -1, -2)[..., None])

    return grid, stats.interval_estimates({"": ys}, iqm_per_step, reps=reps, seed=seed)[""]


def _provenance_warnings(sources: list[Source]) -> list[str]:
    """Dirty checkouts, runs resumed with other code or packages, inputs with differing package sets."""
    warnings = []
    dirty = [str(source.path) for source in sources if source.meta.get("git_dirty")]
    if dirty:
        warnings.append(f"written from a git checkout with uncommitted changes (+dirty), so their code is in no "
                        f"commit: {', '.join(dirty)}")
    for source in sources:
        changed = [field for field in ("git_commit", "git_dirty", "packages_hash")
                   if any(field in r and r[field] != source.meta.get(field) for r in source.meta.get("resumes", []))]
        if changed:
            warnings.append(f"{source.path} was resumed with another {' and '.join(changed)} than it started with: "
                            f"its runs mix two versions (see metadata.json's resumes)")
    hashes: dict[str, list[str]] = {}
    for source in sources:
        hashes.setdefault(source.meta.get("packages_hash") or "unknown", []).append(str(source.path))
    if len(hashes) > 1:
        warnings.append("the inputs were run with different installed packages (packages_hash): " + "; ".join(
            f"{h}: {', '.join(paths)}" for h, paths in hashes.items()) + " (compare their packages.txt)")
    return warnings


def _output_dir(out) -> Path:
    """`out`, or reports/<time>; never a directory that holds anything."""
    path = Path(out) if out else Path("reports") / datetime.now().strftime("%Y%m%d-%H%M%S")
    return records._make_run_dir(str(path), "", "", "")


def _markdown(sources, pooled, tasks, score_kind, scores, aggregates, improvement, has_curves, warnings,
              refs, reps, seed) -> str:
    names = list(pooled)
    lines = ["# jaxrl report", "",
             f"{records.now()}: {len(names)} label(s) on {len(set().union(*tasks.values()))} env(s) from "
             f"{len(sources)} input(s). "
             f"A run's score is its final return (mean return of the training episodes that finished in the last "
             f"5% of its updates)" + (", normalised as (score - random) / (reference - random)" if score_kind ==
                                     "normalised score" else "") + f". Intervals: 95% stratified bootstrap over "
             f"runs, {reps} resamples, seed {seed}.", ""]
    if warnings:
        lines += ["## Warnings", ""] + [f"- {w}" for w in warnings] + [""]

    lines += ["## Per-env scores", "", "Mean final return [95% CI] (runs); normalised scores below where the env "
              "has a reference.", ""]
    envs = list(dict.fromkeys(env for label in names for env in pooled[label]))
    for key, title in (("finals", "return"), ("normalized", "normalised score")):
        shown = [env for env in envs if key == "finals" or any(
            env in pooled[label] and pooled[label][env][key].size and np.isfinite(pooled[label][env][key]).all()
            for label in names)]
        if not shown:
            continue
        lines += [f"| env ({title}) | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for env in shown:
            values = {label: pooled[label][env][key][:, None] for label in names if env in pooled[label]
                      and pooled[label][env][key].size and np.isfinite(pooled[label][env][key]).all()}
            estimates = stats.interval_estimates(values, stats.mean, reps=reps, seed=seed) if values else {}
            cells = [f"{_ci(estimates[label])} ({values[label].shape[0]})" if label in estimates else "-"
                     for label in names]
            lines.append(f"| {env} | " + " | ".join(cells) + " |")
        lines.append("")
    for env in envs:
        if env in refs:
            lines.append(f"- {env}: random {refs[env]['random']}, reference {refs[env]['reference']} "
                         f"({refs[env].get('source', 'source not given')})")
    lines.append("")

    metric_names = list(next(iter(aggregates.values())))
    headers = {"iqm": "IQM", "mean": "mean", "median": "median", "optimality_gap": "optimality gap"}
    same_envs = len({tuple(sorted(t)) for t in tasks.values()}) == 1
    lines += [f"## Aggregate metrics ({score_kind}" + (f", {len(tasks[names[0]])} env(s): "
                                                       f"{', '.join(tasks[names[0]])})" if same_envs else
                                                       ", each label over its own envs)"), "",
              "| label | runs x envs | " + " | ".join(headers[m] for m in metric_names) + " |"
              + ("" if same_envs else " envs |"), "|---" * (len(metric_names) + 2 + (not same_envs)) + "|"]
    for label in names:
        runs, count = scores[label].shape
        lines.append(f"| {label} | {runs} x {count} | " + " | ".join(_ci(aggregates[label][m]) for m in metric_names)
                     + " |" + ("" if same_envs else f" {', '.join(env.split(':')[-1] for env in tasks[label])} |"))
    lines += ["", "IQM: mean of the middle 50% of all runs x envs; optimality gap: mean shortfall below 1 "
              "(the reference).", "", "![aggregate metrics](aggregates.png)", "",
              "## Performance profiles", "", f"Fraction of runs with {score_kind} above tau, with 95% CI bands.", "",
              "![performance profiles](profiles.png)", ""]
    if improvement:
        lines += ["## Probability of improvement", "", "P(X > Y): the chance that a run of X on a random env "
                  "scores above a run of Y (Mann-Whitney U over run pairs, averaged over the envs both ran; pairs "
                  "that share no env are not listed).", "",
                  "| X | Y | P(X > Y) [95% CI] |", "|---|---|---|"]
        lines += [f"| {x} | {y} | {_ci(est)} |" for (x, y), est in improvement.items()]
        lines += ["", "![probability of improvement](improvement.png)", ""]
    if has_curves:
        lines += ["## Sample efficiency", "", "IQM over runs of the smoothed training return against env steps, "
                  "95% bootstrap CI band (normalised where the env has a reference).", "",
                  "![sample efficiency](curves.png)", ""]

    lines += ["## Provenance", "", "| input | kind | label(s) | runs | " + " | ".join(PROVENANCE) + " |",
              "|---" * (len(PROVENANCE) + 4) + "|"]
    for source in sources:
        meta = source.meta
        cells = []
        for field in PROVENANCE:
            value = meta.get(field)
            if field == "command" and isinstance(value, list):
                value = "`" + " ".join(value).replace("|", "\\|") + "`"
            cells.append("?" if value is None else str(value))
        count = sum(r.finals.size for r in source.runs)
        kind = source.kind + (f" ({source.note})" if source.note else "")
        lines.append(f"| {str(source.path)} | {kind} | {', '.join(dict.fromkeys(source.labels.values()))} | "
                     f"{count} | " + " | ".join(cells) + " |")
    lines += ["", "Configs: config.yaml of each run directory (spec.yaml of a sweep, suite.yaml of a bench); "
              "installed packages: packages.txt beside each metadata.json.", ""]
    return "\n".join(lines + _config_differences(sources))


def _config_differences(sources: list[Source]) -> list[str]:
    """Markdown table of the config fields, common to the inputs that have one config (runs, a sweep's best
    point), whose values differ between them; seeds left out."""
    configs = {str(source.path): source.config for source in sources if isinstance(source.config, dict)}
    fields = [field for field in next(iter(configs.values()), {}) if field not in ("seed", "num_seeds")
              and all(field in c for c in configs.values()) and len({repr(c[field]) for c in configs.values()}) > 1]
    if len(configs) < 2 or not fields:
        return []
    lines = ["## Config differences", "", "Fields that all these configs have (an algorithm's own fields are in its "
             "config.yaml).", "", "| field | " + " | ".join(configs) + " |", "|---" * (len(configs) + 1) + "|"]
    lines += [f"| {field} | " + " | ".join(str(c[field]) for c in configs.values()) + " |" for field in fields]
    return lines + [""]
