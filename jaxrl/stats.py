"""Aggregate statistics over seeds and tasks for honest comparisons."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from jaxrl.errors import JaxrlError


def nanmean(values, axis=None):
    """np.nanmean, but a slice with no number (no finished episode: a seed, an update) is NaN without
    a RuntimeWarning."""
    values = np.asarray(values, np.float64)
    present = ~np.isnan(values)
    count = present.sum(axis)
    return np.where(count > 0, np.where(present, values, 0.0).sum(axis) / np.maximum(count, 1), np.nan)


def bootstrap_ci(values, confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of `values` (NaNs dropped).

    With one value the interval is that value; with none it is (nan, nan).
    """
    values = np.asarray(values, np.float64)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    if values.size == 1:
        return float(values[0]), float(values[0])
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    low, high = _percentile_interval(means, confidence)
    return float(low), float(high)


# Aggregate metrics over normalised scores (Agarwal et al. 2021, "Deep RL at the Edge of the Statistical
# Precipice"; the definitions match the rliable package). Every one maps scores [..., runs, tasks] to [...],
# so a whole batch of bootstrap resamples is one call.


def mean(scores):
    """Mean over runs and tasks (the mean of per-task means: every task has the same number of runs)."""
    return np.mean(scores, axis=(-2, -1))


def median(scores):
    """Median over tasks of the per-task mean score."""
    return np.median(np.mean(scores, axis=-2), axis=-1)


def iqm(scores):
    """Interquartile mean: the mean of all runs x tasks after dropping int(n/4) scores at each end
    (scipy.stats.trim_mean(scores, 0.25, axis=None))."""
    scores = np.asarray(scores)
    flat = scores.reshape(*scores.shape[:-2], -1)
    count = flat.shape[-1]
    cut = int(0.25 * count)
    middle = np.partition(flat, (cut, count - cut - 1), axis=-1)[..., cut:count - cut]
    return np.mean(middle, axis=-1)


def optimality_gap(scores, gamma: float = 1.0):
    """Mean shortfall below `gamma` over runs and tasks: mean(max(gamma - score, 0))."""
    return np.mean(np.maximum(gamma - np.asarray(scores), 0.0), axis=(-2, -1))


AGGREGATES = {"mean": mean, "median": median, "iqm": iqm, "optimality_gap": optimality_gap}


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A point estimate and its bootstrap confidence interval (floats, or arrays for vector statistics
    such as a performance profile)."""

    point: float | np.ndarray
    low: float | np.ndarray
    high: float | np.ndarray


def normalize(scores, random, reference):
    """Normalised scores (score - random) / (reference - random).

    scores: [runs, tasks] raw returns; random, reference: [tasks] per-task returns of a random policy and of
    the reference (so 0 is random and 1 is the reference).
    """
    scores = np.asarray(scores, np.float64)
    random = np.asarray(random, np.float64)
    reference = np.asarray(reference, np.float64)
    tasks = scores.shape[-1] if scores.ndim else 0
    for name, values in (("random", random), ("reference", reference)):
        if values.shape != (tasks,):
            raise JaxrlError(f"normalize: {name} scores have shape {values.shape}, expected ({tasks},): one per task")
    same = np.flatnonzero(reference == random)
    if same.size:
        raise JaxrlError(f"normalize: reference equals random score ({random[same[0]]}) on task {same[0]}; "
                         f"they must differ")
    return (scores - random) / (reference - random)


def interval_estimates(scores, aggregates=AGGREGATES, *, reps: int = 2000, confidence: float = 0.95,
                       seed: int = 0):
    """Point estimates and stratified bootstrap percentile intervals of aggregate metrics.

    scores: {algorithm: [runs, tasks] normalised scores}, every algorithm on the same tasks. aggregates: one
    function, or {name: function}, mapping [..., runs, tasks] to [...] (or [..., k]). Each bootstrap
    replicate resamples runs with replacement within each task; all aggregates share the replicates.
    Returns {algorithm: Estimate}, or {algorithm: {name: Estimate}} when `aggregates` is a mapping.
    """
    scores = _checked(scores)
    named = aggregates if isinstance(aggregates, Mapping) else {"": aggregates}

    def statistic(sample):
        return {name: function(sample) for name, function in named.items()}

    rng = np.random.default_rng(seed)
    estimates = {algo: _bootstrap([sample], statistic, reps, confidence, rng) for algo, sample in scores.items()}
    return estimates if isinstance(aggregates, Mapping) else {algo: est[""] for algo, est in estimates.items()}


def performance_profile(scores, taus, *, task_means: bool = False, reps: int = 2000, confidence: float = 0.95,
                        seed: int = 0):
    """Performance profiles with stratified bootstrap CI bands: {algorithm: Estimate of arrays [len(taus)]}.

    The profile at tau is the fraction of all runs x tasks with score > tau (the score distribution), or with
    task_means the fraction of tasks whose mean score over runs is > tau.
    """
    taus = np.asarray(taus, np.float64)

    def profile(sample):
        values = np.mean(sample, axis=-2, keepdims=True) if task_means else sample
        # One tau at a time keeps a bootstrap chunk from growing by len(taus).
        return np.stack([np.mean(values > tau, axis=(-2, -1)) for tau in taus], axis=-1)

    return interval_estimates(scores, profile, reps=reps, confidence=confidence, seed=seed)


def probability_of_improvement(scores, x: str, y: str, *, reps: int = 2000, confidence: float = 0.95,
                               seed: int = 0) -> Estimate:
    """P(X > Y): per task, the Mann-Whitney U statistic of algorithm x's runs against y's over
    runs_x * runs_y (ties count 1/2), averaged over tasks; with a bootstrap interval that resamples the runs
    of x and of y independently within each task. The two may have different numbers of runs."""
    scores = _checked(scores)
    for name in (x, y):
        if name not in scores:
            raise JaxrlError(f"probability_of_improvement: no scores for {name!r}; have {sorted(scores)}")

    def statistic(sample_x, sample_y):
        greater = sample_x[..., :, None, :] > sample_y[..., None, :, :]
        ties = sample_x[..., :, None, :] == sample_y[..., None, :, :]
        return np.mean(greater + 0.5 * ties, axis=(-3, -2, -1))

    return _bootstrap([scores[x], scores[y]], statistic, reps, confidence, np.random.default_rng(seed))


# Elements of one bootstrap chunk: the batched statistics stay a few MB whatever `reps` is.
_CHUNK_ELEMENTS = 1 << 18


def _bootstrap(samples, statistic, reps, confidence, rng):
    """Estimate(s) of statistic(*samples) with percentile intervals over `reps` stratified resamples.

    Each sample [runs, tasks] is resampled independently: a replicate draws, for every (run slot, task), a
    run of that task with replacement (the indices are rng.integers(0, runs, (chunk, runs, tasks)) per sample,
    chunk after chunk). statistic returns an array or a dict of them.
    """
    if not isinstance(reps, (int, np.integer)) or reps < 1:
        raise JaxrlError(f"reps must be a positive integer, got {reps!r}")
    if not 0.0 < confidence < 1.0:
        raise JaxrlError(f"confidence must be strictly between 0 and 1, got {confidence!r}")
    chunk = max(1, _CHUNK_ELEMENTS // sum(sample.size for sample in samples))
    replicates = []
    for start in range(0, reps, chunk):
        count = min(chunk, reps - start)
        resampled = [sample[rng.integers(0, sample.shape[0], (count, *sample.shape)), np.arange(sample.shape[1])]
                     for sample in samples]
        replicates.append(statistic(*resampled))
    point = statistic(*samples)

    def estimate(point_value, values):
        low, high = _percentile_interval(values, confidence)
        if np.ndim(point_value) == 0:
            return Estimate(float(point_value), float(low), float(high))
        return Estimate(np.asarray(point_value), low, high)

    if isinstance(point, dict):
        return {name: estimate(point[name], np.concatenate([r[name] for r in replicates]))
                for name in point}
    return estimate(point, np.concatenate(replicates))


def _percentile_interval(values, confidence):
    """The (1 - confidence)/2 and (1 + confidence)/2 percentiles of `values` along axis 0."""
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(values, [100.0 * alpha, 100.0 * (1.0 - alpha)], axis=0)
    return low, high


def _checked(scores) -> dict[str, np.ndarray]:
    """The score dict as float64 [runs, tasks] arrays, or a JaxrlError naming the algorithm (and task)."""
    if not isinstance(scores, Mapping) or not scores:
        raise JaxrlError("scores must be a non-empty dict {algorithm: [runs, tasks] array}")
    checked = {}
    for algo, values in scores.items():
        values = np.asarray(values, np.float64)
        if values.ndim != 2 or values.size == 0:
            raise JaxrlError(f"scores of {algo!r} have shape {values.shape}; expected [runs, tasks] with at "
                             f"least one run and one task")
        bad = np.argwhere(~np.isfinite(values))
        if bad.size:
            run, task = bad[0]
            raise JaxrlError(f"scores of {algo!r} have {values[run, task]} at run {run}, task {task}; "
                             f"every score must be a finite number")
        checked[algo] = values
    tasks = {algo: values.shape[1] for algo, values in checked.items()}
    if len(set(tasks.values())) > 1:
        raise JaxrlError(f"algorithms have different numbers of tasks {tasks}; every algorithm needs scores "
                         f"on the same tasks")
    return checked
